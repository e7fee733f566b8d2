//! The device's update agent: a sans-IO state machine the firmware drives.
//!
//! ```text
//! idle ──assignment verified, compatible, not a downgrade──▶ assigned ──▶ downloading
//!   ▲                                                                        │ every chunk
//!   │                                                                        ▼ verified, installed
//!   │                                        swapped ◀── (persist) ◀──── installed
//!   │                                           │ host swapped
//!   │                                           ▼
//!   ├──────────── committed ◀── healthy ──── probing ── unhealthy / too many boots ──┐
//!   │                                                                                ▼
//!   └──── restored ◀── host restored ── rolling_back ◀──────────────────────────── failed
//!         (a failure before the swap goes from failed straight back to idle)
//! ```
//!
//! **The drive loop.** Create the agent with [`Agent::new`] (passing the last persisted
//! record after a restart), feed it inputs with the `handle_*` methods, and after each input
//! drain [`Agent::poll_command`] until it returns `None`, carrying out each [`Command`] in
//! order:
//!
//! - [`Command::Persist`]: store the record durably (replace the previous one) *before*
//!   carrying out any later command. Every state is persisted before the step it guards.
//! - [`Command::Fetch`]: fetch that chunk, in any order, and give it to
//!   [`Agent::handle_chunk`]. A rejected chunk is asked for again.
//! - [`Command::Swap`]: make the inactive slot active (idempotent), then call
//!   [`Agent::handle_swapped`] — after a reboot if the swap needs one.
//! - [`Command::Probe`]: run the health probe and give the result to
//!   [`Agent::handle_probe_result`].
//! - [`Command::RestorePrevious`]: make the previous slot active again (idempotent), then call
//!   [`Agent::handle_restored`].
//! - [`Command::Report`]: send the report to the control plane.
//!
//! Call [`Agent::handle_tick`] when [`Agent::poll_timeout`] says so; probes are scheduled on
//! the clock you pass in. Data goes through a [`DeviceIo`] the host implements: staging
//! storage for chunks, and the inactive slot.
//!
//! **Safety.** Nothing is written to any slot before the assignment's signature verifies, the
//! package fits this device, and it is not a downgrade (a signed rollback excepted); no byte
//! is decrypted before its chunk is verified; the active slot is never written. A restart in
//! any state resumes safely; a restart while probing counts as a failed probe, and too many
//! boots roll back.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::assignment::Assignment;
use crate::compat;
use crate::download::{
    Accepted, ChunkRequest, Download, DownloadError, DownloadState, Install, Staging,
};
use crate::json::{self, Fault, ParseError, Validate};
use crate::limits::Limits;
use crate::name::Name;
use crate::probe::{self, Decision, ProbePolicy, ProbeProgress, ProbeResult, ProbeSpec};
use crate::profile::DeviceProfile;
use crate::report::{DeviceReport, ReportStatus};
use crate::sign::{self, TrustedKeys, VerifiedPackage};
use crate::status::Status;
use crate::version::Version;

/// What the host gives the agent for data: staging storage for chunks, and the inactive slot.
pub trait DeviceIo: Staging {
    /// Empties the inactive slot and returns a writer for it; its `flush` must make what was
    /// written durable.
    fn open_slot(&mut self) -> io::Result<Box<dyn Write + Send>>;
}

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This device.
    pub device: DeviceProfile,
    /// The keys whose signatures the agent trusts.
    pub trusted: TrustedKeys,
    /// How many distinct trusted keys must sign.
    pub threshold: usize,
    /// When to probe and how to judge.
    pub policy: ProbePolicy,
    /// The probe to run when an assignment names none.
    pub default_probe: Option<ProbeSpec>,
    /// The executables a probe may run.
    pub exec_allowlist: Vec<String>,
    /// How many boots into a new version before it is rolled back. Default 3.
    pub max_boot_attempts: u32,
    /// Parser bounds.
    pub limits: Limits,
}

