//! Fleets and packages for the rollout tests: seed 004's temperature sensors.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

use ota_core::audit::AuditRecord;
use ota_core::plan::RolloutSpec;
use ota_core::report::{DeviceReport, ReportStatus};
use ota_core::rollout::{Create, Event, Output, Rollout, RolloutCommand};
use ota_core::sign::{self, VerifiedPackage};
use ota_core::{DeviceProfile, Limits, UnixMs};

/// `n` temperature sensors of device profile `prof_temp_v2` (shared with the benchmarks
/// and the demo in `ota-sim`).
pub use ota_sim::fleet::sensors;

/// The seed 004 firmware at `version`, sealed and signed by key 1; with `rollback`, signed as
/// a rollback from 2.0.0 (the version the rollouts of these tests send).
pub fn firmware(version: &str, rollback: bool) -> VerifiedPackage {
    let mut p = crate::firmware_package();
    p.version = version.parse().expect("version");
    p.rollback = rollback.then(|| crate::rollback_from("2.0.0"));
    crate::seal_into(&mut p, version.as_bytes());
    let key = crate::signing_key(1);
    let env = sign::sign(&p, &[&key]).expect("sign");
    let trusted = [key.public_key()].into_iter().collect();
    sign::verify_envelope(env, &trusted, 1, &Limits::DEFAULT).expect("verify")
}

/// The trusted keys of [`firmware`].
pub fn trusted() -> ota_core::sign::TrustedKeys {
    [crate::signing_key(1).public_key()].into_iter().collect()
}

/// A rollout request for `package` (and `rollback`) to `prof_temp_v2`, with `extra` JSON
/// fields merged in.
pub fn spec(
    package: &VerifiedPackage,
    rollback: Option<&VerifiedPackage>,
    extra: serde_json::Value,
) -> RolloutSpec {
    let mut v = serde_json::json!({
        "package_id": package.id(),
        "target_profile_id": "prof_temp_v2",
        "canary_percent": 5,
        "failure_threshold_percent": 10,
    });
    if let Some(r) = rollback {
        v["rollback_package_id"] = serde_json::json!(r.id());
    }
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in more {
            obj.insert(k.clone(), x.clone());
        }
    }
    RolloutSpec::from_json(v.to_string().as_bytes(), &Limits::DEFAULT)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A rollout and a host that drains its one output queue, in order, into the trail, the
/// commands to carry out and the events to publish — checking on the way that each step's
/// audit record comes before the commands and events it caused.
pub struct Host {
    /// The rollout (also reached through `Deref`).
    pub r: Rollout,
    /// The trail, as polled.
    pub trail: Vec<AuditRecord>,
    /// Commands not yet taken.
    pub commands: VecDeque<RolloutCommand>,
    /// Events not yet taken.
    pub events: VecDeque<Event>,
}

impl Host {
    /// A host for `r`.
    pub fn new(r: Rollout) -> Host {
        let mut h = Host {
            r,
            trail: Vec::new(),
            commands: VecDeque::new(),
            events: VecDeque::new(),
        };
        h.pump();
        h
    }

    /// Drains the rollout's queue.
    pub fn pump(&mut self) {
        let mut recorded = false;
        while let Some(o) = self.r.poll() {
            match o {
                Output::Audit(a) => {
                    recorded = true;
                    self.trail.push(*a);
                }
                Output::Command(c) => {
                    assert!(recorded, "a command before its audit record: {c:?}");
                    self.commands.push_back(c);
                }
                Output::Event(e) => {
                    assert!(recorded, "an event before its audit record: {e:?}");
                    self.events.push_back(e);
                }
                other => panic!("an output the host does not know: {other:?}"),
            }
        }
    }

    /// The commands since the last call.
    pub fn take_commands(&mut self) -> Vec<RolloutCommand> {
        self.pump();
        self.commands.drain(..).collect()
    }

    /// The events since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.pump();
        self.events.drain(..).collect()
    }

    /// The events' subjects since the last call.
    pub fn subjects(&mut self) -> Vec<String> {
        let events = self.take_events();
        events.iter().map(|e| self.r.subject(e)).collect()
    }

    /// The audit records since the last call.
    pub fn take_trail(&mut self) -> Vec<AuditRecord> {
        self.pump();
        std::mem::take(&mut self.trail)
    }
}

impl Deref for Host {
    type Target = Rollout;
    fn deref(&self) -> &Rollout {
        &self.r
    }
}

impl DerefMut for Host {
    fn deref_mut(&mut self) -> &mut Rollout {
        &mut self.r
    }
}

/// The creation of rollout `rol_4c7e` for tenant `acme` by `alice` at time `now`: what
/// [`create`] creates, and what a replay of its trail starts from.
pub fn creation<'a>(
    spec: RolloutSpec,
    package: &'a VerifiedPackage,
    rollback: Option<&'a VerifiedPackage>,
    fleet: &'a [DeviceProfile],
    now: UnixMs,
) -> Create<'a> {
    Create {
        rollout_id: "rol_4c7e".parse().expect("id"),
        tenant: "acme".parse().expect("tenant"),
        spec,
        package,
        rollback,
        fleet,
        by: "alice".parse().expect("name"),
        now,
    }
}

/// Creates a rollout `rol_4c7e` for tenant `acme` at time `now`, in a [`Host`].
pub fn create(
    spec: RolloutSpec,
    package: &VerifiedPackage,
    rollback: Option<&VerifiedPackage>,
    fleet: &[DeviceProfile],
    now: UnixMs,
) -> Host {
    let creation = creation(spec, package, rollback, fleet, now);
    Host::new(Rollout::create(creation).unwrap_or_else(|e| panic!("{e}")))
}

/// The devices sent a command since the last call, in order (rollback or not).
pub fn sent(h: &mut Host) -> Vec<(String, bool)> {
    h.take_commands()
        .into_iter()
        .filter_map(|c| match c {
            RolloutCommand::Send {
                device_id,
                rollback,
                ..
            } => Some((device_id.to_string(), rollback)),
            _ => None,
        })
        .collect()
}

/// A report from `device` for rollout `rol_4c7e`.
pub fn report(device: &str, status: ReportStatus, version: Option<&str>) -> DeviceReport {
    DeviceReport {
        device_id: device.parse().expect("device id"),
        rollout_id: Some("rol_4c7e".parse().expect("id")),
        firmware_version: version.map(|v| v.parse().expect("version")),
        status,
        reason: (status == ReportStatus::Failure).then(|| "health probe failed".to_string()),
        attempt: None,
    }
}
