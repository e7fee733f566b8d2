//! Waves: opening them, their gates (soak, success, approval, external verdict), completion,
//! and the halt rule.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{DeviceState, Effect, Event, Rollout, RolloutState};
use crate::plan::{Denominator, Gate, HaltAction, RolloutSpec, Scope};
use crate::time::UnixMs;

/// The devices the halt rule looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum HaltScope {
    /// One wave (0 is the canary).
    Wave {
        /// The wave.
        wave: usize,
    },
    /// Every wave opened so far.
    Rollout,
}

impl fmt::Display for HaltScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HaltScope::Wave { wave: 0 } => f.write_str("the canary"),
            HaltScope::Wave { wave } => write!(f, "wave {wave}"),
            HaltScope::Rollout => f.write_str("the rollout"),
        }
    }
}

/// What the halt rule counts in its scope, the outcomes set aside when the rollout last paused
/// taken out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HaltCounts {
    /// Devices scheduled in scope (the default denominator).
    pub scheduled: u64,
    /// Devices with a final outcome (the `terminal` denominator; `min_terminal` counts these).
    pub terminal: u64,
    /// Failures, as `count_as_failure` says.
    pub failures: u64,
}

/// Why the halt rule tripped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum HaltReason {
    /// Too many failures in scope.
    Threshold {
        /// Where.
        scope: HaltScope,
        /// The failures.
        failures: u64,
        /// Out of this many devices (the denominator).
        of: u64,
        /// Which devices the denominator counts.
        denominator: Denominator,
        /// The threshold, in percent.
        threshold_percent: f64,
        /// The most failures allowed, if set.
        max_failures: Option<u64>,
    },
    /// A failing external verdict on the wave in progress or the next one.
    ExternalVerdict {
        /// The wave.
        wave: usize,
    },
}

impl fmt::Display for HaltReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HaltReason::Threshold {
                scope,
                failures,
                of,
                denominator,
                threshold_percent,
                max_failures,
            } => {
                let which = match denominator {
                    Denominator::Scheduled => "scheduled",
                    Denominator::Terminal => "terminal",
                };
                let pct = if *of == 0 {
                    100.0
                } else {
                    *failures as f64 * 100.0 / *of as f64
                };
                write!(
                    f,
                    "{failures} of {of} {which} device(s) failed ({pct:.1}%, threshold {threshold_percent}%"
                )?;
                if let Some(m) = max_failures {
                    write!(f, ", at most {m} failures")?;
                }
                write!(f, ") in {scope}")
            }
            HaltReason::ExternalVerdict { wave } => {
                write!(f, "the external verdict on wave {wave} failed")
            }
        }
    }
}

/// Whether the halt rule of `spec` trips for `counts` in `scope`; why, if it does.
///
/// It trips when `failures × 100 > threshold × denominator` (strictly: 10 % trips at 11 %),
/// or when failures exceed `max_failures` — once at least `min_terminal` devices are
/// terminal, or every device in scope when it holds fewer. The denominator is the devices
/// scheduled in scope unless the plan names `terminal`.
pub fn halt_trips(spec: &RolloutSpec, scope: HaltScope, counts: HaltCounts) -> Option<HaltReason> {
    let h = &spec.halt;
    // `min_terminal` outcomes before judging, or every device in scope when there are fewer:
    // a canary smaller than it could otherwise fail whole and never halt.
    let needed = h.min_terminal.min(counts.scheduled.max(counts.terminal));
    if counts.terminal < needed || counts.terminal == 0 {
        return None;
    }
    let of = match h.denominator {
        Denominator::Scheduled => counts.scheduled.max(counts.terminal),
        Denominator::Terminal => counts.terminal,
    };
    let ratio = counts.failures as f64 * 100.0 > spec.failure_threshold_percent * of as f64;
    let count = h.max_failures.is_some_and(|m| counts.failures > m);
    (ratio || count).then_some(HaltReason::Threshold {
        scope,
        failures: counts.failures,
        of,
        denominator: h.denominator,
        threshold_percent: spec.failure_threshold_percent,
        max_failures: h.max_failures,
    })
}

impl Rollout {
    pub(super) fn open(&mut self, k: usize, now: UnixMs) {
        self.s.open_wave = k;
        self.s.waves[k].opened_at = Some(now);
        // An open wave's list is done with: its devices are scheduled from here on.
        let members = std::mem::take(&mut self.s.members[k]);
        let mut n = 0;
        for i in members {
            if self.slot(i).state == DeviceState::Pending {
                self.schedule(i);
                n += 1;
            }
        }
        self.effect(Effect::WaveOpened {
            wave: k,
            devices: n,
        });
        self.event(Event::WaveOpened {
            wave: k,
            devices: n,
        });
    }

