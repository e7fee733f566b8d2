//! The compatibility check, per device and per fleet, and SBOM validation.

use std::ffi::c_char;

use ota_core::sbom::{self, SbomFormat};
use ota_core::{DeviceProfile, Limits, Status, compat};

use crate::document::{ota_package, ota_profile};
use crate::error::{Failure, call};
use crate::ffi::{try_ref, try_slice, try_str, write_out, write_text};

/// Checks whether `package` fits the device `profile`.
///
/// Writes the report as JSON into `buf` (NUL-terminated), its length in `*out_n`:
/// `{"device_id", "package", "version", "compatible", "rejections": [{"reason", "target"?,
/// "needed", "found"}]}`, with every rejection in a stable order. `*compatible_out` receives
/// whether the package fits. An incompatible package is a successful call.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that, and `*compatible_out` is not written.
///
/// # Safety
///
/// `package` and `profile` must be live handles; `buf` must point to `buf_len` writable
/// bytes; `out_n` to a writable `size_t`; `compatible_out` to a writable `bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_compat_check(
    package: *const ota_package,
    profile: *const ota_profile,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
    compatible_out: *mut bool,
) -> Status {
    call(|| {
        let package = try_ref!(package);
        let profile = try_ref!(profile);
        if compatible_out.is_null() {
            return Err(Failure::new(
                Status::NullPointer,
                "`compatible_out` is NULL",
            ));
        }
        let report = compat::check(&package.inner, &profile.inner);
        unsafe { write_text(&report.to_json(), buf, buf_len, out_n)? };
        write_out(compatible_out, report.compatible)
    })
}

/// Checks `package` against a fleet: a JSON array of device profiles with unique ids.
///
/// Writes the fleet report as JSON into `buf` (NUL-terminated), its length in `*out_n`:
/// `{"total", "eligible": [device ids], "rejected", "reasons": {reason: count}}`.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that. A malformed fleet fails with the parse status, and
/// `ota_last_error_message` names the field (`[3].memory_mb: ...`).
///
/// # Safety
///
/// `package` must be a live handle; `fleet_json` must point to `fleet_json_len` readable
/// bytes; `buf` to `buf_len` writable bytes; `out_n` to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_compat_check_fleet(
    package: *const ota_package,
    fleet_json: *const u8,
    fleet_json_len: usize,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let package = try_ref!(package);
        let fleet = try_str!(fleet_json, fleet_json_len);
        let profiles = DeviceProfile::fleet_from_json(fleet.as_bytes(), &Limits::DEFAULT)?;
        let report = compat::check_fleet(&package.inner, &profiles);
        unsafe { write_text(&report.to_json(), buf, buf_len, out_n) }
    })
}

/// Validates an SBOM document. `format` is `"spdx-2.3"` or `"cyclonedx-1.5"`.
///
/// Writes a summary as JSON into `buf` (NUL-terminated), its length in `*out_n`:
/// `{"format", "name", "components"}`. An invalid document fails with `OTA_STATUS_INVALID`
/// (or a JSON status), and `ota_last_error_message` lists every fault with its path.
///
/// Takes ownership of nothing. When `buf_len` is too small (or `buf` is NULL and `buf_len`
/// 0), returns `OTA_STATUS_INSUFFICIENT_SIZE` with the length in `*out_n`; the buffer needs
/// one more byte than that.
///
/// # Safety
///
/// `format` must point to `format_len` readable bytes, `doc` to `doc_len`; `buf` to
/// `buf_len` writable bytes; `out_n` to a writable `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_sbom_validate(
    format: *const u8,
    format_len: usize,
    doc: *const u8,
    doc_len: usize,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let format = match try_str!(format, format_len) {
            "spdx-2.3" => SbomFormat::Spdx23,
            "cyclonedx-1.5" => SbomFormat::CycloneDx15,
            other => {
                return Err(Failure::new(
                    Status::InvalidArgument,
                    format!("unknown SBOM format {other:?}: expected spdx-2.3 or cyclonedx-1.5"),
                ));
            }
        };
        let doc = try_slice!(doc, doc_len);
        let summary = sbom::validate(format, doc, &Limits::DEFAULT)?;
        unsafe { write_text(&ota_core::json::to_string(&summary), buf, buf_len, out_n) }
    })
}
