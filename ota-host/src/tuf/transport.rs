//! The client's transport: tough's, with every fetched file's first bytes kept to explain a
//! refusal, local files read in large blocks, and targets in a directory asked for at the
//! specification's path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tough::{
    DefaultTransport, Transport, TransportError, TransportErrorKind, TransportStream, async_trait,
};
use url::Url;

/// A transport that keeps the first bytes of every file it fetched, to explain a signature
/// failure (which keys signed the file tough refused).
///
/// While metadata loads, whole files are kept (tough's limits bound them), so the trusted state
/// can be saved byte for byte as the repository signed it; then only each file's first bytes.
///
/// It also asks for a target in a directory where the specification (and python-tuf, go-tuf)
/// puts it under consistent snapshots, `dir/HASH.base`: tough 0.24 asks for `HASH.dir/base`.
/// [`Repo`](super::repo::Repo) writes both.
#[derive(Debug, Clone)]
pub(super) struct Recording {
    inner: DefaultTransport,
    seen: Arc<Mutex<Vec<Fetched>>>,
    cap: Arc<AtomicUsize>,
    targets: Option<Url>,
}

/// A fetched file: its name, its first bytes, and whether the transfer failed part-way.
#[derive(Debug, Default)]
pub(super) struct Fetched {
    name: String,
    bytes: Vec<u8>,
    failed: bool,
}

/// How much of each fetched file is kept after the metadata has loaded.
pub(super) const KEPT: usize = 1 << 20;

#[async_trait]
impl Transport for Recording {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        let url = self.spec_target_url(url);
        let stream = if url.scheme() == "file" {
            file_stream(&url)?
        } else {
            self.inner.fetch(url.clone()).await?
        };
        let name = url
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let index = {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.push(Fetched {
                name,
                ..Fetched::default()
            });
            seen.len() - 1
        };
        let seen = self.seen.clone();
        let cap = self.cap.clone();
        Ok(Box::pin(stream.map(move |item| {
            let mut seen = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(f) = seen.get_mut(index) {
                match &item {
                    Ok(bytes) => {
                        let room = cap.load(Ordering::Relaxed).saturating_sub(f.bytes.len());
                        f.bytes.extend_from_slice(&bytes[..bytes.len().min(room)]);
                    }
                    Err(_) => f.failed = true,
                }
            }
            item
        })))
    }
}

/// How much of a local file each read takes.
const FILE_READ: usize = 1 << 20;

/// A local file as a stream of 1 MiB reads. tough's own file transport reads 8 KiB at a time
/// through tokio's blocking pool, a round trip per read (188 MiB/s on a 64 MiB target here);
/// the client runs on a current-thread runtime that does nothing else, so plain reads are
/// right.
fn file_stream(url: &Url) -> Result<TransportStream, TransportError> {
    use std::io::Read;
    let fail = |kind, e: std::io::Error| TransportError::new_with_cause(kind, url, e);
    let path = url
        .to_file_path()
        .map_err(|()| TransportError::new(TransportErrorKind::Other, url))?;
    let file = std::fs::File::open(&path).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            TransportErrorKind::FileNotFound
        } else {
            TransportErrorKind::Other
        };
        fail(kind, e)
    })?;
    let url = url.clone();
    Ok(Box::pin(futures::stream::unfold(Some(file), move |file| {
        let url = url.clone();
        async move {
            let mut file = file?;
            let mut buf = vec![0u8; FILE_READ];
            match file.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((
                    Err(TransportError::new_with_cause(
                        TransportErrorKind::Other,
                        &url,
                        e,
                    )),
                    None,
                )),
            }
        }
    })))
}

impl Recording {
    /// A recording transport; target URLs under `targets` are fetched at the specification's
    /// path.
    pub(super) fn new(targets: Option<Url>) -> Self {
        Recording {
            inner: DefaultTransport::default(),
            seen: Arc::default(),
            cap: Arc::new(AtomicUsize::new(usize::MAX)),
            targets,
        }
    }

    /// `base/HASH.dir/name` as `base/dir/HASH.name`; any other URL as it is.
    pub(super) fn spec_target_url(&self, url: Url) -> Url {
        let Some(base) = &self.targets else {
            return url;
        };
        let Some(rel) = url.as_str().strip_prefix(base.as_str()) else {
            return url;
        };
        let Some((hash, path)) = rel.split_once('.') else {
            return url;
        };
        let is_hash = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        match path.rsplit_once('/') {
            Some((dir, name)) if is_hash => {
                base.join(&format!("{dir}/{hash}.{name}")).unwrap_or(url)
            }
            _ => url,
        }
    }

    /// From now on, keeps only the first `n` bytes of each file.
    pub(super) fn keep_only(&self, n: usize) {
        self.cap.store(n, Ordering::Relaxed);
    }

    /// The last fetched file of `role` (`timestamp.json`, `N.snapshot.json`, ...).
    pub(super) fn last(&self, role: &str) -> Option<Vec<u8>> {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let suffix = format!("{role}.json");
        seen.iter()
            .rev()
            .find(|f| f.name == suffix || f.name.ends_with(&format!(".{suffix}")))
            .map(|f| f.bytes.clone())
    }

    /// The last root fetched whole (the probe for the next version fails: it is not there).
    pub(super) fn last_root(&self) -> Option<Vec<u8>> {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.iter()
            .rev()
            .find(|f| f.name.ends_with(".root.json") && !f.failed && !f.bytes.is_empty())
            .map(|f| f.bytes.clone())
    }

    /// Every root fetched.
    pub(super) fn roots(&self) -> Vec<Vec<u8>> {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.iter()
            .filter(|f| f.name.ends_with(".root.json"))
            .map(|f| f.bytes.clone())
            .collect()
    }
}
