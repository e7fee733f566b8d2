//! What devices say and do: reports, joining the target and leaving it.

use super::cohort::order_key;
use super::devices::{Slot, WARM};
use super::input::{BatchedReport, ReportBatch};
use super::judge::first_reason;
use super::{
    DeviceState, Effect, Placement, RetryKind, Rollout, RolloutCommand, RolloutError, RolloutState,
};
use crate::name::Name;
use crate::plan::FailureKind;
use crate::profile::DeviceProfile;
use crate::report::{DeviceReport, ReportStatus};
use crate::time::UnixMs;
use crate::version::Version;

/// A report as the checks read it, borrowed: from a [`DeviceReport`], or from a batch's
/// [`BatchedReport`] and the batch's rollout, without building a report of its own for each.
#[derive(Clone, Copy)]
struct Said<'a> {
    device_id: &'a Name,
    rollout_id: Option<&'a Name>,
    status: ReportStatus,
    firmware_version: Option<&'a Version>,
    reason: Option<&'a str>,
}

impl<'a> From<&'a DeviceReport> for Said<'a> {
    fn from(r: &'a DeviceReport) -> Said<'a> {
        Said {
            device_id: &r.device_id,
            rollout_id: r.rollout_id.as_ref(),
            status: r.status,
            firmware_version: r.firmware_version.as_ref(),
            reason: r.reason.as_deref(),
        }
    }
}

impl<'a> Said<'a> {
    /// What [`BatchedReport::report`] would say, naming `rollout_id`.
    fn batched(r: &'a BatchedReport, rollout_id: &'a Name) -> Said<'a> {
        Said {
            device_id: &r.device_id,
            rollout_id: Some(rollout_id),
            status: r.status,
            firmware_version: r.firmware_version.as_ref(),
            reason: r.reason.as_deref(),
        }
    }
}

impl Rollout {
    /// A device's report on `attempt` (`None`: the first of its current command): it must
    /// name this rollout, the version of the package the device was last sent (a success must
    /// name it), and the device's current attempt ([`Rollout::check_report`]).
    pub(super) fn report(
        &mut self,
        r: &DeviceReport,
        attempt: Option<u32>,
        now: UnixMs,
    ) -> Result<(), RolloutError> {
        let i = self.check_report(r, attempt)?;
        self.take_report(i, Said::from(r), now);
        Ok(())
    }

    /// Device `i`'s report, checked ([`Rollout::check_report`]): what it changes.
    fn take_report(&mut self, i: u32, r: Said<'_>, now: UnixMs) {
        let s = *self.slot(i);
        let device_id = r.device_id.clone();
        let state = self.s.state;
        let over = state.is_over();
        let wave = usize::from(s.wave);
        let t = self.s.spec.timeouts;
        match (s.state, r.status) {
            (DeviceState::Sent, ReportStatus::InProgress) if !over => {
                self.slot_mut(i).set(Slot::STARTED, true);
                self.set(i, DeviceState::InProgress);
                self.set_timer(i, now + t.in_progress_ms);
                self.effect(Effect::DeviceInProgress { device_id });
            }
            (DeviceState::RollbackSent, ReportStatus::InProgress) if !over => {
                let slot = self.slot_mut(i);
                slot.set(Slot::STARTED, true);
                slot.first_sent = now;
                self.set_timer(i, now + t.in_progress_ms);
                self.effect(Effect::DeviceRollingBack { device_id });
            }
            (DeviceState::Sent | DeviceState::InProgress, ReportStatus::Success) => {
                self.updated(i, r, now);
            }
            // A device whose command was cancelled while out (or held, by a pause) may have
            // finished anyway: it runs what it says, so it counts (and an `updated_only`
            // rollback reaches it).
            (DeviceState::Cancelled | DeviceState::Scheduled, ReportStatus::Success)
                if s.has(Slot::STOPPED) && state != RolloutState::Completed =>
            {
                self.slot_mut(i).set(Slot::STOPPED, false);
                if s.has(Slot::ROLLBACK) {
                    self.set(i, DeviceState::RolledBack);
                    self.effect(Effect::DeviceRolledBack { device_id });
                } else {
                    self.updated(i, r, now);
                }
            }
            // Waiting for a retry after a timeout, the device finished an earlier attempt after
            // all (only such a success gets here: the retry was not sent).
            (DeviceState::Scheduled, ReportStatus::Success)
                if !over && !s.has(Slot::ROLLBACK) && s.only_timed_out() =>
            {
                self.updated(i, r, now);
            }
            (DeviceState::Sent | DeviceState::InProgress, ReportStatus::Failure) => {
                if !self.retry(i, RetryKind::Failed, now) {
                    self.clear_timer(i);
                    self.set(i, DeviceState::Failed);
                    self.count(i, Some(FailureKind::Failed));
                    if r.firmware_version.is_none() {
                        self.s.fleet_impact = self.s.fleet_impact.saturating_add(1);
                    }
                    self.effect(Effect::DeviceFailed {
                        device_id,
                        reason: r.reason.map(str::to_owned),
                    });
                    self.check_halt(wave, now);
                    self.after_final(i);
                }
            }
            (DeviceState::Sent | DeviceState::InProgress, ReportStatus::Rejected) => {
                self.clear_timer(i);
                self.set(i, DeviceState::Rejected);
                self.count(i, Some(FailureKind::Rejected));
                self.effect(Effect::DeviceRejected {
                    device_id,
                    reason: r.reason.map(str::to_owned),
                });
                self.check_halt(wave, now);
                self.after_final(i);
            }
            (DeviceState::RollbackSent, ReportStatus::Success) => {
                self.clear_timer(i);
                self.set(i, DeviceState::RolledBack);
                self.effect(Effect::DeviceRolledBack { device_id });
            }
            (DeviceState::RollbackSent, ReportStatus::Failure | ReportStatus::Rejected) => {
                self.clear_timer(i);
                self.set(i, DeviceState::RollbackFailed);
                self.effect(Effect::DeviceRollbackFailed { device_id });
            }
            (state, status) => {
                self.effect(Effect::LateReport {
                    device_id,
                    status,
                    state,
                });
            }
        }
    }