/// The JSON form of [`AgentConfig`]:
/// `{"device": {profile}, "trusted_keys": ["hex or PEM", ...], "threshold": 1,
/// "probe_policy": {...}, "default_probe": {...}, "exec_allowlist": [...],
/// "max_boot_attempts": 3}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigJson {
    device: DeviceProfile,
    trusted_keys: Vec<String>,
    #[serde(default = "one")]
    threshold: usize,
    #[serde(default)]
    probe_policy: ProbePolicy,
    #[serde(default)]
    default_probe: Option<ProbeSpec>,
    #[serde(default)]
    exec_allowlist: Vec<String>,
    #[serde(default = "three")]
    max_boot_attempts: u32,
}

fn one() -> usize {
    1
}

fn three() -> u32 {
    3
}

impl Validate for ConfigJson {
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        self.device
            .validate_at(&json::field(path, "device"), faults);
        for (i, k) in self.trusted_keys.iter().enumerate() {
            if let Err(e) = sign::PublicKey::parse(k) {
                json::fault(
                    faults,
                    json::index(&json::field(path, "trusted_keys"), i),
                    e.to_string(),
                );
            }
        }
        if self.trusted_keys.is_empty() {
            json::fault(
                faults,
                json::field(path, "trusted_keys"),
                "at least one trusted key is required",
            );
        }
        if self.threshold == 0 || self.threshold > self.trusted_keys.len().max(1) {
            json::fault(
                faults,
                json::field(path, "threshold"),
                format!(
                    "must be between 1 and the number of trusted keys, found {}",
                    self.threshold
                ),
            );
        }
        if let Some(p) = &self.default_probe
            && let Err(e) = p.check(&self.exec_allowlist)
        {
            json::fault(faults, json::field(path, "default_probe"), e.to_string());
        }
    }
}

impl AgentConfig {
    /// Parses the JSON form (see [`AgentConfig`]'s fields): every error names its field.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        let c: ConfigJson = json::parse("agent config", bytes, Limits::DEFAULT.max_document_bytes)?;
        Ok(AgentConfig {
            trusted: c
                .trusted_keys
                .iter()
                .filter_map(|k| sign::PublicKey::parse(k).ok())
                .collect(),
            device: c.device,
            threshold: c.threshold,
            policy: c.probe_policy,
            default_probe: c.default_probe,
            exec_allowlist: c.exec_allowlist,
            max_boot_attempts: c.max_boot_attempts,
            limits: Limits::DEFAULT,
        })
    }
}

/// Where the agent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentState {
    /// Nothing in progress.
    Idle,
    /// An assignment was verified and accepted.
    Assigned,
    /// Chunks are being fetched and installed into the inactive slot.
    Downloading,
    /// The new version is complete in the inactive slot.
    Installed,
    /// The swap was asked for.
    Swapped,
    /// The new version runs; health probes decide.
    Probing,
    /// Healthy: the new version stays.
    Committed,
    /// The update failed.
    Failed,
    /// The previous version is being restored.
    RollingBack,
    /// The previous version runs again.
    Restored,
}

impl AgentState {
    /// The name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Idle => "idle",
            AgentState::Assigned => "assigned",
            AgentState::Downloading => "downloading",
            AgentState::Installed => "installed",
            AgentState::Swapped => "swapped",
            AgentState::Probing => "probing",
            AgentState::Committed => "committed",
            AgentState::Failed => "failed",
            AgentState::RollingBack => "rolling_back",
            AgentState::Restored => "restored",
        }
    }
}

/// The update in progress, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRecord {
    /// What the control plane assigned (with the signed envelope and the key).
    pub assignment: Assignment,
    /// The package's name, from the verified statement.
    pub name: Name,
    /// The version being installed.
    pub version: Version,
    /// The version that was active before, if any.
    pub previous: Option<Version>,
    /// Which chunks are verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<DownloadState>,
    /// The health probe.
    pub probe: ProbeSpec,
    /// Where probing stands.
    #[serde(default)]
    pub progress: ProbeProgress,
    /// Boots into the new version so far.
    #[serde(default)]
    pub boot_attempts: u32,
    /// Whether the slots were swapped (a failure after that needs a restore).
    #[serde(default)]
    pub swapped: bool,
    /// Why the update failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Everything the agent persists: small, and enough to resume after a restart in any state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRecord {
    /// The state.
    pub state: AgentState,
    /// The active version of each package.
    #[serde(default)]
    pub installed: BTreeMap<Name, Version>,
    /// The highest version of each package ever committed (downgrade protection).
    #[serde(default)]
    pub highest: BTreeMap<Name, Version>,
    /// The update in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateRecord>,
}

