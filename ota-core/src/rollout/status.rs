//! Where a rollout stands, for an operator or an API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{DeviceState, RolloutState};
use crate::audit::AuditHead;
use crate::compat::Reason;
use crate::name::Name;
use crate::plan::Gate;
use crate::sign::PackageId;
use crate::time::UnixMs;

/// Outcome counters of a scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Devices with a final outcome.
    pub terminal: u64,
    /// Of those, the failures (as the halt rule counts them).
    pub failures: u64,
    /// Of those, the successes.
    pub succeeded: u64,
}

/// A wave's progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaveStatus {
    /// Its position (0 is the canary).
    pub index: usize,
    /// Its cumulative percent.
    pub percent: f64,
    /// Its gate.
    pub gate: Gate,
    /// Eligible devices in it (devices that left are not counted).
    pub devices: u64,
    /// Devices with an update still open.
    pub remaining: u64,
    /// When it opened.
    pub opened_at: Option<UnixMs>,
    /// When its last device finished.
    pub completed_at: Option<UnixMs>,
    /// Outcomes so far.
    pub counts: Counts,
    /// Outcomes set aside when the rollout last paused (a resume acknowledges them).
    pub acknowledged: Counts,
    /// An operator approved it.
    pub approved: bool,
    /// An external verdict, if one came.
    pub verdict: Option<bool>,
}

/// Where a rollout stands, for an operator or an API (the OTA API's `rollout_id`, `status`,
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
    /// Why the halt rule last tripped, in words.
    pub halt_reason: Option<String>,
    /// Incompatible devices by their first reason.
    pub incompatible_reasons: BTreeMap<Reason, u64>,
    /// Outcomes over all waves.
    pub cumulative: Counts,
    /// Cumulative outcomes set aside when the rollout last paused (a resume acknowledges
    /// them).
    pub cumulative_acknowledged: Counts,
    /// Devices down: the update failed and the device did not say it runs a version.
    pub fleet_impact: u64,
    /// The last record of the rollout's audit trail: a stored trail must end here
    /// ([`crate::audit::verify_with_head`]).
    pub audit_head: AuditHead,
}
