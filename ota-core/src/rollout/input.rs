//! What a rollout is told: one [`Input`] enum, fed through [`super::Rollout::handle`] and
//! written, as it was, to the audit trail that replays it.

use serde::{Deserialize, Serialize};

use crate::audit::Cause;
use crate::digest::Sha256Digest;
use crate::name::Name;
use crate::plan::RolloutSpec;
use crate::profile::DeviceProfile;
use crate::report::{DeviceReport, ReportStatus};
use crate::sign::PackageId;
use crate::version::{Version, VersionText};

/// An input to a rollout, as the audit trail records and replays it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Input {
    /// The creation, as [`super::Rollout::create`] records it (the first record of every
    /// trail). [`super::Rollout::handle`] refuses it.
    Create {
        /// The rollout.
        rollout_id: Name,
        /// Its tenant.
        tenant: Name,
        /// The package.
        package_id: PackageId,
        /// The rollback package.
        rollback_package_id: Option<PackageId>,
        /// The request.
        spec: Box<RolloutSpec>,
        /// Devices in the target.
        devices: u64,
        /// A digest of the device table as created: ids, states, waves and reasons.
        device_table: Sha256Digest,
        /// Who created it.
        by: Name,
    },
    /// A device's report (the OTA API's `{device_id, rollout_id, firmware_version, status,
    /// reason}`). A late report is recorded but changes nothing.
    ///
    /// A report names no attempt: it is about the first attempt of the device's current
    /// command ([`super::Rollout::first_attempt`]: the update's first, or the rollback's), and
    /// is refused ([`super::RolloutError::StaleAttempt`]) once a retry went out. A host that
    /// retries tells the device its attempt ([`super::Rollout::attempt`]) and feeds
    /// [`Input::AttemptReport`].
    Report(DeviceReport),
    /// A device's report on a given attempt of its current command: refused when a retry
    /// replaced that attempt, so a replayed report of an earlier attempt counts for nothing.
    AttemptReport {
        /// The report.
        report: DeviceReport,
        /// The attempt it is about, as [`super::Rollout::attempt`] said when the command
        /// went out (1 is the first).
        attempt: u32,
    },
    /// Reports of this rollout's devices that arrived together, handled in order as one step
    /// with one audit record (see [`ReportBatch`]): the way to feed a burst of reports. A
    /// batch that names another rollout, or a device the rollout does not hold, is refused
    /// whole and changes nothing; a report of the batch that does not match the package or
    /// the device's attempt is refused alone, and its refusal recorded as an
    /// [`Effect::ReportRefused`](super::Effect::ReportRefused) of the batch's record.
    Reports(ReportBatch),
    /// A report that was refused ([`super::RolloutError::is_recorded`]), as the trail records
    /// it: handling it records the refusal again and changes nothing else, so a trail
    /// replays (and a host that replays records after a snapshot takes them) without error.
    /// A report that would be taken is not a refusal: handling it fails with
    /// [`super::RolloutError::NotRefused`].
    RefusedReport {
        /// The report.
        report: DeviceReport,
        /// The attempt it was about.
        attempt: u32,
    },
    /// Time passed: timers fire, waves open after their soak, paced commands go out. Feed it
    /// when [`super::Rollout::poll_timeout`] says.
    Tick,
    /// Pause: nothing new is sent.
    Pause {
        /// Who.
        by: Name,
    },
    /// Resume a paused rollout; the failures seen when it paused are acknowledged, those
    /// reported since are judged.
    Resume {
        /// Who.
        by: Name,
    },
    /// Abort for good.
    Abort {
        /// Who.
        by: Name,
    },
    /// Roll back to the rollback package.
    Rollback {
        /// Who.
        by: Name,
    },
    /// Approve a wave gated by `approval`, and let any wave past its success gate (an
    /// `external` gate still needs its passing verdict).
    Approve {
        /// The wave (0 is the canary).
        wave: usize,
        /// Who.
        by: Name,
    },
    /// An external verdict on a wave gated by `external`; a failing one on the wave in
    /// progress trips the halt action.
    Verdict {
        /// The wave.
        wave: usize,
        /// Whether it passed.
        pass: bool,
        /// Who gave it.
        by: Name,
    },
    /// A device joined the fleet: if it is in the target, it is placed by its bucket.
    Join(Box<DeviceProfile>),
    /// A device left the target: it becomes `removed`.
    Leave {
        /// The device.
        device_id: Name,
    },
}

impl Input {
    /// A device's report as the rollout takes it: about the attempt the report names
    /// ([`DeviceReport::attempt`], moved into [`Input::AttemptReport`]), or, when it names
    /// none (an agent that does not say it back), a plain [`Input::Report`] about the first
    /// attempt — which a rollout refuses once a retry went out, since it cannot tell that
    /// report from a replayed one.
    pub fn device_report(mut report: DeviceReport) -> Input {
        match report.attempt.take() {
            Some(attempt) => Input::AttemptReport { report, attempt },
            None => Input::Report(report),
        }
    }

