//! The daemon: [`Daemon`] drives the core's [`Agent`] against the control plane, the slots
//! and the probes. See the [crate documentation](crate) for the cycle.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ota_core::agent::SlotContent;
use ota_core::agent::{
    Agent, AgentConfig, AgentError, AgentRecord, AgentState, Input, Output, Rejection, UpdateRecord,
};
use ota_core::download::{ChunkRequest, DownloadError};
use ota_core::probe::{ProbeResult, ProbeSpec};
use ota_core::report::{DeviceReport, ReportStatus};
use ota_core::{UnixMs, Version};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::client::Client;
use crate::config::Config;
pub use crate::cycle::Cycle;
use crate::error::DaemonError;
use crate::io::DeviceStore;
use crate::pace::{Limiter, backoff, jitter};
use crate::slots::{SlotLabel, Slots, Switched};
use crate::store::{self, StateDir};

mod carry;

/// How many times one chunk may fail its digest in an update before each further failure
/// ends the cycle (the chunk is asked for again in the next one).
const MAX_BAD_CHUNK: u32 = 5;
/// How many fetches in a row may fail (connection errors, 5xx) before the cycle gives up.
const MAX_FETCH_FAILURES: u32 = 8;

/// The device daemon. Many can run as tasks of one runtime: it holds no process-wide
/// state (signals are the binary's business).
pub struct Daemon {
    config: Config,
    state: StateDir,
    client: Client,
    agent: Agent,
    io: DeviceStore,
    /// Chunks to fetch.
    pending: VecDeque<ChunkRequest>,
    /// Reports not yet acknowledged.
    outbox: Vec<DeviceReport>,
    /// An output of the agent whose step failed (or a restart found undone): carried out
    /// again before any other, so that nothing the agent asked for is lost and nothing after
    /// it runs first.
    held: Option<Output>,
    /// The credential the server answered 401 to: kept in its file until a new one replaces
    /// it, but not used again.
    refused: Option<String>,
    /// A switch needs a reboot that this process has not outlived yet.
    reboot_pending: bool,
    /// The poll interval the server suggested last.
    interval: Duration,
    stop: Option<watch::Receiver<bool>>,
    /// The update in progress, as last persisted.
    current: Option<UpdateRecord>,
    /// A probe the agent asked for.
    probe: Option<(ProbeSpec, UnixMs)>,
    /// The progress steps reported for the update in progress.
    steps: BTreeSet<&'static str>,
    bad: HashMap<usize, u32>,
    limiter: Arc<Limiter>,
    running: Option<Version>,
    outcome: Option<Cycle>,
}

/// The wall clock, as the agent takes it.
pub fn now() -> UnixMs {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    UnixMs(u64::try_from(ms).unwrap_or(u64::MAX))
}

fn system_time(t: UnixMs) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(t.get())
}

fn agent_config(c: &Config) -> AgentConfig {
    AgentConfig {
        device: c.device.clone(),
        trusted: c.trusted.clone(),
        threshold: c.threshold,
        policy: c.probe_policy,
        default_probe: c.probe.clone(),
        exec_allowlist: c.exec_allowlist.clone(),
        max_boot_attempts: c.max_boot_attempts,
        download_deadline_ms: u64::try_from(c.download_deadline.as_millis()).unwrap_or(u64::MAX),
        limits: c.limits,
    }
}

/// Checks that a swap or restore names the update the daemon carries out (its label has the
/// package id too, which the agent's command does not).
fn check_label(l: &SlotLabel, named: &SlotContent) -> Result<(), DaemonError> {
    if l.name != named.name || l.version != named.version {
        return Err(DaemonError::Slot(format!(
            "the agent names {} {}, but the update in progress is {} {}",
            named.name, named.version, l.name, l.version
        )));
    }
    Ok(())
}

fn label(u: &UpdateRecord) -> SlotLabel {
    SlotLabel {
        package_id: Some(u.assignment.package_id.clone()),
        name: u.name.clone(),
        version: u.version.clone(),
    }
}

