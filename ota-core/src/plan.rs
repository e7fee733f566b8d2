//! What a rollout is asked to do: seed 004's rollout request, extended with widening waves,
//! a full halt rule, timers, retries, pacing and time windows.
//!
//! The seed's request parses as it is:
//! `{"package_id": "pkg_2a0f", "target_profile_id": "prof_temp_v2", "canary_percent": 5,
//! "failure_threshold_percent": 10, "rollback_package_id": "pkg_19b3"}`. Every other field has
//! a documented default; every fault names its field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::json::{self, Fault, ParseError, Validate, fault, field, index};
use crate::limits::Limits;
use crate::name::Name;
use crate::sign::PackageId;
use crate::time::UnixMs;

/// The most waves a rollout has, the canary and the implicit last wave included (a device's
/// wave is kept in a byte).
pub const MAX_WAVES: usize = 200;

/// A rollout request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// The package to roll out.
    pub package_id: PackageId,
    /// Seed 004's target: the devices of this device profile (their label `profile`).
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
    /// Whether a device belongs to the target.
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

/// The halt rule, beyond its threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaltRule {
    /// The rule cannot trip before this many devices in scope are terminal. Default 1.
    #[serde(default = "d_min_terminal")]
    pub min_terminal: u64,
    /// What the threshold is a share of. Default `scheduled` (seed 004: "once 11 % of canary
    /// devices report failure").
    #[serde(default)]
    pub denominator: Denominator,
    /// It also trips when failures in scope exceed this count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<u64>,
    /// Which outcomes count as failures. Default `failed` and `timed_out`.
    #[serde(default = "d_kinds")]
    pub count_as_failure: Vec<FailureKind>,
    /// The devices it looks at. Default `wave`.
    #[serde(default)]
    pub scope: Scope,
    /// What it does. Default `pause` (seed 004).
    #[serde(default)]
    pub action: HaltAction,
}

fn d_min_terminal() -> u64 {
    1
}
fn d_kinds() -> Vec<FailureKind> {
    vec![FailureKind::Failed, FailureKind::TimedOut]
}

impl Default for HaltRule {
    fn default() -> Self {
        HaltRule {
            min_terminal: 1,
            denominator: Denominator::Scheduled,
            max_failures: None,
            count_as_failure: d_kinds(),
            scope: Scope::Wave,
            action: HaltAction::Pause,
        }
    }
}

/// What the halt rule's threshold is a share of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Denominator {
    /// The devices scheduled in scope, whether they finished or not: 11 failures of a
    /// 100-device canary trip a 10 % threshold, however early they come.
    #[default]
    Scheduled,
    /// The devices in scope with a final outcome: one early failure is 100 % (bound it with
    /// `min_terminal`).
    Terminal,
}

/// An outcome that may count as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The device reported a failure (after its retries).
    Failed,
    /// The device did not finish in time (after its retries); a device that never came
    /// online counts only when `offline_is_failure`.
    TimedOut,
    /// The device refused the assignment.
    Rejected,
}

/// The devices the halt rule looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Scope {
    /// Those of the reporting device's wave.
    #[default]
    Wave,
    /// All so far.
    Cumulative,
}

/// What the halt rule does when it trips.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HaltAction {
    /// Pause the rollout and publish the alert event.
    #[default]
    Pause,
    /// Abort it.
    Abort,
    /// Roll back to the rollback package.
    Rollback,
}

/// Which devices a rollback goes to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RollbackScope {
    /// The devices that took the update.
    #[default]
    UpdatedOnly,
    /// Every device of the waves opened so far.
    Cohort,
    /// Every eligible device.
    All,
}

/// What happens to a device in flight when the rollout stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InFlight {
    /// It finishes; its report counts.
    #[default]
    Finish,
    /// It is asked to stop if it has not started installing.
    SoftCancel,
    /// It is told to stop.
    ForcedCancel,
}

/// Per-device timers, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// A sent device that has not reported within this is sent the command again (a `no_ack`
    /// retry). Default 600 000 (10 minutes).
    #[serde(default = "d_ack")]
    pub ack_ms: u64,
    /// A device in progress that has not finished within this timed out. Default 3 600 000.
    #[serde(default = "d_progress")]
    pub in_progress_ms: u64,
    /// A device that never came online within this of the first send expires, `timed_out`.
    /// Default 604 800 000 (7 days).
    #[serde(default = "d_expiry")]
    pub offline_expiry_ms: u64,
    /// Whether an expired (offline) device counts as a failure. Default false.
    #[serde(default)]
    pub offline_is_failure: bool,
}

