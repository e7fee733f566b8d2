//! TUF: loading a repository from a trusted root, refreshing it, resolving targets to verified
//! packages, downloading them, and the Trust Center. Behind the `tuf` feature (on by default).

use std::ffi::{c_char, c_void};
use std::io::Write;

use ota_core::Status;
use ota_host::tuf::TufError;
use ota_host::tuf::client::{Client, Trusted};

use crate::error::{Failure, call};
use crate::ffi::{
    CallbackWriter, free_handle, ota_write_fn, try_ref, try_slice, try_str, write_handle,
    write_out, write_text,
};
use crate::sign::ota_verified_package;

/// A TUF client: a trusted root, where metadata and targets come from, and where the trusted
/// metadata is kept. Made by `ota_tuf_client_new`, freed by `ota_tuf_client_free`.
#[allow(non_camel_case_types)]
pub struct ota_tuf_client {
    inner: Client,
}

/// A refreshed, verified TUF repository. Made by `ota_tuf_refresh`, freed by
/// `ota_tuf_repo_free`.
#[allow(non_camel_case_types)]
pub struct ota_tuf_repo {
    inner: Trusted,
}

fn tuf_error(e: TufError) -> Failure {
    Failure::new(e.status(), e.to_string())
}

/// Makes a TUF client. `root` is the trusted root.json; `metadata_url` and `targets_url` are
/// `http(s)://` or `file://` URLs or directories; `state_dir` (may be NULL with length 0) is
/// where the trusted metadata is kept under its plain names (`root.json`, `timestamp.json`,
/// `snapshot.json`, `targets.json`): its `root.json`, when present, is trusted instead of
/// `root`, and after each successful refresh the four files are replaced.
///
/// Takes ownership of nothing. On success, `*client_out` receives a new client that the caller
/// must free with `ota_tuf_client_free`.
///
/// # Safety
///
/// Each pointer must point to its length in readable bytes (`state_dir` may be NULL with
/// length 0); `client_out` must point to a writable pointer.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ota_tuf_client_new(
    root: *const u8,
    root_len: usize,
    metadata_url: *const u8,
    metadata_url_len: usize,
    targets_url: *const u8,
    targets_url_len: usize,
    state_dir: *const u8,
    state_dir_len: usize,
    client_out: *mut *mut ota_tuf_client,
) -> Status {
    call(|| {
        let root = try_slice!(root, root_len).to_vec();
        let metadata = try_str!(metadata_url, metadata_url_len);
        let targets = try_str!(targets_url, targets_url_len);
        let state = try_str!(state_dir, state_dir_len);
        let mut inner = Client::new(root, metadata, targets).map_err(tuf_error)?;
        if !state.is_empty() {
            inner = inner.state_dir(state);
        }
        write_handle(client_out, ota_tuf_client { inner })
    })
}

/// Refreshes at time `now` (Unix ms): root updates, timestamp, snapshot and targets, each
/// verified (signatures and thresholds, rollback, mix-and-match, sizes, expiry). Each attack
/// fails with its own `OTA_STATUS_TUF_*` status and leaves the trusted state as it was.
///
/// Takes ownership of nothing. On success, `*repo_out` receives a new repository that the
/// caller must free with `ota_tuf_repo_free`.
///
/// # Safety
///
/// `client` must be a live client; `repo_out` must point to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_refresh(
    client: *const ota_tuf_client,
    now: u64,
    repo_out: *mut *mut ota_tuf_repo,
) -> Status {
    call(|| {
        let client = try_ref!(client);
        if repo_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`repo_out` is NULL"));
        }
        let inner = client.inner.refresh(now).map_err(tuf_error)?;
        write_handle(repo_out, ota_tuf_repo { inner })
    })
}

/// Resolves target `name` to the package it carries, verified through TUF (it feeds
/// `ota_download_new` and `ota_opener_new` like an envelope-verified one); `*length_out`
/// receives the target's length.
///
/// Takes ownership of nothing. On success, `*package_out` receives a new verified package that
/// the caller must free with `ota_verified_package_free`.
///
/// # Safety
///
/// `repo` must be a live repository; `name` must point to `name_len` readable bytes;
/// `package_out` to a writable pointer and `length_out` to a writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_resolve(
    repo: *const ota_tuf_repo,
    name: *const u8,
    name_len: usize,
    package_out: *mut *mut ota_verified_package,
    length_out: *mut u64,
) -> Status {
    call(|| {
        let repo = try_ref!(repo);
        let name = try_str!(name, name_len);
        if package_out.is_null() || length_out.is_null() {
            return Err(Failure::new(
                Status::NullPointer,
                "an output pointer is NULL",
            ));
        }
        let r = repo.inner.resolve(name).map_err(tuf_error)?;
        write_out(length_out, r.length)?;
        write_handle(package_out, ota_verified_package { inner: r.package })
    })
}

/// Downloads target `name`, verified against its length and SHA-256 as it streams, handing the
/// bytes to `write(ctx, data, len)`; `*written_out` receives the length. On any failure what
/// was handed over must be discarded.
///
/// # Safety
///
/// `repo` must be a live repository; `name` must point to `name_len` readable bytes; `write`
/// must be a valid callback; `written_out` must point to a writable `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_download(
    repo: *const ota_tuf_repo,
    name: *const u8,
    name_len: usize,
    write: ota_write_fn,
    ctx: *mut c_void,
    written_out: *mut u64,
) -> Status {
    call(|| {
        let repo = try_ref!(repo);
        let name = try_str!(name, name_len);
        if written_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`written_out` is NULL"));
        }
        let mut w = CallbackWriter::new(write, ctx)?;
        let n = repo.inner.download(name, &mut w).map_err(tuf_error)?;
        w.flush()
            .map_err(|e| Failure::new(Status::Io, e.to_string()))?;
        write_out(written_out, n)
    })
}

/// Downloads target `name` into the file at `path`, written only when the whole target
/// verified (a temporary file is renamed into place).
///
/// # Safety
///
/// `repo` must be a live repository; `name` and `path` must point to their lengths in
/// readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_download_file(
    repo: *const ota_tuf_repo,
    name: *const u8,
    name_len: usize,
    path: *const u8,
    path_len: usize,
) -> Status {
    call(|| {
        let repo = try_ref!(repo);
        let name = try_str!(name, name_len);
        let path = try_str!(path, path_len);
        crate::fs::write_atomically(std::path::Path::new(path), |out| {
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
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `repo` must be a live repository; `buf` must point to `buf_len` writable bytes; `out_n` to
/// a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_trust_center(
    repo: *const ota_tuf_repo,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let repo = try_ref!(repo);
        let json = serde_json::to_string(&repo.inner.trust_center())
            .map_err(|e| Failure::new(Status::Panic, e.to_string()))?;
        unsafe { write_text(&json, buf, buf_len, out_n) }
    })
}

/// Frees a TUF client. NULL is allowed and does nothing.
///
/// # Safety
///
/// `client` must be NULL or a client not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_client_free(client: *mut ota_tuf_client) {
    crate::panic::guard(|| unsafe { free_handle(client) })
}

/// Frees a TUF repository. NULL is allowed and does nothing.
///
/// # Safety
///
/// `repo` must be NULL or a repository not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_tuf_repo_free(repo: *mut ota_tuf_repo) {
    crate::panic::guard(|| unsafe { free_handle(repo) })
}
