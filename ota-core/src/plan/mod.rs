//! What a rollout is asked to do: the OTA API's rollout request, extended with widening waves,
//! a full halt rule, timers, retries, pacing and time windows.
//!
//! The seed's request parses as it is:
//! `{"package_id": "pkg_2a0f", "target_profile_id": "prof_temp_v2", "canary_percent": 5,
//! "failure_threshold_percent": 10, "rollback_package_id": "pkg_19b3"}`. Every other field has
//! a documented default; every fault names its field.
//!
//! The files: this one (the request, its target and waves), `halt` (the halt rule), `policy`
//! (devices in flight, timers, retries), `pacing` (send rates and time windows), `validate`.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::json::{self, ParseError};
use crate::limits::Limits;
use crate::name::Name;
use crate::sign::PackageId;

mod halt;
mod pacing;
mod policy;
mod validate;

pub use halt::{Denominator, FailureKind, HaltAction, HaltRule, Scope};
pub use pacing::{Maintenance, Pacing, Ramp, Weekday, Window};
pub use policy::{InFlight, Retries, RetryClass, RollbackScope, Timeouts};

/// The most waves a rollout has, the canary and the implicit last wave included (a device's
/// wave is kept in a byte).
pub const MAX_WAVES: usize = 200;

/// A rollout request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// The package to roll out.
    pub package_id: PackageId,
    /// The OTA API's target: the devices of this device profile (their label `profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_profile_id: Option<Name>,
    /// Any other target (exactly one of `target` and `target_profile_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// The first cohort, in percent of the eligible devices (rounded up). Default 5.
    #[serde(default = "d_canary")]
    pub canary_percent: f64,
    /// The widening waves after the canary, by cumulative percent; the last reaches 100. When
    /// empty, the rest of the fleet is one wave that waits for an operator's approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<Wave>,
    /// The halt rule trips when failures exceed this share of the devices scheduled in scope
    /// (10 trips at 11 %, not at 10 %; `halt.denominator` may name the terminal devices
    /// instead). Default 10.
    #[serde(default = "d_threshold")]
    pub failure_threshold_percent: f64,
    /// The rest of the halt rule.
    #[serde(default)]
    pub halt: HaltRule,
    /// The package to roll back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_package_id: Option<PackageId>,
    /// Which devices a rollback goes to. Default `updated_only`.
    #[serde(default)]
    pub rollback_scope: RollbackScope,
    /// What happens to devices in flight when the rollout is paused, aborted or rolled back.
    /// Default `finish`.
    #[serde(default)]
    pub in_flight: InFlight,
    /// Per-device timers.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Retries per failure class.
    #[serde(default)]
    pub retries: Retries,
    /// How fast commands go out.
    #[serde(default)]
    pub pacing: Pacing,
    /// When commands may go out.
    #[serde(default)]
    pub window: Window,
    /// Sample every hardware profile in every wave.
    #[serde(default)]
    pub stratify: bool,
    /// The salt of the cohort hash (default: the rollout's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

fn d_canary() -> f64 {
    5.0
}
fn d_threshold() -> f64 {
    10.0
}
fn d_hundred() -> f64 {
    100.0
}

/// Which devices a rollout targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Target {
    /// A static group of devices.
    Group {
        /// The devices.
        devices: Vec<Name>,
    },
    /// The devices of a device profile (their label `profile`).
    Profile {
        /// The profile's id.
        profile_id: Name,
    },
    /// Devices by capability; every criterion given must hold.
    Selector {
        /// Labels the device must carry, with these values.
        #[serde(default)]
        labels: BTreeMap<Name, String>,
        /// Hardware profiles, any of them.
        #[serde(default)]
        hardware_profiles: Vec<Name>,
        /// Device types, any of them.
        #[serde(default)]
        device_types: Vec<Name>,
    },
}

/// The label that names a device's device profile.
pub const PROFILE_LABEL: &str = "profile";

impl Target {
    /// The target made ready to test many devices: a static group as a set. Test a fleet
    /// with it, not with [`Target::contains`], which scans a group's list.
    pub fn membership(&self) -> Membership {
        match self {
            Target::Group { devices } => Membership::Group(devices.iter().cloned().collect()),
            other => Membership::Rule(other.clone()),
        }
    }