fn d_ack() -> u64 {
    600_000
}
fn d_progress() -> u64 {
    3_600_000
}
fn d_expiry() -> u64 {
    604_800_000
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            ack_ms: d_ack(),
            in_progress_ms: d_progress(),
            offline_expiry_ms: d_expiry(),
            offline_is_failure: false,
        }
    }
}

/// Retries of one failure class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryClass {
    /// How many times to try again.
    #[serde(default)]
    pub max: u8,
    /// Wait this long before the first retry, doubling each time. Default 0.
    #[serde(default)]
    pub backoff_ms: u64,
}

/// Retries per failure class. A refusal (`rejected`) and an incompatible device are never
/// retried; only final failures feed the halt rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// A device's failure report. Default none.
    #[serde(default)]
    pub failed: RetryClass,
    /// An in-progress timeout. Default none.
    #[serde(default)]
    pub timed_out: RetryClass,
    /// No report after a send. Default 3 resends.
    #[serde(default = "d_no_ack")]
    pub no_ack: RetryClass,
}

fn d_no_ack() -> RetryClass {
    RetryClass {
        max: 3,
        backoff_ms: 0,
    }
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            failed: RetryClass::default(),
            timed_out: RetryClass::default(),
            no_ack: d_no_ack(),
        }
    }
}

/// How fast commands go out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pacing {
    /// At most this many devices in flight (sent or in progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u64>,
    /// At most this many sends in any 60-second window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u64>,
    /// Start slower and double.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<Ramp>,
}

/// An exponential ramp of the send rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    /// The rate at the start (sends per minute).
    pub initial_per_minute: u64,
    /// The rate doubles this often, up to `per_minute`.
    pub double_every_ms: u64,
}

/// When commands may go out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Not before (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<UnixMs>,
    /// Not after (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<UnixMs>,
    /// Recurring maintenance windows; when any is given, only inside one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance: Vec<Maintenance>,
}

/// A recurring maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    /// The days it starts on.
    pub days: Vec<Weekday>,
    /// When it starts, local time, `HH:MM`.
    pub start: String,
    /// How long it lasts (1 to 10 080 minutes).
    pub duration_minutes: u32,
    /// The local time's offset from UTC, in minutes (−840 to 840).
    #[serde(default)]
    pub utc_offset_minutes: i32,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Maintenance {
    fn start_minute(&self) -> Option<u32> {
        let (h, m) = self.start.split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && self.start.len() == 5).then_some(h * 60 + m)
    }

    /// Whether `now` is inside this window.
    pub fn contains(&self, now: UnixMs) -> bool {
        let Some(start) = self.start_minute() else {
            return false;
        };
        let local_minutes = (now.get() / 60_000) as i64 + i64::from(self.utc_offset_minutes);
        let week = 7 * 24 * 60;
        // 1970-01-01 was a Thursday: minute 0 of the epoch is Thursday 00:00.
        let minute_of_week = (local_minutes + 3 * 24 * 60).rem_euclid(week);
        self.days.iter().any(|d| {
            let day_start = *d as i64 * 24 * 60 + i64::from(start);
            let into = (minute_of_week - day_start).rem_euclid(week);
            into < i64::from(self.duration_minutes)
        })
    }
}

impl Window {
    /// Whether commands may go out at `now`.
    pub fn allows(&self, now: UnixMs) -> bool {
        self.start_at.is_none_or(|s| now >= s)
            && self.end_at.is_none_or(|e| now < e)
            && (self.maintenance.is_empty() || self.maintenance.iter().any(|m| m.contains(now)))
    }
}

