//! A device report's status, read from its JSON, so a C client need not scrape it.

use std::ffi::c_char;

use ota_core::Status;
use ota_core::report::{DeviceReport, ReportStatus};

use crate::error::{Failure, call};
use crate::ffi::{LIMITS, try_out, try_str};

/// What a device report says about an update (its `"status"`).
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(non_camel_case_types)]
pub enum ota_report_status {
    /// `"in_progress"`: the device accepted the assignment and is downloading or installing.
    InProgress = 1,
    /// `"success"`: the new version is installed, healthy and committed.
    Success = 2,
    /// `"failure"`: the update failed; the device is on its previous version.
    Failure = 3,
    /// `"rejected"`: the device refused the assignment before writing anything.
    Rejected = 4,
}

impl ota_report_status {
    fn of(status: ReportStatus) -> Result<Self, Failure> {
        Ok(match status {
            ReportStatus::InProgress => Self::InProgress,
            ReportStatus::Success => Self::Success,
            ReportStatus::Failure => Self::Failure,
            ReportStatus::Rejected => Self::Rejected,
            other => {
                return Err(Failure::new(
                    Status::InvalidValue,
                    format!(
                        "report: status: {:?} is unknown to this binding",
                        other.as_str()
                    ),
                ));
            }
        })
    }
}

/// Parses a device report (JSON, as an agent's `OTA_COMMAND_KIND_REPORT` command gives it:
/// `{"device_id", "rollout_id"?, "firmware_version"?, "status", "reason"?}`) and gives its
/// status in `*status_out`. A malformed report fails with the status and the field that is
/// wrong (`OTA_STATUS_INVALID_VALUE`, ...).
///
/// Takes no ownership; nothing to free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ota_report_parse_status(
    report: *const c_char,
    report_len: usize,
    status_out: *mut ota_report_status,
) -> Status {
    call(|| {
        let out = try_out!(status_out);
        let r = DeviceReport::from_json(try_str!(report, report_len).as_bytes(), LIMITS)?;
        out.write(ota_report_status::of(r.status)?);
        Ok(())
    })
}
