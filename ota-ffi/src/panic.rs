//! The one panic boundary: every exported function runs its body through [`guard`], so no
//! panic unwinds into C. What a function returns after a panic is chosen by its return type.

use std::panic::{AssertUnwindSafe, catch_unwind};

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

impl PanicOrDefault for bool {
    fn on_panic() -> Self {
        false
    }
}

/// Runs `body`, turning a panic into the return type's panic value and a last-error message.
pub(crate) fn guard<R: PanicOrDefault>(body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(format!("internal error (panic): {what}"));
            R::on_panic()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let s: Status = guard(|| panic!("boom"));
        assert_eq!(s, Status::Panic);
        assert!(crate::error::last_error().contains("boom"));
        let p: *const u8 = guard(|| panic!("boom"));
        assert!(p.is_null());
    }
}
