//! The conventions of the C ABI in one place: handles, checked pointer access, outputs, and
//! text written into caller buffers.
//!
//! # Handles
//!
//! A handle is an opaque struct C only holds by pointer (`ota_package *`). Each is declared by
//! three things side by side, the first two written out because cbindgen reads them:
//!
//! ```ignore
//! /// A validated package. Made by `ota_package_parse`, freed by `ota_package_free`.
//! pub struct ota_package { pub(crate) inner: Package }       // its C name and Rust contents
//!
//! #[unsafe(no_mangle)]
//! pub unsafe extern "C" fn ota_package_free(package: *mut ota_package) {
//!     unsafe { free::<ota_package>(package) }                // its _free
//! }
//!
//! handle!(ota_package, ota_package_free);                    // ties them (checked at compile time)
//! ```
//!
//! [`new_handle`] gives a value to C with a type tag in front of it; every function then takes
//! the handle through [`try_handle!`] / [`try_handle_mut!`], which refuse NULL with
//! `OTA_STATUS_NULL_POINTER` and a live handle of another type (a package where a verified
//! package belongs) with `OTA_STATUS_WRONG_HANDLE`, before reading anything but the tag.
//! [`free`] checks the tag the same way and ignores a handle of another type (it sets the last
//! error message; a `_free` returns nothing). Freeing overwrites the tag, so a handle used
//! after its `_free` is usually refused too; that is a diagnosis, not a guarantee (the memory
//! may be reused), and a pointer this library never made is not checked at all.
//!
//! A constructor takes `let out = try_out!(x_out);` before doing any work and ends with
//! `out.write(new_handle(ota_x { .. }));`. [`try_ref!`] is only for pointers to plain C
//! structs (`ota_device_io`), never for a handle.
//!
//! # Other pointers
//!
//! - A pointer argument to a C struct goes through [`try_ref!`]; a byte input through
//!   [`try_slice!`], a text input (`const char *` and its length) through [`try_str!`] (or
//!   [`try_slice!`] when a parser checks the UTF-8 itself); they fail with
//!   `OTA_STATUS_NULL_POINTER` (or `OTA_STATUS_INVALID_UTF8`) naming the argument instead of
//!   dereferencing NULL. A zero-length input may be NULL.
//! - An output pointer goes through [`try_out!`] before the function does any work, and is
//!   written only on success.
//! - Output text goes through [`write_text`]: NUL-terminated, its length in `*out_n`, and
//!   `OTA_STATUS_INSUFFICIENT_SIZE` with the needed length when the buffer is too small.
//! - A bound (document sizes, fleet sizes) comes from [`LIMITS`], never from a literal.

use std::cell::RefCell;
use std::ffi::c_char;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

use ota_core::Status;

use crate::error::{Failure, set_last_error};

/// A struct C holds only as a handle made by [`new_handle`]. Implemented by [`handle!`].
pub(crate) trait Handle: Sized + 'static {
    /// The C type name (`"ota_package"`): the handle's type tag, and how messages name it.
    const C_NAME: &'static str;
}

/// Declares `$t` a handle freed by `$free`: `handle!(ota_package, ota_package_free);`. The
/// struct and its `_free` are written out beside it (cbindgen reads them); this ties them
/// together and fails to compile if `$free` does not take a `*mut $t`.
macro_rules! handle {
    ($t:ident, $free:ident) => {
        impl $crate::ffi::Handle for $t {
            const C_NAME: &'static str = stringify!($t);
        }
        const _: unsafe extern "C" fn(*mut $t) = $free;
    };
}

/// A handle argument (`const ota_x *`) as a reference, or fails with `NullPointer` or
/// `WrongHandle` naming it.
macro_rules! try_handle {
    ($p:ident) => {
        match unsafe { $crate::ffi::handle_ref($p, stringify!($p)) } {
            Ok(r) => r,
            Err(f) => return Err(f),
        }
    };
}

/// An optional handle argument (`const ota_x *`, NULL for none) as an `Option` of a reference,
/// or fails with `WrongHandle` naming it.
macro_rules! try_handle_opt {
    ($p:ident) => {
        if $p.is_null() {
            None
        } else {
            Some($crate::ffi::try_handle!($p))
        }
    };
}

