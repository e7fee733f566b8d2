//! The health-probe runner, for real: `ota_probe_run`.

use std::ffi::c_char;

use ota_core::Status;

use crate::error::{Failure, call};
use crate::ffi::{try_str, write_out, write_text};

/// Runs a health probe (JSON, as in a probe command) for real: an allowlisted executable
/// (killed at its timeout), an HTTP GET to loopback, or a readiness file newer than
/// `swapped_at` (Unix ms). `allowlist` is a JSON array of the executables allowed.
/// `*healthy_out` receives the verdict and `buf` what the probe saw. A probe the allowlist
/// refuses is unhealthy.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n` (the probe ran).
///
/// # Safety
///
/// `spec` must point to `spec_len` readable bytes and `allowlist` to `allowlist_len`;
/// `healthy_out` must point to a writable `bool`; `buf` to `buf_len` writable bytes; `out_n`
/// to a writable `size_t`.
#[cfg(feature = "probe-runners")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_probe_run(
    spec: *const u8,
    spec_len: usize,
    allowlist: *const u8,
    allowlist_len: usize,
    swapped_at: u64,
    healthy_out: *mut bool,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let spec: ota_core::probe::ProbeSpec =
            ota_core::json::from_slice("probe", try_str!(spec, spec_len).as_bytes(), 1 << 16)?;
        let allow: Vec<String> = ota_core::json::from_slice(
            "allowlist",
            try_str!(allowlist, allowlist_len).as_bytes(),
            1 << 16,
        )?;
        if healthy_out.is_null() {
            return Err(Failure::new(Status::NullPointer, "`healthy_out` is NULL"));
        }
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(swapped_at);
        let r = ota_host::probe::run(&spec, &allow, at);
        write_out(healthy_out, r.healthy)?;
        unsafe { write_text(&r.detail, buf, buf_len, out_n) }
    })
}