    /// A batch of reports, in order, as one step: refused whole when it names another rollout
    /// or a device the rollout does not hold; otherwise each report is taken, or refused and
    /// its refusal recorded. The devices that started installing or took the update are
    /// recorded together ([`Effect::DevicesInProgress`], [`Effect::DevicesUpdated`]).
    /// What became of each report, in order.
    pub(super) fn reports(
        &mut self,
        b: &ReportBatch,
        now: UnixMs,
    ) -> Result<Vec<Result<(), RolloutError>>, RolloutError> {
        if b.rollout_id != self.s.rollout_id {
            return Err(RolloutError::WrongRollout {
                expected: self.s.rollout_id.clone(),
                found: b.rollout_id.clone(),
            });
        }
        // Every device is found here, in order, before any report is taken: the batch is
        // refused whole when one is unknown. A group's lookups are made once first, keeping
        // nothing ([`ById::warm`]): a batch's devices are spread over the whole fleet.
        let mut at = Vec::with_capacity(b.reports.len());
        for group in b.reports.chunks(WARM) {
            let keys = group.iter().map(|r| r.device_id.as_str());
            self.ix.by_id.warm(&self.s.devices.ids, keys);
            for r in group {
                match self.index_of(r.device_id.as_str()) {
                    Some(i) => at.push(i),
                    None => {
                        return Err(RolloutError::UnknownDevice {
                            device_id: r.device_id.clone(),
                        });
                    }
                }
            }
        }
        let start = self.step.effects.len();
        let mut each = Vec::with_capacity(b.reports.len());
        for (k, (item, &i)) in b.reports.iter().zip(&at).enumerate() {
            // Their slots, a group at a time ([`Rollout::warm`]).
            if k % WARM == 0 {
                self.warm(at[k..].iter().take(WARM).copied());
            }
            let r = Said::batched(item, &b.rollout_id);
            let result = self
                .check_at(i, r, item.attempt)
                .map(|()| self.take_report(i, r, now));
            // Every device is known and the rollout named: each refusal is one the trail
            // records.
            if let Err(e) = &result {
                self.refused(&item.device_id, e);
            }
            each.push(result);
        }
        // The routine outcomes, grouped: the devices in progress, then those updated, by
        // version in order of first appearance; every other effect after them, in order.
        let mut in_progress = Vec::new();
        let mut updated: Vec<(Option<Version>, Vec<Name>)> = Vec::new();
        let mut rest = Vec::new();
        for e in self.step.effects.drain(start..) {
            match e {
                Effect::DeviceInProgress { device_id } => in_progress.push(device_id),
                Effect::DeviceUpdated { device_id, version } => {
                    match updated.iter_mut().find(|(v, _)| *v == version) {
                        Some((_, d)) => d.push(device_id),
                        None => updated.push((version, vec![device_id])),
                    }
                }
                e => rest.push(e),
            }
        }
        if !in_progress.is_empty() {
            self.effect(Effect::DevicesInProgress {
                devices: in_progress,
            });
        }
        for (version, devices) in updated {
            self.effect(Effect::DevicesUpdated { version, devices });
        }
        self.step.effects.extend(rest);
        Ok(each)
    }

