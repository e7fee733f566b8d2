//! A simulated device for the agent tests: the storage of `ota-sim` ([`Slots`]: staging, two
//! slots and power cuts) with a persisted record and the reports sent, a clock, and a chunk
//! server.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

use ota_core::agent::{Agent, AgentConfig, AgentError, AgentRecord, AgentState, Input, Output};
use ota_core::assignment::Assignment;
use ota_core::download::ChunkRequest;
use ota_core::probe::{ProbePolicy, ProbeResult, ProbeSpec};
use ota_core::report::DeviceReport;
use ota_core::sign::{TrustedKeys, VerifiedPackage};
use ota_core::{DeviceProfile, Limits, UnixMs};
use ota_sim::Slots;

/// Delivers wanted chunks in order, faithfully (from `ota-sim`).
pub use ota_sim::network::in_order;

/// The storage that survives a power cut: staging and the A/B slots ([`Slots`], which it
/// derefs to), and what the device keeps besides: its agent record and the reports it sent.
pub struct Disk {
    /// Staging, slots A and B, and the power switch.
    pub slots: Slots,
    /// The last persisted agent record, as JSON.
    pub record: Option<String>,
    /// Every report sent, in order.
    pub reports: Vec<DeviceReport>,
}

impl Disk {
    /// A device running `active_content` in slot A.
    pub fn new(active_content: &[u8]) -> Self {
        Disk {
            slots: Slots::new(active_content),
            record: None,
            reports: Vec::new(),
        }
    }
}

impl Deref for Disk {
    type Target = Slots;

    fn deref(&self) -> &Slots {
        &self.slots
    }
}

impl DerefMut for Disk {
    fn deref_mut(&mut self) -> &mut Slots {
        &mut self.slots
    }
}

/// A chunk server: takes a wanted chunk (or decides not to) and returns `(offset, bytes)`.
pub type Deliver<'a> = dyn FnMut(&mut VecDeque<ChunkRequest>, &[u8]) -> Option<(u64, Vec<u8>)> + 'a;

/// What the simulated health probe answers.
pub type ProbeOutcome = Box<dyn FnMut(&ProbeSpec) -> ProbeResult>;

/// A device: its disk, the agent running on it, a clock, and what it was told to fetch.
pub struct Device {
    /// The persistent storage.
    pub disk: Disk,
    /// The agent (None while the power is off).
    pub agent: Option<Agent>,
    /// The clock.
    pub now: UnixMs,
    /// Chunks the agent asked for, not yet delivered.
    pub wanted: VecDeque<ChunkRequest>,
    /// The probe's answers.
    pub probe: ProbeOutcome,
    /// The agent's configuration.
    pub config: AgentConfig,
    /// Outputs carried out, as names, in order.
    pub log: Vec<String>,
}

/// An agent configuration for `device`, trusting `trusted`, with a fast probe policy.
pub fn config(device: DeviceProfile, trusted: TrustedKeys) -> AgentConfig {
    AgentConfig {
        device,
        trusted,
        threshold: 1,
        policy: ProbePolicy {
            initial_delay_ms: 1_000,
            interval_ms: 1_000,
            successes_needed: 2,
            failures_tolerated: 0,
            deadline_ms: 60_000,
        },
        default_probe: Some(ProbeSpec::Exec {
            path: "/usr/bin/healthcheck".into(),
            args: vec![],
            timeout_ms: 1_000,
        }),
        exec_allowlist: vec![
            "/usr/bin/healthcheck".into(),
            "/bin/true".into(),
            "/bin/false".into(),
        ],
        max_boot_attempts: 3,
        download_deadline_ms: ota_core::agent::config::DEFAULT_DOWNLOAD_DEADLINE_MS,
        limits: Limits::default(),
    }
}

/// A healthy probe.
pub fn healthy() -> ProbeOutcome {
    Box::new(|_| ProbeResult {
        healthy: true,
        detail: "ok".into(),
    })
}

/// A probe that always fails.
pub fn unhealthy() -> ProbeOutcome {
    Box::new(|_| ProbeResult {
        healthy: false,
        detail: "exit status 1".into(),
    })
}

impl Device {
    /// A device running `active` in slot A, with a fresh agent.
    pub fn new(config: AgentConfig, active: &[u8], probe: ProbeOutcome) -> Self {
        let mut disk = Disk::new(active);
        let now = UnixMs(1_000_000);
        let agent = Agent::new(config.clone(), None, now, &mut disk.slots);
        Device {
            disk,
            agent: Some(agent),
            now,
            wanted: VecDeque::new(),
            probe,
            config,
            log: Vec::new(),
        }
    }

    /// The agent.
    pub fn agent(&mut self) -> &mut Agent {
        self.agent.as_mut().expect("the power is off")
    }

    /// Cuts the power: the agent and everything in memory are gone; the disk stays.
    pub fn power_cut(&mut self) {
        self.agent = None;
        self.wanted.clear();
        self.disk.cut_power_after(None);
    }

