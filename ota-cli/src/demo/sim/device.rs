//! A simulated device running the real device path: the agent verifies every chunk as it
//! arrives in random order (some corrupted, some lost in transit), installs into the inactive
//! slot file, swaps, and probes a readiness file with the real probe runner; a device whose
//! application does not come up fails its probe and restores the previous slot on its own.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ota_core::UnixMs;
use ota_core::agent::{Agent, AgentConfig, DeviceIo, Input, Output};
use ota_core::assignment::Assignment;
use ota_core::download::{ChunkRequest, Staging};
use ota_core::probe::{ProbePolicy, ProbeSpec};
use ota_core::report::DeviceReport;
use ota_core::sign::TrustedKeys;
use ota_core::{DeviceProfile, Limits};
use ota_host::probe as runner;
use ota_sim::{Network, Traffic, Transit};

/// Staging (in memory) and two slot files. Files rather than `ota_sim::Slots`' memory on
/// purpose: `--keep` leaves each device's slots to inspect, and the summary measures the fleet
/// on the active slot files.
struct Storage {
    dir: PathBuf,
    staging: Vec<u8>,
    active: usize,
    target: usize,
}

impl Storage {
    fn slot(&self, i: usize) -> PathBuf {
        self.dir
            .join(if i == 0 { "slot-a.bin" } else { "slot-b.bin" })
    }
}

impl Staging for Storage {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.staging.write_at(offset, data)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.staging.read_at(offset, buf)
    }
}

impl DeviceIo for Storage {
    fn open_slot(&mut self) -> io::Result<Box<dyn Write + Send>> {
        self.target = 1 - self.active;
        Ok(Box::new(io::BufWriter::new(File::create(
            self.slot(self.target),
        )?)))
    }
}

/// What happened to one update on one device.
#[derive(Debug, Default, Clone)]
pub struct Run {
    /// What the network carried: chunks delivered (including those delivered again), those
    /// corrupted (the agent refused them and fetched them again), and those lost in transit
    /// (fetched again).
    pub traffic: Traffic,
    /// The chunks of the artifact.
    pub chunks: usize,
    /// Whether the device swapped to the new slot.
    pub swapped: bool,
    /// What the probe said, if it ran.
    pub probe: Option<(bool, String)>,
    /// Whether the device restored its previous slot.
    pub restored: bool,
    /// The device's reports, in order.
    pub reports: Vec<DeviceReport>,
    /// The simulated time it took.
    pub took_ms: u64,
}

/// One device.
pub struct Device {
    /// Whether its application comes up with the new model.
    pub healthy: bool,
    storage: Storage,
    agent: Agent,
    allowlist: Vec<String>,
}

/// The chance a chunk response is lost in transit.
pub const LOSS: f64 = 0.01;
/// The chance a chunk arrives corrupted.
pub const CORRUPTION: f64 = 0.01;