    /// Whether a report on `attempt` (`None`: the first of the device's current command) is
    /// one this rollout takes: it names this rollout, one of its devices, the version of the
    /// package the device was last sent (a success must name it) and the device's current
    /// attempt. The device's index.
    pub(super) fn check_report(
        &self,
        r: &DeviceReport,
        attempt: Option<u32>,
    ) -> Result<u32, RolloutError> {
        let found = r.rollout_id.as_ref();
        if let Some(found) = found.filter(|id| **id != self.s.rollout_id) {
            return Err(RolloutError::WrongRollout {
                expected: self.s.rollout_id.clone(),
                found: found.clone(),
            });
        }
        let Some(i) = self.ix.by_id.get(&self.s.devices.ids, r.device_id.as_str()) else {
            return Err(RolloutError::UnknownDevice {
                device_id: r.device_id.clone(),
            });
        };
        let attempt = attempt.unwrap_or_else(|| self.first_attempt_of(i));
        self.check_at(i, Said::from(r), attempt)?;
        Ok(i)
    }

    /// [`Rollout::check_report`] once the report's device is found: device `i`.
    fn check_at(&self, i: u32, r: Said<'_>, attempt: u32) -> Result<(), RolloutError> {
        if r.rollout_id.is_none() {
            return Err(RolloutError::ReportWithoutRollout {
                device_id: r.device_id.clone(),
                expected: self.s.rollout_id.clone(),
            });
        }
        if r.status == ReportStatus::Success {
            let expected = if self.slot(i).has(Slot::ROLLBACK) {
                self.rollback.as_ref().map(|p| &p.package().version)
            } else {
                Some(&self.package.package().version)
            };
            match (expected, r.firmware_version) {
                (Some(expected), Some(found)) if expected != found => {
                    return Err(RolloutError::WrongVersion {
                        device_id: r.device_id.clone(),
                        expected: expected.clone(),
                        found: found.clone(),
                    });
                }
                (Some(expected), None) => {
                    return Err(RolloutError::SuccessWithoutVersion {
                        device_id: r.device_id.clone(),
                        expected: expected.clone(),
                    });
                }
                _ => {}
            }
        }
        let current = self.current_attempt(i);
        // A success on an earlier attempt of the update, when every earlier attempt ended in
        // a timeout (none was reported failed), is taken: the device finished it after all, and
        // runs the version it names (checked above). Any other report on another attempt
        // counts for nothing: a success on an attempt reported failed is a replay.
        let s = self.slot(i);
        let earlier_success = r.status == ReportStatus::Success
            && !s.has(Slot::ROLLBACK)
            && s.only_timed_out()
            && (1..current).contains(&attempt);
        if attempt != current && !earlier_success {
            return Err(RolloutError::StaleAttempt {
                device_id: r.device_id.clone(),
                reported: attempt,
                current,
            });
        }
        Ok(())
    }

    /// The attempt of device `i`'s current command: for an update 1, plus the retries after
    /// failures and timeouts; for a rollback (never retried, and sent once the update's
    /// attempts are over) one more than the update's last, so that a late report of the
    /// update is not taken for the rollback's.
    pub(super) fn current_attempt(&self, i: u32) -> u32 {
        let s = self.slot(i);
        let update = 1 + u32::from(s.retries.failed) + u32::from(s.retries.timed_out);
        update + u32::from(s.has(Slot::ROLLBACK))
    }

    /// The first attempt of device `i`'s current command, what a report naming none is about:
    /// 1 for the update, the rollback's own for a rollback.
    pub(super) fn first_attempt_of(&self, i: u32) -> u32 {
        if self.slot(i).has(Slot::ROLLBACK) {
            self.current_attempt(i)
        } else {
            1
        }
    }

