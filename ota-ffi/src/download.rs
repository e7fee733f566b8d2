//! The parts the agent is made of, for hosts that drive them alone: a download in any order
//! (`ota_download`) and an install of its verified prefix (`ota_install`).

use std::ffi::{c_char, c_void};

use ota_core::Status;
use ota_core::download::{Accepted, Download, DownloadState, Install};
use ota_core::seal::Opened;

use crate::device_io::{HostIo, ota_device_io};
use crate::error::{Failure, call};
use crate::ffi::{
    CallbackWriter, Disarm, LIMITS, free, handle, key32, new_handle, ota_write_fn, out_ref,
    try_handle, try_handle_mut, try_out, try_ref, try_slice, try_str, write_text,
};
use crate::sign::ota_verified_package;
use crate::stream::Stream;

/// A download of a verified package's artifact, any order, every chunk verified. Made by
/// `ota_download_new` or `ota_download_resume`, freed by `ota_download_free`.
#[allow(non_camel_case_types)]
pub struct ota_download {
    inner: Download,
}
handle!(ota_download, ota_download_free);

/// Starts a download of a verified package's artifact: nothing verified yet.
///
/// Takes no ownership; the caller frees `*download_out` with `ota_download_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_new(
    package: *const ota_verified_package,
    download_out: *mut *mut ota_download,
) -> Status {
    call(|| {
        let out = try_out!(download_out);
        let package = try_handle!(package);
        out.write(new_handle(ota_download {
            inner: Download::new(&package.inner),
        }));
        Ok(())
    })
}

/// Resumes a download from its saved state (the JSON `ota_download_state` wrote): every chunk
/// the state marks is read back through `io->stage_read` and checked again; one that no
/// longer matches is missing again. The chunks kept came back from storage, so
/// `ota_install_advance` checks each again as it installs it.
///
/// Takes no ownership; the caller frees `*download_out` with `ota_download_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_resume(
    package: *const ota_verified_package,
    state: *const c_char,
    state_len: usize,
    io: *const ota_device_io,
    download_out: *mut *mut ota_download,
) -> Status {
    call(|| {
        let out = try_out!(download_out);
        let package = try_handle!(package);
        let state = DownloadState::from_json(try_str!(state, state_len).as_bytes(), LIMITS)?;
        let mut io = HostIo::new(try_ref!(io))?;
        let (inner, _) = Download::resume(&package.inner, &state, &mut io)?;
        out.write(new_handle(ota_download { inner }));
        Ok(())
    })
}

/// Lists up to `max` missing chunks, in order: their offsets into `offsets` and lengths into
/// `lengths` (each `max` elements; NULL when `max` is 0); `*out_n` receives how many were
/// written.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_plan(
    download: *const ota_download,
    offsets: *mut u64,
    lengths: *mut u32,
    max: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let out_n = try_out!(out_n);
        let download = try_handle!(download);
        if max > 0 && (offsets.is_null() || lengths.is_null()) {
            return Err(Failure::new(
                Status::NullPointer,
                "`offsets` or `lengths` is NULL but `max` is not 0",
            ));
        }
        let plan = download.inner.plan(max);
        for (i, r) in plan.iter().enumerate() {
            unsafe {
                offsets.add(i).write(r.offset);
                lengths.add(i).write(r.length);
            }
        }
        out_n.write(plan.len());
        Ok(())
    })
}

/// Takes a chunk that arrived at `offset`: checks its place and its signed digest, then
/// stores it through `io->stage_write`. A bad chunk is refused with its index in the last
/// error and stays missing; `*new_out` (may be NULL) says whether the chunk was new.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_accept(
    download: *mut ota_download,
    offset: u64,
    data: *const u8,
    data_len: usize,
    io: *const ota_device_io,
    new_out: *mut bool,
) -> Status {
    call(|| {
        let new_out = unsafe { out_ref(new_out) };
        let download = try_handle_mut!(download);
        let data = try_slice!(data, data_len);
        let mut io = HostIo::new(try_ref!(io))?;
        let accepted = download.inner.accept(offset, data, &mut io)?;
        if let Some(new_out) = new_out {
            new_out.write(matches!(accepted, Accepted::New { .. }));
        }
        Ok(())
    })
}

/// Writes the download's state (which chunks are verified) as JSON into `buf`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_state(
    download: *const ota_download,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let download = try_handle!(download);
        let state = ota_core::json::to_string(&download.inner.state());
        unsafe { write_text(&state, buf, buf_len, out_n) }
    })
}

