//! Reading a repository: a path under a base URL, from a local directory (`file://`) or over
//! HTTP(S) with tough's transport (timeouts, retries), in bounded chunks.

use std::io::Read;
use std::path::PathBuf;

use futures::StreamExt;
use tough::{DefaultTransport, Transport, TransportErrorKind, TransportStream};
use url::Url;

/// Why a fetch failed.
#[derive(Debug)]
pub(super) struct FetchError {
    /// The file is not there (HTTP 403 or 404, or no such local file).
    pub(super) not_found: bool,
    /// What failed.
    pub(super) detail: String,
}

/// An open file being read.
pub(super) enum Source {
    File(std::fs::File),
    Http(TransportStream),
}

/// How much a local read takes at once.
const FILE_READ: usize = 1 << 20;

/// Fetches from files and HTTP; the blocking calls run on a current-thread runtime.
pub(super) struct Fetcher {
    rt: tokio::runtime::Runtime,
    http: DefaultTransport,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fetcher")
    }
}

impl Fetcher {
    pub(super) fn new() -> Result<Fetcher, super::TufError> {
        Ok(Fetcher {
            rt: super::runtime()?,
            http: DefaultTransport::default(),
        })
    }

    /// Opens `url_path` (relative, percent-encoded) under `base`.
    pub(super) fn open(&self, base: &Url, url_path: &str) -> Result<Source, FetchError> {
        let fail = |detail: String| FetchError {
            not_found: false,
            detail,
        };
        if base.scheme() == "file" {
            let path = local_path(base, url_path).map_err(fail)?;
            return std::fs::File::open(&path)
                .map(Source::File)
                .map_err(|e| FetchError {
                    not_found: e.kind() == std::io::ErrorKind::NotFound,
                    detail: format!("{}: {e}", path.display()),
                });
        }
        let url = base
            .join(url_path)
            .map_err(|e| fail(format!("{base}{url_path}: {e}")))?;
        self.rt
            .block_on(self.http.fetch(url.clone()))
            .map(Source::Http)
            .map_err(|e| FetchError {
                not_found: matches!(e.kind(), TransportErrorKind::FileNotFound),
                detail: format!("{url}: {e}"),
            })
    }

    /// The next chunk, `None` at the end.
    pub(super) fn next(&self, source: &mut Source) -> Result<Option<Vec<u8>>, FetchError> {
        let fail = |detail: String| FetchError {
            not_found: false,
            detail,
        };
        match source {
            Source::File(f) => {
                let mut buf = vec![0u8; FILE_READ];
                let n = f.read(&mut buf).map_err(|e| fail(e.to_string()))?;
                buf.truncate(n);
                Ok((n > 0).then_some(buf))
            }
            Source::Http(s) => match self.rt.block_on(s.next()) {
                None => Ok(None),
                Some(Ok(b)) => Ok(Some(b.to_vec())),
                // tough's HTTP stream reports the status with the first chunk.
                Some(Err(e)) => Err(FetchError {
                    not_found: matches!(e.kind(), TransportErrorKind::FileNotFound),
                    detail: e.to_string(),
                }),
            },
        }
    }

    /// Reads `url_path` whole, but never more than `max + 1` bytes (so an oversized file is
    /// seen as such, and an endless one ends).
    pub(super) fn get(&self, base: &Url, url_path: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        let mut source = self.open(base, url_path)?;
        let cap = usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while let Some(chunk) = self.next(&mut source)? {
            let room = cap - out.len();
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() >= cap {
                break;
            }
        }
        Ok(out)
    }
}

/// The local file `url_path` names under a `file://` base: each part percent-decoded alone,
/// and refused if it would leave the directory (a decoded `/`, `\`, `.`, `..` or empty part).
fn local_path(base: &Url, url_path: &str) -> Result<PathBuf, String> {
    let mut path = base
        .to_file_path()
        .map_err(|()| format!("{base}: not a local directory"))?;
    for part in url_path.split('/') {
        let decoded = percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map_err(|e| format!("{url_path}: {e}"))?;
        if decoded.is_empty()
            || decoded == "."
            || decoded == ".."
            || decoded.contains('/')
            || decoded.contains('\\')
            || decoded.contains('\0')
        {
            return Err(format!("{url_path}: not a path inside the repository"));
        }
        path.push(&*decoded);
    }
    Ok(path)
}
