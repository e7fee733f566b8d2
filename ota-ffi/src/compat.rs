//! The compatibility check, per device and per fleet, and SBOM validation.

use std::ffi::c_char;

use ota_core::sbom::{self, SbomFormat};
use ota_core::{DeviceProfile, Status, compat};

use crate::document::{ota_package, ota_profile};
use crate::error::{Failure, call};
use crate::ffi::{LIMITS, try_handle, try_out, try_slice, try_str, write_text};

/// Checks whether `package` fits the device `profile`.
///
/// Writes the report as JSON into `buf`: `{"device_id", "package", "version", "compatible",
/// "rejections": [{"reason", "target"?, "needed", "found"}]}`, with every rejection in a
/// stable order. `*compatible_out` receives whether the package fits (not written when the
/// buffer is too small). An incompatible package is a successful call.
///
/// Takes no ownership; nothing to free.
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
        let package = try_handle!(package);
        let profile = try_handle!(profile);
        let compatible = try_out!(compatible_out);
        let report = compat::check(&package.inner, &profile.inner);
        unsafe { write_text(&report.to_json(), buf, buf_len, out_n)? };
        compatible.write(report.compatible);
        Ok(())
    })
}

/// Checks `package` against a fleet: a JSON array of device profiles with unique ids.
///
/// Writes the fleet report as JSON into `buf`: `{"total", "eligible": [device ids],
/// "rejected", "reasons": {reason: count}}`. A malformed fleet fails with the parse status,
/// and `ota_last_error_message` names the field (`[3].memory_mb: ...`).
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_compat_check_fleet(
    package: *const ota_package,
    fleet_json: *const c_char,
    fleet_json_len: usize,
    buf: *mut c_char,
    buf_len: usize,
    out_n: *mut usize,
) -> Status {
    call(|| {
        let package = try_handle!(package);
        let fleet = try_str!(fleet_json, fleet_json_len);
        let profiles = DeviceProfile::fleet_from_json(fleet.as_bytes(), LIMITS)?;
        let report = compat::check_fleet(&package.inner, &profiles);
        unsafe { write_text(&report.to_json(), buf, buf_len, out_n) }
    })
}

/// Validates an SBOM document. `format` is `"spdx-2.3"` or `"cyclonedx-1.5"`.
///
/// Writes a summary as JSON into `buf`: `{"format", "name", "components"}`. An invalid
/// document fails with `OTA_STATUS_INVALID` (or a JSON status), and `ota_last_error_message`
/// lists every fault with its path.
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_sbom_validate(
    format: *const c_char,
    format_len: usize,
    doc: *const c_char,
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
        let summary = sbom::validate(format, doc, LIMITS)?;
        unsafe { write_text(&ota_core::json::to_string(&summary), buf, buf_len, out_n) }
    })
}
