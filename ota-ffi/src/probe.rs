//! The health-probe runner, for real: `ota_probe_run`.

use std::ffi::c_char;

use ota_core::Status;

use crate::error::call;
use crate::ffi::{LIMITS, try_out, try_str, write_text};

/// Runs a health probe (JSON, as in a probe command) for real: an allowlisted executable
/// (killed at its timeout), an HTTP GET to loopback, or a readiness file newer than
/// `swapped_at` (Unix ms). `allowlist` is a JSON array of the executables allowed.
///
/// A probe (also the agent configuration's `default_probe` and an assignment's `probe`;
/// docs/c-api.md has an example of each kind), by `"kind"`:
/// `{"kind": "exec", "path", "args"?, "timeout_ms"}` (exit 0 is healthy),
/// `{"kind": "http", "url", "timeout_ms", "allow_remote"?}` (a 2xx is healthy), or
/// `{"kind": "file", "path"}` (a readiness file modified after the swap).
/// `*healthy_out` receives the verdict and `buf` what the probe saw. A probe the allowlist
/// refuses is unhealthy.
///
/// On `OTA_STATUS_INSUFFICIENT_SIZE` the probe ran and `*healthy_out` holds its verdict; a
/// retry with a larger buffer runs it again.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_probe_run(
    spec: *const c_char,
    spec_len: usize,
    allowlist: *const c_char,
    allowlist_len: usize,
    swapped_at: u64,
    healthy_out: *mut bool,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let healthy = try_out!(healthy_out);
        let spec: ota_core::probe::ProbeSpec = ota_core::json::from_slice(
            "probe",
            try_str!(spec, spec_len).as_bytes(),
            LIMITS.max_document_bytes,
        )?;
        let allow: Vec<String> = ota_core::json::from_slice(
            "allowlist",
            try_str!(allowlist, allowlist_len).as_bytes(),
            LIMITS.max_document_bytes,
        )?;
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(swapped_at);
        let r = ota_host::probe::run(&spec, &allow, at);
        healthy.write(r.healthy);
        unsafe { write_text(&r.detail, buf, buf_len, out_n) }
    })
}