impl AgentRecord {
    /// A new device's record: idle, with the versions it ships with.
    pub fn new(installed: BTreeMap<Name, Version>) -> Self {
        AgentRecord {
            state: AgentState::Idle,
            highest: installed.clone(),
            installed,
            update: None,
        }
    }

    /// Parses a persisted record.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        json::parse(
            "agent record",
            bytes,
            Limits::DEFAULT.max_envelope_bytes() + (64 << 10),
        )
    }

    /// The record as JSON.
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }
}

impl Validate for AgentRecord {
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        let needs_update = !matches!(self.state, AgentState::Idle);
        if needs_update && self.update.is_none() {
            json::fault(
                faults,
                json::field(path, "update"),
                format!("state {} needs the update in progress", self.state.as_str()),
            );
        }
    }
}

/// What the host must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Command {
    /// Store this record durably, replacing the previous one, before any later command.
    Persist {
        /// The record as JSON.
        record: String,
    },
    /// Fetch this chunk (in any order) and hand it to `handle_chunk`.
    Fetch(ChunkRequest),
    /// Make the inactive slot active (idempotent), then call `handle_swapped`.
    Swap,
    /// Run this probe and hand the result to `handle_probe_result`.
    Probe {
        /// The probe.
        spec: ProbeSpec,
        /// When the swap happened (Unix ms), for a readiness file.
        swapped_at: u64,
    },
    /// Make the previous slot active again (idempotent), then call `handle_restored`.
    RestorePrevious,
    /// Send this report to the control plane.
    Report(DeviceReport),
}

/// An input the agent could not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The input does not fit the current state.
    #[error("{input} in state {state}")]
    WrongState {
        /// The state.
        state: &'static str,
        /// The input.
        input: &'static str,
    },
    /// The assignment was refused before anything was written.
    #[error("assignment refused: {reason}")]
    Rejected {
        /// Why, as a status.
        status: Status,
        /// Why, in words.
        reason: String,
    },
    /// A chunk or the install failed.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// The persisted record is unusable.
    #[error("agent record: {0}")]
    Record(String),
}

impl AgentError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            AgentError::WrongState { .. } => Status::WrongState,
            AgentError::Rejected { status, .. } => *status,
            AgentError::Download(e) => e.status(),
            AgentError::Record(_) => Status::RecordInvalid,
        }
    }
}

/// What one chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkProgress {
    /// Chunks verified so far.
    pub verified: usize,
    /// Chunks installed into the slot so far.
    pub installed: usize,
    /// Chunks in the artifact.
    pub total: usize,
    /// Whether this chunk was new.
    pub new: bool,
}

/// The device's update agent. See the module documentation for the drive loop.
pub struct Agent {
    config: AgentConfig,
    record: AgentRecord,
    verified: Option<VerifiedPackage>,
    download: Option<Download>,
    install: Option<Install<Box<dyn Write + Send>>>,
    probe_in_flight: bool,
    commands: VecDeque<Command>,
    since_persist: usize,
}

/// How many new chunks between two persisted download states.
const PERSIST_EVERY: usize = 64;

impl Agent {
    /// An agent for a device, resuming from `record` after a restart (or starting fresh with
    /// `None`). Resuming re-verifies what it relies on: the signature of the update in
    /// progress, and every staged chunk.
    pub fn new(
        config: AgentConfig,
        record: Option<AgentRecord>,
        now: u64,
        io: &mut dyn DeviceIo,
    ) -> Self {
        let mut config = config;
        let record = record.unwrap_or_else(|| AgentRecord::new(config.device.installed.clone()));
        for (name, v) in &record.installed {
            config.device.installed.insert(name.clone(), v.clone());
        }
        let mut agent = Agent {
            config,
            record,
            verified: None,
            download: None,
            install: None,
            probe_in_flight: false,
            commands: VecDeque::new(),
            since_persist: 0,
        };
        agent.resume(now, io);
        agent
    }

