//! The conventions of the C ABI in one place: checked pointer access, owned handles, and text
//! written into caller buffers.
//!
//! - A pointer argument goes through [`try_ref!`], [`try_mut!`], [`try_slice!`] or
//!   [`try_str!`], which return `OTA_STATUS_NULL_POINTER` (or `OTA_STATUS_INVALID_UTF8`)
//!   instead of dereferencing NULL. A zero-length slice may be NULL.
//! - A handle is a `Box` given to C by [`into_handle`] and taken back by [`free_handle`].
//! - Output text goes through [`write_text`]: NUL-terminated, its length in `*out_n`, and
//!   `OTA_STATUS_INSUFFICIENT_SIZE` with the needed length when the buffer is too small.

use std::ffi::c_char;

use ota_core::Status;

use crate::error::Failure;

/// Dereferences a `*const T` argument, or fails with `NullPointer` naming it.
macro_rules! try_ref {
    ($p:ident) => {
        match unsafe { $p.as_ref() } {
            Some(r) => r,
            None => {
                return Err($crate::error::Failure::new(
                    ota_core::Status::NullPointer,
                    concat!("`", stringify!($p), "` is NULL"),
                ));
            }
        }
    };
}

/// Dereferences a `*mut T` argument mutably, or fails with `NullPointer` naming it.
macro_rules! try_mut {
    ($p:ident) => {
        match unsafe { $p.as_mut() } {
            Some(r) => r,
            None => {
                return Err($crate::error::Failure::new(
                    ota_core::Status::NullPointer,
                    concat!("`", stringify!($p), "` is NULL"),
                ));
            }
        }
    };
}

/// A `(pointer, length)` argument as a byte slice; NULL is allowed when the length is 0.
macro_rules! try_slice {
    ($p:ident, $n:ident) => {
        match unsafe { $crate::ffi::slice($p, $n) } {
            Some(s) => s,
            None => {
                return Err($crate::error::Failure::new(
                    ota_core::Status::NullPointer,
                    concat!(
                        "`",
                        stringify!($p),
                        "` is NULL but `",
                        stringify!($n),
                        "` is not 0"
                    ),
                ));
            }
        }
    };
}

/// A `(pointer, length)` argument as UTF-8 text.
macro_rules! try_str {
    ($p:ident, $n:ident) => {{
        let bytes = $crate::ffi::try_slice!($p, $n);
        match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => {
                return Err($crate::error::Failure::new(
                    ota_core::Status::InvalidUtf8,
                    format!(concat!("`", stringify!($p), "` is not valid UTF-8: {}"), e),
                ));
            }
        }
    }};
}

pub(crate) use {try_mut, try_ref, try_slice, try_str};

/// The slice behind `(p, n)`: empty when `n` is 0, `None` when `p` is NULL otherwise.
///
/// # Safety
///
/// When not NULL, `p` must point to `n` readable bytes that stay valid for `'a`.
pub(crate) unsafe fn slice<'a>(p: *const u8, n: usize) -> Option<&'a [u8]> {
    if n == 0 {
        Some(&[])
    } else if p.is_null() {
        None
    } else {
        Some(unsafe { std::slice::from_raw_parts(p, n) })
    }
}

/// Gives `value` to C as a handle the caller must free.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back and drops a handle; NULL is ignored.
///
/// # Safety
///
/// `p` must be NULL or a handle from [`into_handle`] not freed before.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        drop(unsafe { Box::from_raw(p) });
    }
}

/// Gives `value` to C as a new handle through `out`, which must not be NULL (checked before
/// anything is allocated).
pub(crate) fn write_handle<T>(out: *mut *mut T, value: T) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::new(
            Status::NullPointer,
            "the output handle pointer is NULL",
        ));
    }
    unsafe { out.write(into_handle(value)) };
    Ok(())
}

/// Writes `value` to the output pointer `out`, which must not be NULL.
pub(crate) fn write_out<T>(out: *mut T, value: T) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::new(
            Status::NullPointer,
            "the output pointer is NULL",
        ));
    }
    unsafe { out.write(value) };
    Ok(())
}

