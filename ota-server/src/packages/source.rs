//! Where an upload's artifact comes from, and how it enters the store: a `file://` path inside
//! an allowed root, or an `s3://` object of the local object store streamed into a temporary
//! file; then copied into the store, checked (size, SHA-256, chunk table) on the way, and
//! renamed in durably.

use std::path::{Path, PathBuf};

use ota_core::chunk::ChunkHasher;
use ota_core::sign::VerifiedPackage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

/// An artifact to read: a file in place, or one downloaded for the check (removed after).
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// Whether it is a download to remove.
    pub temp: bool,
}

impl Source {
    /// Removes a download.
    pub async fn done(self) {
        if self.temp {
            let _ = tokio::fs::remove_file(&self.path).await;
        }
    }
}

/// Where an artifact URI points, if `tenant`'s admin may have the server read it; an
/// `s3://bucket/key` object is streamed into a temporary file of the store first (at most
/// `max` bytes plus one, so a longer object fails the size check without being read whole).
pub async fn resolve(st: &AppState, tenant: &str, uri: &str, max: u64) -> ApiResult<Source> {
    if let Some(rest) = uri.strip_prefix("s3://") {
        return s3_download(st, uri, rest, max).await;
    }
    resolve_local(st, tenant, uri).map(|path| Source { path, temp: false })
}

async fn s3_download(st: &AppState, uri: &str, rest: &str, max: u64) -> ApiResult<Source> {
    use futures::StreamExt;
    use object_store::ObjectStoreExt;
    let (bucket, key) = rest
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(format!("artifact_uri: {uri:?} is not s3://BUCKET/KEY"))
        })?;
    let c = &st.config;
    let (Some(access), Some(secret)) = (&c.s3_access_key, &c.s3_secret_key) else {
        return Err(ApiError::precondition(
            "artifact_uri: s3:// needs the server's S3_ACCESS_KEY and S3_SECRET_KEY",
        ));
    };
    let access = crate::s3::S3Access {
        region: &c.s3_region,
        access_key: access,
        secret_key: secret,
        endpoint: c.s3_endpoint.as_deref(),
    };
    let store = crate::s3::bucket(bucket, &access)
        .map_err(|e| ApiError::invalid(format!("artifact_uri: {uri}: {e}")))?;
    let fetch_err = |e: object_store::Error| match e {
        object_store::Error::NotFound { .. } => {
            ApiError::invalid(format!("artifact_uri: {uri} does not exist"))
        }
        e => ApiError::new(Code::Unavailable, format!("artifact_uri: {uri}: {e}")),
    };
    let got = store
        .get(&object_store::path::Path::from(key))
        .await
        .map_err(fetch_err)?;
    tokio::fs::create_dir_all(&st.store_dir)
        .await
        .map_err(|e| ApiError::internal(format!("store: {e}")))?;
    let path = st
        .store_dir
        .join(format!("download-{}.part", crate::auth::random_hex(6)));
    let src = Source { path, temp: true };
    let mut out = tokio::fs::File::create(&src.path)
        .await
        .map_err(|e| ApiError::internal(format!("store: {e}")))?;
    let mut stream = got.into_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                src.done().await;
                return Err(fetch_err(e));
            }
        };
        n += chunk.len() as u64;
        if n > max.saturating_add(1) {
            break;
        }
        if let Err(e) = out.write_all(&chunk).await {
            src.done().await;
            return Err(ApiError::internal(format!("store: {e}")));
        }
    }
    if let Err(e) = out.flush().await {
        src.done().await;
        return Err(ApiError::internal(format!("store: {e}")));
    }
    Ok(src)
}

