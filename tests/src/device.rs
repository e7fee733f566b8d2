//! A simulated device for the agent tests: two slots, staging storage, a persisted record,
//! a clock, a chunk server, and power cuts.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use ota_core::agent::{
    Agent, AgentConfig, AgentError, AgentRecord, AgentState, DeviceIo, Input, Output,
};
use ota_core::assignment::Assignment;
use ota_core::download::{ChunkRequest, Staging};
use ota_core::probe::{ProbePolicy, ProbeResult, ProbeSpec};
use ota_core::report::DeviceReport;
use ota_core::sign::{TrustedKeys, VerifiedPackage};
use ota_core::{DeviceProfile, Limits, Sha256Digest, UnixMs};

/// A slot's bytes, shared with the writer the agent holds.
pub type Slot = Arc<Mutex<Vec<u8>>>;

/// The storage that survives a power cut.
pub struct Disk {
    /// Chunk staging.
    pub staging: Vec<u8>,
    /// Slots A and B.
    pub slots: [Slot; 2],
    /// Which slot is active.
    pub active: usize,
    /// The slot last opened for an install: the one a swap activates.
    pub target: usize,
    /// The last persisted agent record, as JSON.
    pub record: Option<String>,
    /// Every report sent, in order.
    pub reports: Vec<DeviceReport>,
    /// Bytes written to any slot since the counter was reset.
    pub slot_writes: Arc<Mutex<u64>>,
    /// Cut the power after this many more slot bytes (the writer then fails).
    pub cut_after: Arc<Mutex<Option<u64>>>,
}

impl Disk {
    /// A device running `active_content` in slot A.
    pub fn new(active_content: &[u8]) -> Self {
        Disk {
            staging: Vec::new(),
            slots: [
                Arc::new(Mutex::new(active_content.to_vec())),
                Arc::new(Mutex::new(Vec::new())),
            ],
            active: 0,
            target: 1,
            record: None,
            reports: Vec::new(),
            slot_writes: Arc::new(Mutex::new(0)),
            cut_after: Arc::new(Mutex::new(None)),
        }
    }

    /// The SHA-256 of the active slot.
    pub fn active_digest(&self) -> Sha256Digest {
        Sha256Digest::of(&self.slots[self.active].lock().unwrap())
    }

    /// The active slot's bytes.
    pub fn active_bytes(&self) -> Vec<u8> {
        self.slots[self.active].lock().unwrap().clone()
    }

    /// The inactive slot's length.
    pub fn inactive_len(&self) -> usize {
        self.slots[1 - self.active].lock().unwrap().len()
    }
}

struct SlotWriter {
    slot: Slot,
    writes: Arc<Mutex<u64>>,
    cut_after: Arc<Mutex<Option<u64>>>,
}

impl Write for SlotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut cut = self.cut_after.lock().unwrap();
        let n = match *cut {
            Some(0) => return Err(io::Error::other("power cut")),
            Some(left) => {
                let n = (left as usize).min(buf.len());
                *cut = Some(left - n as u64);
                n
            }
            None => buf.len(),
        };
        self.slot.lock().unwrap().extend_from_slice(&buf[..n]);
        *self.writes.lock().unwrap() += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Staging for Disk {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.staging.write_at(offset, data)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.staging.read_at(offset, buf)
    }
}

impl DeviceIo for Disk {
    fn open_slot(&mut self) -> io::Result<Box<dyn Write + Send>> {
        self.target = 1 - self.active;
        let slot = self.slots[self.target].clone();
        slot.lock().unwrap().clear();
        Ok(Box::new(SlotWriter {
            slot,
            writes: self.slot_writes.clone(),
            cut_after: self.cut_after.clone(),
        }))
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
        let agent = Agent::new(config.clone(), None, now, &mut disk);
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
        *self.disk.cut_after.lock().unwrap() = None;
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
            &mut self.disk,
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
            &mut self.disk,
        )?;
        self.agent = Some(agent);
        Ok(())
    }

    /// Feeds the agent one input at the device's clock.
    pub fn handle(&mut self, input: Input<'_>) -> Result<(), AgentError> {
        let now = self.now;
        let agent = self.agent.as_mut().expect("power");
        agent.handle(input, now, &mut self.disk)
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
            if let Some(b) = budget {
                if *b == 0 {
                    return None;
                }
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
                Output::Swap => {
                    self.log.push("swap".into());
                    self.disk.active = self.disk.target;
                    // The fuzz target feeds inputs out of turn too: a refusal here is its business.
                    let _ = self.handle(Input::Swapped);
                }
                Output::Probe { spec, .. } => {
                    self.log.push("probe".into());
                    let r = (self.probe)(&spec);
                    let _ = self.handle(Input::ProbeResult(r));
                }
                Output::RestorePrevious => {
                    self.log.push("restore".into());
                    self.disk.active = 1 - self.disk.target;
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

/// Delivers wanted chunks in order, faithfully.
pub fn in_order(wanted: &mut VecDeque<ChunkRequest>, artifact: &[u8]) -> Option<(u64, Vec<u8>)> {
    let r = wanted.pop_front()?;
    let end = r.offset as usize + r.length as usize;
    Some((r.offset, artifact[r.offset as usize..end].to_vec()))
}
