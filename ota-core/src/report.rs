//! The device report of the OTA API: `{device_id, rollout_id, firmware_version, status,
//! reason}`, sent by the device agent and consumed by the rollout engine, plus the `attempt`
//! of the command it answers, which the agent says back as its assignment told it.

use serde::{Deserialize, Serialize};

use crate::json::{self, Fault, ParseError, Validate};
use crate::limits::Limits;
use crate::name::Name;
use crate::version::Version;

/// What a device says about an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReportStatus {
    /// The device accepted the assignment and is downloading or installing.
    InProgress,
    /// The new version is installed, healthy and committed.
    Success,
    /// The update failed; the device is on its previous version.
    Failure,
    /// The device refused the assignment before writing anything (bad signature, not
    /// compatible, a downgrade).
    Rejected,
}

impl ReportStatus {
    /// The name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::InProgress => "in_progress",
            ReportStatus::Success => "success",
            ReportStatus::Failure => "failure",
            ReportStatus::Rejected => "rejected",
        }
    }
}

/// A device's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceReport {
    /// The device.
    pub device_id: Name,
    /// The rollout the update belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_id: Option<Name>,
    /// The version the device runs now (after the attempt), if any.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::version::serialize_option"
    )]
    pub firmware_version: Option<Version>,
    /// What happened.
    pub status: ReportStatus,
    /// Why, for a failure or rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The attempt of the command the report answers, as the device's assignment named it
    /// (1 is the first; each retry of the rollout adds one). `None` from an agent that does
    /// not say it: the rollout takes such a report as one about the first attempt
    /// ([`crate::rollout::Input::device_report`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

impl DeviceReport {
    /// Parses and validates a report, bounded by `limits.max_document_bytes`.
    pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        json::parse("report", bytes, limits.max_document_bytes)
    }

    /// The report as compact JSON.
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }
}

impl Validate for DeviceReport {
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        if self.attempt == Some(0) {
            json::fault(
                faults,
                json::field(path, "attempt"),
                "an attempt counts from 1",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_004_report_parses() {
        let limits = Limits::default();
        let r = DeviceReport::from_json(
            br#"{"device_id": "dev_8f3a", "rollout_id": "rol_4c7e", "firmware_version": "2.0.0", "status": "success"}"#,
            &limits,
        )
        .unwrap();
        assert_eq!(r.status, ReportStatus::Success);
        assert_eq!(
            DeviceReport::from_json(r.to_json().as_bytes(), &limits).unwrap(),
            r
        );
        assert_eq!(r.attempt, None);
        let e =
            DeviceReport::from_json(br#"{"device_id":"d","status":"ok"}"#, &limits).unwrap_err();
        assert_eq!(e.status(), crate::Status::InvalidValue, "{e}");
    }

    #[test]
    fn a_report_says_back_its_attempt_counted_from_one() {
        let limits = Limits::default();
        let r = DeviceReport::from_json(
            br#"{"device_id": "dev_8f3a", "rollout_id": "rol_4c7e", "status": "failure", "attempt": 2}"#,
            &limits,
        )
        .unwrap();
        assert_eq!(r.attempt, Some(2));
        assert!(r.to_json().contains(r#""attempt":2"#));
        let e = DeviceReport::from_json(
            br#"{"device_id":"d","status":"failure","attempt":0}"#,
            &limits,
        )
        .unwrap_err();
        assert_eq!(e.status(), crate::Status::Invalid, "{e}");
        assert!(e.to_string().contains("attempt"), "{e}");
    }
}
