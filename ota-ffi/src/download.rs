//! The parts the agent is made of, for hosts that drive them alone: a download in any order
//! (`ota_download`) and an install of its verified prefix (`ota_install`).

use std::ffi::{c_char, c_void};

use ota_core::download::{Accepted, Download, DownloadState, Install};
use ota_core::seal::Opened;
use ota_core::{Limits, Status};

use crate::device_io::{HostIo, ota_device_io};
use crate::error::{Failure, call};
use crate::ffi::{
    CallbackWriter, free_handle, key32, ota_write_fn, try_mut, try_ref, try_slice, write_handle,
    write_out, write_text,
};
use crate::sign::ota_verified_package;

/// A download of a verified package's artifact, any order, every chunk verified. Made by
/// `ota_download_new` or `ota_download_resume`, freed by `ota_download_free`.
#[allow(non_camel_case_types)]
pub struct ota_download {
    inner: Download,
}

/// Starts a download of a verified package's artifact: nothing verified yet.
///
/// Takes ownership of nothing. On success, `*download_out` receives a new download that the
/// caller must free with `ota_download_free`.
///
/// # Safety
///
/// `package` must be a live verified package; `download_out` must point to a writable
/// pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_new(
    package: *const ota_verified_package,
    download_out: *mut *mut ota_download,
) -> Status {
    call(|| {
        let p = try_ref!(package);
        write_handle(
            download_out,
            ota_download {
                inner: Download::new(&p.inner),
            },
        )
    })
}

/// Resumes a download from its saved state (`ota_download_state`): every chunk the state
/// marks is read back through `io->stage_read` and checked again; one that no longer matches
/// is missing again.
///
/// Takes ownership of nothing. On success, `*download_out` receives a new download that the
/// caller must free with `ota_download_free`.
///
/// # Safety
///
/// `package` must be a live verified package; `state` must point to `state_len` readable
/// bytes; `io` to a valid `ota_device_io`; `download_out` to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_resume(
    package: *const ota_verified_package,
    state: *const u8,
    state_len: usize,
    io: *const ota_device_io,
    download_out: *mut *mut ota_download,
) -> Status {
    call(|| {
        let p = try_ref!(package);
        let state = DownloadState::from_json(try_slice!(state, state_len), &Limits::default())?;
        let mut io = HostIo::new(try_ref!(io))?;
        if download_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`download_out` is NULL"));
        }
        let (inner, _) = Download::resume(&p.inner, &state, &mut io)?;
        write_handle(download_out, ota_download { inner })
    })
}

/// Lists up to `max` missing chunks, in order: their offsets into `offsets` and lengths into
/// `lengths`; `*out_n` receives how many were written.
///
/// # Safety
///
/// `download` must be a live download; `offsets` and `lengths` must each point to `max`
/// writable elements (or be NULL when `max` is 0); `out_n` to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_plan(
    download: *const ota_download,
    offsets: *mut u64,
    lengths: *mut u32,
    max: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let d = try_ref!(download);
        if max > 0 && (offsets.is_null() || lengths.is_null()) {
            return Err(Failure::new(
                Status::NullPointer,
                "`offsets` or `lengths` is NULL",
            ));
        }
        let plan = d.inner.plan(max);
        for (i, r) in plan.iter().enumerate() {
            unsafe {
                offsets.add(i).write(r.offset);
                lengths.add(i).write(r.length);
            }
        }
        write_out(out_n, plan.len())
    })
}

/// Takes a chunk that arrived at `offset`: checks its place and its signed digest, then
/// stores it through `io->stage_write`. A bad chunk is refused with its index in the last
/// error and stays missing; `*new_out` (may be NULL) says whether the chunk was new.
///
/// # Safety
///
/// `download` must be a live download; `data` must point to `data_len` readable bytes; `io`
/// to a valid `ota_device_io`; `new_out` must be NULL or point to a writable `bool`.
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
        let d = try_mut!(download);
        let data = try_slice!(data, data_len);
        let mut io = HostIo::new(try_ref!(io))?;
        let accepted = d.inner.accept(offset, data, &mut io)?;
        if !new_out.is_null() {
            write_out(new_out, matches!(accepted, Accepted::New { .. }))?;
        }
        Ok(())
    })
}

/// Writes the download's state (which chunks are verified) as JSON into `buf`.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `download` must be a live download; `buf` must point to `buf_len` writable bytes; `out_n`
/// to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_state(
    download: *const ota_download,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let d = try_ref!(download);
        unsafe {
            write_text(
                &ota_core::json::to_string(&d.inner.state()),
                buf,
                buf_len,
                out_n,
            )
        }
    })
}