    /// The report, and the attempt it names (`None`: the first of the device's current
    /// command, [`super::Rollout::first_attempt`]), of a report input (not of a refused one).
    pub fn report(&self) -> Option<(&DeviceReport, Option<u32>)> {
        match self {
            Input::Report(r) => Some((r, None)),
            Input::AttemptReport { report, attempt } => Some((report, Some(*attempt))),
            _ => None,
        }
    }

    /// Who or what caused the input, as the audit trail says.
    pub fn cause(&self) -> Cause {
        match self {
            Input::Create { by, .. }
            | Input::Pause { by }
            | Input::Resume { by }
            | Input::Abort { by }
            | Input::Rollback { by }
            | Input::Approve { by, .. } => Cause::Operator { by: by.clone() },
            Input::Verdict { by, .. } => Cause::External { by: by.clone() },
            Input::Tick => Cause::Timer,
            Input::Report(r)
            | Input::AttemptReport { report: r, .. }
            | Input::RefusedReport { report: r, .. } => Cause::Device {
                device_id: r.device_id.clone(),
            },
            Input::Reports(_) => Cause::Devices,
            Input::Join(p) => Cause::Device {
                device_id: p.device_id.clone(),
            },
            Input::Leave { device_id } => Cause::Device {
                device_id: device_id.clone(),
            },
        }
    }

    /// The input's name in messages (`pause`, `roll back`).
    pub fn verb(&self) -> &'static str {
        match self {
            Input::Create { .. } => "create",
            Input::Report(_) | Input::AttemptReport { .. } | Input::Reports(_) => "report to",
            Input::RefusedReport { .. } => "record a refused report in",
            Input::Tick => "tick",
            Input::Pause { .. } => "pause",
            Input::Resume { .. } => "resume",
            Input::Abort { .. } => "abort",
            Input::Rollback { .. } => "roll back",
            Input::Approve { .. } => "approve a wave of",
            Input::Verdict { .. } => "give a verdict on",
            Input::Join(_) => "join",
            Input::Leave { .. } => "leave",
        }
    }
}

/// Reports of one rollout's devices that arrived together. In the trail, each report is a short
/// array, `[device_id, status, attempt, firmware_version, reason]`, its trailing defaults
/// (attempt 1, no version, no reason) left out: `["dev-0042","success"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBatch {
    /// The rollout every report names.
    pub rollout_id: Name,
    /// The reports, in the order they are handled.
    pub reports: Vec<BatchedReport>,
}

/// One report of a [`ReportBatch`]: the OTA API's report without its `rollout_id` (the batch's),
/// and the attempt it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchedReport {
    /// The device.
    pub device_id: Name,
    /// What happened.
    pub status: ReportStatus,
    /// The attempt it is about ([`super::Rollout::attempt`]; 1 is the first).
    pub attempt: u32,
    /// The version the device runs now, if it said.
    pub firmware_version: Option<Version>,
    /// Why, for a failure or rejection.
    pub reason: Option<String>,
}

impl BatchedReport {
    /// The device report it stands for, naming `rollout_id`.
    pub fn report(&self, rollout_id: &Name) -> DeviceReport {
        DeviceReport {
            device_id: self.device_id.clone(),
            rollout_id: Some(rollout_id.clone()),
            firmware_version: self.firmware_version.clone(),
            status: self.status,
            reason: self.reason.clone(),
            attempt: Some(self.attempt),
        }
    }
}

impl Serialize for BatchedReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        let len = if self.reason.is_some() {
            5
        } else if self.firmware_version.is_some() {
            4
        } else if self.attempt != 1 {
            3
        } else {
            2
        };
        let mut seq = s.serialize_seq(Some(len))?;
        seq.serialize_element(&self.device_id)?;
        seq.serialize_element(&self.status)?;
        if len > 2 {
            seq.serialize_element(&self.attempt)?;
        }
        if len > 3 {
            seq.serialize_element(&self.firmware_version.as_ref().map(VersionText))?;
        }
        if len > 4 {
            seq.serialize_element(&self.reason)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for BatchedReport {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<BatchedReport, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = BatchedReport;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("[device_id, status, attempt, firmware_version, reason], the last three optional")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<BatchedReport, A::Error> {
                use serde::de::Error as _;
                let device_id = a
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let status = a
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                let attempt = a.next_element()?.unwrap_or(1);
                let firmware_version = a.next_element()?.flatten();
                let reason = a.next_element()?.flatten();
                if a.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::invalid_length(6, &self));
                }
                Ok(BatchedReport {
                    device_id,
                    status,
                    attempt,
                    firmware_version,
                    reason,
                })
            }
        }
        d.deserialize_seq(V)
    }
}