    /// The state.
    pub fn state(&self) -> AgentState {
        self.record.state
    }

    /// The record, as last changed.
    pub fn record(&self) -> &AgentRecord {
        &self.record
    }

    /// The active version of a package.
    pub fn installed(&self, name: &str) -> Option<&Version> {
        self.record.installed.get(name)
    }

    /// The next command, if any.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When to call `handle_tick` next (Unix ms), if the agent is waiting on the clock.
    pub fn poll_timeout(&self) -> Option<u64> {
        let u = self.record.update.as_ref()?;
        if self.record.state != AgentState::Probing || self.probe_in_flight {
            return None;
        }
        match probe::decide(&self.config.policy, &u.progress, 0) {
            Decision::WaitUntil(t) => Some(t),
            _ => Some(0),
        }
    }

    fn persist(&mut self) {
        self.since_persist = 0;
        self.commands.push_back(Command::Persist {
            record: self.record.to_json(),
        });
    }

    fn set(&mut self, state: AgentState) {
        self.record.state = state;
        self.persist();
    }

    fn report(&mut self, status: ReportStatus, reason: Option<String>) {
        let (rollout_id, name) = match &self.record.update {
            Some(u) => (u.assignment.rollout_id.clone(), Some(u.name.clone())),
            None => (None, None),
        };
        let firmware_version = name.and_then(|n| self.record.installed.get(&n).cloned());
        self.commands.push_back(Command::Report(DeviceReport {
            device_id: self.config.device.device_id.clone(),
            rollout_id,
            firmware_version,
            status,
            reason,
        }));
    }

    fn verify(&self, assignment: &Assignment) -> Result<VerifiedPackage, (Status, String)> {
        let v = sign::verify_envelope(
            assignment.envelope.clone(),
            &self.config.trusted,
            self.config.threshold,
            &self.config.limits,
        )
        .map_err(|e| (e.status(), format!("signature: {e}")))?;
        if !assignment.matches(&v) {
            return Err((
                Status::StatementInvalid,
                "the assignment's metadata does not match the signed statement".into(),
            ));
        }
        Ok(v)
    }

    /// Takes an assignment. It is refused — reported `rejected`, nothing written — unless its
    /// envelope verifies, its metadata matches the signed statement, the package fits this
    /// device, it is not older than the highest version installed (a signed rollback
    /// excepted), and its health probe may run here.
    pub fn handle_assignment(
        &mut self,
        assignment: Assignment,
        now: u64,
        io: &mut dyn DeviceIo,
    ) -> Result<(), AgentError> {
        if self.record.state != AgentState::Idle {
            return Err(AgentError::WrongState {
                state: self.record.state.as_str(),
                input: "an assignment",
            });
        }
        let rollout_id = assignment.rollout_id.clone();
        let refuse = |agent: &mut Agent, status: Status, reason: String, name: Option<&Name>| {
            let firmware_version = name.and_then(|n| agent.record.installed.get(n).cloned());
            let report_status = if status == Status::AlreadyInstalled {
                ReportStatus::Success
            } else {
                ReportStatus::Rejected
            };
            agent.commands.push_back(Command::Report(DeviceReport {
                device_id: agent.config.device.device_id.clone(),
                rollout_id: rollout_id.clone(),
                firmware_version,
                status: report_status,
                reason: Some(reason.clone()),
            }));
            Err(AgentError::Rejected { status, reason })
        };
        let verified = match self.verify(&assignment) {
            Ok(v) => v,
            Err((status, reason)) => return refuse(self, status, reason, None),
        };
        let p = verified.package();
        let report = compat::check(p, &self.config.device);
        if !report.compatible {
            let reasons: Vec<String> = report.rejections.iter().map(ToString::to_string).collect();
            return refuse(
                self,
                Status::NotCompatible,
                format!("not compatible: {}", reasons.join("; ")),
                Some(&p.name),
            );
        }
        let current = self.record.installed.get(&p.name).cloned();
        if current.as_ref() == Some(&p.version) {
            return refuse(
                self,
                Status::AlreadyInstalled,
                format!("{} {} is installed already", p.name, p.version),
                Some(&p.name),
            );
        }
        if let Some(highest) = self.record.highest.get(&p.name)
            && p.version < *highest
            && !p.rollback
        {
            return refuse(
                self,
                Status::Downgrade,
                format!(
                    "downgrade refused: {} {} is older than {highest}",
                    p.name, p.version
                ),
                Some(&p.name),
            );
        }
        let probe = match assignment
            .probe
            .clone()
            .or_else(|| self.config.default_probe.clone())
        {
            Some(spec) => spec,
            None => {
                return refuse(
                    self,
                    Status::ProbeRefused,
                    "no health probe is configured".into(),
                    Some(&p.name),
                );
            }
        };
        if let Err(e) = probe.check(&self.config.exec_allowlist) {
            return refuse(self, e.status(), e.to_string(), Some(&p.name));
        }
        self.record.update = Some(UpdateRecord {
            name: p.name.clone(),
            version: p.version.clone(),
            previous: current,
            assignment,
            download: None,
            probe,
            progress: ProbeProgress::default(),
            boot_attempts: 0,
            swapped: false,
            failure: None,
        });
        self.verified = Some(verified);
        self.set(AgentState::Assigned);
        self.report(ReportStatus::InProgress, None);
        self.start_download(None, now, io);
        Ok(())
    }

