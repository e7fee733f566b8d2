//! The reference file-backed device, `ota_file_device`: `ota_host::file_device::FileDevice`
//! as an `ota_device_io` for the agent, and the persist, swap and restore commands carried
//! out durably.

use std::ffi::{c_char, c_int, c_void};
use std::io::Write;

use ota_core::Status;
use ota_core::download::Staging;
use ota_host::file_device::FileDevice;

use crate::device_io::ota_device_io;
use crate::error::{Failure, call};
use crate::ffi::{
    free, handle, handle_mut, new_handle, slice_of, try_handle, try_handle_mut, try_out, try_str,
    write_text,
};

/// A device over plain files under one directory: staging, two slots, their labels and the
/// agent's record, written with fsync and atomic renames. Made by `ota_file_device_open`,
/// freed by `ota_file_device_free`.
///
/// ```text
/// DIR/record.json        the agent's record (ota_file_device_persist)
/// DIR/staging.bin        verified chunks at their offsets
/// DIR/slots/a/FILE       slot a's installed file; DIR/slots/b/FILE slot b's
/// DIR/slots/current      symlink to the active slot, switched by an atomic rename
/// DIR/label-a, label-b   what each slot holds: the text of the swap that activated it
/// ```
#[allow(non_camel_case_types)]
pub struct ota_file_device {
    inner: FileDevice,
    /// The inactive slot being written, between `slot_open` and the next `slot_open`.
    slot: Option<Box<dyn Write + Send>>,
}
handle!(ota_file_device, ota_file_device_free);

/// A file operation's failure: `OTA_STATUS_INVALID_ARGUMENT` for an argument the device
/// refuses (a slot file that is not a plain name), `OTA_STATUS_IO` otherwise.
fn io_failure(what: &str) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| {
        let status = if e.kind() == std::io::ErrorKind::InvalidInput {
            Status::InvalidArgument
        } else {
            Status::Io
        };
        Failure::new(status, format!("{what}: {e}"))
    }
}

/// Opens the device under the directory `dir` (text; created if missing), each slot holding
/// a file named `slot_file` (text, a plain file name; `payload` when empty).
///
/// Takes no ownership; the caller frees `*device_out` with `ota_file_device_free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_file_device_open(
    dir: *const c_char,
    dir_len: usize,
    slot_file: *const c_char,
    slot_file_len: usize,
    device_out: *mut *mut ota_file_device,
) -> Status {
    call(|| {
        let out = try_out!(device_out);
        let dir = try_str!(dir, dir_len);
        if dir.is_empty() {
            return Err(Failure::new(Status::InvalidArgument, "`dir` is empty"));
        }
        let file = match try_str!(slot_file, slot_file_len) {
            "" => "payload",
            f => f,
        };
        let inner = FileDevice::open(dir.as_ref(), file).map_err(io_failure(dir))?;
        out.write(new_handle(ota_file_device { inner, slot: None }));
        Ok(())
    })
}

/// Fills `*io_out` with callbacks over the device's staging file and inactive slot, for
/// `ota_agent_new` and `ota_agent_restore`. Their `ctx` is `device`, which must outlive the
/// agent.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_file_device_io(
    device: *mut ota_file_device,
    io_out: *mut ota_device_io,
) -> Status {
    call(|| {
        let out = try_out!(io_out);
        try_handle_mut!(device);
        out.write(ota_device_io {
            ctx: device.cast(),
            stage_write: Some(stage_write),
            stage_read: Some(stage_read),
            slot_open: Some(slot_open),
            slot_write: Some(slot_write),
            slot_flush: Some(slot_flush),
        });
        Ok(())
    })
}

/// Runs a callback's body on the device behind `ctx`: 0 on success, 1 on failure (the
/// agent's call then fails, naming the callback), -1 after a panic.
fn with_device(
    ctx: *mut c_void,
    body: impl FnOnce(&mut ota_file_device) -> std::io::Result<()>,
) -> c_int {
    crate::panic::guard(
        || match unsafe { handle_mut(ctx.cast::<ota_file_device>(), "ctx") } {
            Ok(d) => c_int::from(body(d).is_err()),
            Err(_) => 1,
        },
    )
}

unsafe extern "C" fn stage_write(
    ctx: *mut c_void,
    offset: u64,
    data: *const u8,
    len: usize,
) -> c_int {
    // A host may call these itself: a NULL or an impossible length fails the call.
    let Ok(data) = (unsafe { slice_of(data, len, "data", "len") }) else {
        return 1;
    };
    with_device(ctx, |d| d.inner.write_at(offset, data))
}

unsafe extern "C" fn stage_read(ctx: *mut c_void, offset: u64, buf: *mut u8, len: usize) -> c_int {
    if (buf.is_null() && len > 0) || len > isize::MAX as usize {
        return 1;
    }
    let buf = if len == 0 {
        &mut [][..]
    } else {
        unsafe { std::slice::from_raw_parts_mut(buf, len) }
    };
    with_device(ctx, |d| d.inner.read_at(offset, buf))
}

unsafe extern "C" fn slot_open(ctx: *mut c_void) -> c_int {
    with_device(ctx, |d| {
        d.slot = None;
        d.slot = Some(Box::new(d.inner.open_inactive()?));
        Ok(())
    })
}