/// A handle argument (`ota_x *`) as a mutable reference, or fails with `NullPointer` or
/// `WrongHandle` naming it.
macro_rules! try_handle_mut {
    ($p:ident) => {
        match unsafe { $crate::ffi::handle_mut($p, stringify!($p)) } {
            Ok(r) => r,
            Err(f) => return Err(f),
        }
    };
}

/// An output pointer (`T *x_out`) as a `&mut MaybeUninit<T>` to write on success, or fails
/// with `NullPointer` naming it. Take it before doing any work.
macro_rules! try_out {
    ($p:ident) => {
        match unsafe { $crate::ffi::out_ref($p) } {
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

/// Dereferences a `*const T` argument that points to a plain C struct, or fails with `NullPointer` naming it.
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

/// A `(pointer, length)` argument as a byte slice (from a `const uint8_t *` or a
/// `const char *`); NULL is allowed when the length is 0, and a length no object can have
/// (above `PTRDIFF_MAX`) fails with `InvalidArgument`.
macro_rules! try_slice {
    ($p:ident, $n:ident) => {
        match unsafe { $crate::ffi::slice_of($p.cast::<u8>(), $n, stringify!($p), stringify!($n)) }
        {
            Ok(s) => s,
            Err(f) => return Err(f),
        }
    };
}

/// A `(pointer, length)` argument as UTF-8 text; the pointer is a `const char *` or a
/// `const uint8_t *`.
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

pub(crate) use {
    handle, try_handle, try_handle_mut, try_handle_opt, try_out, try_ref, try_slice, try_str,
};

/// The slice of `n` values behind `p` (argument `arg`, its length `len`): empty when `n` is
/// 0; `NullPointer` when `p` is NULL otherwise; `InvalidArgument` when `n` values would span
/// more than `isize::MAX` bytes, which no object can (making such a slice is undefined
/// behaviour, and Rust's check of it aborts the process).
///
/// # Safety
///
/// When not NULL, `p` must point to `n` readable values that stay valid for `'a`.
pub(crate) unsafe fn slice_of<'a, T>(
    p: *const T,
    n: usize,
    arg: &str,
    len: &str,
) -> Result<&'a [T], Failure> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Failure::new(
            Status::NullPointer,
            format!("`{arg}` is NULL but `{len}` is not 0"),
        ));
    }
    let fits = n
        .checked_mul(size_of::<T>())
        .is_some_and(|bytes| bytes <= isize::MAX as usize);
    if !fits {
        return Err(Failure::new(
            Status::InvalidArgument,
            format!("`{len}` is {n}, more than any object holds"),
        ));
    }
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// The bounds of every call of the C ABI. A C caller cannot choose other limits yet; each
/// function that needs a bound takes it from here, never from a literal.
pub(crate) const LIMITS: &ota_core::Limits = &ota_core::Limits::DEFAULT;

/// The output behind `p`, or `None` when it is NULL. Use [`try_out!`].
///
/// # Safety
///
/// `p` must be NULL or point to a writable `T` that stays valid for `'a`.
pub(crate) unsafe fn out_ref<'a, T>(p: *mut T) -> Option<&'a mut MaybeUninit<T>> {
    unsafe { p.cast::<MaybeUninit<T>>().as_mut() }
}

/// The tag in front of every handle's value.
#[repr(C, align(16))]
struct Tag {
    magic: u64,
    name: &'static str,
    /// A call panicked while it held the handle: its value may be half-changed, so every
    /// later call refuses it with `OTA_STATUS_PANIC` (only its `_free` still takes it).
    poisoned: AtomicBool,
}

thread_local! {
    /// The tags of the handles the guarded calls running on this thread took, innermost
    /// last, each with whether it was taken to change it: a panic poisons those its call
    /// took ([`poison_since`]), and a callback's call cannot take again a handle an
    /// enclosing call holds ([`check_tag`]).
    static TAKEN: RefCell<Vec<(*const Tag, bool)>> = const { RefCell::new(Vec::new()) };
}

// Every use of `TAKEN` is `try_with`: a call from a thread-exit destructor (a C
// `pthread_key_create` destructor freeing its handles) runs after this thread's Rust
// thread-locals are gone, where `with` would panic outside any guard and abort the process.
// There, no list is kept: no call on that thread is running any more whose callback it
// could be.