/// A `store://` key is the tenant's own (`store://TENANT/...`, where the server keeps what a
/// tenant uploaded): one tenant never has the server read, size or hash another's stored
/// objects. (`file://` roots and S3 buckets are the operator's to share or not.)
fn resolve_local(st: &AppState, tenant: &str, uri: &str) -> ApiResult<PathBuf> {
    if let Some(key) = uri.strip_prefix("store://") {
        if key.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(ApiError::invalid(format!(
                "artifact_uri: {uri:?} is not an object key of the store"
            )));
        }
        if key.split_once('/').is_none_or(|(owner, _)| owner != tenant) {
            return Err(ApiError::denied(format!(
                "artifact_uri: {uri:?} is not in this tenant's part of the store \
                 (store://{tenant}/...)"
            )));
        }
        return Ok(st.store_dir.join(key));
    }
    if let Some(path) = uri.strip_prefix("file://") {
        let p = std::fs::canonicalize(path)
            .map_err(|e| ApiError::invalid(format!("artifact_uri: cannot read {path}: {e}")))?;
        let allowed = st
            .config
            .artifact_roots
            .iter()
            .any(|root| std::fs::canonicalize(root).is_ok_and(|r| p.starts_with(r)));
        if !allowed {
            return Err(ApiError::denied(format!(
                "artifact_uri: {path} is outside the allowed artifact roots (--artifact-root)"
            )));
        }
        return Ok(p);
    }
    // Another scheme (https://) may be fetched one day; what has none is not a URI at all.
    let scheme = uri.split_once("://").map(|(s, _)| s);
    let has_scheme = scheme.is_some_and(|s| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if !has_scheme {
        return Err(ApiError::invalid(format!(
            "artifact_uri: {uri:?} is not a URI (s3://, file:// or store://)"
        )));
    }
    Err(ApiError::new(
        Code::Unimplemented,
        format!(
            "artifact_uri: only s3://, file:// (inside --artifact-root) and store:// are \
             fetched, not {uri:?}"
        ),
    ))
}

pub(super) enum Fetch {
    Mismatch(String),
    Io(std::io::Error),
}

impl From<std::io::Error> for Fetch {
    fn from(e: std::io::Error) -> Self {
        Fetch::Io(e)
    }
}

/// Streams `src` into `dest` (through a temporary file), checking what the statement signed.
pub(super) async fn fetch_and_check(
    src: &Path,
    dest: &Path,
    v: &VerifiedPackage,
) -> Result<(), Fetch> {
    let p = v.package();
    let mut input = tokio::fs::File::open(src).await?;
    let tmp = dest.with_extension(format!("part-{}", crate::auth::random_hex(4)));
    let mut out = tokio::fs::File::create(&tmp).await?;
    let mut hasher = ChunkHasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    let result = async {
        loop {
            let n = input.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > p.size_bytes {
                return Err(Fetch::Mismatch(format!(
                    "size_bytes: the artifact is larger than the declared {} bytes",
                    p.size_bytes
                )));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).await?;
        }
        out.flush().await?;
        out.sync_all().await?;
        let d = hasher.finish();
        if d.size_bytes != p.size_bytes {
            return Err(Fetch::Mismatch(format!(
                "size_bytes: the artifact has {} bytes, the package declares {}",
                d.size_bytes, p.size_bytes
            )));
        }
        if d.sha256 != p.sha256 {
            return Err(Fetch::Mismatch(format!(
                "sha256: the artifact's checksum is {}, the package declares {}",
                d.sha256.to_hex(),
                p.sha256.to_hex()
            )));
        }
        if Some(&d.chunks) != p.chunks.as_ref() {
            return Err(Fetch::Mismatch(
                "chunks: the artifact's chunk table differs from the signed one".to_string(),
            ));
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            rename_durably(&tmp, dest).await?;
            Ok(())
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

/// Renames a synced file into the store (`STORE/TENANT/NAME`) and syncs its directory and the
/// one above it (a tenant's directory may be new), so the new name survives a power cut: the
/// package's row, committed next, never names an artifact the disk lost.
pub(super) async fn rename_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    tokio::fs::rename(from, to).await?;
    let dir = to.parent().unwrap_or(Path::new(".")).to_path_buf();
    tokio::task::spawn_blocking(move || {
        ota_host::durable::sync_dir(&dir)?;
        match dir.parent() {
            Some(up) if !up.as_os_str().is_empty() => ota_host::durable::sync_dir(up),
            _ => Ok(()),
        }
    })
    .await
    .map_err(std::io::Error::other)?
}
