//! Dispatch: sending what is ready within the pacing limits and time windows, and the device
//! timers (acknowledgement, in-progress, offline expiry, retry backoff), and what becomes of a
//! device after a failure (a retry, or the rollback when one is under way).

use std::collections::VecDeque;

use super::devices::{Slot, WARM};
use super::{DeviceState, Effect, RetryKind, Rollout, RolloutCommand, RolloutState};
use crate::plan::{FailureKind, RollbackScope};
use crate::sign::PackageId;
use crate::time::UnixMs;

/// The pacing window.
const MINUTE_MS: u64 = 60_000;

impl Rollout {
    /// Dispatches what may go out, opens waves whose gates allow, and completes.
    pub(super) fn settle(&mut self, now: UnixMs) {
        self.seen = now;
        self.dispatch(now);
        self.advance(now);
        self.dispatch(now);
        self.finish_rollback();
    }

    fn dispatch(&mut self, now: UnixMs) {
        let rolling = self.s.state == RolloutState::RollingBack;
        if !(self.s.state == RolloutState::Active || rolling) || !self.s.spec.window.allows(now) {
            return;
        }
        let wanted = if rolling {
            DeviceState::RollbackScheduled
        } else {
            DeviceState::Scheduled
        };
        // The devices about to be sent are read in groups first ([`Rollout::warm`]): a wave's
        // devices are spread over the whole fleet. Only once one may go, and no more than
        // the in-flight cap lets go (a per-minute rate may still send fewer).
        let mut ahead = 0;
        while let Some(&i) = self.s.ready.front() {
            let s = self.slot(i);
            if s.state != wanted || s.timer > now {
                self.s.ready.pop_front();
                self.step.touched = true;
                continue;
            }
            if self
                .s
                .spec
                .pacing
                .max_in_flight
                .is_some_and(|m| self.ix.in_flight >= m)
            {
                return;
            }
            if self.take_rate(now).is_err() {
                return;
            }
            if ahead == 0 {
                let room = self.s.spec.pacing.max_in_flight.map_or(WARM as u64, |m| {
                    m.saturating_sub(self.ix.in_flight).min(WARM as u64)
                });
                ahead = usize::try_from(room).unwrap_or(WARM).max(1);
                self.warm(self.s.ready.iter().take(ahead).copied());
            }
            ahead -= 1;
            self.s.ready.pop_front();
            self.send(i, now, rolling);
        }
        // All sent: a burst's queue gives its memory back.
        if self.s.ready.capacity() > 1024 {
            self.s.ready = VecDeque::new();
        }
    }

    /// Takes one send from the per-minute budget; when there is none left, says when the
    /// oldest send of the window leaves it.
    fn take_rate(&mut self, now: UnixMs) -> Result<(), UnixMs> {
        let Some(limit) = self.s.spec.pacing.limit_per_minute(self.s.started_at, now) else {
            return Ok(());
        };
        // The sends of the minute up to now; older ones are dropped only when one is added,
        // so a refused send changes nothing.
        let sends = &mut self.s.sends;
        let recent = sends
            .iter()
            .rev()
            .take_while(|t| **t + MINUTE_MS > now)
            .count();
        if recent as u64 >= limit {
            return Err(sends[sends.len() - recent] + MINUTE_MS);
        }
        while sends.front().is_some_and(|t| *t + MINUTE_MS <= now) {
            sends.pop_front();
        }
        sends.push_back(now);
        Ok(())
    }

    fn package_for(&self, rolling: bool) -> Option<PackageId> {
        if rolling {
            self.rollback.as_ref().map(|p| p.id().clone())
        } else {
            Some(self.package.id().clone())
        }
    }

