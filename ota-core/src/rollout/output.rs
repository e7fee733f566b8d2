//! What a rollout says: one ordered queue of [`Output`]s — the audit record of a step, then
//! the commands and events it caused — and the typed [`Effect`]s its records hold.

use serde::{Deserialize, Serialize};

use super::waves::HaltReason;
use super::{DeviceState, RolloutState};
use crate::audit::AuditRecord;
use crate::compat::Reason;
use crate::digest::Sha256Digest;
use crate::name::Name;
use crate::package::PackageType;
use crate::plan::Gate;
use crate::report::ReportStatus;
use crate::sign::PackageId;
use crate::version::Version;

/// One output of a rollout, in the order the host must take them: a step's audit record
/// comes before the commands and events it caused, so a host that persists what it polls, in
/// order, never acts before it has recorded.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
#[non_exhaustive]
pub enum Output {
    /// Append this record to the rollout's trail. Boxed: a record is 272 bytes and a command
    /// 40, and a step that opens a wave queues a command for each of its devices, so an
    /// unboxed record would make every queued output as large as itself.
    Audit(Box<AuditRecord>),
    /// Carry out this command on a device.
    Command(RolloutCommand),
    /// Publish this event on the message bus (see [`Event::subject`]).
    Event(Event),
}

/// What the service must do for a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[must_use]
#[non_exhaustive]
pub enum RolloutCommand {
    /// Send the package to the device as a persistent command (the OTA API's `ota_start`).
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

/// An event for the message bus, one per transition. Its subject is the OTA API's
/// `profile.ota.rollout.<kind>.<tenant>.<rollout_id>` ([`Event::subject`]); its payload is
/// the variant's fields as JSON ([`Event::payload`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Event {
    /// The rollout was created.
    Started {
        /// The package.
        package_id: PackageId,
        /// Devices the package fits and does not have yet.
        eligible: u64,
    },
    /// A wave opened.
    WaveOpened {
        /// The wave (0 is the canary).
        wave: usize,
        /// Devices scheduled in it.
        devices: u64,
    },
    /// The next wave waits for an approval or an external verdict.
    GateWaiting {
        /// The wave.
        wave: usize,
        /// What it waits for.
        gate: Gate,
    },
    /// The next wave's success gate is not met.
    GateBlocked {
        /// The wave.
        wave: usize,
        /// The share of terminal devices that succeeded so far.
        success_percent: f64,
    },
    /// An operator approved a wave.
    Approved {
        /// The wave.
        wave: usize,
    },
    /// An external verdict came.
    Verdict {
        /// The wave.
        wave: usize,
        /// Whether it passed.
        pass: bool,
    },
    /// The halt rule tripped.
    Halted {
        /// Why.
        reason: HaltReason,
    },
    /// The rollout paused.
    Paused {
        /// The halt rule's reason, when it paused it.
        reason: Option<HaltReason>,
    },
    /// The rollout resumed.
    Resumed,
    /// The rollout was aborted.
    Aborted,
    /// The rollback began.
    RollingBack {
        /// Devices to roll back.
        devices: u64,
    },
    /// Every rollback device finished.
    RolledBack {
        /// Devices rolled back.
        devices: u64,
    },
    /// The rollout completed.
    Completed {
        /// Devices that took the update.
        succeeded: u64,
        /// Failures, as the halt rule counts them.
        failures: u64,
        /// Devices rolled back.
        rolled_back: u64,
    },
}

impl Event {
    /// The event's kind, as in its subject (`wave_opened`).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Started { .. } => "started",
            Event::WaveOpened { .. } => "wave_opened",
            Event::GateWaiting { .. } => "gate_waiting",
            Event::GateBlocked { .. } => "gate_blocked",
            Event::Approved { .. } => "approved",
            Event::Verdict { .. } => "verdict",
            Event::Halted { .. } => "halted",
            Event::Paused { .. } => "paused",
            Event::Resumed => "resumed",
            Event::Aborted => "aborted",
            Event::RollingBack { .. } => "rolling_back",
            Event::RolledBack { .. } => "rolled_back",
            Event::Completed { .. } => "completed",
        }
    }

    /// The OTA API's subject: `profile.ota.rollout.<kind>.<tenant>.<rollout_id>`.
    pub fn subject(&self, tenant: &Name, rollout_id: &Name) -> String {
        format!("profile.ota.rollout.{}.{tenant}.{rollout_id}", self.kind())
    }

    /// The payload: the variant's fields as a JSON object (without `kind`).
    pub fn payload(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("kind");
        }
        v
    }
}

/// A retry class, as an effect names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RetryKind {
    /// After a failure report.
    Failed,
    /// After an in-progress timeout.
    TimedOut,
}

/// Where a device that joined went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Placement {
    /// It was in the rollout already.
    AlreadyMember,
    /// The package does not fit it.
    Incompatible {
        /// The first reason.
        reason: Reason,
    },
    /// It runs the version already.
    AlreadyInstalled,
    /// The rollout had stopped.
    Cancelled {
        /// The rollout's state.
        rollout: RolloutState,
    },
    /// Placed in a wave by its bucket.
    Wave {
        /// The wave.
        wave: usize,
        /// Whether the wave is open, so it was scheduled.
        scheduled: bool,
    },
}

