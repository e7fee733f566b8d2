//! Property tests of the rollout engine over random fleets, plans and input sequences:
//! a paused rollout dispatches nothing; the number in flight never exceeds its limit; no
//! minute holds more sends than allowed; a wave never opens before its gate; the halt rule
//! trips exactly when its definition says; every device ends terminal; and replaying the
//! audit trail gives the live state.

use ota_core::plan::{Gate, RolloutSpec, Scope};
use ota_core::report::ReportStatus;
use ota_core::rollout::{
    self, DeviceState, HaltCounts, HaltScope, Input, Rollout, RolloutCommand, RolloutState,
    Snapshot,
};
use ota_core::{Limits, UnixMs};
use ota_tests::fleet::{Host, creation, firmware, report, sensors, spec};
use proptest::prelude::*;
use serde_json::json;

const T0: u64 = 1_800_000_000_000;

#[derive(Debug, Clone)]
enum Step {
    Report { pick: usize, status: u8 },
    Tick { ms: u32 },
    Pause,
    Resume,
    Abort,
    Rollback,
    Approve { wave: u8 },
    Verdict { wave: u8, pass: bool },
    Join { n: u16 },
    Leave { pick: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (any::<usize>(), 0u8..4).prop_map(|(pick, status)| Step::Report { pick, status }),
        6 => (0u32..200_000).prop_map(|ms| Step::Tick { ms }),
        1 => Just(Step::Pause),
        2 => Just(Step::Resume),
        1 => Just(Step::Abort),
        1 => Just(Step::Rollback),
        2 => (0u8..5).prop_map(|wave| Step::Approve { wave }),
        1 => (0u8..5, any::<bool>()).prop_map(|(wave, pass)| Step::Verdict { wave, pass }),
        1 => (0u16..1000).prop_map(|n| Step::Join { n }),
        1 => any::<usize>().prop_map(|pick| Step::Leave { pick }),
    ]
}

fn plan() -> impl Strategy<Value = serde_json::Value> {
    (
        1u32..60,
        proptest::collection::vec((1u32..40, 0u64..100_000, 0u8..3, 0u32..101), 0..3),
        0u32..60,
        1u64..5,
        proptest::option::of(1u64..20),
        proptest::option::of(1u64..30),
        (0u8..3, 0u8..2, 0u8..3, 0u8..3),
        (0u8..3, 0u8..3, any::<bool>(), proptest::option::of((0u32..1440, 1u32..600))),
    )
        .prop_map(|(canary, waves, threshold, min_terminal, max_in_flight, per_minute, (action, scope, in_flight, rb_scope), (r_failed, r_timed, terminal, maintenance))| {
            let mut pct = canary;
            let mut ws: Vec<serde_json::Value> = waves
                .iter()
                .map(|(step, soak, gate, success)| {
                    pct = (pct + step).min(99);
                    let gate = ["automatic", "approval", "external"][*gate as usize];
                    json!({"percent": pct, "min_soak_ms": soak, "success_gate_percent": success, "gate": gate})
                })
                .collect();
            ws.dedup_by(|a, b| a["percent"] == b["percent"]);
            ws.retain(|w| w["percent"].as_u64().unwrap_or(0) > u64::from(canary));
            if !ws.is_empty() {
                ws.push(json!({"percent": 100}));
            }
            let mut pacing = json!({});
            if let Some(m) = max_in_flight {
                pacing["max_in_flight"] = json!(m);
            }
            if let Some(p) = per_minute {
                pacing["per_minute"] = json!(p);
            }
            let action = ["pause", "abort", "rollback"][action as usize];
            let scope = ["wave", "cumulative"][scope as usize];
            let in_flight = ["finish", "soft_cancel", "forced_cancel"][in_flight as usize];
            let rb_scope = ["updated_only", "cohort", "all"][rb_scope as usize];
            // A daily maintenance window, some of the time: sends and resends wait for it.
            let window = maintenance.map_or(json!({}), |(start, minutes)| {
                json!({"maintenance": [{
                    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                    "start": format!("{:02}:{:02}", start / 60, start % 60),
                    "duration_minutes": minutes}]})
            });
            json!({
                "canary_percent": canary,
                "window": window,
                "waves": ws,
                "failure_threshold_percent": threshold,
                "halt": {"min_terminal": min_terminal, "action": action, "scope": scope,
                         "denominator": if terminal { "terminal" } else { "scheduled" },
                         "count_as_failure": ["failed", "timed_out", "rejected"]},
                "in_flight": in_flight,
                "rollback_scope": rb_scope,
                "pacing": pacing,
                "timeouts": {"ack_ms": 30_000, "in_progress_ms": 60_000, "offline_expiry_ms": 300_000},
                "retries": {"failed": {"max": r_failed, "backoff_ms": 1000}, "timed_out": {"max": r_timed}, "no_ack": {"max": 1}},
            })
        })
}