    fn start_download(&mut self, saved: Option<DownloadState>, now: u64, io: &mut dyn DeviceIo) {
        let Some(verified) = self.verified.clone() else {
            return;
        };
        let Some(update) = &self.record.update else {
            return;
        };
        let key = update.assignment.encryption_key.clone();
        let download = match saved {
            Some(state) => match Download::resume(&verified, &state, io) {
                Ok((d, _refetch)) => d,
                Err(_) => Download::new(&verified),
            },
            None => Download::new(&verified),
        };
        let slot = match io.open_slot() {
            Ok(s) => s,
            Err(e) => return self.fail(format!("cannot open the inactive slot: {e}"), now),
        };
        self.install = Some(Install::new(&verified, &key, slot));
        let plan = download.plan(usize::MAX);
        if let Some(u) = self.record.update.as_mut() {
            u.download = Some(download.state());
        }
        self.download = Some(download);
        self.set(AgentState::Downloading);
        self.commands.extend(plan.into_iter().map(Command::Fetch));
        // Chunks that survived a restart are installed at once.
        if let Err(e) = self.advance(now, io) {
            self.after_install_error(e, now);
        }
    }

    /// Takes a fetched chunk: it is verified against the signed chunk table, staged, and the
    /// verified prefix is installed. A bad chunk is refused with its index and fetched again;
    /// a duplicate changes nothing. An install failure (a decompression bomb, a wrong key)
    /// fails the update, leaving the active slot untouched.
    pub fn handle_chunk(
        &mut self,
        offset: u64,
        data: &[u8],
        now: u64,
        io: &mut dyn DeviceIo,
    ) -> Result<ChunkProgress, AgentError> {
        if self.record.state != AgentState::Downloading {
            return Err(AgentError::WrongState {
                state: self.record.state.as_str(),
                input: "a chunk",
            });
        }
        let Some(download) = self.download.as_mut() else {
            return Err(AgentError::WrongState {
                state: "downloading",
                input: "a chunk",
            });
        };
        let new = match download.accept(offset, data, io) {
            Ok(Accepted::New { .. }) => true,
            Ok(Accepted::Duplicate { .. }) => false,
            Err(e) => {
                if let DownloadError::Chunk(crate::chunk::ChunkError::DigestMismatch { index }) = e
                {
                    let again = download
                        .plan(usize::MAX)
                        .into_iter()
                        .find(|r| r.index == index);
                    self.commands.extend(again.map(Command::Fetch));
                }
                return Err(e.into());
            }
        };
        if new {
            self.since_persist += 1;
        }
        if let Err(e) = self.advance(now, io) {
            return Err(self.after_install_error(e, now));
        }
        let (verified, total) = self
            .download
            .as_ref()
            .map_or((0, 0), |d| (d.verified_count(), d.chunk_count()));
        let installed = self.install.as_ref().map_or(total, Install::installed);
        if self.since_persist >= PERSIST_EVERY && self.record.state == AgentState::Downloading {
            self.save_download_state();
            self.persist();
        }
        Ok(ChunkProgress {
            verified,
            installed,
            total,
            new,
        })
    }

