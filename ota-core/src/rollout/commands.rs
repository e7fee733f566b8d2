//! Operator commands — pause, resume, abort, rollback, approve — and external verdicts, with
//! what each does to the devices in flight.

use super::devices::Slot;
use super::waves::HaltReason;
use super::{
    DeviceState, Effect, Event, Input, Rollout, RolloutCommand, RolloutError, RolloutState,
};
use crate::plan::{InFlight, RollbackScope};
use crate::time::UnixMs;

impl Rollout {
    pub(super) fn operator_pause(
        &mut self,
        input: &Input,
        now: UnixMs,
    ) -> Result<(), RolloutError> {
        match self.s.state {
            RolloutState::Active => {
                self.pause(now);
                Ok(())
            }
            RolloutState::Paused => Ok(()),
            _ => Err(self.refuse(input)),
        }
    }

    pub(super) fn operator_resume(
        &mut self,
        input: &Input,
        now: UnixMs,
    ) -> Result<(), RolloutError> {
        if self.s.state != RolloutState::Paused {
            return Err(self.refuse(input));
        }
        self.s.state = RolloutState::Active;
        // Held devices go out again, in their order.
        self.s.ready = (0..self.s.devices.len() as u32)
            .filter(|i| self.slot(*i).state == DeviceState::Scheduled)
            .collect();
        self.effect(Effect::Resumed);
        self.event(Event::Resumed);
        // The failures acknowledged are those seen when it paused: those reported while it
        // was paused (in-flight devices finishing) are judged now, and may halt it again.
        for k in 0..=self.s.open_wave {
            self.check_halt(k, now);
        }
        // So is a failing verdict given while it was paused (kept for the next resume if the
        // failures halted it again).
        let k = self.s.open_wave;
        if self.s.state == RolloutState::Active
            && std::mem::take(&mut self.s.waves[k].failed_while_paused)
        {
            self.trip(HaltReason::ExternalVerdict { wave: k }, now);
        }
        Ok(())
    }

    pub(super) fn operator_abort(
        &mut self,
        input: &Input,
        now: UnixMs,
    ) -> Result<(), RolloutError> {
        match self.s.state {
            RolloutState::Active | RolloutState::Paused | RolloutState::RollingBack => {
                self.abort(now);
                Ok(())
            }
            _ => Err(self.refuse(input)),
        }
    }

    pub(super) fn operator_rollback(
        &mut self,
        input: &Input,
        now: UnixMs,
    ) -> Result<(), RolloutError> {
        match self.s.state {
            RolloutState::Active | RolloutState::Paused if self.rollback.is_some() => {
                self.start_rollback(now);
                Ok(())
            }
            RolloutState::Active | RolloutState::Paused => Err(RolloutError::NoRollbackPackage),
            _ => Err(self.refuse(input)),
        }
    }

    pub(super) fn approve(&mut self, input: &Input, wave: usize) -> Result<(), RolloutError> {
        if !matches!(self.s.state, RolloutState::Active | RolloutState::Paused) {
            return Err(self.refuse(input));
        }
        if wave >= self.s.waves.len() {
            return Err(RolloutError::UnknownWave { wave });
        }
        let next = self.s.open_wave + 1;
        if wave != next {
            return Err(RolloutError::NotNextWave { wave, next });
        }
        self.s.waves[wave].approved = true;
        self.effect(Effect::Approved { wave });
        self.event(Event::Approved { wave });
        Ok(())
    }

    /// An external verdict on `wave`. Before the wave opens it is the wave's gate; once the
    /// wave is open its verdict stays as it opened it, and a failing verdict on the wave in
    /// progress is a monitor saying it is bad: the halt action.
    pub(super) fn verdict(
        &mut self,
        wave: usize,
        pass: bool,
        now: UnixMs,
    ) -> Result<(), RolloutError> {
        let w = self
            .s
            .waves
            .get_mut(wave)
            .ok_or(RolloutError::UnknownWave { wave })?;
        let open = w.opened_at.is_some();
        if !open {
            w.verdict = Some(pass);
        }
        self.effect(Effect::Verdict { wave, pass, open });
        self.event(Event::Verdict { wave, pass });
        if open && !pass && wave == self.s.open_wave {
            match self.s.state {
                RolloutState::Active => self.trip(HaltReason::ExternalVerdict { wave }, now),
                // Judged on resume, like the failures reported while it was paused.
                RolloutState::Paused => self.s.waves[wave].failed_while_paused = true,
                _ => {}
            }
        }
        Ok(())
    }