    /// A device reported that it runs the new version.
    fn updated(&mut self, i: u32, r: Said<'_>, now: UnixMs) {
        let wave = usize::from(self.slot(i).wave);
        self.slot_mut(i).set(Slot::UPDATED, true);
        self.clear_timer(i);
        self.set(i, DeviceState::Succeeded);
        self.count(i, None);
        self.effect(Effect::DeviceUpdated {
            device_id: r.device_id.clone(),
            version: r.firmware_version.cloned(),
        });
        // A success can bring the scope to `min_terminal` with failures already in it.
        self.check_halt(wave, now);
        self.after_final(i);
    }

    pub(super) fn join(&mut self, p: &DeviceProfile) -> Result<(), RolloutError> {
        let target = self.ix.target.as_ref().ok_or(RolloutError::NoTarget)?;
        let device_id = p.device_id.clone();
        if !target.contains(p) {
            return Err(RolloutError::NotInTarget { device_id });
        }
        let i = match self.ix.by_id.get(&self.s.devices.ids, device_id.as_str()) {
            Some(i) if self.slot(i).state != DeviceState::Removed => {
                self.effect(Effect::DeviceJoined {
                    device_id,
                    placed: Placement::AlreadyMember,
                });
                return Ok(());
            }
            Some(i) => i,
            None => {
                let i = self
                    .s
                    .devices
                    .push(device_id.as_str(), Slot::new(DeviceState::Removed))?;
                self.ix.by_id.insert(&self.s.devices.ids, i);
                self.ix.counts[DeviceState::Removed as usize] += 1;
                self.ix.wave_counts[0][DeviceState::Removed as usize] += 1;
                i
            }
        };
        let pkg = self.package.package();
        let placed = if let Some(reason) = first_reason(pkg, p) {
            self.slot_mut(i).reason = Some(reason);
            self.set(i, DeviceState::Incompatible);
            Placement::Incompatible { reason }
        } else if p.installed.get(&pkg.name) == Some(&pkg.version) {
            self.set(i, DeviceState::AlreadyInstalled);
            Placement::AlreadyInstalled
        } else if !matches!(self.s.state, RolloutState::Active | RolloutState::Paused) {
            self.set(i, DeviceState::Cancelled);
            Placement::Cancelled {
                rollout: self.s.state,
            }
        } else {
            let salt = self
                .s
                .spec
                .salt
                .clone()
                .unwrap_or_else(|| self.s.rollout_id.to_string());
            let key = order_key(&salt, device_id.as_str());
            let last = self.s.bounds.len() - 1;
            let wave = self.s.bounds.iter().position(|b| key <= *b).unwrap_or(last);
            // A device of a wave not yet opened is on that wave's list, and only there (the
            // restore checks it): whether it is listed is known without reading the list.
            // One that left such a wave leaves its list too: it goes out with the wave it
            // joins, not with the one it left (another stratum's bound may place it earlier).
            let left = usize::from(self.slot(i).wave);
            let listed = left > self.s.open_wave;
            if listed && left != wave {
                self.s.members[left].retain(|&j| j != i);
            }
            // Waves are at most MAX_WAVES, within a byte.
            self.place(i, wave as u8);
            if wave > self.s.open_wave && !(listed && left == wave) {
                self.s.members[wave].push(i);
            }
            self.set(i, DeviceState::Pending);
            let scheduled = wave <= self.s.open_wave;
            if scheduled {
                self.schedule(i);
            }
            Placement::Wave { wave, scheduled }
        };
        self.effect(Effect::DeviceJoined { device_id, placed });
        Ok(())
    }

    pub(super) fn leave(&mut self, device_id: &Name, now: UnixMs) -> Result<(), RolloutError> {
        let Some(i) = self.ix.by_id.get(&self.s.devices.ids, device_id.as_str()) else {
            return Err(RolloutError::UnknownDevice {
                device_id: device_id.clone(),
            });
        };
        let st = self.slot(i).state;
        if st == DeviceState::Removed {
            return Ok(());
        }
        if st.in_flight() {
            self.command(RolloutCommand::Cancel {
                device_id: device_id.clone(),
                forced: false,
            });
        }
        self.clear_timer(i);
        self.set(i, DeviceState::Removed);
        self.effect(Effect::DeviceLeft {
            device_id: device_id.clone(),
        });
        // One device fewer in scope: the failures so far may now be over the threshold.
        if matches!(
            st,
            DeviceState::Incompatible | DeviceState::AlreadyInstalled
        ) {
            return Ok(());
        }
        let wave = usize::from(self.slot(i).wave);
        self.check_halt(wave, now);
        Ok(())
    }
}
