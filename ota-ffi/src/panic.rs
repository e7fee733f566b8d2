//! The one panic boundary: every exported function runs its body through [`guard`], so no
//! panic unwinds into C. What a function returns after a panic is chosen by its return type.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use ota_core::Status;

use crate::error::set_last_error;

/// What an exported function returns when its body panicked.
pub(crate) trait PanicOrDefault {
    fn on_panic() -> Self;
}

impl PanicOrDefault for Status {
    fn on_panic() -> Self {
        Status::Panic
    }
}

impl<T> PanicOrDefault for *const T {
    fn on_panic() -> Self {
        std::ptr::null()
    }
}

impl<T> PanicOrDefault for *mut T {
    fn on_panic() -> Self {
        std::ptr::null_mut()
    }
}

impl PanicOrDefault for () {
    fn on_panic() -> Self {}
}

/// A C callback's status: nonzero is a failure.
impl PanicOrDefault for std::ffi::c_int {
    fn on_panic() -> Self {
        -1
    }
}

impl PanicOrDefault for bool {
    fn on_panic() -> Self {
        false
    }
}

thread_local! {
    /// How many guarded calls run on this thread: inside one, the panic hook is quiet.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The message and place of the last panic inside a guarded call, from the hook.
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once, a panic hook that keeps a panic inside a guarded call off the host's
/// stderr: its message goes to the last-error message only. A panic on a thread a guarded call
/// started (to inflate, or to judge a fleet's compatibility) is kept off stderr too; the call
/// fails with it. A panic elsewhere in the process
/// goes to the hook that was there before.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The pipeline's inflating threads and a creation's judging threads run for a
            // guarded call, which gets their panic back as its error.
            let worker = matches!(
                std::thread::current().name(),
                Some(ota_host::pipeline::INFLATE_THREAD | ota_host::rollout::JUDGE_THREAD)
            );
            let inside = worker || DEPTH.try_with(Cell::get).unwrap_or(0) > 0;
            if !inside {
                return before(info);
            }
            let what = message(info.payload());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let _ = PANIC.try_with(|p| *p.borrow_mut() = Some(format!("{what}{at}")));
        }));
    });
}

fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `body`, turning a panic into the return type's panic value and a last-error message
/// (never a line on stderr); the handles the body took are poisoned.
pub(crate) fn guard<R: PanicOrDefault>(body: impl FnOnce() -> R) -> R {
    install_hook();
    let mark = crate::ffi::taken_mark();
    // `DEPTH` has no destructor: `with` works on it even from a thread-exit destructor.
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(body));
    DEPTH.with(|d| d.set(d.get() - 1));
    match result {
        Ok(r) => {
            crate::ffi::release_since(mark);
            r
        }
        Err(payload) => {
            crate::ffi::poison_since(mark);
            let what = PANIC
                .try_with(|p| p.borrow_mut().take())
                .ok()
                .flatten()
                .unwrap_or_else(|| message(payload.as_ref()));
            set_last_error(format!("internal error (panic): {what}"));
            R::on_panic()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process of the test below.
    const CHILD: &str = "OTA_FFI_PANIC_CHILD";

    #[test]
    fn a_panic_message_goes_to_the_last_error_not_to_stderr() {
        if std::env::var_os(CHILD).is_some() {
            let s: Status = guard(|| panic!("secret detail"));
            assert_eq!(s, Status::Panic);
            let e = crate::error::last_error();
            assert!(
                e.contains("secret detail") && e.contains("panic.rs:"),
                "{e}"
            );
            return;
        }
        // Run this test alone in a child process, and read its stderr.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "panic::tests::a_panic_message_goes_to_the_last_error_not_to_stderr",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("1 passed"),
            "the child ran the test: {stdout}"
        );
        assert!(!stderr.contains("secret detail"), "stderr: {stderr}");
        assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let s: Status = guard(|| panic!("boom"));
        assert_eq!(s, Status::Panic);
        assert!(crate::error::last_error().contains("boom"));
        let p: *const u8 = guard(|| panic!("boom"));
        assert!(p.is_null());
    }
}