/// Copies `text` into `buf` with a terminating NUL and writes its length (without the NUL)
/// to `*out_n`. When the buffer is too small, writes the length to `*out_n` and fails with
/// `InsufficientSize`; the buffer then needs `*out_n + 1` bytes.
///
/// # Safety
///
/// `buf` must point to `buf_len` writable bytes, or be NULL when `buf_len` is 0; `out_n` must
/// be NULL or point to a writable `size_t`.
pub(crate) unsafe fn write_text(
    text: &str,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Result<(), Failure> {
    if out_n.is_null() {
        return Err(Failure::new(Status::NullPointer, "`out_n` is NULL"));
    }
    unsafe { out_n.write(text.len()) };
    if buf_len <= text.len() {
        return Err(Failure::new(
            Status::InsufficientSize,
            format!(
                "the output needs {} bytes, the buffer has {buf_len}",
                text.len() + 1
            ),
        ));
    }
    if buf.is_null() {
        return Err(Failure::new(Status::NullPointer, "`buf` is NULL"));
    }
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        buf.add(text.len()).write(0);
    }
    Ok(())
}

/// Copies `bytes` into `buf` (no terminator) and writes their length to `*out_n`; when the
/// buffer is too small, writes the length and fails with `InsufficientSize`.
///
/// # Safety
///
/// `buf` must point to `buf_len` writable bytes, or be NULL when `buf_len` is 0; `out_n` must
/// be NULL or point to a writable `size_t`.
pub(crate) unsafe fn write_bytes(
    bytes: &[u8],
    buf: *mut u8,
    buf_len: usize,
    out_n: *mut usize,
) -> Result<(), Failure> {
    if out_n.is_null() {
        return Err(Failure::new(Status::NullPointer, "`out_n` is NULL"));
    }
    unsafe { out_n.write(bytes.len()) };
    if buf_len < bytes.len() {
        return Err(Failure::new(
            Status::InsufficientSize,
            format!(
                "the output needs {} bytes, the buffer has {buf_len}",
                bytes.len()
            ),
        ));
    }
    if buf.is_null() && !bytes.is_empty() {
        return Err(Failure::new(Status::NullPointer, "`buf` is NULL"));
    }
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len()) };
    Ok(())
}

/// `len` random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], Failure> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out)
        .map_err(|e| Failure::new(Status::Io, format!("the system RNG failed: {e}")))?;
    Ok(out)
}

/// A callback that receives output bytes: it returns 0 when it took them all, anything else
/// to stop the operation (which then fails with `OTA_STATUS_IO`).
#[allow(non_camel_case_types)]
pub type ota_write_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut std::ffi::c_void,
        data: *const u8,
        len: usize,
    ) -> std::ffi::c_int,
>;

/// A `Write` that hands every byte to a C callback.
pub(crate) struct CallbackWriter {
    pub(crate) write:
        unsafe extern "C" fn(*mut std::ffi::c_void, *const u8, usize) -> std::ffi::c_int,
    pub(crate) ctx: *mut std::ffi::c_void,
}

impl CallbackWriter {
    pub(crate) fn new(write: ota_write_fn, ctx: *mut std::ffi::c_void) -> Result<Self, Failure> {
        let write =
            write.ok_or_else(|| Failure::new(Status::NullPointer, "the write callback is NULL"))?;
        Ok(CallbackWriter { write, ctx })
    }
}

impl std::io::Write for CallbackWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let rc = unsafe { (self.write)(self.ctx, buf.as_ptr(), buf.len()) };
        if rc == 0 {
            Ok(buf.len())
        } else {
            Err(std::io::Error::other(format!(
                "the write callback returned {rc}"
            )))
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A 32-byte key argument.
pub(crate) fn key32(bytes: &[u8], what: &str) -> Result<[u8; 32], Failure> {
    bytes.try_into().map_err(|_| {
        Failure::new(
            Status::InvalidKey,
            format!("{what} is 32 bytes, found {}", bytes.len()),
        )
    })
}
