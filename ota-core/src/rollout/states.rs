//! The states of a rollout and of a device in it.

use std::fmt;

use serde::{Deserialize, Serialize};

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

    /// Whether the rollout is over (`completed` or `aborted`).
    pub fn is_over(self) -> bool {
        matches!(self, RolloutState::Completed | RolloutState::Aborted)
    }
}

impl fmt::Display for RolloutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