    fn save_download_state(&mut self) {
        let state = self.download.as_ref().map(Download::state);
        if let Some(u) = self.record.update.as_mut() {
            u.download = state;
        }
    }

    /// Installs what can be installed; finishes the install when everything is in.
    fn advance(&mut self, now: u64, io: &mut dyn DeviceIo) -> Result<(), DownloadError> {
        let (Some(download), Some(install)) = (self.download.as_mut(), self.install.as_mut())
        else {
            return Ok(());
        };
        install.advance(download, io)?;
        if download.is_complete() && install.installed() == download.chunk_count() {
            let Some(install) = self.install.take() else {
                return Ok(());
            };
            install.finish()?;
            self.download = None;
            if let Some(u) = self.record.update.as_mut() {
                u.download = None;
            }
            self.set(AgentState::Installed);
            self.swap(now);
        }
        Ok(())
    }

    /// A stored chunk that went bad is fetched again; anything else fails the update.
    fn after_install_error(&mut self, e: DownloadError, now: u64) -> AgentError {
        if let DownloadError::StoredChunkCorrupt { index } = e {
            let again = self
                .download
                .as_ref()
                .and_then(|d| d.plan(usize::MAX).into_iter().find(|r| r.index == index));
            self.commands.extend(again.map(Command::Fetch));
        } else {
            self.install = None;
            self.download = None;
            self.fail(format!("install failed: {e}"), now);
        }
        e.into()
    }

    fn swap(&mut self, now: u64) {
        if let Some(u) = self.record.update.as_mut() {
            u.swapped = true;
            u.progress = ProbeProgress {
                swapped_at: now,
                ..ProbeProgress::default()
            };
        }
        self.set(AgentState::Swapped);
        self.commands.push_back(Command::Swap);
    }

    /// The host made the new slot active (after a reboot, if it needed one): probing starts.
    pub fn handle_swapped(&mut self, now: u64) -> Result<(), AgentError> {
        if self.record.state != AgentState::Swapped {
            return Err(AgentError::WrongState {
                state: self.record.state.as_str(),
                input: "a swap",
            });
        }
        if let Some(u) = self.record.update.as_mut() {
            u.progress.swapped_at = now;
            u.boot_attempts = u.boot_attempts.max(1);
        }
        self.set(AgentState::Probing);
        self.tick(now);
        Ok(())
    }

    /// Time passed: a probe may be due, or the deadline passed.
    pub fn handle_tick(&mut self, now: u64) {
        if self.record.state == AgentState::Probing {
            self.tick(now);
        }
    }

    fn tick(&mut self, now: u64) {
        if self.probe_in_flight {
            return;
        }
        let Some(u) = self.record.update.as_mut() else {
            return;
        };
        match probe::decide(&self.config.policy, &u.progress, now) {
            Decision::WaitUntil(_) => {}
            Decision::Run => {
                u.progress.last_run_at = Some(now);
                let cmd = Command::Probe {
                    spec: u.probe.clone(),
                    swapped_at: u.progress.swapped_at,
                };
                self.probe_in_flight = true;
                self.commands.push_back(cmd);
            }
            Decision::Healthy => self.commit(),
            Decision::Unhealthy { reason } => self.fail(reason, now),
        }
    }

    /// The result of the probe the agent asked for.
    pub fn handle_probe_result(&mut self, result: ProbeResult, now: u64) -> Result<(), AgentError> {
        if self.record.state != AgentState::Probing || !self.probe_in_flight {
            return Err(AgentError::WrongState {
                state: self.record.state.as_str(),
                input: "a probe result",
            });
        }
        self.probe_in_flight = false;
        if let Some(u) = self.record.update.as_mut() {
            u.progress.record(&result);
        }
        self.persist();
        self.tick(now);
        Ok(())
    }

