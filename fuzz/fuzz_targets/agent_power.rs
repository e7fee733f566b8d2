//! The agent under arbitrary inputs with the power cut at arbitrary points: the agent is
//! dropped, the host boots it again from the last record it persisted (a cut in the middle of
//! a slot write included), and carries out the commands it issues again, labelling its slots
//! as the C and Python reference hosts do (a swap names what to activate, a restore what
//! must not stay active: never a toggle). Every host step is a separate input, so a cut falls
//! between any two of them: after a swap or restore and before the agent hears of it, before
//! a persist is stored, in the middle of a download.
//!
//! Invariants, checked at every step:
//! - a `success` report names the version the active slot holds: never success while the old
//!   slot is active;
//! - a `failure` report names the version the active slot holds, never the failed update;
//! - at rest, the active slot holds the record's installed version;
//! - a version below the highest ever reported successful is only ever active through a
//!   signed rollback, and never below the version that ran before the last upgrade to it.
#![no_main]

use std::collections::VecDeque;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ota_core::agent::{Agent, AgentConfig, AgentRecord, AgentState, Input, Output, SlotContent};
use ota_core::assignment::Assignment;
use ota_core::download::ChunkRequest;
use ota_core::probe::ProbeResult;
use ota_core::report::ReportStatus;
use ota_core::sign::{self, VerifiedPackage};
use ota_core::{DeviceProfile, Limits, UnixMs, Version};
use ota_sim::Slots;
use ota_tests::device::config;

const OLD: &[u8] = b"firmware 1.2.0";

/// A published version: its assignment, sealed artifact and plaintext.
struct Build {
    version: Version,
    assignment: Assignment,
    artifact: Vec<u8>,
    plaintext: Vec<u8>,
    rollback: bool,
}

/// 2.0.0 (several chunks) and 2.1.0 upgrades; rollbacks of 2.0.0 to 1.5.0 and 0.0.1 (below
/// what ran before it), and of 2.1.0 to 2.0.5; a plain downgrade 1.0.0; 3.0.0 by a stranger.
fn builds() -> &'static [Build] {
    static B: OnceLock<Vec<Build>> = OnceLock::new();
    B.get_or_init(|| {
        [
            ("2.0.0", None, 1, 150_000),
            ("2.1.0", None, 1, 70_000),
            ("1.5.0", Some("2.0.0"), 1, 3_000),
            ("0.0.1", Some("2.0.0"), 1, 3_000),
            ("2.0.5", Some("2.1.0"), 1, 3_000),
            ("1.0.0", None, 1, 3_000),
            ("3.0.0", None, 9, 3_000),
        ]
        .iter()
        .enumerate()
        .map(|(i, (version, from, signer, size))| {
            let plaintext = ota_tests::noise(*size, i as u64 + 1);
            let mut p = ota_tests::firmware_package();
            p.version = version.parse().unwrap();
            p.rollback = from.map(ota_tests::rollback_from);
            let artifact = ota_tests::seal_into(&mut p, &plaintext);
            let key = ota_tests::signing_key(*signer);
            let env = sign::sign(&p, &[&key]).unwrap();
            let trusted = [key.public_key()].into_iter().collect();
            let v: VerifiedPackage =
                sign::verify_envelope(env, &trusted, 1, &Limits::DEFAULT).unwrap();
            Build {
                version: p.version.clone(),
                assignment: Assignment::new(&v, ota_tests::seal_key(), None, None).unwrap(),
                artifact,
                plaintext,
                rollback: from.is_some(),
            }
        })
        .collect()
    })
}