    /// The persisted record, parsed.
    pub fn persisted(&self) -> Option<AgentRecord> {
        self.disk.record.as_deref().map(|r| {
            AgentRecord::from_json(r.as_bytes(), &self.config.limits)
                .expect("persisted record parses")
        })
    }

    /// Boots: a new agent resumes from the persisted record.
    pub fn boot(&mut self) {
        self.now = self.now + 5_000;
        let record = self.persisted();
        self.agent = Some(Agent::new(
            self.config.clone(),
            record,
            self.now,
            &mut self.disk.slots,
        ));
    }

    /// Boots with the package of the update in progress, verified again by the host (the
    /// TUF route): [`Agent::restore`].
    pub fn boot_with(&mut self, package: VerifiedPackage) -> Result<(), AgentError> {
        self.now = self.now + 5_000;
        let record = self.persisted().expect("a persisted record");
        let agent = Agent::restore(
            self.config.clone(),
            record,
            Some(package),
            self.now,
            &mut self.disk.slots,
        )?;
        self.agent = Some(agent);
        Ok(())
    }

    /// Feeds the agent one input at the device's clock.
    pub fn handle(&mut self, input: Input<'_>) -> Result<(), AgentError> {
        let now = self.now;
        let agent = self.agent.as_mut().expect("power");
        agent.handle(input, now, &mut self.disk.slots)
    }

    /// Hands the agent an assignment proved by a DSSE envelope.
    pub fn assign(&mut self, a: Assignment) -> Result<(), AgentError> {
        self.handle(Input::assignment(a))
    }

    /// Hands the agent an assignment with the package the host verified (the TUF route).
    pub fn assign_verified(
        &mut self,
        a: Assignment,
        package: VerifiedPackage,
    ) -> Result<(), AgentError> {
        self.handle(Input::Assignment {
            assignment: a,
            package: Some(package),
        })
    }

    /// Feeds the agent a chunk at the device's clock.
    pub fn chunk(&mut self, offset: u64, data: &[u8]) -> Result<(), AgentError> {
        self.handle(Input::Chunk { offset, data })
    }

    /// Carries out the agent's outputs until it has none, except that fetches are only
    /// queued. Stops early (returning None) once `budget` outputs were carried out.
    pub fn drain(&mut self, budget: &mut Option<usize>) -> Option<()> {
        loop {
            if let Some(b) = budget
                && *b == 0
            {
                return None;
            }
            let Some(out) = self.agent.as_mut()?.poll() else {
                return Some(());
            };
            if let Some(b) = budget {
                *b -= 1;
            }
            match out {
                Output::Persist(record) => {
                    self.log.push("persist".into());
                    self.disk.record = Some(record.to_json())
                }
                Output::Fetch(r) => self.wanted.push_back(r),
                Output::Swap { .. } => {
                    self.log.push("swap".into());
                    self.disk.swap();
                    // The fuzz target feeds inputs out of turn too: a refusal here is its business.
                    let _ = self.handle(Input::Swapped);
                }
                Output::Probe { spec, .. } => {
                    self.log.push("probe".into());
                    let r = (self.probe)(&spec);
                    let _ = self.handle(Input::ProbeResult(r));
                }
                Output::RestorePrevious { .. } => {
                    self.log.push("restore".into());
                    self.disk.restore_previous();
                    let _ = self.handle(Input::Restored);
                }
                Output::Report(r) => {
                    self.log.push(format!("report {}", r.status.as_str()));
                    self.disk.reports.push(r)
                }
                other => panic!("an output the simulation does not know: {other:?}"),
            }
        }
    }

    /// Advances the clock to the agent's next timeout and ticks it.
    pub fn tick(&mut self) -> bool {
        let Some(t) = self.agent.as_ref().and_then(Agent::poll_timeout) else {
            return false;
        };
        self.now = self.now.max(t);
        self.handle(Input::Tick).expect("a tick is always taken");
        true
    }

    /// Runs the device to rest: delivers every wanted chunk from `artifact` (through
    /// `deliver`, which may reorder, corrupt or drop), carries out commands and ticks, until
    /// the agent is idle with nothing left. `budget` cuts the power after that many commands.
    pub fn run(
        &mut self,
        artifact: &[u8],
        deliver: &mut Deliver<'_>,
        mut budget: Option<usize>,
    ) -> Option<()> {
        for _ in 0..1_000_000 {
            self.drain(&mut budget)?;
            if let Some((offset, data)) = deliver(&mut self.wanted, artifact) {
                self.agent.as_ref()?;
                let _ = self.chunk(offset, &data);
                continue;
            }
            if self.agent.as_ref()?.state() == AgentState::Idle && self.wanted.is_empty() {
                return Some(());
            }
            if !self.tick() && self.wanted.is_empty() {
                return Some(());
            }
        }
        panic!(
            "the device never came to rest in state {:?}",
            self.agent.as_ref().map(Agent::state)
        );
    }
}