struct World {
    /// The rollout, drained by the shared test host (which checks the output order).
    r: Host,
    spec: RolloutSpec,
    now: u64,
    out: Vec<String>,
    sends: Vec<u64>,
    /// Devices sent the rollback package.
    rollback: std::collections::HashSet<String>,
}

impl World {
    fn drain(&mut self) -> usize {
        let mut n = 0;
        for c in self.r.take_commands() {
            match c {
                RolloutCommand::Send {
                    device_id,
                    rollback,
                    ..
                } => {
                    n += 1;
                    self.sends.push(self.now);
                    if rollback {
                        self.rollback.insert(device_id.to_string());
                    }
                    self.out.push(device_id.to_string());
                }
                RolloutCommand::Cancel { device_id, .. } => {
                    self.out.retain(|d| *d != device_id.as_str())
                }
                _ => {}
            }
        }
        self.r.events.clear();
        n
    }

    /// The invariants that hold after every input.
    fn check(&self) -> Result<(), TestCaseError> {
        if let Some(m) = self.spec.pacing.max_in_flight {
            prop_assert!(
                self.r.in_flight() <= m,
                "{} in flight, limit {m}",
                self.r.in_flight()
            );
        }
        let s = self.r.status();
        let waves = self.spec.all_waves();
        for (before, w) in s.waves.iter().zip(s.waves.iter().skip(1)) {
            let k = w.index;
            let Some(opened) = w.opened_at else { continue };
            let done = before.completed_at;
            prop_assert!(
                done.is_some(),
                "wave {k} opened before wave {} completed",
                k - 1
            );
            prop_assert!(
                opened >= done.unwrap_or(UnixMs::ZERO) + waves[k].min_soak_ms,
                "wave {k} opened before its soak"
            );
            match waves[k].gate {
                Gate::Approval => prop_assert!(w.approved, "wave {k} opened without approval"),
                Gate::External => prop_assert!(
                    w.verdict == Some(true),
                    "wave {k} opened without a passing verdict"
                ),
                _ => {}
            }
        }
        // An active rollout has no scope over its halt threshold.
        if s.status == RolloutState::Active && self.spec.halt.scope == Scope::Wave {
            for w in &s.waves {
                let counts = HaltCounts {
                    scheduled: w.devices.saturating_sub(w.acknowledged.terminal),
                    terminal: w.counts.terminal - w.acknowledged.terminal,
                    failures: w.counts.failures - w.acknowledged.failures,
                };
                let scope = HaltScope::Wave { wave: w.index };
                let trips = rollout::halt_trips(&self.spec, scope, counts);
                prop_assert!(
                    trips.is_none(),
                    "active, but wave {} trips: {trips:?}",
                    w.index
                );
            }
        }
        if s.status == RolloutState::Active && self.spec.halt.scope == Scope::Cumulative {
            let a = s.cumulative_acknowledged;
            let scheduled: u64 = s
                .waves
                .iter()
                .filter(|w| w.opened_at.is_some())
                .map(|w| w.devices)
                .sum();
            let counts = HaltCounts {
                scheduled: scheduled.saturating_sub(a.terminal),
                terminal: s.cumulative.terminal - a.terminal,
                failures: s.cumulative.failures - a.failures,
            };
            let trips = rollout::halt_trips(&self.spec, HaltScope::Rollout, counts);
            prop_assert!(trips.is_none(), "active, but the rollout trips: {trips:?}");
        }
        Ok(())
    }
}