fn agent_config() -> AgentConfig {
    let device = DeviceProfile::from_json(
        br#"{"device_id":"d","device_type":"temp-sensor","hardware_profile":"b","arch":"armv7","installed":{"temp-sensor-fw":"1.2.0"}}"#,
    )
    .unwrap();
    let mut c = config(
        device,
        [ota_tests::signing_key(1).public_key()]
            .into_iter()
            .collect(),
    );
    c.policy.successes_needed = 1;
    c
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Hand the agent an assignment.
    Assign { which: u8 },
    /// Carry out the agent's next command (a swap or restore waits for `Ack`).
    Step,
    /// Deliver a wanted chunk, maybe corrupted.
    Chunk { pick: u8, flip: bool },
    /// Tell the agent the swap or restore it asked for is done.
    Ack,
    /// Answer the probe it asked for.
    Probe { healthy: bool },
    /// Let time pass and tick.
    Tick { ms: u16 },
    /// Slot writes fail after this many more bytes (a disk failing), until the next boot.
    WriteFault { after: u16 },
    /// Cut the power.
    PowerCut,
}

/// What the host owes the agent.
enum Ack {
    Swapped,
    Restored,
    Probe,
}

struct Host {
    slots: Slots,
    /// What each slot holds, as the agent named it (`None`: what the device shipped with).
    labels: [Option<String>; 2],
    record: Option<String>,
    agent: Option<Agent>,
    outputs: VecDeque<Output>,
    wanted: VecDeque<ChunkRequest>,
    owed: Option<Ack>,
    now: UnixMs,
    config: AgentConfig,
    /// The version last reported successful, the highest one, and the one that ran before
    /// the last upgrade to a new highest (what a rollback may go back to).
    current: Version,
    highest: Version,
    floor: Version,
}

impl Host {
    fn boot(&mut self) {
        self.slots.cut_power_after(None);
        self.now = self.now + 5_000;
        let record = self.record.as_deref().map(|r| {
            AgentRecord::from_json(r.as_bytes(), &self.config.limits)
                .expect("a persisted record parses")
        });
        self.agent = Some(Agent::new(
            self.config.clone(),
            record,
            self.now,
            &mut self.slots,
        ));
        self.outputs.clear();
        self.wanted.clear();
        self.owed = None;
    }

    fn handle(&mut self, input: Input<'_>) {
        let agent = self.agent.as_mut().expect("power");
        let _ = agent.handle(input, self.now, &mut self.slots);
        while let Some(o) = agent.poll() {
            self.outputs.push_back(o);
        }
    }

    /// The version the active slot holds.
    fn active_version(&self) -> Version {
        let bytes = self.slots.active_bytes();
        if bytes == OLD {
            return "1.2.0".parse().unwrap();
        }
        builds()
            .iter()
            .find(|b| b.plaintext == bytes)
            .map(|b| b.version.clone())
            .unwrap_or_else(|| {
                panic!(
                    "the active slot holds no whole version ({} bytes)",
                    bytes.len()
                )
            })
    }

    /// A swap: done already when the active slot holds it; otherwise label, then activate.
    fn swap_to(&mut self, to: &SlotContent) {
        let text = to.to_json();
        if self.labels[self.slots.active].as_deref() == Some(&text) {
            return;
        }
        let inactive = 1 - self.slots.active;
        self.labels[inactive] = Some(text);
        self.slots.active = inactive;
    }

    /// A restore: only while the failed update's slot is active is the other one activated.
    fn restore_from(&mut self, from: &SlotContent) {
        if self.labels[self.slots.active].as_deref() == Some(&from.to_json()) {
            self.slots.active = 1 - self.slots.active;
        }
    }

    fn step(&mut self) {
        if self.owed.is_some() {
            return;
        }
        let Some(out) = self.outputs.pop_front() else {
            return;
        };
        match out {
            Output::Persist(r) => self.record = Some(r.to_json()),
            Output::Fetch(r) => self.wanted.push_back(r),
            Output::Swap { to } => {
                self.swap_to(&to);
                self.owed = Some(Ack::Swapped);
            }
            Output::RestorePrevious { from } => {
                self.restore_from(&from);
                self.owed = Some(Ack::Restored);
            }
            Output::Probe { .. } => self.owed = Some(Ack::Probe),
            Output::Report(r) => self.check_report(r.status, r.firmware_version.as_ref()),
            _ => {}
        }
    }

