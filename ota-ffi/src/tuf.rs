//! TUF: loading a repository from a trusted root, refreshing it, resolving targets to verified
//! packages, downloading them, and the Trust Center. Behind the `tuf` feature (on by default).

use std::ffi::{c_char, c_void};
use std::io::Write;

use ota_core::Status;
use ota_host::tuf::TufError;
use ota_host::tuf::client::{Client, Transport, Trusted};

use crate::error::{Failure, call, set_last_error};
use crate::ffi::{
    CallbackWriter, free, handle, new_handle, ota_write_fn, try_handle, try_handle_mut, try_out,
    try_slice, try_str, write_text,
};
use crate::sign::ota_verified_package;

/// A TUF client: a trusted root, where metadata and targets come from, and where the trusted
/// metadata is kept. Made by `ota_tuf_client_new`, freed by `ota_tuf_client_free`.
#[allow(non_camel_case_types)]
pub struct ota_tuf_client {
    inner: Client,
}
handle!(ota_tuf_client, ota_tuf_client_free);

/// A refreshed, verified TUF repository. Made by `ota_tuf_refresh`, freed by
/// `ota_tuf_repo_free`.
#[allow(non_camel_case_types)]
pub struct ota_tuf_repo {
    inner: Trusted,
}
handle!(ota_tuf_repo, ota_tuf_repo_free);

fn tuf_error(e: TufError) -> Failure {
    Failure::new(e.status(), e.to_string())
}

thread_local! {
    /// Whether this thread is inside an `ota_tuf_download`'s write callback.
    static IN_DOWNLOAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as inside a download's write callback while it lives.
struct InDownload;

impl InDownload {
    fn enter() -> InDownload {
        let _ = IN_DOWNLOAD.try_with(|d| d.set(true));
        InDownload
    }
}

impl Drop for InDownload {
    fn drop(&mut self) {
        let _ = IN_DOWNLOAD.try_with(|d| d.set(false));
    }
}

/// The refusal of a TUF call made from inside a download's write callback: the download runs
/// an HTTP client that cannot run another inside it (it would panic, and leave the handle it
/// used unusable).
fn not_in_download(call: &str) -> Result<(), Failure> {
    if IN_DOWNLOAD.try_with(|d| d.get()).unwrap_or(false) {
        return Err(Failure::new(
            Status::InvalidArgument,
            format!(
                "{call} is called from inside an ota_tuf_download's write callback: call it after the download returns"
            ),
        ));
    }
    Ok(())
}

/// Makes a TUF client. `root` is the trusted root.json; `metadata_url` and `targets_url` are
/// `http(s)://` or `file://` URLs or directories; `state_dir` (may be NULL with length 0) is
/// where the trusted metadata is kept, each role in a file named after it (`root.json`,
/// `timestamp.json`, `snapshot.json`, `targets.json`, and each delegated role a search
/// visited, its name percent-encoded): its `root.json`, when present, is trusted instead of
/// `root`, and each role's file is replaced as soon as the role verified.
///
/// Takes no ownership; the caller frees `*client_out` with `ota_tuf_client_free`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ota_tuf_client_new(
    root: *const c_char,
    root_len: usize,
    metadata_url: *const c_char,
    metadata_url_len: usize,
    targets_url: *const c_char,
    targets_url_len: usize,
    state_dir: *const c_char,
    state_dir_len: usize,
    client_out: *mut *mut ota_tuf_client,
) -> Status {
    call(|| {
        let out = try_out!(client_out);
        let root = try_slice!(root, root_len).to_vec();
        let metadata = try_str!(metadata_url, metadata_url_len);
        let targets = try_str!(targets_url, targets_url_len);
        let state = try_str!(state_dir, state_dir_len);
        let mut inner = Client::new(root, metadata, targets).map_err(tuf_error)?;
        if !state.is_empty() {
            inner = inner.state_dir(state);
        }
        out.write(new_handle(ota_tuf_client { inner }));
        Ok(())
    })
}

/// Sets how `client` bears a slow or broken link over HTTP: a try fails when it makes no progress
/// for `timeout_ms` (connecting and getting the answer's head, or between two pieces of its
/// body), never for the total time of a transfer; a download that stalls or breaks off is
/// resumed where it stopped (`Range: bytes=N-`, the resumed bytes verified with the rest), and
/// a fetch fails after 4 tries in a row without progress, with `OTA_STATUS_TUF_FETCH` and a
/// message saying so. The default is 30000 ms; 0 is refused with
/// `OTA_STATUS_INVALID_ARGUMENT`. Applies to the refreshes made after it (and to their
/// repositories' downloads).
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_client_set_progress_timeout(
    client: *mut ota_tuf_client,
    timeout_ms: u64,
) -> Status {
    call(|| {
        let client = try_handle_mut!(client);
        if timeout_ms == 0 {
            return Err(Failure::new(
                Status::InvalidArgument,
                "timeout_ms must be above 0",
            ));
        }
        let transport = Transport {
            progress_timeout: std::time::Duration::from_millis(timeout_ms),
            ..Transport::default()
        };
        client.inner = client.inner.clone().transport(transport);
        Ok(())
    })
}