/// What one input changed, as its audit record says. Typed, so rewording a message never
/// changes a stored trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Effect {
    /// The package the rollout ships, and who signed it.
    Published {
        /// Its id.
        package_id: PackageId,
        /// `fw`, `sw` or `model`.
        package_type: PackageType,
        /// Its name.
        name: Name,
        /// Its version.
        version: Version,
        /// Its artifact's digest.
        sha256: Sha256Digest,
        /// The key ids that signed it.
        signed_by: Vec<String>,
    },
    /// The rollout was created.
    Created {
        /// Devices the package fits and does not have yet.
        eligible: u64,
        /// Devices it does not fit.
        incompatible: u64,
        /// Devices on the version already.
        already_installed: u64,
    },
    /// A wave opened.
    WaveOpened {
        /// The wave.
        wave: usize,
        /// Devices scheduled.
        devices: u64,
    },
    /// A wave is held by its success gate.
    WaveHeld {
        /// The wave.
        wave: usize,
        /// The share that succeeded.
        success_percent: f64,
        /// The share its gate needs.
        gate_percent: f64,
    },
    /// A wave waits for its gate.
    WaveWaiting {
        /// The wave.
        wave: usize,
        /// Its gate.
        gate: Gate,
    },
    /// An operator approved a wave.
    Approved {
        /// The wave.
        wave: usize,
    },
    /// An external verdict came.
    Verdict {
        /// The wave.
        wave: usize,
        /// Whether it passed.
        pass: bool,
        /// Whether the wave was open already (the verdict then judges it, not its gate).
        open: bool,
    },
    /// The halt rule tripped.
    HaltTripped {
        /// Why.
        reason: HaltReason,
    },
    /// The rollout paused.
    Paused,
    /// The rollout resumed; the failures seen when it paused are acknowledged.
    Resumed,
    /// The rollout was aborted.
    Aborted,
    /// The rollback began.
    RollingBack {
        /// The rollback package.
        package_id: PackageId,
        /// Devices scheduled for it.
        devices: u64,
    },
    /// Every rollback device finished.
    RolledBack {
        /// Devices rolled back.
        devices: u64,
    },
    /// The rollout completed.
    Completed,
    /// Commands went out.
    Sent {
        /// How many.
        commands: u64,
    },
    /// Devices in flight were told to stop (the in-flight policy).
    Cancelled {
        /// How many.
        devices: u64,
        /// Whether even mid-install.
        forced: bool,
    },
    /// A device started installing.
    DeviceInProgress {
        /// The device.
        device_id: Name,
    },
    /// Devices of a batch of reports started installing.
    DevicesInProgress {
        /// The devices, in the batch's order.
        devices: Vec<Name>,
    },
    /// Devices of a batch of reports run the new version, and say so with the same version.
    DevicesUpdated {
        /// The version they say they run.
        #[serde(serialize_with = "crate::version::serialize_option")]
        version: Option<Version>,
        /// The devices, in the batch's order.
        devices: Vec<Name>,
    },
    /// A device started installing the rollback package.
    DeviceRollingBack {
        /// The device.
        device_id: Name,
    },
    /// A device runs the new version.
    DeviceUpdated {
        /// The device.
        device_id: Name,
        /// The version it says it runs.
        #[serde(serialize_with = "crate::version::serialize_option")]
        version: Option<Version>,
    },
    /// A device failed and will be tried again.
    DeviceRetry {
        /// The device.
        device_id: Name,
        /// What failed.
        after: RetryKind,
        /// Which retry this is (from 1).
        attempt: u8,
    },
    /// A device failed, for good.
    DeviceFailed {
        /// The device.
        device_id: Name,
        /// Why, as it said.
        reason: Option<String>,
    },
    /// A device refused the assignment.
    DeviceRejected {
        /// The device.
        device_id: Name,
        /// Why, as it said.
        reason: Option<String>,
    },
    /// A device timed out: in progress, or never came online.
    DeviceTimedOut {
        /// The device.
        device_id: Name,
        /// Whether it never came online.
        offline: bool,
    },
    /// A device did not answer and was sent the command again.
    DeviceResent {
        /// The device.
        device_id: Name,
    },
    /// A device runs the rollback package.
    DeviceRolledBack {
        /// The device.
        device_id: Name,
    },
    /// A device's rollback failed.
    DeviceRollbackFailed {
        /// The device.
        device_id: Name,
    },
    /// A report refused because it does not match the rollout, the package the device was
    /// sent, or its current attempt (see [`super::RolloutError::is_recorded`]).
    ReportRefused {
        /// The device.
        device_id: Name,
        /// Why: the refusal's stable name ([`super::RolloutError::refusal`], `stale_attempt`...);
        /// the answer to the device says it in words.
        reason: String,
    },
    /// A report that changes nothing: the device is terminal, or the rollout is over.
    LateReport {
        /// The device.
        device_id: Name,
        /// What it said.
        status: ReportStatus,
        /// Its state.
        state: DeviceState,
    },
    /// A device joined.
    DeviceJoined {
        /// The device.
        device_id: Name,
        /// Where it went.
        placed: Placement,
    },
    /// A device left the target.
    DeviceLeft {
        /// The device.
        device_id: Name,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_output_is_no_larger_than_an_event_or_a_command() {
        // A step that opens a wave queues a command for each of its devices: each queued
        // output is as large as the largest variant, so the record (272 bytes) stays boxed.
        let largest = size_of::<Event>().max(size_of::<RolloutCommand>());
        assert!(
            size_of::<Output>() <= largest + 8,
            "Output is {} bytes, its largest unboxed variant {largest}",
            size_of::<Output>()
        );
        assert!(size_of::<AuditRecord>() > largest + 8);
    }
}