    fn check_report(&mut self, status: ReportStatus, version: Option<&Version>) {
        let active = self.active_version();
        match status {
            ReportStatus::Success => {
                let v = version.expect("a success names its version");
                assert_eq!(
                    *v, active,
                    "success reported for {v} while {active} is active"
                );
                if *v > self.highest {
                    self.highest = v.clone();
                    self.floor = self.current.clone();
                }
                self.current = v.clone();
            }
            ReportStatus::Failure => {
                if let Some(v) = version {
                    assert_eq!(
                        *v, active,
                        "failure reported as {v} while {active} is active"
                    );
                }
            }
            _ => {}
        }
    }

    fn check(&self) {
        let active = self.active_version();
        if active < self.highest {
            let b = builds().iter().find(|b| b.version == active);
            assert!(
                b.is_some_and(|b| b.rollback),
                "{active} is active below {} without a signed rollback",
                self.highest
            );
            assert!(
                active >= self.floor,
                "{active} is active below the floor {}",
                self.floor
            );
        }
        if let Some(agent) = &self.agent
            && agent.state() == AgentState::Idle
            && self.outputs.is_empty()
            && self.owed.is_none()
        {
            let installed = agent.record().installed["temp-sensor-fw"].clone();
            assert_eq!(
                installed, active,
                "at rest the record says {installed}, {active} is active"
            );
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let config = agent_config();
    let mut slots = Slots::new(OLD);
    let agent = Agent::new(config.clone(), None, UnixMs(1_000_000), &mut slots);
    let mut h = Host {
        slots,
        labels: [None, None],
        record: None,
        agent: Some(agent),
        outputs: VecDeque::new(),
        wanted: VecDeque::new(),
        owed: None,
        now: UnixMs(1_000_000),
        config,
        current: "1.2.0".parse().unwrap(),
        highest: "1.2.0".parse().unwrap(),
        floor: "1.2.0".parse().unwrap(),
    };
    for op in ops.into_iter().take(400) {
        match op {
            Op::Assign { which } => {
                let b = &builds()[usize::from(which) % builds().len()];
                h.handle(Input::assignment(b.assignment.clone()));
            }
            Op::Step => h.step(),
            Op::Chunk { pick, flip } => {
                if h.wanted.is_empty() {
                    continue;
                }
                let i = usize::from(pick) % h.wanted.len();
                let r = h.wanted.remove(i).expect("in range");
                let Some(update) = h.agent.as_ref().and_then(|a| a.record().update.clone()) else {
                    continue;
                };
                let Some(b) = builds().iter().find(|b| b.version == update.version) else {
                    continue;
                };
                let start = usize::try_from(r.offset)
                    .unwrap_or(usize::MAX)
                    .min(b.artifact.len());
                let end = start
                    .saturating_add(r.length as usize)
                    .min(b.artifact.len());
                let mut data = b.artifact[start..end].to_vec();
                if flip && !data.is_empty() {
                    data[0] ^= 1;
                }
                h.handle(Input::Chunk {
                    offset: r.offset,
                    data: &data,
                });
            }
            Op::Ack => match h.owed.take() {
                Some(Ack::Swapped) => h.handle(Input::Swapped),
                Some(Ack::Restored) => h.handle(Input::Restored),
                other => h.owed = other,
            },
            Op::Probe { healthy } => {
                if matches!(h.owed, Some(Ack::Probe)) {
                    h.owed = None;
                    h.handle(Input::ProbeResult(ProbeResult {
                        healthy,
                        detail: String::new(),
                    }));
                }
            }
            Op::Tick { ms } => {
                h.now = h.now + u64::from(ms) * 10;
                h.handle(Input::Tick);
            }
            Op::WriteFault { after } => h.slots.cut_power_after(Some(u64::from(after))),
            Op::PowerCut => {
                h.agent = None;
                h.boot();
            }
        }
        h.check();
    }
});