impl Pacing {
    /// The send limit per minute at `now`, for a rollout started at `started`.
    pub fn limit_per_minute(&self, started: UnixMs, now: UnixMs) -> Option<u64> {
        let max = self.per_minute?;
        Some(match self.ramp {
            None => max,
            Some(r) => {
                let steps = (now - started) / r.double_every_ms.max(1);
                let rate = r
                    .initial_per_minute
                    .max(1)
                    .saturating_mul(1u64 << steps.min(40));
                rate.min(max)
            }
        })
    }
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

fn percent(faults: &mut Vec<Fault>, path: String, v: f64, zero_ok: bool) {
    let ok = v.is_finite() && v <= 100.0 && (v > 0.0 || (zero_ok && v == 0.0));
    if !ok {
        let range = if zero_ok {
            "0 to 100"
        } else {
            "more than 0, at most 100"
        };
        fault(faults, path, format!("a percentage is {range}, found {v}"));
    }
}

impl Validate for RolloutSpec {
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        match (&self.target, &self.target_profile_id) {
            (None, None) => fault(
                faults,
                field(path, "target"),
                "a rollout needs a target (or target_profile_id)",
            ),
            (Some(_), Some(_)) => fault(
                faults,
                field(path, "target"),
                "give either target or target_profile_id, not both",
            ),
            _ => {}
        }
        if let Some(Target::Group { devices }) = &self.target {
            let p = field(&field(path, "target"), "devices");
            if devices.is_empty() {
                fault(faults, p.clone(), "a group needs at least one device");
            }
            json::duplicates(faults, &p, None, devices);
        }
        percent(
            faults,
            field(path, "canary_percent"),
            self.canary_percent,
            false,
        );
        percent(
            faults,
            field(path, "failure_threshold_percent"),
            self.failure_threshold_percent,
            true,
        );
        let mut last = self.canary_percent;
        for (i, w) in self.waves.iter().enumerate() {
            let p = index(&field(path, "waves"), i);
            percent(faults, field(&p, "percent"), w.percent, false);
            percent(
                faults,
                field(&p, "success_gate_percent"),
                w.success_gate_percent,
                true,
            );
            if w.percent <= last {
                fault(
                    faults,
                    field(&p, "percent"),
                    format!(
                        "waves widen: {} is not above the {} before it",
                        w.percent, last
                    ),
                );
            }
            if w.max_devices == Some(0) {
                fault(
                    faults,
                    field(&p, "max_devices"),
                    "must be at least 1 when given",
                );
            }
            last = w.percent;
        }
        if self.waves.len() + 2 > MAX_WAVES {
            fault(
                faults,
                field(path, "waves"),
                format!("at most {} waves after the canary", MAX_WAVES - 2),
            );
        }
        if !self.waves.is_empty() && last < 100.0 {
            fault(
                faults,
                field(path, "waves"),
                format!("the last wave must reach 100 percent, found {last}"),
            );
        }
        let h = field(path, "halt");
        if self.halt.min_terminal == 0 {
            fault(faults, field(&h, "min_terminal"), "must be at least 1");
        }
        json::duplicates(
            faults,
            &field(&h, "count_as_failure"),
            None,
            self.halt
                .count_as_failure
                .iter()
                .map(|k| KindName(*k))
                .collect::<Vec<_>>()
                .iter(),
        );
        if self.halt.action == HaltAction::Rollback && self.rollback_package_id.is_none() {
            fault(
                faults,
                field(&h, "action"),
                "a rollback halt action needs rollback_package_id",
            );
        }
        if self.rollback_package_id.as_ref() == Some(&self.package_id) {
            fault(
                faults,
                field(path, "rollback_package_id"),
                "the rollback package is the package itself",
            );
        }
        let t = field(path, "timeouts");
        for (name, v) in [
            ("ack_ms", self.timeouts.ack_ms),
            ("in_progress_ms", self.timeouts.in_progress_ms),
            ("offline_expiry_ms", self.timeouts.offline_expiry_ms),
        ] {
            if v == 0 {
                fault(faults, field(&t, name), "a timeout must be more than 0");
            }
        }
        let pc = field(path, "pacing");
        if self.pacing.max_in_flight == Some(0) {
            fault(
                faults,
                field(&pc, "max_in_flight"),
                "must be at least 1 when given",
            );
        }
        if self.pacing.per_minute == Some(0) {
            fault(
                faults,
                field(&pc, "per_minute"),
                "must be at least 1 when given",
            );
        }
        if let Some(r) = self.pacing.ramp {
            if self.pacing.per_minute.is_none() {
                fault(
                    faults,
                    field(&pc, "ramp"),
                    "a ramp needs per_minute to ramp up to",
                );
            }
            if r.initial_per_minute == 0 || r.double_every_ms == 0 {
                fault(
                    faults,
                    field(&pc, "ramp"),
                    "initial_per_minute and double_every_ms must be more than 0",
                );
            }
        }
        let w = field(path, "window");
        if let (Some(s), Some(e)) = (self.window.start_at, self.window.end_at)
            && e <= s
        {
            fault(
                faults,
                field(&w, "end_at"),
                format!("the window ends ({e}) before it starts ({s})"),
            );
        }
        for (i, m) in self.window.maintenance.iter().enumerate() {
            let p = index(&field(&w, "maintenance"), i);
            if m.days.is_empty() {
                fault(faults, field(&p, "days"), "at least one day is required");
            }
            if m.start_minute().is_none() {
                fault(
                    faults,
                    field(&p, "start"),
                    format!("{:?} is not HH:MM", m.start),
                );
            }
            if !(1..=10_080).contains(&m.duration_minutes) {
                fault(faults, field(&p, "duration_minutes"), "must be 1 to 10080");
            }
            if !(-840..=840).contains(&m.utc_offset_minutes) {
                fault(
                    faults,
                    field(&p, "utc_offset_minutes"),
                    "must be -840 to 840",
                );
            }
        }
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct KindName(FailureKind);

impl std::fmt::Display for KindName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(json::to_string(&self.0).trim_matches('"'))
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

