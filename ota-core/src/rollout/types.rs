//! What the rollout engine says: its states, commands, events, errors and status.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::compat::Reason;
use crate::name::Name;
use crate::plan::Gate;
use crate::sign::PackageId;
use crate::status::Status;

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RolloutState {
    /// Devices are being updated.
    Active,
    /// Nothing new is sent.
    Paused,
    /// The rollback package is being sent.
    RollingBack,
    /// Done.
    Completed,
    /// Stopped for good.
    Aborted,
}

impl RolloutState {
    /// The name as written in JSON and in event subjects.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Active => "active",
            RolloutState::Paused => "paused",
            RolloutState::RollingBack => "rolling_back",
            RolloutState::Completed => "completed",
            RolloutState::Aborted => "aborted",
        }
    }
}

/// Where a device stands in a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceState {
    /// Eligible; its wave has not opened.
    Pending,
    /// Its wave is open; waiting to be sent (or for a retry, or for the rollout to resume).
    Scheduled,
    /// The command was issued.
    Sent,
    /// The device reported it is working on it.
    InProgress,
    /// The device runs the new version.
    Succeeded,
    /// The device failed (after its retries).
    Failed,
    /// The device did not finish in time, or never came online (after its retries).
    TimedOut,
    /// The device refused the assignment.
    Rejected,
    /// The package does not fit the device.
    Incompatible,
    /// The device runs that version already.
    AlreadyInstalled,
    /// Not sent, or stopped, because the rollout stopped.
    Cancelled,
    /// Waiting to be sent the rollback package.
    RollbackScheduled,
    /// The rollback package was sent.
    RollbackSent,
    /// The device runs the rollback package.
    RolledBack,
    /// The rollback failed on the device.
    RollbackFailed,
    /// The device left the target.
    Removed,
}

impl DeviceState {
    /// Every state.
    pub const ALL: [DeviceState; 16] = [
        DeviceState::Pending,
        DeviceState::Scheduled,
        DeviceState::Sent,
        DeviceState::InProgress,
        DeviceState::Succeeded,
        DeviceState::Failed,
        DeviceState::TimedOut,
        DeviceState::Rejected,
        DeviceState::Incompatible,
        DeviceState::AlreadyInstalled,
        DeviceState::Cancelled,
        DeviceState::RollbackScheduled,
        DeviceState::RollbackSent,
        DeviceState::RolledBack,
        DeviceState::RollbackFailed,
        DeviceState::Removed,
    ];

    /// Whether the device still has an update to finish.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            DeviceState::Pending
                | DeviceState::Scheduled
                | DeviceState::Sent
                | DeviceState::InProgress
        )
    }

    /// Whether a command is out to the device.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            DeviceState::Sent | DeviceState::InProgress | DeviceState::RollbackSent
        )
    }

    /// Whether nothing more will happen to the device in this rollout.
    pub fn is_terminal(self) -> bool {
        !self.is_open()
            && !matches!(
                self,
                DeviceState::RollbackScheduled | DeviceState::RollbackSent
            )
    }

    /// The name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Pending => "pending",
            DeviceState::Scheduled => "scheduled",
            DeviceState::Sent => "sent",
            DeviceState::InProgress => "in_progress",
            DeviceState::Succeeded => "succeeded",
            DeviceState::Failed => "failed",
            DeviceState::TimedOut => "timed_out",
            DeviceState::Rejected => "rejected",
            DeviceState::Incompatible => "incompatible",
            DeviceState::AlreadyInstalled => "already_installed",
            DeviceState::Cancelled => "cancelled",
            DeviceState::RollbackScheduled => "rollback_scheduled",
            DeviceState::RollbackSent => "rollback_sent",
            DeviceState::RolledBack => "rolled_back",
            DeviceState::RollbackFailed => "rollback_failed",
            DeviceState::Removed => "removed",
        }
    }
}

