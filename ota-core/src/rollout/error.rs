//! Why a rollout refused an input, a creation, a restore or a replay.

use super::RolloutState;
use crate::audit::AuditError;
use crate::name::Name;
use crate::sign::PackageId;
use crate::status::Status;
use crate::version::Version;

/// An input, a request or a snapshot the rollout could not take. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RolloutError {
    /// The request names another package than the one given.
    #[error("package_id: the request names package {requested}, the package given is {given}")]
    PackageMismatch {
        /// What the request (or the snapshot) names.
        requested: PackageId,
        /// What the caller gave.
        given: PackageId,
    },
    /// The request names a rollback package that was not given.
    #[error("rollback_package_id: the request names rollback package {requested}, none was given")]
    RollbackMissing {
        /// What the request names.
        requested: PackageId,
    },
    /// A rollback package was given that the request does not name.
    #[error("rollback_package_id: rollback package {given} was given, the request names none")]
    RollbackNotRequested {
        /// What the caller gave.
        given: PackageId,
    },
    /// The request names another rollback package than the one given.
    #[error(
        "rollback_package_id: the request names rollback package {requested}, the one given is {given}"
    )]
    RollbackMismatch {
        /// What the request names.
        requested: PackageId,
        /// What the caller gave.
        given: PackageId,
    },
    /// The request has no target.
    #[error("target_profile_id: the request has no target (target_profile_id or target)")]
    NoTarget,
    /// The plan breaks one of its rules (a spec built in code, which no parser checked): the
    /// first fault, with its field.
    #[error("{fault}")]
    PlanFault {
        /// The first rule broken.
        fault: crate::json::Fault,
    },
    /// The request has more waves than a rollout holds.
    #[error("waves: the request has {waves} waves, at most {max} are allowed")]
    TooManyWaves {
        /// Waves, the canary and the implicit last one included.
        waves: usize,
        /// The most allowed.
        max: usize,
    },
    /// A device appears twice in the fleet.
    #[error("device {device_id} appears twice in the fleet")]
    DuplicateDevice {
        /// The device.
        device_id: Name,
    },
    /// Verdicts given for a creation ([`super::Rollout::create_judged`]) are not one per
    /// device of its fleet: the host judged a fleet of another length, or a part of it. (Only
    /// the count is checked: the verdicts are the host's, trusted as its [`super::Judge`]
    /// gave them.)
    #[error("{verdicts} verdicts were given for a fleet of {devices} devices")]
    VerdictsMismatch {
        /// The verdicts given.
        verdicts: u64,
        /// The devices of the fleet.
        devices: u64,
    },
    /// The fleet holds more devices than a rollout indexes.
    #[error("the fleet holds more than {max} devices")]
    TooManyDevices {
        /// The most allowed.
        max: u64,
    },
    /// The rollback package is an older version of the package's software that is not signed
    /// as a rollback of the package's version, unexpired: every device would refuse it (a
    /// device takes a downgrade only when its signed `rollback.from` names what it runs).
    #[error(
        "rollback_package_id: {name} {rollback} is not signed as a rollback of {package} ({found}); every device would refuse it"
    )]
    RollbackNotBound {
        /// The software's name.
        name: Name,
        /// The rollback package's version.
        rollback: Version,
        /// The version it must replace: the package's.
        package: Version,
        /// What its signed `rollback` says instead.
        found: Box<str>,
    },
    /// The rollback package does not fit some eligible devices.
    #[error(
        "rollback_package_id: the rollback package does not fit {devices} eligible device(s), {first} among them"
    )]
    RollbackDoesNotFit {
        /// How many.
        devices: u64,
        /// The first of them.
        first: Name,
    },
    /// The input does not fit the rollout's state.
    #[error("cannot {input} a rollout that is {state}")]
    State {
        /// The input (`pause`, `roll back`).
        input: &'static str,
        /// The rollout's state.
        state: RolloutState,
    },
    /// A rollback was asked of a rollout that has no rollback package.
    #[error("rollback_package_id: the rollout has no rollback package")]
    NoRollbackPackage,
    /// No such wave.
    #[error("wave: the rollout has no wave {wave}")]
    UnknownWave {
        /// The wave asked for.
        wave: usize,
    },
    /// An approval of a wave other than the next to open: one given ahead would let a wave
    /// past its success gate before anyone saw how the waves before it went.
    #[error("wave: wave {wave} is not the next to open (wave {next} is)")]
    NotNextWave {
        /// The wave asked for.
        wave: usize,
        /// The next wave to open.
        next: usize,
    },
    /// No such device in the rollout.
    #[error("device_id: device {device_id} is not in the rollout")]
    UnknownDevice {
        /// The device.
        device_id: Name,
    },
    /// A device outside the rollout's target tried to join.
    #[error("device_id: device {device_id} is not in the rollout's target")]
    NotInTarget {
        /// The device.
        device_id: Name,
    },
    /// A report for another rollout.
    #[error("the report is for rollout {found}, not {expected}")]
    WrongRollout {
        /// This rollout.
        expected: Name,
        /// The rollout the report names.
        found: Name,
    },
    /// A report that names no rollout: a rollout takes only its own reports.
    #[error("rollout_id: the report of device {device_id} names no rollout, expected {expected}")]
    ReportWithoutRollout {
        /// The device.
        device_id: Name,
        /// This rollout.
        expected: Name,
    },
    /// A success report naming another version than the package the device was last sent.
    #[error(
        "firmware_version: device {device_id} reports success on {found}, it was sent {expected}"
    )]
    WrongVersion {
        /// The device.
        device_id: Name,
        /// The version of the package last sent to it.
        expected: Version,
        /// The version the report names.
        found: Version,
    },
    /// A success report naming no version: a success counts only for the version of the
    /// package the device was last sent, so it must say which version it runs.
    #[error(
        "firmware_version: device {device_id} reports success without naming a version, it was sent {expected}"
    )]
    SuccessWithoutVersion {
        /// The device.
        device_id: Name,
        /// The version of the package last sent to it.
        expected: Version,
    },
    /// A report about an attempt that is not the device's current one: a replayed or late
    /// report of an attempt a retry replaced (a report that names no attempt is about the
    /// first).
    #[error(
        "attempt: device {device_id} reports on attempt {reported}, its current attempt is {current}"
    )]
    StaleAttempt {
        /// The device.
        device_id: Name,
        /// The attempt the report is about.
        reported: u32,
        /// The device's current attempt.
        current: u32,
    },
    /// A refused report to record that this rollout would take: only a refusal is recorded.
    #[error("the report of device {device_id} is not refused: it is no refusal to record")]
    NotRefused {
        /// The device.
        device_id: Name,
    },
    /// A snapshot whose parts do not agree.
    #[error("the snapshot is inconsistent: {what}")]
    SnapshotInvalid {
        /// What does not agree.
        what: &'static str,
    },
    /// The trail to replay does not verify.
    #[error("the trail to replay is broken: {0}")]
    TrailBroken(#[from] AuditError),
    /// Replaying the trail gave another rollout.
    #[error("replay diverges at audit record {seq}")]
    ReplayMismatch {
        /// The first record that differs.
        seq: u64,
    },
    /// Replaying the trail, the engine refused a stored record's input (its rules changed
    /// since the record was written, or the trail is another rollout's).
    #[error("replay diverges at audit record {seq}: its input is refused now: {refusal}")]
    ReplayRefused {
        /// The record.
        seq: u64,
        /// Why the engine refuses its input.
        refusal: Box<RolloutError>,
    },
}

