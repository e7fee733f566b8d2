//! The agent itself: [`Agent`], its transitions and its resume after a restart.

use std::collections::VecDeque;
use std::io::Write;

use crate::assignment::Assignment;
use crate::download::{Accepted, Download, DownloadError, DownloadState, Install};
use crate::probe::{self, Decision, ProbeProgress, ProbeResult};
use crate::report::{DeviceReport, ReportStatus};
use crate::sign::VerifiedPackage;
use crate::time::UnixMs;
use crate::version::Version;

use super::DeviceIo;
use super::config::AgentConfig;
use super::error::AgentError;
use super::input::{ChunkProgress, Input};
use super::output::{Output, SlotContent};
use super::record::{AgentRecord, AgentState, RecordError, UpdateRecord};

/// The device's update agent. See the [module documentation](super) for the drive loop.
pub struct Agent {
    pub(super) config: AgentConfig,
    pub(super) record: AgentRecord,
    verified: Option<VerifiedPackage>,
    download: Option<Download>,
    install: Option<Install<Box<dyn Write + Send>>>,
    probe_in_flight: bool,
    pub(super) outputs: VecDeque<Output>,
    since_persist: usize,
}

/// How many new chunks between two persisted download states.
const PERSIST_EVERY: usize = 64;

impl Agent {
    /// An agent for a device, starting fresh (`record` `None`) or resuming from the last
    /// persisted record. Resuming re-verifies what it relies on: the DSSE signature of the
    /// update in progress, and every staged chunk. An update proved by a TUF target that was
    /// still downloading needs its package again: use [`Agent::restore`]; without it, the
    /// update fails before anything is swapped.
    pub fn new(
        config: AgentConfig,
        record: Option<AgentRecord>,
        now: UnixMs,
        io: &mut dyn DeviceIo,
    ) -> Self {
        Self::start(config, record, None, now, io)
    }

    /// [`Agent::new`] with the update's package as the host verified it again after the
    /// restart (its TUF client resolving the target again, or the envelope verified again).
    /// Fails when the record is inconsistent or the package is not the update's.
    pub fn restore(
        config: AgentConfig,
        record: AgentRecord,
        package: Option<VerifiedPackage>,
        now: UnixMs,
        io: &mut dyn DeviceIo,
    ) -> Result<Self, AgentError> {
        record.check()?;
        if let (Some(p), Some(u)) = (&package, &record.update)
            && p.id() != &u.assignment.package_id
        {
            return Err(RecordError::PackageMismatch {
                requested: u.assignment.package_id.clone(),
                given: p.id().clone(),
            }
            .into());
        }
        Ok(Self::start(config, Some(record), package, now, io))
    }