/// What the service must do for a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[must_use]
#[non_exhaustive]
pub enum RolloutCommand {
    /// Send the package to the device as a persistent command (seed 004's `ota_start`).
    Send {
        /// The device.
        device_id: Name,
        /// The package to install.
        package_id: PackageId,
        /// Whether this is the rollback package.
        rollback: bool,
    },
    /// Tell the device to stop.
    Cancel {
        /// The device.
        device_id: Name,
        /// A forced cancel stops it even mid-install; a soft one only if it has not started.
        forced: bool,
    },
}

/// An event for the message bus, named as in seed 004.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// `profile.ota.rollout.<what>.<tenant>.<rollout_id>`.
    pub subject: String,
    /// What happened (`started`, `paused`, `wave_opened`, ...).
    pub kind: String,
    /// When (Unix ms).
    pub at: u64,
    /// Details.
    pub data: serde_json::Value,
}

/// An input the rollout could not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RolloutError {
    /// The request, the package or the fleet does not make a valid rollout.
    #[error("invalid rollout: {0}")]
    Invalid(String),
    /// The input does not fit the rollout's state.
    #[error("cannot {input} a rollout that is {state}")]
    State {
        /// The input.
        input: &'static str,
        /// The rollout's state.
        state: &'static str,
    },
    /// No such device or wave in this rollout.
    #[error("{0}")]
    NotFound(String),
    /// A snapshot or trail that does not restore.
    #[error("restore: {0}")]
    Restore(String),
    /// Replaying the trail gave another rollout.
    #[error("replay diverges at audit record {seq}")]
    ReplayMismatch {
        /// The first record that differs.
        seq: u64,
    },
}

impl RolloutError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            RolloutError::Invalid(_) => Status::PlanInvalid,
            RolloutError::State { .. } => Status::RolloutState,
            RolloutError::NotFound(_) => Status::RolloutNotFound,
            RolloutError::Restore(_) => Status::RecordInvalid,
            RolloutError::ReplayMismatch { .. } => Status::ReplayMismatch,
        }
    }
}

/// Outcome counters of a scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Devices with a final outcome.
    pub terminal: u64,
    /// Of those, the failures (as the halt rule counts them).
    pub failures: u64,
    /// Of those, the successes.
    pub succeeded: u64,
}

/// A wave's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaveStatus {
    /// Its position (0 is the canary).
    pub index: usize,
    /// Its cumulative percent.
    pub percent: f64,
    /// Its gate.
    pub gate: Gate,
    /// Devices in it.
    pub devices: u64,
    /// Devices with an update still open.
    pub remaining: u64,
    /// When it opened.
    pub opened_at: Option<u64>,
    /// When its last device finished.
    pub completed_at: Option<u64>,
    /// Outcomes so far.
    pub counts: Counts,
    /// Outcomes acknowledged by the last resume.
    pub acknowledged: Counts,
    /// An operator approved it.
    pub approved: bool,
    /// An external verdict, if one came.
    pub verdict: Option<bool>,
}

/// Where a rollout stands, for an operator or an API (seed 004's `rollout_id`, `status`,
/// `canary_percent`, `scheduled_count`, and more).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutStatus {
    /// The rollout.
    pub rollout_id: Name,
    /// Its tenant.
    pub tenant: Name,
    /// Its state.
    pub status: RolloutState,
    /// The package.
    pub package_id: PackageId,
    /// The canary's share.
    pub canary_percent: f64,
    /// Devices the package fits and does not have yet.
    pub eligible: u64,
    /// Devices in the waves opened so far.
    pub scheduled_count: u64,
    /// How many devices are in each state.
    pub devices: BTreeMap<DeviceState, u64>,
    /// The waves.
    pub waves: Vec<WaveStatus>,
    /// Why the halt rule last tripped.
    pub halt_reason: Option<String>,
    /// Incompatible devices by their first reason.
    pub incompatible_reasons: BTreeMap<Reason, u64>,
    /// Outcomes over all waves.
    pub cumulative: Counts,
    /// Cumulative outcomes acknowledged by the last resume.
    pub cumulative_acknowledged: Counts,
    /// Devices down: the update failed and the device did not say it runs a version.
    pub fleet_impact: u64,
}