/// Refreshes at time `now` (Unix ms), as the TUF specification's client workflow says: root
/// updates, timestamp, snapshot and targets, each verified (signatures and thresholds,
/// rollback, mix-and-match, sizes, expiry). Each attack fails with its own `OTA_STATUS_TUF_*`
/// status; the roles that verified before it stay trusted, and nothing after it is kept.
///
/// Takes no ownership; the caller frees `*repo_out` with `ota_tuf_repo_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_refresh(
    client: *const ota_tuf_client,
    now: u64,
    repo_out: *mut *mut ota_tuf_repo,
) -> Status {
    call(|| {
        not_in_download("ota_tuf_refresh")?;
        let out = try_out!(repo_out);
        let client = try_handle!(client);
        let inner = client
            .inner
            .refresh(ota_core::UnixMs(now))
            .map_err(tuf_error)?;
        out.write(new_handle(ota_tuf_repo { inner }));
        Ok(())
    })
}

/// Resolves target `name` to the package it carries, verified through TUF, searching the
/// delegations that cover its name and loading only those roles (it feeds
/// `ota_download_new` and `ota_opener_new` like an envelope-verified one); `*length_out`
/// receives the target's length.
///
/// Takes no ownership; the caller frees `*package_out` with `ota_verified_package_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_resolve(
    repo: *const ota_tuf_repo,
    name: *const c_char,
    name_len: usize,
    package_out: *mut *mut ota_verified_package,
    length_out: *mut u64,
) -> Status {
    call(|| {
        not_in_download("ota_tuf_resolve")?;
        let package = try_out!(package_out);
        let length = try_out!(length_out);
        let repo = try_handle!(repo);
        let name = try_str!(name, name_len);
        let r = repo.inner.resolve(name).map_err(tuf_error)?;
        length.write(r.length);
        package.write(new_handle(ota_verified_package { inner: r.package }));
        Ok(())
    })
}

/// Downloads target `name`, verified against its length and SHA-256 as it streams, handing the
/// bytes to `write(ctx, data, len)`; `*written_out` receives the length. On any failure what
/// was handed over must be discarded. A `write` that returns non-zero stops the download with
/// `OTA_STATUS_IO`. Over HTTP a download that stalls or breaks off is resumed where it stopped
/// (see `ota_tuf_client_set_progress_timeout`). A TUF call from inside `write` (a refresh,
/// resolve, download or free) is refused with `OTA_STATUS_INVALID_ARGUMENT`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_download(
    repo: *const ota_tuf_repo,
    name: *const c_char,
    name_len: usize,
    write: ota_write_fn,
    ctx: *mut c_void,
    written_out: *mut u64,
) -> Status {
    call(|| {
        not_in_download("ota_tuf_download")?;
        let written = try_out!(written_out);
        let repo = try_handle!(repo);
        let name = try_str!(name, name_len);
        let mut w = CallbackWriter::new(write, ctx)?;
        let inside = InDownload::enter();
        let n = repo.inner.download(name, &mut w).map_err(tuf_error);
        drop(inside);
        let n = n?;
        w.flush()
            .map_err(|e| Failure::new(Status::Io, e.to_string()))?;
        written.write(n);
        Ok(())
    })
}

/// Downloads target `name` into the file at `path`, written only when the whole target
/// verified (a temporary file is renamed into place).
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_download_file(
    repo: *const ota_tuf_repo,
    name: *const c_char,
    name_len: usize,
    path: *const c_char,
    path_len: usize,
) -> Status {
    call(|| {
        not_in_download("ota_tuf_download_file")?;
        let repo = try_handle!(repo);
        let name = try_str!(name, name_len);
        let path = try_str!(path, path_len);
        crate::fs::write_atomically("path", std::path::Path::new(path), |out| {
            repo.inner
                .download(name, out)
                .map(|_| ())
                .map_err(tuf_error)
        })
    })
}

/// Writes the Trust Center as JSON into `buf`: `{"roles": [{"role", "version", "expires",
/// "threshold", "keyids", "signed_by"}], "targets": [{"name", "length", "sha256", "package",
/// "package_id"}]}`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_trust_center(
    repo: *const ota_tuf_repo,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let repo = try_handle!(repo);
        let json = serde_json::to_string(&repo.inner.trust_center())
            .map_err(|e| Failure::new(Status::Panic, e.to_string()))?;
        unsafe { write_text(&json, buf, buf_len, out_n) }
    })
}

/// Frees a TUF client. NULL is allowed and does nothing.
///
/// Takes ownership of `client`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_client_free(client: *mut ota_tuf_client) {
    if let Err(f) = not_in_download("ota_tuf_client_free") {
        return set_last_error(format!("not freed: {}", f.message));
    }
    unsafe { free(client) }
}

/// Frees a TUF repository. NULL is allowed and does nothing.
///
/// Takes ownership of `repo`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_repo_free(repo: *mut ota_tuf_repo) {
    if let Err(f) = not_in_download("ota_tuf_repo_free") {
        return set_last_error(format!("not freed: {}", f.message));
    }
    unsafe { free(repo) }
}
