//! Status codes and the thread-local last-error message.

use std::cell::RefCell;
use std::ffi::{CStr, c_char};

use ota_core::Status;

use crate::ffi::write_text;
use crate::panic::guard;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Sets this thread's last-error message. From a thread-exit destructor, after the
/// thread's Rust thread-locals are gone, the message is dropped (the call still returns its
/// status).
pub(crate) fn set_last_error(message: String) {
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = message);
}

/// This thread's last-error message (empty from a thread-exit destructor, where it is gone).
pub(crate) fn last_error() -> String {
    LAST_ERROR
        .try_with(|e| e.borrow().clone())
        .unwrap_or_default()
}

/// A failed call: its status and the one-line detail for `ota_last_error_message`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: Status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: Status, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl From<ota_core::ParseError> for Failure {
    fn from(e: ota_core::ParseError) -> Self {
        Failure::new(e.status(), e.to_string())
    }
}

/// Runs an exported function's body: clears the last error, guards against panics, and turns
/// a failure into its status and last-error message.
pub(crate) fn call(body: impl FnOnce() -> Result<(), Failure>) -> Status {
    guard(|| {
        set_last_error(String::new());
        match body() {
            Ok(()) => Status::Ok,
            Err(f) => {
                set_last_error(f.message);
                f.status
            }
        }
    })
}

/// A short description of `status`: a static string. An unknown code gives
/// `"unknown status"`. Never returns NULL.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub extern "C" fn ota_status_message(status: u32) -> *const c_char {
    guard(|| match Status::from_code(status) {
        Some(s) => leak_cstr(s.message()),
        None => c"unknown status".as_ptr(),
    })
}

/// The `snake_case` name of `status` (`"chunk_digest_mismatch"`): a static string, or NULL
/// for an unknown code (a number never used, or a retired one). The C constant is
/// `OTA_STATUS_` and this name in upper case.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub extern "C" fn ota_status_name(status: u32) -> *const c_char {
    guard(|| match Status::from_code(status) {
        Some(s) => leak_cstr(s.name()),
        None => std::ptr::null(),
    })
}

/// The static C string for a static Rust string: each is made once and kept for the life of
/// the process.
pub(crate) fn static_cstr(s: &'static str) -> *const c_char {
    leak_cstr(s)
}

fn leak_cstr(s: &'static str) -> *const c_char {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static TABLE: OnceLock<Mutex<HashMap<&'static str, &'static CStr>>> = OnceLock::new();
    let table = TABLE.get_or_init(Default::default);
    let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
    let c = t.entry(s).or_insert_with(|| {
        let owned = std::ffi::CString::new(s).unwrap_or_default();
        Box::leak(owned.into_boxed_c_str())
    });
    c.as_ptr()
}

/// Copies the message of the last failed call on this thread into `buf`. A call that returns
/// an `ota_status` empties it when it succeeds; the others (`_free`, `ota_agent_state`,
/// `ota_version`, ...) set it only when they fail. Asking for it does not change it.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_last_error_message(
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    guard(|| {
        let message = last_error();
        match unsafe { write_text(&message, buf, buf_len, out_n) } {
            Ok(()) => Status::Ok,
            Err(f) => f.status,
        }
    })
}

macro_rules! failure_from {
    ($($t:ty),*) => {
        $(impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure::new(e.status(), e.to_string())
            }
        })*
    };
}

failure_from!(
    ota_core::rollout::RolloutError,
    ota_core::agent::AgentError,
    ota_core::download::DownloadError,
    ota_core::seal::SealError,
    ota_core::sign::SignError,
    ota_core::sign::KeyError,
    ota_core::chunk::ChunkError
);