/// Where the current call's handles start in the list of taken handles.
pub(crate) fn taken_mark() -> usize {
    TAKEN.try_with(|t| t.borrow().len()).unwrap_or(0)
}

/// The call that started at `mark` returned: its handles are no longer taken.
pub(crate) fn release_since(mark: usize) {
    let _ = TAKEN.try_with(|t| t.borrow_mut().truncate(mark));
}

/// The call that started at `mark` panicked: poisons every handle it took.
pub(crate) fn poison_since(mark: usize) {
    let taken: Vec<(*const Tag, bool)> = TAKEN
        .try_with(|t| t.borrow_mut().drain(mark..).collect())
        .unwrap_or_default();
    for (tag, _) in taken {
        // The handles were live when taken, and a call cannot free a handle it holds (a
        // `_free` takes its handle untracked).
        unsafe { (*tag).poisoned.store(true, Ordering::SeqCst) };
    }
}

/// What a live handle's tag starts with; a freed one has [`FREED`].
const LIVE: u64 = u64::from_be_bytes(*b"ota-live");
const FREED: u64 = u64::from_be_bytes(*b"ota-free");

/// A handle as allocated: the tag, then the value C points to.
#[repr(C)]
struct Tagged<T> {
    tag: Tag,
    value: T,
}

/// Where the value sits after the tag: the same for every handle (checked in [`new_handle`]),
/// so the tag of any handle can be read before knowing its type.
const VALUE_OFFSET: usize = size_of::<Tag>();

/// Gives `value` to C as a tagged handle the caller frees with its `_free`.
pub(crate) fn new_handle<T: Handle>(value: T) -> *mut T {
    const {
        assert!(std::mem::offset_of!(Tagged<T>, value) == VALUE_OFFSET);
    }
    let raw = Box::into_raw(Box::new(Tagged {
        tag: Tag {
            magic: LIVE,
            name: T::C_NAME,
            poisoned: AtomicBool::new(false),
        },
        value,
    }));
    unsafe { &raw mut (*raw).value }
}

/// Checks the tag in front of a non-NULL handle `p` of C type `T`.
///
/// # Safety
///
/// `p` must be NULL or a pointer from [`new_handle`] (of any handle type).
unsafe fn check_tag<T: Handle>(p: *const T, arg: &str, change: bool) -> Result<(), Failure> {
    let tag = unsafe { live_tag(p, arg) }?;
    if tag.poisoned.load(Ordering::SeqCst) {
        return Err(Failure::new(
            Status::Panic,
            format!("`{arg}` is unusable: an earlier call panicked while using it (free it)"),
        ));
    }
    let this = std::ptr::from_ref(tag);
    // A call on this thread that holds the handle is still running: this call comes from
    // one of its callbacks. Changing the handle under it (or reading it while it changes
    // it) would pull its state from under it, and freeing it, its memory.
    if held(this, change) {
        return Err(Failure::new(
            Status::InvalidArgument,
            format!(
                "`{arg}` is in use by the call whose callback this is: a callback may not \
                 call the handle whose call invoked it"
            ),
        ));
    }
    let _ = TAKEN.try_with(|t| t.borrow_mut().push((this, change)));
    Ok(())
}

/// Whether a call running on this thread holds `tag`: at all when `change` (or to free it),
/// else only to change it (two calls may read one handle).
fn held(tag: *const Tag, change: bool) -> bool {
    TAKEN
        .try_with(|t| {
            t.borrow()
                .iter()
                .any(|&(taken, changing)| taken == tag && (change || changing))
        })
        .unwrap_or(false)
}

/// The tag of a non-NULL live handle `p` of C type `T`, poisoned or not.
///
/// # Safety
///
/// `p` must be NULL or a pointer from [`new_handle`] (of any handle type).
unsafe fn live_tag<'a, T: Handle>(p: *const T, arg: &str) -> Result<&'a Tag, Failure> {
    if p.is_null() {
        return Err(Failure::new(
            Status::NullPointer,
            format!("`{arg}` is NULL"),
        ));
    }
    let tag = unsafe { &*p.cast::<u8>().sub(VALUE_OFFSET).cast::<Tag>() };
    if tag.magic != LIVE {
        return Err(Failure::new(
            Status::WrongHandle,
            format!(
                "`{arg}` is not a live {} (freed, or not made by this library)",
                T::C_NAME
            ),
        ));
    }
    if tag.name != T::C_NAME {
        return Err(Failure::new(
            Status::WrongHandle,
            format!("`{arg}` is an {}, not an {}", tag.name, T::C_NAME),
        ));
    }
    Ok(tag)
}