fn run(fleet_size: usize, plan: serde_json::Value, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let fleet = sensors(fleet_size, 7);
    let spec = spec(&pkg, Some(&rb), plan);
    let create = |spec: RolloutSpec| creation(spec, &pkg, Some(&rb), &fleet, UnixMs(T0));
    let r = Rollout::create(create(spec.clone())).unwrap();
    let mut w = World {
        r: Host::new(r),
        spec: spec.clone(),
        now: T0,
        out: Vec::new(),
        rollback: Default::default(),
        sends: Vec::new(),
    };
    w.drain();
    w.check()?;
    let op: ota_core::name::Name = "op".parse().unwrap();
    let joiners = sensors(fleet_size + 1000, 7);
    for s in steps {
        let paused = w.r.state() == RolloutState::Paused;
        let before = w.r.state();
        let mut operator = false;
        match s {
            Step::Report { pick, status } => {
                if !w.out.is_empty() {
                    let d = w.out[pick % w.out.len()].clone();
                    let st = [
                        ReportStatus::InProgress,
                        ReportStatus::Success,
                        ReportStatus::Failure,
                        ReportStatus::Rejected,
                    ][status as usize];
                    // A device says what it was sent, on the attempt it was sent.
                    let v = match (st, w.rollback.contains(&d)) {
                        (ReportStatus::Success, false) => "2.0.0",
                        (ReportStatus::Success, true) => "1.9.0",
                        _ => "1.2.0",
                    };
                    let attempt = w.r.attempt(&d).expect("a device of the rollout");
                    let input = Input::AttemptReport {
                        report: report(&d, st, Some(v)),
                        attempt,
                    };
                    w.r.handle(input, UnixMs(w.now)).unwrap();
                    if st != ReportStatus::InProgress {
                        w.out.retain(|x| *x != d);
                    }
                }
            }
            Step::Tick { ms } => {
                w.now += u64::from(ms);
                w.r.handle(Input::Tick, UnixMs(w.now)).unwrap();
            }
            Step::Pause => {
                operator = true;
                let _ = w.r.handle(Input::Pause { by: op.clone() }, UnixMs(w.now));
            }
            Step::Resume => {
                operator = true;
                let _ = w.r.handle(Input::Resume { by: op.clone() }, UnixMs(w.now));
            }
            Step::Abort => {
                operator = true;
                let _ = w.r.handle(Input::Abort { by: op.clone() }, UnixMs(w.now));
            }
            Step::Rollback => {
                operator = true;
                let _ =
                    w.r.handle(Input::Rollback { by: op.clone() }, UnixMs(w.now));
            }
            Step::Approve { wave } => {
                operator = true;
                let _ = w.r.handle(
                    Input::Approve {
                        wave: usize::from(wave),
                        by: op.clone(),
                    },
                    UnixMs(w.now),
                );
            }
            Step::Verdict { wave, pass } => {
                operator = true;
                let _ = w.r.handle(
                    Input::Verdict {
                        wave: usize::from(wave),
                        pass,
                        by: op.clone(),
                    },
                    UnixMs(w.now),
                );
            }
            Step::Join { n } => {
                let p = joiners[fleet_size + usize::from(n) % 1000].clone();
                let _ = w.r.handle(Input::Join(Box::new(p)), UnixMs(w.now));
            }
            Step::Leave { pick } => {
                let ids: Vec<String> = w.r.devices().map(|(d, _)| d.to_string()).collect();
                let d: ota_core::name::Name = ids[pick % ids.len()].parse().unwrap();
                let _ = w.r.handle(
                    Input::Leave {
                        device_id: d.clone(),
                    },
                    UnixMs(w.now),
                );
            }
        }
        let sent = w.drain();
        let after = w.r.state();
        // A paused rollout dispatches nothing (unless an operator resumed or rolled it back).
        if paused && after == RolloutState::Paused {
            prop_assert_eq!(sent, 0, "a paused rollout sent commands");
        }
        // Leaving `active` without an operator is the halt rule (or a failing verdict).
        if before == RolloutState::Active
            && !operator
            && matches!(
                after,
                RolloutState::Paused | RolloutState::Aborted | RolloutState::RollingBack
            )
        {
            prop_assert!(
                w.r.status().halt_reason.is_some(),
                "left active without a halt reason"
            );
        }
        w.check()?;
        // A host ticking at poll_timeout never spins: a deadline already due, once ticked,
        // is followed by a later one (or none).
        if w.r.poll_timeout().is_some_and(|t| t.get() <= w.now) {
            w.r.handle(Input::Tick, UnixMs(w.now)).unwrap();
            w.drain();
            w.check()?;
            let next = w.r.poll_timeout();
            prop_assert!(
                next.is_none_or(|t| t.get() > w.now),
                "ticked at {}, the next deadline is {next:?}: a host would tick in a loop",
                w.now
            );
        }
    }
    // No minute ever held more sends than the limit.
    if let Some(limit) = spec.pacing.per_minute {
        for (i, t) in w.sends.iter().enumerate() {
            let n = w.sends[i..].iter().take_while(|u| **u < t + 60_000).count() as u64;
            prop_assert!(n <= limit, "{n} sends in a minute, limit {limit}");
        }
    }
    // Drive to the end: resume, approve and pass every gate, answer every device.
    for _ in 0..10_000 {
        match w.r.state() {
            RolloutState::Completed | RolloutState::Aborted if w.r.in_flight() == 0 => break,
            RolloutState::Paused => {
                let _ = w.r.handle(Input::Resume { by: op.clone() }, UnixMs(w.now));
            }
            _ => {}
        }
        for k in 0..w.spec.all_waves().len() {
            let _ = w.r.handle(
                Input::Approve {
                    wave: k,
                    by: op.clone(),
                },
                UnixMs(w.now),
            );
            let _ = w.r.handle(
                Input::Verdict {
                    wave: k,
                    pass: true,
                    by: op.clone(),
                },
                UnixMs(w.now),
            );
        }
        let out = std::mem::take(&mut w.out);
        for d in out {
            let rolled = matches!(w.r.device_state(&d), Some(DeviceState::RollbackSent));
            let v = if rolled { "1.9.0" } else { "2.0.0" };
            let _ = w.r.handle(
                Input::Report(report(&d, ReportStatus::Success, Some(v))),
                UnixMs(w.now),
            );
        }
        // Ten minutes on, or sooner when the rollout asks (a maintenance window of a minute
        // opens between two ten-minute ticks).
        w.now = w.r.poll_timeout().map_or(w.now + 600_000, |t| {
            t.get().clamp(w.now + 1, w.now + 600_000)
        });
        w.r.handle(Input::Tick, UnixMs(w.now)).unwrap();
        w.drain();
        w.check()?;
    }
    let st = w.r.state();
    prop_assert!(
        matches!(st, RolloutState::Completed | RolloutState::Aborted),
        "stuck in {st:?}"
    );
    for (d, s) in w.r.devices() {
        prop_assert!(s.is_terminal(), "{d} ends {s:?}");
    }
    if st == RolloutState::Completed {
        prop_assert_eq!(
            w.r.poll_timeout(),
            None,
            "a completed rollout waits on no timer"
        );
    }
    // Replaying the trail gives the live state.
    let replayed = Rollout::replay(create(spec), &w.r.trail)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(
        replayed.same_state(&w.r.r),
        "the replay differs from the live rollout"
    );
    let snap = Snapshot::from_json(w.r.snapshot().to_json().as_bytes(), &Limits::DEFAULT).unwrap();
    let restored = Rollout::restore(snap, &pkg, Some(&rb)).unwrap();
    prop_assert!(restored.same_state(&w.r));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn rollout_invariants_hold_for_random_fleets_and_inputs(
        fleet_size in 1usize..160,
        plan in plan(),
        steps in proptest::collection::vec(step(), 0..120),
    ) {
        run(fleet_size, plan, steps)?;
    }
}