    #[test]
    fn faults_name_their_fields() {
        let e = RolloutSpec::from_json(
            br#"{"package_id":"pkg_2a0f","canary_percent":0,"waves":[{"percent":3},{"percent":50}],
                "halt":{"action":"rollback","min_terminal":0},"pacing":{"max_in_flight":0,"ramp":{"initial_per_minute":1,"double_every_ms":1}},
                "window":{"start_at":10,"end_at":5,"maintenance":[{"days":[],"start":"25:00","duration_minutes":0}]}}"#,
            &Limits::DEFAULT,
        )
        .unwrap_err();
        let paths: Vec<String> = e.faults().into_iter().map(|f| f.path).collect();
        for p in [
            "target",
            "canary_percent",
            "waves",
            "halt.min_terminal",
            "halt.action",
            "pacing.max_in_flight",
            "pacing.ramp",
            "window.end_at",
            "window.maintenance[0].days",
            "window.maintenance[0].start",
            "window.maintenance[0].duration_minutes",
        ] {
            assert!(paths.iter().any(|x| x == p), "no fault at {p}: {paths:?}");
        }
    }

    #[test]
    fn maintenance_windows_recur_weekly_in_local_time() {
        // 2026-11-23 is a Monday; 02:00 UTC+01:00 is 01:00 UTC.
        let monday_0100_utc = UnixMs(1_795_395_600_000);
        let m = Maintenance {
            days: vec![Weekday::Mon],
            start: "02:00".into(),
            duration_minutes: 60,
            utc_offset_minutes: 60,
        };
        assert!(m.contains(monday_0100_utc));
        assert!(m.contains(monday_0100_utc + 59 * 60_000));
        assert!(!m.contains(monday_0100_utc + 60 * 60_000));
        assert!(!m.contains(UnixMs(monday_0100_utc.get() - 60_000)));
        assert!(m.contains(monday_0100_utc + 7 * 24 * 3_600_000));
        assert!(!m.contains(monday_0100_utc + 24 * 3_600_000));
        // A window that crosses midnight into Sunday-to-Monday.
        let late = Maintenance {
            days: vec![Weekday::Sun],
            start: "23:30".into(),
            duration_minutes: 120,
            utc_offset_minutes: 0,
        };
        assert!(late.contains(UnixMs(monday_0100_utc.get() - 30 * 60_000)));
        assert!(!late.contains(monday_0100_utc + 30 * 60_000));
    }

    #[test]
    fn ramps_double_up_to_the_limit() {
        let p = Pacing {
            max_in_flight: None,
            per_minute: Some(100),
            ramp: Some(Ramp {
                initial_per_minute: 10,
                double_every_ms: 60_000,
            }),
        };
        assert_eq!(p.limit_per_minute(UnixMs(0), UnixMs(0)), Some(10));
        assert_eq!(p.limit_per_minute(UnixMs(0), UnixMs(60_000)), Some(20));
        assert_eq!(p.limit_per_minute(UnixMs(0), UnixMs(180_000)), Some(80));
        assert_eq!(p.limit_per_minute(UnixMs(0), UnixMs(240_000)), Some(100));
        assert_eq!(
            Pacing::default().limit_per_minute(UnixMs(0), UnixMs(0)),
            None
        );
    }
}