/// The handle behind `p`, after [`check_tag`]. Use [`try_handle!`].
///
/// # Safety
///
/// `p` must be NULL or a pointer from [`new_handle`] not freed before.
pub(crate) unsafe fn handle_ref<'a, T: Handle>(p: *const T, arg: &str) -> Result<&'a T, Failure> {
    unsafe {
        check_tag(p, arg, false)?;
        Ok(&*p)
    }
}

/// The handle behind `p`, mutably, after [`check_tag`]. Use [`try_handle_mut!`].
///
/// # Safety
///
/// `p` must be NULL or a pointer from [`new_handle`] not freed before.
pub(crate) unsafe fn handle_mut<'a, T: Handle>(p: *mut T, arg: &str) -> Result<&'a mut T, Failure> {
    unsafe {
        check_tag(p, arg, true)?;
        Ok(&mut *p)
    }
}

/// Frees a handle made by [`new_handle`]; NULL is ignored, and so is a handle of another type
/// (with a last error message saying so).
///
/// # Safety
///
/// `p` must be NULL or a pointer from [`new_handle`] not freed before.
pub(crate) unsafe fn free<T: Handle>(p: *mut T) {
    crate::panic::guard(|| {
        if p.is_null() {
            return;
        }
        let tag = match unsafe { live_tag(p, "handle") } {
            Ok(tag) => std::ptr::from_ref(tag),
            Err(f) => {
                set_last_error(format!("not freed: {}", f.message));
                return;
            }
        };
        if held(tag, true) {
            set_last_error(
                "not freed: `handle` is in use by the call whose callback this is (free it \
                 after that call returns)"
                    .to_string(),
            );
            return;
        }
        let raw = unsafe { p.cast::<u8>().sub(VALUE_OFFSET).cast::<Tagged<T>>() };
        unsafe { (*raw).tag.magic = FREED };
        drop(unsafe { Box::from_raw(raw) });
    })
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
/// to stop the operation (which then fails with `OTA_STATUS_IO`). Once it returned nonzero it
/// is not called again, and freeing the sealer, opener or install it writes for never calls
/// it (an agent's `slot_write` may still be handed the plaintext an install holds when the
/// agent is freed or its install ends).
#[allow(non_camel_case_types)]
pub type ota_write_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut std::ffi::c_void,
        data: *const u8,
        len: usize,
    ) -> std::ffi::c_int,
>;

/// A `Write` that hands every byte to a C callback, until the callback refuses bytes once or
/// the handle that owns it is freed ([`Disarm`]): after that it is never called again. (A gzip
/// stream flushes what it holds when it is dropped: without this, a callback that had just
/// failed, or whose handle was being freed, was called once more, with its context perhaps
/// already closed.)
pub(crate) struct CallbackWriter {
    pub(crate) write:
        unsafe extern "C" fn(*mut std::ffi::c_void, *const u8, usize) -> std::ffi::c_int,
    pub(crate) ctx: *mut std::ffi::c_void,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CallbackWriter {
    pub(crate) fn new(write: ota_write_fn, ctx: *mut std::ffi::c_void) -> Result<Self, Failure> {
        let write =
            write.ok_or_else(|| Failure::new(Status::NullPointer, "the write callback is NULL"))?;
        Ok(CallbackWriter {
            write,
            ctx,
            armed: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        })
    }

    /// What stops the callback for good when dropped: a handle holds it before what writes
    /// through this writer, so freeing the handle never calls back.
    pub(crate) fn disarm(&self) -> Disarm {
        Disarm(self.armed.clone())
    }
}

/// Stops a [`CallbackWriter`]'s callback when dropped.
pub(crate) struct Disarm(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for Disarm {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

impl std::io::Write for CallbackWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.armed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(std::io::Error::other(
                "the write callback failed earlier, or its handle is being freed",
            ));
        }
        let rc = unsafe { (self.write)(self.ctx, buf.as_ptr(), buf.len()) };
        if rc == 0 {
            Ok(buf.len())
        } else {
            self.armed
                .store(false, std::sync::atomic::Ordering::Release);
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

#[cfg(test)]
mod tests;