impl Device {
    /// A device in `dir` running `running` (its slot A), trusting `trusted`.
    pub fn new(
        profile: DeviceProfile,
        healthy: bool,
        dir: &Path,
        running: &[u8],
        trusted: TrustedKeys,
        now: u64,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("slot-a.bin"), running)?;
        let mut storage = Storage {
            dir: dir.to_path_buf(),
            staging: Vec::new(),
            active: 0,
            target: 1,
        };
        let config = AgentConfig {
            device: profile,
            trusted,
            threshold: 1,
            policy: ProbePolicy {
                initial_delay_ms: 5_000,
                interval_ms: 5_000,
                successes_needed: 2,
                failures_tolerated: 0,
                deadline_ms: 120_000,
            },
            // The device's own policy: its application's readiness file.
            default_probe: Some(ProbeSpec::File {
                path: dir.join("ready").display().to_string(),
            }),
            exec_allowlist: Vec::new(),
            max_boot_attempts: 3,
            download_deadline_ms: ota_core::agent::config::DEFAULT_DOWNLOAD_DEADLINE_MS,
            limits: Limits::default(),
        };
        let agent = Agent::new(config, None, UnixMs(now), &mut storage);
        Ok(Device {
            healthy,
            storage,
            agent,
            allowlist: Vec::new(),
        })
    }

    /// The readiness file the application writes when it is up.
    pub fn ready_file(&self) -> PathBuf {
        self.storage.dir.join("ready")
    }

    /// The bytes of the active slot.
    pub fn active_slot(&self) -> io::Result<Vec<u8>> {
        std::fs::read(self.storage.slot(self.storage.active))
    }

    /// Takes an assignment and runs it to the end: fetches from `artifact` over `net` (in
    /// random order, some chunks corrupted or lost), then swap, probe, commit or restore. `app_comes_up`
    /// says whether the application runs with what is installed.
    pub fn update(
        &mut self,
        assignment: Assignment,
        artifact: &[u8],
        net: &mut Network,
        start: u64,
        app_comes_up: bool,
    ) -> Run {
        let mut run = Run {
            chunks: ota_core::chunk::ChunkTable::count_for(artifact.len() as u64),
            ..Run::default()
        };
        let mut now = start;
        let mut wanted: Vec<ChunkRequest> = Vec::new();
        let mut swapped_at = SystemTime::now();
        let _ = self.agent.handle(
            Input::assignment(assignment),
            UnixMs(now),
            &mut self.storage,
        );
        for _ in 0..1_000_000 {
            while let Some(out) = self.agent.poll() {
                let at = UnixMs(now);
                match out {
                    Output::Persist(_) => {}
                    Output::Fetch(r) => wanted.push(r),
                    Output::Swap { .. } => {
                        self.storage.active = self.storage.target;
                        run.swapped = true;
                        swapped_at = SystemTime::now();
                        self.start_application(swapped_at, app_comes_up);
                        let _ = self.agent.handle(Input::Swapped, at, &mut self.storage);
                    }
                    Output::Probe { spec, .. } => {
                        let result = runner::run(&spec, &self.allowlist, swapped_at);
                        run.probe = Some((result.healthy, result.detail.clone()));
                        let _ =
                            self.agent
                                .handle(Input::ProbeResult(result), at, &mut self.storage);
                    }
                    Output::RestorePrevious { .. } => {
                        self.storage.active = 1 - self.storage.target;
                        run.restored = true;
                        let _ = self.agent.handle(Input::Restored, at, &mut self.storage);
                    }
                    Output::Report(r) => run.reports.push(r),
                    _ => {}
                }
            }
            if let Some(transit) = net.serve(&mut wanted, artifact) {
                now += 20;
                // A lost response is wanted again; a corrupt chunk is refused, and the agent
                // asks for it again.
                if let Transit::Arrived { offset, data, .. } = transit {
                    let _ = self
                        .agent
                        .handle_chunk(offset, &data, UnixMs(now), &mut self.storage);
                }
                continue;
            }
            match self.agent.poll_timeout() {
                Some(t) => {
                    now = now.max(t.get());
                    let _ = self
                        .agent
                        .handle(Input::Tick, UnixMs(now), &mut self.storage);
                }
                None => break,
            }
        }
        self.storage.staging = Vec::new();
        run.traffic = net.take_traffic();
        run.took_ms = now - start;
        run
    }

    /// After a swap the application starts from the new slot; a healthy one marks itself
    /// ready (the mark dated after the swap), a bad one never does.
    fn start_application(&self, swapped_at: SystemTime, comes_up: bool) {
        let ready = self.ready_file();
        let _ = std::fs::remove_file(&ready);
        if comes_up {
            let marked = File::create(&ready)
                .and_then(|f| f.set_modified(swapped_at + Duration::from_secs(1)));
            if let Err(e) = marked {
                eprintln!("ota demo: {}: {e}", ready.display());
            }
        }
    }
}