/// How far the download is: `*verified_out` receives the chunks verified and `*total_out`
/// the chunks in all.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_progress(
    download: *const ota_download,
    verified_out: *mut usize,
    total_out: *mut usize,
) -> Status {
    call(|| {
        let verified = try_out!(verified_out);
        let total = try_out!(total_out);
        let download = try_handle!(download);
        verified.write(download.inner.verified_count());
        total.write(download.inner.chunk_count());
        Ok(())
    })
}

/// Frees a download. NULL is allowed and does nothing.
///
/// Takes ownership of `download`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_free(download: *mut ota_download) {
    unsafe { free(download) }
}

/// An install of a download's verified prefix into a slot. Made by `ota_install_new`, freed
/// by `ota_install_free`.
#[allow(non_camel_case_types)]
pub struct ota_install {
    /// Stops the write callback before the rest is dropped: freeing never calls back.
    _disarm: Disarm,
    /// Like the sealer's and the opener's: a finished install keeps its result, so a buffer
    /// that was too small can be retried.
    state: Stream<Install<CallbackWriter>, Opened>,
}
handle!(ota_install, ota_install_free);

/// Starts installing a verified package's artifact, opened with `key` (32 bytes), into a
/// slot written through `write(ctx, ...)` (which must start empty).
///
/// `ctx` is passed back to `write` untouched; `write` must stay callable until the install
/// is finished or freed.
///
/// Takes no ownership; the caller frees `*install_out` with `ota_install_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_install_new(
    package: *const ota_verified_package,
    key: *const u8,
    key_len: usize,
    write: ota_write_fn,
    ctx: *mut c_void,
    install_out: *mut *mut ota_install,
) -> Status {
    call(|| {
        let out = try_out!(install_out);
        let package = try_handle!(package);
        let key = ota_core::seal::SealKey::from_bytes(key32(
            try_slice!(key, key_len),
            "an encryption key",
        )?);
        let slot = CallbackWriter::new(write, ctx)?;
        out.write(new_handle(ota_install {
            _disarm: slot.disarm(),
            state: Stream::new(Install::new(&package.inner, &key, slot)),
        }));
        Ok(())
    })
}

/// Installs every verified chunk that continues the installed prefix, reading each back
/// through `io->stage_read` (the storage `ota_download_accept` wrote it to). Each byte is
/// hashed once: a chunk `download` accepted in this session is not hashed again, while one
/// that came back from storage after a restart (`ota_download_resume`) is checked again
/// first, and one that went bad is marked missing in `download`
/// (`OTA_STATUS_STORED_CHUNK_CORRUPT`, naming it). The download of another package fails
/// with `OTA_STATUS_DOWNLOAD_STATE_MISMATCH`.
/// `*installed_out` (may be NULL) receives how many chunks are installed.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_install_advance(
    install: *mut ota_install,
    download: *mut ota_download,
    io: *const ota_device_io,
    installed_out: *mut usize,
) -> Status {
    call(|| {
        let installed_out = unsafe { out_ref(installed_out) };
        let install = try_handle_mut!(install);
        let download = try_handle_mut!(download);
        let mut io = HostIo::new(try_ref!(io))?;
        // A failed advance leaves the install running: a chunk that went bad is marked
        // missing, and the install goes on once it is fetched again.
        let inst = install.state.running("install")?;
        inst.advance(&mut download.inner, &mut io)?;
        if let Some(installed_out) = installed_out {
            installed_out.write(inst.installed());
        }
        Ok(())
    })
}

/// Ends the install once every chunk is in: confirms the artifact's SHA-256 and the
/// plaintext's size and digest, and writes `{"plaintext_size", "plaintext_sha256"}` into
/// `buf`. Only success means the slot holds the complete new version. Calling it again
/// returns the same JSON; after a failure it fails with `OTA_STATUS_INVALID_ARGUMENT`.
///
/// `OTA_STATUS_INSUFFICIENT_SIZE` loses nothing: the install stays finished, and the call
/// can be repeated with a larger buffer.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_install_finish(
    install: *mut ota_install,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let install = try_handle_mut!(install);
        let opened = install.state.finish("install", |i| Ok(i.finish()?.0))?;
        unsafe { write_text(&ota_core::json::to_string(opened), buf, buf_len, out_n) }
    })
}

/// Frees an install. NULL is allowed and does nothing.
///
/// Takes ownership of `install`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_install_free(install: *mut ota_install) {
    unsafe { free(install) }
}