/// How far the download is: chunks verified and chunks in all.
///
/// # Safety
///
/// `download` must be a live download; `verified_out` and `total_out` must point to writable
/// `size_t`s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_progress(
    download: *const ota_download,
    verified_out: *mut usize,
    total_out: *mut usize,
) -> Status {
    call(|| {
        let d = try_ref!(download);
        if verified_out.is_null() || total_out.is_null() {
            return Err(Failure::new(
                Status::NullPointer,
                "an output pointer is NULL",
            ));
        }
        write_out(verified_out, d.inner.verified_count())?;
        write_out(total_out, d.inner.chunk_count())
    })
}

/// Frees a download. NULL is allowed and does nothing.
///
/// # Safety
///
/// `download` must be NULL or a download not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_download_free(download: *mut ota_download) {
    crate::panic::guard(|| unsafe { free_handle(download) })
}

/// An install of a download's verified prefix into a slot. Made by `ota_install_new`, freed
/// by `ota_install_free`.
#[allow(non_camel_case_types)]
pub struct ota_install {
    state: InstallState,
}

/// Like the sealer's and the opener's: a finished install keeps its result, so a buffer
/// that was too small can be retried.
enum InstallState {
    Installing(Box<Install<CallbackWriter>>),
    Finished(Opened),
    Failed,
}

/// Starts installing a verified package's artifact, opened with `key`, into a slot written
/// through `write(ctx, ...)` (which must start empty).
///
/// Takes ownership of nothing; `ctx` is passed back to `write` untouched. On success,
/// `*install_out` receives a new install that the caller must free with `ota_install_free`.
///
/// # Safety
///
/// `package` must be a live verified package; `key` must point to `key_len` (32) readable
/// bytes; `write` must be callable with `ctx` until the install is finished or freed;
/// `install_out` must point to a writable pointer.
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
        let p = try_ref!(package);
        let key = ota_core::seal::SealKey::from_bytes(key32(
            try_slice!(key, key_len),
            "an encryption key",
        )?);
        let out = CallbackWriter::new(write, ctx)?;
        if install_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`install_out` is NULL"));
        }
        write_handle(
            install_out,
            ota_install {
                state: InstallState::Installing(Box::new(Install::new(&p.inner, &key, out))),
            },
        )
    })
}

/// Installs every verified chunk that continues the installed prefix, reading each back
/// through `io->stage_read` and checking it again first. A stored chunk that went bad is
/// marked missing in `download` (`OTA_STATUS_STORED_CHUNK_CORRUPT`, naming it).
/// `*installed_out` (may be NULL) receives how many chunks are installed.
///
/// # Safety
///
/// `install` and `download` must be live; `io` must point to a valid `ota_device_io`;
/// `installed_out` must be NULL or point to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_install_advance(
    install: *mut ota_install,
    download: *mut ota_download,
    io: *const ota_device_io,
    installed_out: *mut usize,
) -> Status {
    call(|| {
        let i = try_mut!(install);
        let d = try_mut!(download);
        let mut io = HostIo::new(try_ref!(io))?;
        let InstallState::Installing(inst) = &mut i.state else {
            return Err(Failure::new(
                Status::InvalidArgument,
                "the install is finished or failed",
            ));
        };
        inst.advance(&mut d.inner, &mut io)?;
        if !installed_out.is_null() {
            write_out(installed_out, inst.installed())?;
        }
        Ok(())
    })
}

/// Ends the install once every chunk is in: confirms the artifact's SHA-256 and the
/// plaintext's size and digest, and writes `{"plaintext_size", "plaintext_sha256"}` into
/// `buf`. Only success means the slot holds the complete new version.
///
/// Calling it again returns the same JSON; after a failure it fails with
/// `OTA_STATUS_INVALID_ARGUMENT`.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that, and the install stays finished: call again with a larger
/// buffer.
///
/// # Safety
///
/// `install` must be live; `buf` must point to `buf_len` writable bytes; `out_n` to a
/// writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_install_finish(
    install: *mut ota_install,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let i = try_mut!(install);
        if let InstallState::Installing(_) = i.state {
            let InstallState::Installing(inst) =
                std::mem::replace(&mut i.state, InstallState::Failed)
            else {
                unreachable!()
            };
            // A failure leaves the install failed: it cannot be finished twice.
            let (opened, _) = inst.finish()?;
            i.state = InstallState::Finished(opened);
        }
        match &i.state {
            InstallState::Finished(opened) => unsafe {
                write_text(&ota_core::json::to_string(opened), buf, buf_len, out_n)
            },
            _ => Err(Failure::new(
                Status::InvalidArgument,
                "the install failed earlier",
            )),
        }
    })
}

/// Frees an install. NULL is allowed and does nothing.
///
/// # Safety
///
/// `install` must be NULL or an install not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_install_free(install: *mut ota_install) {
    crate::panic::guard(|| unsafe { free_handle(install) })
}