    /// Whether a device belongs to the target (one device: a group's list is scanned).
    pub fn contains(&self, d: &crate::profile::DeviceProfile) -> bool {
        match self {
            Target::Group { devices } => devices.contains(&d.device_id),
            Target::Profile { profile_id } => d
                .labels
                .get(PROFILE_LABEL)
                .is_some_and(|v| v == profile_id.as_str()),
            Target::Selector {
                labels,
                hardware_profiles,
                device_types,
            } => {
                labels.iter().all(|(k, v)| d.labels.get(k) == Some(v))
                    && (hardware_profiles.is_empty()
                        || hardware_profiles.contains(&d.hardware_profile))
                    && (device_types.is_empty() || device_types.contains(&d.device_type))
            }
        }
    }
}

/// A [`Target`] ready to test many devices ([`Target::membership`]): a static group is a set,
/// so testing a fleet against it takes time in proportion to the fleet, not its square.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Membership {
    /// A static group's devices.
    Group(HashSet<Name>),
    /// A profile or a selector, tested device by device.
    Rule(Target),
}

impl Membership {
    /// Whether a device belongs to the target.
    pub fn contains(&self, d: &crate::profile::DeviceProfile) -> bool {
        match self {
            Membership::Group(devices) => devices.contains(&d.device_id),
            Membership::Rule(t) => t.contains(d),
        }
    }
}

/// A widening wave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wave {
    /// The cumulative share of the eligible devices after this wave, in percent.
    pub percent: f64,
    /// At most this many devices more than the waves before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_devices: Option<u64>,
    /// The wave opens at least this long after the one before completed. Default 0.
    #[serde(default)]
    pub min_soak_ms: u64,
    /// The devices so far must have succeeded at least this often (percent of those
    /// terminal) for the wave to open. Default 100.
    #[serde(default = "d_hundred")]
    pub success_gate_percent: f64,
    /// Who opens it. Default `automatic`.
    #[serde(default)]
    pub gate: Gate,
}

/// Who opens a wave once its soak and success gate are met.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Gate {
    /// The engine.
    #[default]
    Automatic,
    /// An operator's approval.
    Approval,
    /// An external verdict (a monitoring system); a failing verdict trips the halt action.
    External,
}

impl RolloutSpec {
    /// Parses and validates a request, at most `limits.max_document_bytes` long.
    pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        json::parse("rollout", bytes, limits.max_document_bytes)
    }

    /// The request as JSON.
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }

    /// The target: `target`, or the device profile `target_profile_id`.
    pub fn resolved_target(&self) -> Option<Target> {
        self.target.clone().or_else(|| {
            self.target_profile_id
                .clone()
                .map(|profile_id| Target::Profile { profile_id })
        })
    }

    /// The waves with the canary first and the implicit last wave (the rest of the fleet,
    /// waiting for approval) when none reaches 100 percent.
    pub fn all_waves(&self) -> Vec<Wave> {
        let mut waves = vec![Wave {
            percent: self.canary_percent,
            max_devices: None,
            min_soak_ms: 0,
            success_gate_percent: 0.0,
            gate: Gate::Automatic,
        }];
        waves.extend(self.waves.iter().cloned());
        if waves.last().is_some_and(|w| w.percent < 100.0) {
            waves.push(Wave {
                percent: 100.0,
                max_devices: None,
                min_soak_ms: 0,
                success_gate_percent: 0.0,
                gate: Gate::Approval,
            });
        }
        waves
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_004_request_parses_with_its_defaults() {
        let s = RolloutSpec::from_json(
            br#"{"package_id": "pkg_2a0f", "target_profile_id": "prof_temp_v2", "canary_percent": 5,
                "failure_threshold_percent": 10, "rollback_package_id": "pkg_19b3"}"#,
            &Limits::DEFAULT,
        )
        .unwrap();
        assert_eq!(s.halt.action, HaltAction::Pause);
        let waves = s.all_waves();
        assert_eq!(waves.len(), 2);
        assert_eq!((waves[1].percent, waves[1].gate), (100.0, Gate::Approval));
        assert_eq!(
            RolloutSpec::from_json(s.to_json().as_bytes(), &Limits::DEFAULT).unwrap(),
            s
        );
    }
}