unsafe extern "C" fn slot_write(ctx: *mut c_void, data: *const u8, len: usize) -> c_int {
    let Ok(data) = (unsafe { slice_of(data, len, "data", "len") }) else {
        return 1;
    };
    with_device(ctx, |d| match d.slot.as_mut() {
        Some(w) => w.write_all(data),
        None => Err(std::io::Error::other("slot_write before slot_open")),
    })
}

unsafe extern "C" fn slot_flush(ctx: *mut c_void) -> c_int {
    with_device(ctx, |d| match d.slot.as_mut() {
        Some(w) => w.flush(),
        None => Err(std::io::Error::other("slot_flush before slot_open")),
    })
}

/// Writes the agent's record as last persisted into `buf`: empty on a new device. Give it to
/// `ota_agent_new` (its `record`) after a restart.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_file_device_record(
    device: *const ota_file_device,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let d = try_handle!(device);
        let record = d
            .inner
            .record()
            .map_err(io_failure("reading record.json"))?;
        let text = String::from_utf8(record.unwrap_or_default())
            .map_err(|_| Failure::new(Status::RecordInvalid, "record.json is not UTF-8"))?;
        unsafe { write_text(&text, buf, buf_len, out_n) }
    })
}

/// The body of the calls that carry out a command with its text (persist, swap, restore):
/// `command` on the device and the text `text` gives once the device is taken, its failure
/// described by `what`.
unsafe fn carry_out<'a>(
    device: *mut ota_file_device,
    text: impl FnOnce() -> Result<&'a str, Failure>,
    command: fn(&mut FileDevice, &[u8]) -> std::io::Result<()>,
    what: &str,
) -> Status {
    call(|| {
        let d = try_handle_mut!(device);
        command(&mut d.inner, text()?.as_bytes()).map_err(io_failure(what))
    })
}

/// Carries out `OTA_COMMAND_KIND_PERSIST`: stores the record (the command's text) durably,
/// replacing the previous one (a temporary file, fsync, rename, fsync of the directory).
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_file_device_persist(
    device: *mut ota_file_device,
    record: *const c_char,
    record_len: usize,
) -> Status {
    let record = || Ok(try_str!(record, record_len));
    unsafe { carry_out(device, record, FileDevice::persist, "writing record.json") }
}

/// Carries out `OTA_COMMAND_KIND_SWAP` (the command's text names the update): makes the slot
/// holding it active, durably; does nothing when it is active already (the swap was done
/// before a power cut). Then call `ota_agent_handle_swapped`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_file_device_swap(
    device: *mut ota_file_device,
    update: *const c_char,
    update_len: usize,
) -> Status {
    let update = || Ok(try_str!(update, update_len));
    unsafe { carry_out(device, update, FileDevice::swap, "swapping slots") }
}

/// Carries out `OTA_COMMAND_KIND_RESTORE_PREVIOUS` (the command's text names the failed
/// update): while the active slot holds it, makes the other slot active again, durably (or
/// no slot, when the other never held anything: the failed update was the first); otherwise
/// (restored already) does nothing. Then call `ota_agent_handle_restored`.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_file_device_restore(
    device: *mut ota_file_device,
    update: *const c_char,
    update_len: usize,
) -> Status {
    let update = || Ok(try_str!(update, update_len));
    unsafe {
        carry_out(
            device,
            update,
            FileDevice::restore,
            "restoring the previous slot",
        )
    }
}

/// Writes the path of the active slot's file (what the device runs) into `buf`: empty
/// before the first swap.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_file_device_active_file(
    device: *const ota_file_device,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let d = try_handle!(device);
        let path = d
            .inner
            .active_file()
            .map_err(io_failure("reading the active slot"))?;
        let text = path.map(|p| p.display().to_string()).unwrap_or_default();
        unsafe { write_text(&text, buf, buf_len, out_n) }
    })
}

/// Frees a file device. NULL is allowed and does nothing. Free it only after the agent whose
/// `io` it gave.
///
/// Takes ownership of `device`; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_file_device_free(device: *mut ota_file_device) {
    unsafe { free(device) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The callbacks a host may call itself refuse a length no object can have (making such
    /// a slice aborts the process in Rust's checks), as the C ABI's functions do.
    #[test]
    fn a_callback_called_with_an_impossible_length_fails_instead_of_aborting() {
        let dir = tempfile::tempdir().unwrap();
        let mut device: *mut ota_file_device = std::ptr::null_mut();
        let path = dir.path().to_str().unwrap();
        let st = unsafe {
            ota_file_device_open(
                path.as_ptr().cast(),
                path.len(),
                c"".as_ptr(),
                0,
                &mut device,
            )
        };
        assert_eq!(st, Status::Ok);
        let ctx = device.cast::<c_void>();
        let byte = [0u8; 1];
        let mut buf = [0u8; 1];
        for len in [isize::MAX as usize + 1, usize::MAX] {
            assert_eq!(unsafe { stage_write(ctx, 0, byte.as_ptr(), len) }, 1);
            assert_eq!(unsafe { stage_read(ctx, 0, buf.as_mut_ptr(), len) }, 1);
            assert_eq!(unsafe { slot_write(ctx, byte.as_ptr(), len) }, 1);
        }
        assert_eq!(unsafe { stage_write(ctx, 0, byte.as_ptr(), 1) }, 0);
        assert_eq!(unsafe { stage_read(ctx, 0, buf.as_mut_ptr(), 1) }, 0);
        unsafe { ota_file_device_free(device) };
    }
}