    fn commit(&mut self) {
        if let Some(u) = &self.record.update {
            let (name, version) = (u.name.clone(), u.version.clone());
            let higher = self.record.highest.get(&name).is_none_or(|h| *h < version);
            if higher {
                self.record.highest.insert(name.clone(), version.clone());
            }
            self.record.installed.insert(name.clone(), version.clone());
            self.config.device.installed.insert(name, version);
        }
        self.set(AgentState::Committed);
        self.report(ReportStatus::Success, None);
        self.finish_update();
    }

    fn finish_update(&mut self) {
        self.record.update = None;
        self.verified = None;
        self.set(AgentState::Idle);
    }

    /// The update failed: after a swap, the previous version is restored; before it, the
    /// active slot was never touched and the agent is idle again.
    fn fail(&mut self, reason: String, _now: u64) {
        let swapped = self.record.update.as_ref().is_some_and(|u| u.swapped);
        if let Some(u) = self.record.update.as_mut() {
            u.failure = Some(reason.clone());
        }
        self.probe_in_flight = false;
        self.set(AgentState::Failed);
        if swapped {
            self.set(AgentState::RollingBack);
            self.commands.push_back(Command::RestorePrevious);
        } else {
            self.report(ReportStatus::Failure, Some(reason));
            self.finish_update();
        }
    }

    /// The host made the previous slot active again.
    pub fn handle_restored(&mut self, _now: u64) -> Result<(), AgentError> {
        if self.record.state != AgentState::RollingBack {
            return Err(AgentError::WrongState {
                state: self.record.state.as_str(),
                input: "a restore",
            });
        }
        self.set(AgentState::Restored);
        let reason = self.record.update.as_ref().and_then(|u| u.failure.clone());
        self.report(ReportStatus::Failure, reason);
        self.finish_update();
        Ok(())
    }

    /// Picks up where the persisted record left off.
    fn resume(&mut self, now: u64, io: &mut dyn DeviceIo) {
        let state = self.record.state;
        if state != AgentState::Idle && self.record.update.is_none() {
            self.record.state = AgentState::Idle;
            self.persist();
            return;
        }
        match state {
            AgentState::Idle => {}
            AgentState::Assigned | AgentState::Downloading => {
                let assignment = self.record.update.as_ref().map(|u| u.assignment.clone());
                match assignment.map(|a| self.verify(&a)) {
                    Some(Ok(v)) => {
                        self.verified = Some(v);
                        let saved = self.record.update.as_ref().and_then(|u| u.download.clone());
                        self.start_download(saved, now, io);
                    }
                    Some(Err((_, reason))) => self.fail(reason, now),
                    None => {}
                }
            }
            AgentState::Installed => self.swap(now),
            AgentState::Swapped => self.commands.push_back(Command::Swap),
            AgentState::Probing => {
                let max = self.config.max_boot_attempts.max(1);
                let mut too_many = false;
                if let Some(u) = self.record.update.as_mut() {
                    u.boot_attempts += 1;
                    // A restart while probing is a failed probe.
                    u.progress.record(&ProbeResult {
                        healthy: false,
                        detail: "the device restarted while probing".into(),
                    });
                    u.progress.last_run_at = Some(now);
                    too_many = u.boot_attempts > max;
                }
                self.persist();
                if too_many {
                    self.fail(
                        format!("the new version did not stay up through {max} boot(s)"),
                        now,
                    );
                } else {
                    self.tick(now);
                }
            }
            AgentState::Committed => {
                self.report(ReportStatus::Success, None);
                self.finish_update();
            }
            AgentState::Failed => {
                let reason = self
                    .record
                    .update
                    .as_ref()
                    .and_then(|u| u.failure.clone())
                    .unwrap_or_else(|| "failed".into());
                self.fail(reason, now);
            }
            AgentState::RollingBack => self.commands.push_back(Command::RestorePrevious),
            AgentState::Restored => {
                let reason = self.record.update.as_ref().and_then(|u| u.failure.clone());
                self.report(ReportStatus::Failure, reason);
                self.finish_update();
            }
        }
    }
}