    /// Opens the next wave if its gate allows; completes the rollout when everything is done.
    pub(super) fn advance(&mut self, now: UnixMs) {
        loop {
            if self.s.state != RolloutState::Active {
                return;
            }
            let k = self.s.open_wave;
            if self.ix.remaining(k) > 0 {
                return;
            }
            let done = *self.s.waves[k].completed_at.get_or_insert(now);
            let Some(next) = self.ix.waves_spec.get(k + 1).cloned() else {
                // A device that joined an earlier wave after it closed may still be open.
                if (0..k).any(|j| self.ix.remaining(j) > 0) {
                    return;
                }
                return self.complete(now);
            };
            if now < done + next.min_soak_ms {
                return;
            }
            let c = self.s.cumulative;
            let rate = if c.terminal == 0 {
                100.0
            } else {
                c.succeeded as f64 * 100.0 / c.terminal as f64
            };
            let w = &self.s.waves[k + 1];
            let (approved, verdict, announced) = (w.approved, w.verdict, w.announced);
            if rate < next.success_gate_percent && !approved {
                if !announced {
                    self.s.waves[k + 1].announced = true;
                    self.effect(Effect::WaveHeld {
                        wave: k + 1,
                        success_percent: rate,
                        gate_percent: next.success_gate_percent,
                    });
                    self.event(Event::GateBlocked {
                        wave: k + 1,
                        success_percent: rate,
                    });
                }
                return;
            }
            if next.gate == Gate::External && verdict == Some(false) {
                return self.trip(HaltReason::ExternalVerdict { wave: k + 1 }, now);
            }
            let pass = match next.gate {
                Gate::Automatic => true,
                Gate::Approval => approved,
                Gate::External => verdict == Some(true),
            };
            if !pass {
                if !announced {
                    self.s.waves[k + 1].announced = true;
                    self.effect(Effect::WaveWaiting {
                        wave: k + 1,
                        gate: next.gate,
                    });
                    self.event(Event::GateWaiting {
                        wave: k + 1,
                        gate: next.gate,
                    });
                }
                return;
            }
            self.open(k + 1, now);
        }
    }

    fn complete(&mut self, _now: UnixMs) {
        self.s.state = RolloutState::Completed;
        self.s.ready.clear();
        // Every device is terminal: what is left in the heap is stale.
        self.ix.timers.clear();
        self.effect(Effect::Completed);
        let c = self.s.cumulative;
        self.event(Event::Completed {
            succeeded: c.succeeded,
            failures: c.failures,
            rolled_back: 0,
        });
    }

    /// Completes a rollback once every rollback device is terminal.
    pub(super) fn finish_rollback(&mut self) {
        if self.s.state != RolloutState::RollingBack
            || self.ix.counts[DeviceState::RollbackScheduled as usize] > 0
            || self.ix.in_flight > 0
        {
            return;
        }
        self.s.state = RolloutState::Completed;
        self.ix.timers.clear();
        let rolled = self.ix.counts[DeviceState::RolledBack as usize];
        self.effect(Effect::RolledBack { devices: rolled });
        self.event(Event::RolledBack { devices: rolled });
        let c = self.s.cumulative;
        self.event(Event::Completed {
            succeeded: c.succeeded,
            failures: c.failures,
            rolled_back: rolled,
        });
    }

    // --- The halt rule. -------------------------------------------------------------------

    /// What the halt rule counts in the scope of a device of `wave`.
    fn halt_counts(&self, wave: usize) -> (HaltScope, HaltCounts) {
        let (scope, counts, ack, scheduled) = match self.s.spec.halt.scope {
            Scope::Wave => {
                let w = &self.s.waves[wave];
                let devices = self.ix.wave_devices(wave);
                (HaltScope::Wave { wave }, w.counts, w.acknowledged, devices)
            }
            Scope::Cumulative => {
                let devices = (0..=self.s.open_wave)
                    .map(|k| self.ix.wave_devices(k))
                    .sum();
                (
                    HaltScope::Rollout,
                    self.s.cumulative,
                    self.s.cumulative_acknowledged,
                    devices,
                )
            }
        };
        let counts = HaltCounts {
            scheduled: scheduled.saturating_sub(ack.terminal),
            terminal: counts.terminal - ack.terminal,
            failures: counts.failures - ack.failures,
        };
        (scope, counts)
    }

    pub(super) fn check_halt(&mut self, wave: usize, now: UnixMs) {
        if self.s.state != RolloutState::Active {
            return;
        }
        let (scope, counts) = self.halt_counts(wave);
        if let Some(reason) = halt_trips(&self.s.spec, scope, counts) {
            self.trip(reason, now);
        }
    }

    pub(super) fn trip(&mut self, reason: HaltReason, now: UnixMs) {
        self.s.halt = Some(reason.clone());
        self.effect(Effect::HaltTripped {
            reason: reason.clone(),
        });
        self.event(Event::Halted { reason });
        match self.s.spec.halt.action {
            HaltAction::Pause => self.pause(now),
            HaltAction::Abort => self.abort(now),
            HaltAction::Rollback => self.start_rollback(now),
        }
    }
}