    /// Applies the in-flight policy to the devices with a command out: `finish` leaves them;
    /// `soft_cancel` stops those that have not started installing (`sent`, and `rollback_sent`
    /// before the device said it started); `forced_cancel` stops them all. A stopped device
    /// is held (`scheduled`, sent again on resume) when `hold`, else `cancelled`.
    fn stop_in_flight(&mut self, hold: bool) {
        let forced = match self.s.spec.in_flight {
            InFlight::Finish => return,
            InFlight::SoftCancel => false,
            InFlight::ForcedCancel => true,
        };
        let mut n = 0;
        for i in 0..self.s.devices.len() as u32 {
            let s = self.slot(i);
            let stop = match s.state {
                DeviceState::Sent => true,
                DeviceState::InProgress => forced,
                DeviceState::RollbackSent => forced || !s.has(Slot::STARTED),
                _ => false,
            };
            if !stop {
                continue;
            }
            n += 1;
            self.command(RolloutCommand::Cancel {
                device_id: self.device_id(i),
                forced,
            });
            self.clear_timer(i);
            let to = if hold && !self.slot(i).has(Slot::ROLLBACK) {
                DeviceState::Scheduled
            } else {
                DeviceState::Cancelled
            };
            // Held or cancelled, it was stopped while out: it may have finished anyway.
            self.slot_mut(i).set(Slot::STOPPED, true);
            self.set(i, to);
        }
        if n > 0 {
            self.effect(Effect::Cancelled { devices: n, forced });
        }
    }

    pub(super) fn pause(&mut self, _now: UnixMs) {
        self.s.state = RolloutState::Paused;
        // What the operator will acknowledge by resuming: the outcomes seen now, among them
        // the failures that tripped the halt; not those reported while paused.
        self.s.cumulative_acknowledged = self.s.cumulative;
        for w in &mut self.s.waves {
            w.acknowledged = w.counts;
        }
        self.effect(Effect::Paused);
        self.event(Event::Paused {
            reason: self.s.halt.clone(),
        });
        self.stop_in_flight(true);
    }

    pub(super) fn abort(&mut self, _now: UnixMs) {
        self.s.state = RolloutState::Aborted;
        self.s.ready.clear();
        for i in 0..self.s.devices.len() as u32 {
            if matches!(
                self.slot(i).state,
                DeviceState::Pending | DeviceState::Scheduled | DeviceState::RollbackScheduled
            ) {
                self.cancel_waiting(i);
            }
        }
        self.stop_in_flight(false);
        self.effect(Effect::Aborted);
        self.event(Event::Aborted);
    }

    /// Cancels device `i`, which waits to be sent (its first command, or a retry). One whose
    /// earlier attempts timed out may still finish one of them: like a command cancelled while
    /// out, its success then counts (and a rollback reaches it).
    fn cancel_waiting(&mut self, i: u32) {
        let s = self.slot(i);
        let running = s.state == DeviceState::Scheduled && s.only_timed_out();
        self.clear_timer(i);
        self.set(i, DeviceState::Cancelled);
        if running {
            self.slot_mut(i).set(Slot::STOPPED, true);
        }
    }

    pub(super) fn start_rollback(&mut self, _now: UnixMs) {
        self.s.state = RolloutState::RollingBack;
        self.s.ready.clear();
        let all = self.s.spec.rollback_scope == RollbackScope::All;
        for i in 0..self.s.devices.len() as u32 {
            let take = match self.slot(i).state {
                DeviceState::Pending | DeviceState::Scheduled => {
                    if !all {
                        self.cancel_waiting(i);
                    }
                    all
                }
                DeviceState::Succeeded
                | DeviceState::Failed
                | DeviceState::TimedOut
                | DeviceState::Rejected => self.in_rollback_scope(i),
                _ => false,
            };
            if take {
                self.clear_timer(i);
                self.set(i, DeviceState::RollbackScheduled);
                self.s.ready.push_back(i);
            }
        }
        self.stop_in_flight(false);
        let devices = self.ix.counts[DeviceState::RollbackScheduled as usize];
        if let Some(p) = &self.rollback {
            let package_id = p.id().clone();
            self.effect(Effect::RollingBack {
                package_id,
                devices,
            });
        }
        self.event(Event::RollingBack { devices });
    }
}