/// Whether the server's answer `status` (with its error `code`, when the answer is the API's
/// error shape) to a report refuses it for good: the API's own 400 (the report is malformed,
/// or names another device), 409 (the rollout, the attempt or the device's state leaves it
/// nothing to change; but not `ABORTED`, a concurrent write that a retry gets past) and 404
/// `NOT_FOUND` (no such rollout: rollouts are never deleted), and any 413 (too large).
/// Sending it again cannot help; every other answer may (a revoked credential is replaced; a
/// proxy, a captive portal or the server recovers), and a report kept at the head of the
/// outbox holds back those after it.
pub fn report_refused(status: u16, code: Option<&str>) -> bool {
    match (status, code) {
        (409, Some("ABORTED")) => false,
        (400 | 409, Some(_)) | (404, Some("NOT_FOUND")) | (413, _) => true,
        _ => false,
    }
}

/// The longest the daemon sleeps before it reads the wall clock again while an update waits
/// on it (a probe's delay, a retry's backoff).
const TICK_AT_MOST_MS: u64 = 1_000;

/// Resolves when `stop` says so; never, without a stop channel.
async fn stopped(stop: &mut Option<watch::Receiver<bool>>) {
    match stop {
        Some(r) => {
            if r.wait_for(|v| *v).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

impl Daemon {
    /// Opens the daemon: checks the configuration, restores the agent's record from the
    /// state directory (resuming an update in progress, re-verifying what it staged), and
    /// reads the credential if there is one. Touches no network.
    pub async fn open(config: Config) -> Result<Daemon, DaemonError> {
        config.check()?;
        let state = StateDir::open_waiting(&config.state_dir).await?;
        let factory = (config.device.installed.len() == 1)
            .then(|| config.device.installed.iter().next())
            .flatten()
            .map(|(n, v)| (n.clone(), v.clone()));
        let slots = Slots::open(&config.slots, state.path("slots.json"), factory)?;
        let mut io = DeviceStore::open(state.path("staging"), slots)?;
        let mut record = state
            .load_record(&config.limits)?
            .unwrap_or_else(|| AgentRecord::new(config.device.installed.clone()));
        if record.state == AgentState::Idle
            && let Some(l) = io.slots.active_label()?
            && record.installed.get(&l.name) != Some(&l.version)
        {
            // The slots are the truth of what runs (a bootloader may have fallen back).
            record.installed.insert(l.name, l.version);
            state.save_record(&record)?;
        }
        let current = record.update.clone();
        // A record that says committed may have been written before the bootloader was told
        // (by an older daemon, or a confirm that did not last): the confirm is idempotent, and
        // runs again before the success is reported.
        let held = (record.state == AgentState::Committed)
            .then(|| Output::Persist(Box::new(record.clone())));
        let agent = Agent::new(agent_config(&config), Some(record), now(), &mut io);
        let mut client = Client::new(
            &config.server,
            config.device_id().clone(),
            config.request_timeout,
        )?;
        if let Some(c) = store::load_credential(&config.credential_file)? {
            client.set_credential(c);
        }
        let outbox = state.load_outbox(&config.limits)?;
        let mut d = Daemon {
            interval: config.poll_interval,
            limiter: Arc::new(Limiter::new(config.bandwidth)),
            config,
            state,
            client,
            agent,
            io,
            pending: VecDeque::new(),
            outbox,
            held,
            refused: None,
            reboot_pending: false,
            stop: None,
            current,
            probe: None,
            steps: BTreeSet::new(),
            bad: HashMap::new(),
            running: None,
            outcome: None,
        };
        d.refresh_running()?;
        Ok(d)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The version the active slot holds (when the daemon installed it), else the one the
    /// record says the device runs when it runs one package.
    pub fn running_version(&self) -> Option<&Version> {
        self.running.as_ref()
    }

    /// The agent's state.
    pub fn state(&self) -> AgentState {
        self.agent.state()
    }

    /// The agent's record, as last changed.
    pub fn record(&self) -> &AgentRecord {
        self.agent.record()
    }

    /// The poll interval in force: the server's suggestion, else the configuration's.
    pub fn poll_interval(&self) -> Duration {
        self.interval
    }

    fn refresh_running(&mut self) -> Result<(), DaemonError> {
        self.running = match self.io.slots.active_label()? {
            Some(l) => Some(l.version),
            None => {
                let installed = &self.agent.record().installed;
                if installed.len() == 1 {
                    installed.values().next().cloned()
                } else {
                    None
                }
            }
        };
        Ok(())
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|r| *r.borrow())
    }

    /// One poll-and-update cycle (what `--once` does): registers if needed, sends reports
    /// left over, finishes an update in progress, or polls and carries out what is
    /// assigned, through the swap and the probes to the commit or the rollback.
    pub async fn cycle(&mut self) -> Result<Cycle, DaemonError> {
        self.ensure_credential().await?;
        // A server out of reach does not hold up what needs none of it (a swap, a probe, a
        // restore after a restart); the poll below finds out. An output held for a retry goes
        // first (a confirm before the success it precedes is reported).
        if self.held.is_none()
            && let Err(e) = self.flush_outbox().await
        {
            tracing::debug!(device = %self.config.device_id(), error = %e, "reports kept for later");
        }
        if let Some(c) = self.drive().await? {
            return Ok(c);
        }
        if self.stopping() {
            return Ok(Cycle::Stopped);
        }
        self.reconcile()?;
        let poll = match self
            .client
            .poll(&self.agent.record().installed, &self.config.limits)
            .await
        {
            Err(e @ DaemonError::Status { status: 401, .. })
                if self.config.enrollment_token_file.is_some() =>
            {
                // The server no longer knows the credential (revoked, or its database was
                // rebuilt): the next cycle registers again with the enrollment token. Its file
                // keeps it until the new one replaces it, so a registration that fails (or a
                // restart) leaves the device no worse off.
                self.refused = self.client.take_credential();
                return Err(e);
            }
            r => r?,
        };
        if let Some(i) = poll.interval {
            self.interval = i;
        }
        let Some(assignment) = poll.assignment else {
            return Ok(Cycle::Idle);
        };
        match self
            .agent
            .handle(Input::assignment(assignment), now(), &mut self.io)
        {
            Ok(()) => Ok(self.drive().await?.unwrap_or(Cycle::Idle)),
            Err(AgentError::Rejected(r)) => {
                self.drive().await?;
                Ok(match r {
                    Rejection::AlreadyInstalled { name, version } => {
                        Cycle::Current { name, version }
                    }
                    other => Cycle::Rejected {
                        reason: other.to_string(),
                    },
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// [`Daemon::cycle`] that stops at the next safe point once `shutdown` resolves
    /// (answering [`Cycle::Stopped`] when it stopped a download).
    pub async fn cycle_until(
        &mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Cycle, DaemonError> {
        let (tx, rx) = watch::channel(false);
        self.stop = Some(rx);
        let r = {
            let work = self.cycle();
            tokio::pin!(work);
            tokio::pin!(shutdown);
            let mut signalled = false;
            loop {
                tokio::select! {
                    r = &mut work => break r,
                    () = &mut shutdown, if !signalled => {
                        signalled = true;
                        let _ = tx.send(true);
                    }
                }
            }
        };
        self.stop = None;
        r
    }

    /// Runs until `shutdown` resolves: a cycle, then the server's poll interval (with
    /// jitter), or an exponential backoff after errors. A shutdown stops at the next safe
    /// point: between polls, or between chunks of a download; a swap, probe or restore in
    /// progress is finished first. Fails only on what retrying cannot fix (no credential,
    /// no way to register).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let (tx, rx) = watch::channel(false);
        self.stop = Some(rx);
        let work = self.run_loop();
        tokio::pin!(work);
        tokio::pin!(shutdown);
        let mut signalled = false;
        loop {
            tokio::select! {
                r = &mut work => return r,
                () = &mut shutdown, if !signalled => {
                    signalled = true;
                    let _ = tx.send(true);
                }
            }
        }
    }

    async fn run_loop(&mut self) -> Result<(), DaemonError> {
        let mut errors = 0u32;
        loop {
            let delay = match self.cycle().await {
                Ok(Cycle::Stopped) => return Ok(()),
                Ok(c) => {
                    errors = 0;
                    if c != Cycle::Idle {
                        tracing::info!(device = %self.config.device_id(), cycle = ?c, "cycle");
                    }
                    jitter(self.interval)
                }
                Err(
                    e @ (DaemonError::NotRegistered { .. }
                    | DaemonError::AlreadyRegistered { .. }
                    | DaemonError::Config(_)),
                ) => return Err(e),
                Err(DaemonError::Rebooting) => {
                    tracing::info!(device = %self.config.device_id(), "waiting for the reboot");
                    stopped(&mut self.stop).await;
                    return Ok(());
                }
                Err(e) => {
                    errors += 1;
                    tracing::warn!(device = %self.config.device_id(), error = %e, errors, "cycle failed");
                    backoff(errors, self.config.max_backoff)
                }
            };
            if self.stopping() {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(&mut self.stop) => return Ok(()),
            }
        }
    }

    /// The credential: from its file (unless the server refused it), or by registering with
    /// the enrollment token, the new credential then replacing the file's atomically.
    async fn ensure_credential(&mut self) -> Result<(), DaemonError> {
        if self.client.has_credential() {
            return Ok(());
        }
        let path = &self.config.credential_file;
        if let Some(c) = store::load_credential(path)?
            && self.refused.as_ref() != Some(&c)
        {
            self.client.set_credential(c);
            return Ok(());
        }
        let Some(token_path) = &self.config.enrollment_token_file else {
            return Err(DaemonError::NotRegistered {
                device_id: self.config.device_id().to_string(),
                path: path.clone(),
            });
        };
        let token = std::fs::read_to_string(token_path)
            .map_err(|e| DaemonError::io("enrollment_token_file", token_path, e))?;
        let credential = self
            .client
            .register(
                token.trim(),
                &self.config.device,
                self.config.profile_id.as_ref(),
            )
            .await?;
        store::save_credential(path, &credential)?;
        self.client.set_credential(credential);
        self.refused = None;
        tracing::info!(device = %self.config.device_id(), "registered");
        Ok(())
    }

    /// Sends the reports not yet acknowledged, in order. A report the server refuses for
    /// good ([`report_refused`]: it changes nothing, and never will) is dropped; any other
    /// answer (a connection error, a 5xx, a 401 of a credential being replaced, a proxy's
    /// 403, 404, 408 or 429) keeps it and the rest for later.
    async fn flush_outbox(&mut self) -> Result<(), DaemonError> {
        while let Some(r) = self.outbox.first() {
            let step = (r.status == ReportStatus::InProgress).then_some("downloading");
            match self.client.report(r, step).await {
                Ok(()) => {}
                Err(e) => {
                    let refused = match &e {
                        DaemonError::Status { status, code, .. } => {
                            report_refused(*status, code.as_deref())
                        }
                        _ => false,
                    };
                    if !refused {
                        return Err(e);
                    }
                    tracing::warn!(device = %self.config.device_id(), error = %e, "report refused, dropped");
                }
            }
            self.outbox.remove(0);
            self.state.save_outbox(&self.outbox)?;
        }
        Ok(())
    }

    /// Fixes the record when the slots say another version runs (a bootloader fell back, or
    /// someone switched by hand): the slots are the truth, and the next poll tells it.
    fn reconcile(&mut self) -> Result<(), DaemonError> {
        self.refresh_running()?;
        if self.agent.state() != AgentState::Idle {
            return Ok(());
        }
        let Some(l) = self.io.slots.active_label()? else {
            return Ok(());
        };
        if self.agent.record().installed.get(&l.name) == Some(&l.version) {
            return Ok(());
        }
        let mut record = self.agent.record().clone();
        record.installed.insert(l.name, l.version);
        self.state.save_record(&record)?;
        self.agent = Agent::new(
            agent_config(&self.config),
            Some(record),
            now(),
            &mut self.io,
        );
        Ok(())
    }

    /// Carries out what the agent asks until it is idle again (or a shutdown stops a
    /// download); answers what the update came to, if anything happened.
    async fn drive(&mut self) -> Result<Option<Cycle>, DaemonError> {
        self.outcome = None;
        let mut fetches: JoinSet<(ChunkRequest, Result<bytes::Bytes, DaemonError>)> =
            JoinSet::new();
        let mut inflight: BTreeMap<u64, ChunkRequest> = BTreeMap::new();
        let r = self.drive_loop(&mut fetches, &mut inflight).await;
        fetches.abort_all();
        for (_, req) in inflight.into_iter().rev() {
            self.pending.push_front(req);
        }
        r?;
        Ok(self.outcome.take())
    }

    async fn drive_loop(
        &mut self,
        fetches: &mut JoinSet<(ChunkRequest, Result<bytes::Bytes, DaemonError>)>,
        inflight: &mut BTreeMap<u64, ChunkRequest>,
    ) -> Result<(), DaemonError> {
        let mut failures = 0u32;
        let mut replanned = false;
        let mut checkpointed = false;
        // When the rollout's RPC records were last read (a download reads them at once).
        let mut checked: Option<tokio::time::Instant> = None;
        loop {
            while let Some(out) = self.held.take().or_else(|| self.agent.poll()) {
                if let Err(e) = self.carry_out(&out).await {
                    // Carried out again first in the next cycle: the agent does not ask twice.
                    self.held = Some(out);
                    return Err(e);
                }
            }
            let state = self.agent.state();
            if state != AgentState::Downloading {
                self.pending.clear();
                inflight.clear();
                fetches.abort_all();
            }
            if let Some((spec, swapped_at)) = self.probe.take() {
                let result = self.run_probe(spec, swapped_at).await;
                self.agent
                    .handle(Input::ProbeResult(result), now(), &mut self.io)?;
                continue;
            }
            match state {
                AgentState::Idle => return Ok(()),
                AgentState::Downloading => {
                    if self.stopping() {
                        if !checkpointed {
                            // What was verified since the last record is recorded first (a
                            // tick does it): the next run fetches only what is missing.
                            checkpointed = true;
                            self.agent.handle(Input::Tick, now(), &mut self.io)?;
                            continue;
                        }
                        self.outcome = Some(Cycle::Stopped);
                        return Ok(());
                    }
                    // The download deadline: past it, the agent fails the update.
                    if self
                        .agent
                        .poll_timeout()
                        .is_some_and(|t| t.saturating_ms_since(now()) == 0)
                    {
                        self.agent.handle(Input::Tick, now(), &mut self.io)?;
                        continue;
                    }
                    // The control plane may have withdrawn the update: asked every poll
                    // interval, and at once after a refused chunk.
                    if checked.is_none_or(|t| t.elapsed() >= self.interval) {
                        checked = Some(tokio::time::Instant::now());
                        if let Some(why) = self.withdrawn().await {
                            tracing::info!(device = %self.config.device_id(), reason = %why, "update cancelled");
                            self.agent.handle(Input::Cancel, now(), &mut self.io)?;
                            continue;
                        }
                    }
                    self.start_fetches(fetches, inflight);
                    if fetches.is_empty() {
                        if replanned {
                            return Err(DaemonError::Stuck { state });
                        }
                        // Nothing left to fetch, yet the download is not done: start the agent
                        // again from its record, which plans every chunk still missing.
                        replanned = true;
                        let record = self.agent.record().clone();
                        self.agent = Agent::new(
                            agent_config(&self.config),
                            Some(record),
                            now(),
                            &mut self.io,
                        );
                        continue;
                    }
                    let joined = tokio::select! {
                        j = fetches.join_next() => j,
                        () = stopped(&mut self.stop) => continue,
                    };
                    let Some(joined) = joined else { continue };
                    let (req, result) = match joined {
                        Ok(x) => x,
                        Err(e) if e.is_cancelled() => continue,
                        Err(e) => {
                            return Err(DaemonError::Http {
                                what: "chunk".into(),
                                message: e.to_string(),
                            });
                        }
                    };
                    inflight.remove(&req.offset);
                    match result {
                        Ok(bytes) => {
                            failures = 0;
                            self.take_chunk(req, &bytes).await?;
                        }
                        Err(e) if e.is_refusal() => return Err(e),
                        Err(e) => {
                            self.pending.push_front(req);
                            failures += 1;
                            if matches!(e, DaemonError::Status { status, .. } if (400..500).contains(&status))
                            {
                                // Refused (the artifact is gone, or no longer this device's
                                // assignment): has the update been withdrawn?
                                checked = None;
                            }
                            tracing::debug!(device = %self.config.device_id(), error = %e, failures, "fetch failed");
                            if failures >= MAX_FETCH_FAILURES {
                                return Err(e);
                            }
                            let wait = Duration::from_millis(50u64 << failures.min(6));
                            tokio::select! {
                                () = tokio::time::sleep(wait) => {}
                                () = stopped(&mut self.stop) => {}
                            }
                        }
                    }
                }
                _ => match self.agent.poll_timeout() {
                    Some(t) => {
                        // Waited on the wall clock in short steps: a clock set forward or
                        // back meanwhile (NTP after a boot without a real-time clock) is seen
                        // within a second. A shutdown waits for the probe's verdict (a restart
                        // while probing counts as a failure).
                        let wait = t.saturating_ms_since(now()).min(TICK_AT_MOST_MS);
                        if wait > 0 {
                            tokio::time::sleep(Duration::from_millis(wait)).await;
                        }
                        self.agent.handle(Input::Tick, now(), &mut self.io)?;
                    }
                    None => return Err(DaemonError::Stuck { state }),
                },
            }
        }
    }

    /// Why the control plane withdrew the update being downloaded, if it did: its rollout's
    /// RPC records ([`crate::rpc::withdrawn`]). An update that names no rollout, or records
    /// that cannot be read now, count as not withdrawn (the download deadline still holds).
    /// (`&mut self`: the daemon's future stays `Send` without the daemon being `Sync`.)
    async fn withdrawn(&mut self) -> Option<String> {
        let u = self.current.as_ref()?;
        let rollout_id = u.assignment.rollout_id.as_ref()?;
        match self.client.rpc(rollout_id, &self.config.limits).await {
            Ok(records) => crate::rpc::withdrawn(&records, &u.assignment.package_id),
            Err(e) => {
                tracing::debug!(device = %self.config.device_id(), error = %e, "rpc records not read");
                None
            }
        }
    }

    fn start_fetches(
        &mut self,
        fetches: &mut JoinSet<(ChunkRequest, Result<bytes::Bytes, DaemonError>)>,
        inflight: &mut BTreeMap<u64, ChunkRequest>,
    ) {
        let Some(u) = &self.current else {
            return;
        };
        let package_id = u.assignment.package_id.clone();
        let size = u.assignment.size_bytes;
        while fetches.len() < self.config.concurrency {
            let Some(req) = self.pending.pop_front() else {
                break;
            };
            if inflight.contains_key(&req.offset) {
                continue;
            }
            inflight.insert(req.offset, req);
            let client = self.client.clone();
            let limiter = self.limiter.clone();
            let package_id = package_id.clone();
            fetches.spawn(async move {
                limiter.wait(u64::from(req.length)).await;
                let r = client.chunk(&package_id, req, size).await;
                (req, r)
            });
        }
    }

    async fn take_chunk(&mut self, req: ChunkRequest, data: &[u8]) -> Result<(), DaemonError> {
        match self
            .agent
            .handle_chunk(req.offset, data, now(), &mut self.io)
        {
            Ok(p) => {
                if p.verified == p.total {
                    self.step("verified").await;
                }
                Ok(())
            }
            Err(AgentError::Download(DownloadError::Chunk(e))) => {
                // The agent asks for a chunk that failed its digest again; anything else
                // about the chunk is fetched again here.
                let n = self.bad.entry(req.index).or_default();
                *n += 1;
                tracing::warn!(device = %self.config.device_id(), chunk = req.index, error = %e, "bad chunk");
                if *n >= MAX_BAD_CHUNK {
                    return Err(DaemonError::BadChunk {
                        index: req.index,
                        attempts: *n,
                    });
                }
                if !matches!(e, ota_core::chunk::ChunkError::DigestMismatch { .. }) {
                    self.pending.push_back(req);
                }
                Ok(())
            }
            Err(AgentError::WrongState { .. }) => Ok(()),
            Err(e) => {
                // Staging or the install failed: the agent failed the update and queued its
                // outputs.
                tracing::warn!(device = %self.config.device_id(), error = %e, "update failed");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