impl RolloutError {
    /// Whether a refused input is still written to the audit trail: a report of a device of
    /// the rollout that does not match it (no rollout, another rollout, another version or
    /// none, another attempt) is refused and recorded, so the trail shows every attempt to count
    /// a wrong report.
    pub fn is_recorded(&self) -> bool {
        self.refusal().is_some()
    }

    /// The stable name of a refusal that is recorded ([`RolloutError::is_recorded`]), the
    /// reason its [`super::Effect::ReportRefused`] gives: `report_without_rollout`,
    /// `wrong_rollout`, `wrong_version`, `success_without_version` or `stale_attempt`. Not the
    /// message's English, which a record would then hash: rewording it would change what a
    /// replay writes. `None` for an error that is not recorded.
    pub fn refusal(&self) -> Option<&'static str> {
        Some(match self {
            RolloutError::ReportWithoutRollout { .. } => "report_without_rollout",
            RolloutError::WrongRollout { .. } => "wrong_rollout",
            RolloutError::WrongVersion { .. } => "wrong_version",
            RolloutError::SuccessWithoutVersion { .. } => "success_without_version",
            RolloutError::StaleAttempt { .. } => "stale_attempt",
            _ => return None,
        })
    }

    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            RolloutError::PackageMismatch { .. }
            | RolloutError::RollbackMissing { .. }
            | RolloutError::RollbackNotRequested { .. }
            | RolloutError::RollbackMismatch { .. }
            | RolloutError::NoTarget
            | RolloutError::PlanFault { .. }
            | RolloutError::TooManyWaves { .. }
            | RolloutError::DuplicateDevice { .. }
            | RolloutError::TooManyDevices { .. }
            | RolloutError::RollbackDoesNotFit { .. }
            | RolloutError::RollbackNotBound { .. }
            | RolloutError::NoRollbackPackage => Status::PlanInvalid,
            RolloutError::State { .. } | RolloutError::NotNextWave { .. } => Status::RolloutState,
            RolloutError::UnknownWave { .. }
            | RolloutError::UnknownDevice { .. }
            | RolloutError::NotInTarget { .. }
            | RolloutError::WrongRollout { .. } => Status::RolloutNotFound,
            RolloutError::ReportWithoutRollout { .. } => Status::MissingField,
            RolloutError::WrongVersion { .. } => Status::InvalidValue,
            RolloutError::SuccessWithoutVersion { .. } => Status::MissingField,
            RolloutError::StaleAttempt { .. } => Status::RolloutState,
            RolloutError::NotRefused { .. } | RolloutError::VerdictsMismatch { .. } => {
                Status::InvalidArgument
            }
            RolloutError::SnapshotInvalid { .. } => Status::RecordInvalid,
            RolloutError::TrailBroken(e) => e.status(),
            RolloutError::ReplayMismatch { .. } | RolloutError::ReplayRefused { .. } => {
                Status::ReplayMismatch
            }
        }
    }
}