    fn start(
        config: AgentConfig,
        record: Option<AgentRecord>,
        package: Option<VerifiedPackage>,
        now: UnixMs,
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
            outputs: VecDeque::new(),
            since_persist: 0,
        };
        agent.resume(package, now, io);
        agent
    }

    /// The settings, with the limits to parse what the agent is given by.
    pub fn config(&self) -> &AgentConfig {
        &self.config
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

    /// Takes one input at `now`; then drain [`Agent::poll`]. An input that does not fit the
    /// state, a refused assignment and a bad chunk are errors (a refused assignment still
    /// queues its report).
    pub fn handle(
        &mut self,
        input: Input<'_>,
        now: UnixMs,
        io: &mut dyn DeviceIo,
    ) -> Result<(), AgentError> {
        match input {
            Input::Assignment {
                assignment,
                package,
            } => self.assign(assignment, package, now, io),
            Input::Chunk { offset, data } => self.handle_chunk(offset, data, now, io).map(|_| ()),
            Input::Swapped => self.swapped(now),
            Input::ProbeResult(result) => self.probe_result(result, now),
            Input::Restored => self.restored(),
            Input::Tick => {
                match self.record.state {
                    AgentState::Probing => self.tick(now),
                    AgentState::Assigned | AgentState::Downloading => self.download_tick(now),
                    _ => {}
                }
                Ok(())
            }
            Input::Cancel => {
                self.cancel();
                Ok(())
            }
        }
    }

    /// [`Input::Chunk`], answering what the chunk did.
    pub fn handle_chunk(
        &mut self,
        offset: u64,
        data: &[u8],
        now: UnixMs,
        io: &mut dyn DeviceIo,
    ) -> Result<ChunkProgress, AgentError> {
        let wrong = |state| AgentError::WrongState {
            state,
            input: "a chunk",
        };
        if self.record.state != AgentState::Downloading {
            return Err(wrong(self.record.state));
        }
        let Some(download) = self.download.as_mut() else {
            return Err(wrong(self.record.state));
        };
        let new = match download.accept(offset, data, io) {
            Ok(Accepted::New { .. }) => true,
            Ok(Accepted::Duplicate { .. }) => false,
            Err(e) => {
                match e {
                    DownloadError::Chunk(crate::chunk::ChunkError::DigestMismatch { index }) => {
                        self.refetch(index)
                    }
                    // Staging that cannot take a verified chunk (a full disk, a failing one)
                    // fails the update: nothing asks for the chunk again, and the device
                    // would wait on it until the deadline, holding the staging space.
                    DownloadError::Staging { .. } => {
                        self.install = None;
                        self.download = None;
                        self.fail(format!("download failed: {e}"));
                    }
                    _ => {}
                }
                return Err(e.into());
            }
        };
        if new {
            self.since_persist += 1;
        }
        if let Err(e) = self.advance(now, io) {
            return Err(self.after_install_error(e));
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

    /// The next output, in order, if any.
    #[must_use]
    pub fn poll(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest instant at which to feed [`Input::Tick`]: the next probe, or the
    /// probing deadline (an instant already past means now). `None` when the agent waits only
    /// on input.
    pub fn poll_timeout(&self) -> Option<UnixMs> {
        let u = self.record.update.as_ref()?;
        if matches!(
            self.record.state,
            AgentState::Assigned | AgentState::Downloading
        ) {
            return u
                .assigned_at
                .map(|at| at + self.config.download_deadline_ms);
        }
        if self.record.state != AgentState::Probing || self.probe_in_flight {
            return None;
        }
        Some(probe::due(&self.config.policy, &u.progress))
    }

    fn persist(&mut self) {
        self.since_persist = 0;
        self.outputs
            .push_back(Output::Persist(Box::new(self.record.clone())));
    }

    fn set(&mut self, state: AgentState) {
        self.record.state = state;
        self.persist();
    }

    fn report(&mut self, status: ReportStatus, reason: Option<String>) {
        let (rollout_id, attempt, name) = match &self.record.update {
            Some(u) => (
                u.assignment.rollout_id.clone(),
                u.assignment.attempt,
                Some(u.name.clone()),
            ),
            None => (None, None, None),
        };
        let firmware_version = name.and_then(|n| self.record.installed.get(&n).cloned());
        self.outputs.push_back(Output::Report(DeviceReport {
            device_id: self.config.device.device_id.clone(),
            rollout_id,
            firmware_version,
            status,
            reason,
            attempt,
        }));
    }

    fn refetch(&mut self, index: usize) {
        let again = self
            .download
            .as_ref()
            .and_then(|d| d.plan(usize::MAX).into_iter().find(|r| r.index == index));
        self.outputs.extend(again.map(Output::Fetch));
    }

    fn assign(
        &mut self,
        assignment: Assignment,
        package: Option<VerifiedPackage>,
        now: UnixMs,
        io: &mut dyn DeviceIo,
    ) -> Result<(), AgentError> {
        if self.record.state != AgentState::Idle {
            return Err(AgentError::WrongState {
                state: self.record.state,
                input: "an assignment",
            });
        }
        let verified = match self.verify(&assignment, package) {
            Ok(v) => v,
            Err(r) => return Err(self.refuse(&assignment, None, r)),
        };
        let probe = match self.admit(&assignment, &verified, now) {
            Ok(probe) => probe,
            Err(r) => {
                let name = verified.package().name.clone();
                return Err(self.refuse(&assignment, Some(&name), r));
            }
        };
        let p = verified.package();
        self.record.update = Some(UpdateRecord {
            name: p.name.clone(),
            version: p.version.clone(),
            previous: self.record.installed.get(&p.name).cloned(),
            assignment,
            assigned_at: Some(now),
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

    fn start_download(&mut self, saved: Option<DownloadState>, now: UnixMs, io: &mut dyn DeviceIo) {
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
            Err(e) => return self.fail(format!("cannot open the inactive slot: {e}")),
        };
        self.install = Some(Install::new(&verified, &key, slot));
        let plan = download.plan(usize::MAX);
        if let Some(u) = self.record.update.as_mut() {
            u.download = Some(download.state());
        }
        self.download = Some(download);
        self.set(AgentState::Downloading);
        self.outputs.extend(plan.into_iter().map(Output::Fetch));
        // Chunks that survived a restart are installed at once.
        if let Err(e) = self.advance(now, io) {
            self.after_install_error(e);
        }
    }

    /// Past the download deadline, the update fails (nothing active was touched).
    fn download_tick(&mut self, now: UnixMs) {
        let Some(at) = self.record.update.as_ref().and_then(|u| u.assigned_at) else {
            return;
        };
        let deadline = self.config.download_deadline_ms;
        if now >= at + deadline {
            self.install = None;
            self.download = None;
            self.fail(format!("the download did not finish within {deadline} ms"));
        } else if self.since_persist > 0 && self.record.state == AgentState::Downloading {
            // A host about to stop ticks first: what was verified since the last record is
            // recorded, and not fetched again.
            self.save_download_state();
            self.persist();
        }
    }

    /// The control plane cancelled the update: before the swap it fails at once; after it,
    /// the previous version is restored. Nothing to do when idle or already ending.
    fn cancel(&mut self) {
        match self.record.state {
            AgentState::Assigned
            | AgentState::Downloading
            | AgentState::Installed
            | AgentState::Swapped
            | AgentState::Probing => {
                self.install = None;
                self.download = None;
                self.fail("cancelled by the control plane".into());
            }
            _ => {}
        }
    }

    fn save_download_state(&mut self) {
        let state = self.download.as_ref().map(Download::state);
        if let Some(u) = self.record.update.as_mut() {
            u.download = state;
        }
    }

    /// Installs what can be installed; finishes the install when everything is in.
    fn advance(&mut self, now: UnixMs, io: &mut dyn DeviceIo) -> Result<(), DownloadError> {
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
    fn after_install_error(&mut self, e: DownloadError) -> AgentError {
        if let DownloadError::StoredChunkCorrupt { index } = e {
            self.refetch(index);
        } else {
            self.install = None;
            self.download = None;
            self.fail(format!("install failed: {e}"));
        }
        e.into()
    }

    fn swap(&mut self, now: UnixMs) {
        if let Some(u) = self.record.update.as_mut() {
            u.swapped = true;
            u.progress = ProbeProgress {
                swapped_at: now,
                ..ProbeProgress::default()
            };
        }
        self.set(AgentState::Swapped);
        self.push_swap();
    }

    /// What the update installs, as a slot's label; `None` without an update.
    fn update_content(&self) -> Option<SlotContent> {
        self.record.update.as_ref().map(|u| SlotContent {
            name: u.name.clone(),
            version: u.version.clone(),
        })
    }

    fn push_swap(&mut self) {
        if let Some(to) = self.update_content() {
            self.outputs.push_back(Output::Swap { to });
        }
    }

    fn push_restore(&mut self) {
        if let Some(from) = self.update_content() {
            self.outputs.push_back(Output::RestorePrevious { from });
        }
    }

    fn swapped(&mut self, now: UnixMs) -> Result<(), AgentError> {
        if self.record.state != AgentState::Swapped {
            return Err(AgentError::WrongState {
                state: self.record.state,
                input: "a swap",
            });
        }
        // `swapped_at` stays the instant the swap was asked for (persisted before it): the new
        // version may have run, and written its readiness file, long before the agent hears of
        // the swap (after a reboot, say), and must not be judged older than the swap.
        // The probe's initial delay and deadline count from now, when the new version runs:
        // a reboot between the swap and now (a block device's switch) takes none of them. A
        // clock behind the swap's instant (a device without a real-time clock, before NTP)
        // counts from the swap instead: the probe waits for the clock to be set right, which
        // the daemon notices within a second, rather than counting from a time NTP will step
        // far forward.
        if let Some(u) = self.record.update.as_mut() {
            u.boot_attempts = u.boot_attempts.max(1);
            u.progress.probing_since = Some(now.max(u.progress.swapped_at));
        }
        self.set(AgentState::Probing);
        self.tick(now);
        Ok(())
    }

    fn tick(&mut self, now: UnixMs) {
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
                // A probe may not outlast the policy's deadline.
                let left = (u.progress.started() + self.config.policy.deadline_ms)
                    .get()
                    .saturating_sub(now.get())
                    .max(1);
                let out = Output::Probe {
                    spec: u.probe.clone().with_timeout_at_most(left),
                    swapped_at: u.progress.swapped_at,
                };
                self.probe_in_flight = true;
                self.outputs.push_back(out);
            }
            Decision::Healthy => self.commit(),
            Decision::Unhealthy { reason } => self.fail(reason),
        }
    }

    fn probe_result(&mut self, result: ProbeResult, now: UnixMs) -> Result<(), AgentError> {
        if self.record.state != AgentState::Probing || !self.probe_in_flight {
            return Err(AgentError::WrongState {
                state: self.record.state,
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
                // A rollback may go back to what ran before this upgrade, no further.
                match &u.previous {
                    Some(prev) => {
                        self.record
                            .rollback_floor
                            .insert(name.clone(), prev.clone());
                    }
                    None => {
                        self.record.rollback_floor.remove(&name);
                    }
                }
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
    fn fail(&mut self, reason: String) {
        let swapped = self.record.update.as_ref().is_some_and(|u| u.swapped);
        if let Some(u) = self.record.update.as_mut() {
            u.failure = Some(reason.clone());
        }
        self.probe_in_flight = false;
        self.set(AgentState::Failed);
        if swapped {
            self.set(AgentState::RollingBack);
            self.push_restore();
        } else {
            self.report(ReportStatus::Failure, Some(reason));
            self.finish_update();
        }
    }

    fn restored(&mut self) -> Result<(), AgentError> {
        if self.record.state != AgentState::RollingBack {
            return Err(AgentError::WrongState {
                state: self.record.state,
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
    fn resume(&mut self, package: Option<VerifiedPackage>, now: UnixMs, io: &mut dyn DeviceIo) {
        let state = self.record.state;
        if self.record.check().is_err() {
            self.record.state = AgentState::Idle;
            self.persist();
            return;
        }
        match state {
            AgentState::Idle => {}
            AgentState::Assigned | AgentState::Downloading => {
                // A record from before the deadline was kept: it counts from now.
                if let Some(u) = self.record.update.as_mut()
                    && u.assigned_at.is_none()
                {
                    u.assigned_at = Some(now);
                }
                let Some(assignment) = self.record.update.as_ref().map(|u| u.assignment.clone())
                else {
                    return;
                };
                match self.verify(&assignment, package) {
                    Ok(v) => {
                        self.verified = Some(v);
                        if state == AgentState::Assigned {
                            // The record said "assigned" before its in-progress report was
                            // carried out, and the power may have gone in between: say it
                            // again (a host's outbox keeps one of two equal reports in a row,
                            // and the rollout records one it has already taken as late).
                            self.report(ReportStatus::InProgress, None);
                        }
                        let saved = self.record.update.as_ref().and_then(|u| u.download.clone());
                        self.start_download(saved, now, io);
                    }
                    Err(rejection) => self.fail(rejection.to_string()),
                }
            }
            AgentState::Installed => self.swap(now),
            AgentState::Swapped => self.push_swap(),
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
                    self.fail(format!(
                        "the new version did not stay up through {max} boot(s)"
                    ));
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
                self.fail(reason);
            }
            AgentState::RollingBack => self.push_restore(),
            AgentState::Restored => {
                let reason = self.record.update.as_ref().and_then(|u| u.failure.clone());
                self.report(ReportStatus::Failure, reason);
                self.finish_update();
            }
        }
    }
}