    fn send(&mut self, i: u32, now: UnixMs, rolling: bool) {
        let Some(package_id) = self.package_for(rolling) else {
            return;
        };
        self.set(
            i,
            if rolling {
                DeviceState::RollbackSent
            } else {
                DeviceState::Sent
            },
        );
        let deadline = now + self.s.spec.timeouts.ack_ms;
        let s = self.slot_mut(i);
        if s.first_sent == UnixMs::ZERO || rolling {
            s.first_sent = now;
        }
        s.set(Slot::ROLLBACK, rolling);
        s.set(Slot::STARTED, false);
        s.set(Slot::STOPPED, false);
        self.set_timer(i, deadline);
        self.step.sent += 1;
        self.command(RolloutCommand::Send {
            device_id: self.device_id(i),
            package_id,
            rollback: rolling,
        });
    }

    /// Fires every timer due at `now`.
    pub(super) fn fire_timers(&mut self, now: UnixMs) {
        loop {
            let slots = &self.s.devices.slots;
            let Some(i) = self.ix.timers.pop_due(now, |j| slots[j as usize].timer) else {
                break;
            };
            self.fire(i, now);
        }
    }

    fn fire(&mut self, i: u32, now: UnixMs) {
        self.step.touched = true;
        let s = *self.slot(i);
        let t = self.s.spec.timeouts;
        let device_id = self.device_id(i);
        match s.state {
            DeviceState::Scheduled | DeviceState::RollbackScheduled => {
                // A retry's backoff ended.
                self.clear_timer(i);
                self.s.ready.push_back(i);
            }
            DeviceState::Sent | DeviceState::RollbackSent => {
                let rolling = s.state == DeviceState::RollbackSent;
                let expires = s.first_sent + t.offline_expiry_ms;
                if now >= expires {
                    self.slot_mut(i).set(Slot::OFFLINE, true);
                    self.clear_timer(i);
                    if rolling {
                        self.set(i, DeviceState::RollbackFailed);
                    } else {
                        self.set(i, DeviceState::TimedOut);
                        self.count(i, Some(FailureKind::TimedOut));
                    }
                    self.effect(Effect::DeviceTimedOut {
                        device_id,
                        offline: true,
                    });
                    if !rolling {
                        self.check_halt(usize::from(s.wave), now);
                        self.after_final(i);
                    }
                } else if !(self.s.state == RolloutState::Active
                    || (self.s.state == RolloutState::RollingBack && rolling))
                {
                    // Paused or aborted: nothing goes out, not even a resend; wait on. Rolling
                    // back, a device sent the update and silent since is never sent it again:
                    // it finishes or times out, as the in-flight policy says.
                    self.set_timer(i, (now + t.ack_ms).min(expires));
                } else if s.retries.no_ack < self.s.spec.retries.no_ack.max {
                    // A resend is a send: outside the plan's window it waits until the window
                    // opens (to the offline expiry when it never opens again in time), and it
                    // waits for the per-minute budget like any other.
                    let window = &self.s.spec.window;
                    if !window.allows(now) {
                        let opens = window.next_open(now).unwrap_or(expires);
                        self.set_timer(i, opens.min(expires));
                        return;
                    }
                    if let Err(at) = self.take_rate(now) {
                        self.set_timer(i, at.min(expires).max(now + 1));
                        return;
                    }
                    self.slot_mut(i).retries.no_ack += 1;
                    if let Some(package_id) = self.package_for(rolling) {
                        self.command(RolloutCommand::Send {
                            device_id: device_id.clone(),
                            package_id,
                            rollback: rolling,
                        });
                    }
                    self.set_timer(i, (now + t.ack_ms).min(expires));
                    self.effect(Effect::DeviceResent { device_id });
                } else {
                    self.set_timer(i, expires);
                }
            }
            DeviceState::InProgress => {
                let retried = self.retry(i, RetryKind::TimedOut, now);
                if !retried {
                    self.clear_timer(i);
                    self.set(i, DeviceState::TimedOut);
                    self.count(i, Some(FailureKind::TimedOut));
                    self.effect(Effect::DeviceTimedOut {
                        device_id,
                        offline: false,
                    });
                    self.check_halt(usize::from(s.wave), now);
                    self.after_final(i);
                }
            }
            _ => {}
        }
    }

    /// The next instant a tick has work: a device timer, a soak's end, a paced send.
    pub(super) fn next_timeout(&self) -> Option<UnixMs> {
        let mut next: Option<UnixMs> = self.ix.timers.peek();
        let mut consider = |t: UnixMs| next = Some(next.map_or(t, |n| n.min(t)));
        if self.s.state == RolloutState::Active {
            let k = self.s.open_wave;
            // The soak's end, while it is ahead of the last step: once a step has passed it,
            // the next wave waits on an input (an approval, a verdict, reports), not a tick.
            if let (Some(done), Some(w)) =
                (self.s.waves[k].completed_at, self.ix.waves_spec.get(k + 1))
                && done + w.min_soak_ms > self.seen
            {
                consider(done + w.min_soak_ms);
            }
        }
        if matches!(
            self.s.state,
            RolloutState::Active | RolloutState::RollingBack
        ) && !self.s.ready.is_empty()
        {
            // When the oldest send of the minute leaves the per-minute budget, if that is
            // still ahead: past it, what is ready waits on something else (`max_in_flight`: a
            // device's outcome), which no tick brings.
            if let Some(t) = self.s.sends.front()
                && *t + MINUTE_MS > self.seen
            {
                consider(*t + MINUTE_MS);
            }
            // Closed when last seen: due when it opens. (Open, what is ready waits for the
            // per-minute budget, above, or a resume.)
            if let Some(t) = self.s.spec.window.next_open(self.seen)
                && t > self.seen
            {
                consider(t);
            }
        }
        next
    }
}

// --- Retries and the rollback's reach: what becomes of a device after a failure. -----------

impl Rollout {
    /// Schedules device `i` again after a failure of `kind`, once its backoff (doubling with
    /// each attempt) ends, if retries of that class are left and the rollout goes on (active or
    /// paused). `false` when the failure is final.
    pub(super) fn retry(&mut self, i: u32, kind: RetryKind, now: UnixMs) -> bool {
        let (class, used) = match kind {
            RetryKind::Failed => (self.s.spec.retries.failed, self.slot(i).retries.failed),
            RetryKind::TimedOut => (
                self.s.spec.retries.timed_out,
                self.slot(i).retries.timed_out,
            ),
        };
        let goes_on = matches!(self.s.state, RolloutState::Active | RolloutState::Paused);
        if used >= class.max || !goes_on {
            return false;
        }
        let attempt = used + 1;
        let retries = &mut self.slot_mut(i).retries;
        match kind {
            RetryKind::Failed => retries.failed = attempt,
            RetryKind::TimedOut => retries.timed_out = attempt,
        }
        self.set(i, DeviceState::Scheduled);
        let wait = class.backoff_ms.saturating_mul(1 << used.min(20));
        self.set_timer(i, now + wait.max(1));
        self.effect(Effect::DeviceRetry {
            device_id: self.device_id(i),
            after: kind,
            attempt,
        });
        true
    }

    /// After a device's final update outcome while rolling back: it joins the rollback if it
    /// is in the rollback's scope.
    pub(super) fn after_final(&mut self, i: u32) {
        if self.s.state == RolloutState::RollingBack && self.in_rollback_scope(i) {
            self.set(i, DeviceState::RollbackScheduled);
            self.s.ready.push_back(i);
        }
    }

    /// Whether device `i` is in the rollback's scope (the plan's `rollback_scope`).
    pub(super) fn in_rollback_scope(&self, i: u32) -> bool {
        let s = self.slot(i);
        match self.s.spec.rollback_scope {
            RollbackScope::UpdatedOnly => s.has(Slot::UPDATED),
            RollbackScope::Cohort => {
                usize::from(s.wave) <= self.s.open_wave && s.state != DeviceState::Cancelled
            }
            RollbackScope::All => true,
        }
    }
}
