//! The rollout engine: seed 004's and seed 000's scenarios, the halt rule's boundary, cohorts,
//! every operator command against every device state, timers, retries, pacing, windows,
//! membership, the audit trail and snapshots.

use ota_core::audit::{self, AuditRecord};
use ota_core::name::Name;
use ota_core::report::ReportStatus::{Failure, InProgress, Rejected, Success};
use ota_core::rollout::{
    self, BatchedReport, DeviceState, Effect, Input, Output, ReportBatch, Rollout, RolloutCommand,
    RolloutError, RolloutState, Snapshot,
};
use ota_core::{DeviceProfile, Limits, UnixMs, VerifiedPackage};
use ota_tests::fleet::{Host, create, creation, firmware, report, sensors, sent, spec};
use serde_json::json;

const T0: UnixMs = UnixMs(1_800_000_000_000);

fn alice() -> Name {
    "alice".parse().unwrap()
}

fn drain_audit(r: &mut Host) -> Vec<AuditRecord> {
    r.take_trail()
}

fn events(r: &mut Host) -> Vec<String> {
    r.subjects()
}

/// A rollout of `pkg` to `fleet` at [`T0`] with no rollback package, planned by `plan`.
fn start(pkg: &VerifiedPackage, fleet: &[DeviceProfile], plan: serde_json::Value) -> Host {
    create(spec(pkg, None, plan), pkg, None, fleet, T0)
}

#[test]
fn seed_004_240_eligible_devices_at_5_percent_schedule_12() {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    // 260 sensors, every 13th a doorbell the firmware does not fit: 240 eligible.
    let fleet = sensors(260, 13);
    let mut r = create(
        spec(&pkg, Some(&rb), json!({})),
        &pkg,
        Some(&rb),
        &fleet,
        T0,
    );
    let s = r.status();
    assert_eq!(s.eligible, 240);
    assert_eq!(s.scheduled_count, 12);
    assert_eq!(s.status, RolloutState::Active);
    assert_eq!(s.devices[&DeviceState::Incompatible], 20);
    assert_eq!(sent(&mut r).len(), 12);
    assert_eq!(
        events(&mut r)[0],
        "profile.ota.rollout.started.acme.rol_4c7e"
    );
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(
        (
            v["status"].as_str(),
            v["canary_percent"].as_f64(),
            v["scheduled_count"].as_u64()
        ),
        (Some("active"), Some(5.0), Some(12))
    );
    assert_eq!(s.incompatible_reasons.values().sum::<u64>(), 20);
}

/// A rollout of `pkg` to 40 sensors with a 10% canary, and the canary's four sends.
fn forty_sensors_with_a_ten_percent_canary(pkg: &VerifiedPackage) -> (Host, Vec<(String, bool)>) {
    let fleet = sensors(40, 0);
    let mut r = create(
        spec(pkg, None, json!({"canary_percent": 10})),
        pkg,
        None,
        &fleet,
        T0,
    );
    let canary = sent(&mut r);
    (r, canary)
}

#[test]
fn seed_000_a_four_device_canary_with_one_probe_failure_pauses_with_no_device_down() {
    let pkg = firmware("2.1.0", false);
    let (mut r, canary) = forty_sensors_with_a_ten_percent_canary(&pkg);
    assert_eq!(canary.len(), 4);
    let now = T0 + 1000;
    for (i, (d, _)) in canary.iter().enumerate() {
        r.handle(Input::Report(report(d, InProgress, Some("1.2.0"))), now)
            .unwrap();
        if i == 2 {
            // The probe failed; the device restored 1.2.0 on its own and says so.
            r.handle(Input::Report(report(d, Failure, Some("1.2.0"))), now)
                .unwrap();
        } else {
            r.handle(Input::Report(report(d, Success, Some("2.1.0"))), now)
                .unwrap();
        }
    }
    let s = r.status();
    assert_eq!(s.status, RolloutState::Paused);
    assert!(
        s.halt_reason.as_deref().unwrap().contains("in the canary"),
        "{:?}",
        s.halt_reason
    );
    assert_eq!(s.fleet_impact, 0);
    let ev = events(&mut r);
    assert!(
        ev.contains(&"profile.ota.rollout.paused.acme.rol_4c7e".to_string()),
        "{ev:?}"
    );
    assert!(ev.contains(&"profile.ota.rollout.halted.acme.rol_4c7e".to_string()));
    // Paused: nothing else goes out, even when time passes.
    r.handle(Input::Tick, now + 3_600_000).unwrap();
    assert!(sent(&mut r).is_empty());
}

#[test]
fn the_halt_boundary_is_strictly_greater_and_table_tested_for_both_denominators() {
    use ota_core::plan::Denominator::{Scheduled, Terminal};
    use rollout::{HaltCounts, HaltScope};
    let pkg = firmware("2.0.0", false);
    let base = spec(&pkg, None, json!({}));
    assert_eq!(
        base.halt.denominator, Scheduled,
        "seed 004's reading is the default"
    );
    // (denominator, threshold, min_terminal, max_failures, scheduled, terminal, failures, trips)
    type Row = (
        ota_core::plan::Denominator,
        f64,
        u64,
        Option<u64>,
        u64,
        u64,
        u64,
        bool,
    );
    let table: &[Row] = &[
        // Scheduled: failures over the devices scheduled in scope, however many finished.
        (Scheduled, 10.0, 1, None, 100, 1, 1, false), // one early failure of a 100-device canary
        (Scheduled, 10.0, 1, None, 100, 10, 10, false), // exactly 10 %: no
        (Scheduled, 10.0, 1, None, 100, 11, 11, true), // 11 %: yes
        (Scheduled, 10.0, 1, None, 100, 100, 10, false),
        (Scheduled, 10.0, 1, None, 100, 100, 11, true),
        (Scheduled, 10.0, 1, None, 4, 1, 1, true), // seed 000: 1 of a 4-device canary
        (Scheduled, 10.0, 1, None, 10, 1, 1, false), // 1 of 10 is exactly 10 %
        (Scheduled, 10.0, 1, None, 9, 1, 1, true), // 11.1 %
        (Scheduled, 10.0, 5, None, 20, 4, 4, false), // not enough terminal devices yet
        (Scheduled, 10.0, 5, None, 20, 5, 3, true),
        (Scheduled, 0.0, 1, None, 1000, 1, 1, true), // zero tolerance
        (Scheduled, 0.0, 1, None, 1000, 1, 0, false),
        (Scheduled, 100.0, 1, Some(2), 10, 3, 3, true), // the count trips
        (Scheduled, 100.0, 1, Some(2), 10, 3, 2, false),
        (Scheduled, 10.0, 1, None, 0, 0, 0, false), // nothing terminal: never
        // Terminal: failures over the devices with a final outcome.
        (Terminal, 10.0, 1, None, 100, 1, 1, true), // one early failure is 100 %
        (Terminal, 10.0, 1, None, 100, 10, 1, false), // exactly 10 %
        (Terminal, 10.0, 1, None, 100, 100, 10, false),
        (Terminal, 10.0, 1, None, 100, 100, 11, true),
        (Terminal, 10.0, 1, None, 100, 9, 1, true), // 11.1 %
        (Terminal, 10.0, 5, None, 100, 4, 4, false),
        (Terminal, 10.0, 5, None, 100, 5, 1, true),
        (Terminal, 100.0, 1, None, 10, 10, 10, false), // never above 100 %
        (Terminal, 50.0, 1, None, 10, 4, 2, false),
        (Terminal, 50.0, 1, None, 10, 4, 3, true),
    ];
    for &(
        denominator,
        threshold,
        min_terminal,
        max_failures,
        scheduled,
        terminal,
        failures,
        trips,
    ) in table
    {
        let mut s = base.clone();
        s.failure_threshold_percent = threshold;
        s.halt.denominator = denominator;
        s.halt.min_terminal = min_terminal;
        s.halt.max_failures = max_failures;
        let counts = HaltCounts {
            scheduled,
            terminal,
            failures,
        };
        assert_eq!(
            rollout::halt_trips(&s, HaltScope::Wave { wave: 0 }, counts).is_some(),
            trips,
            "{denominator:?} {threshold}%, min {min_terminal}, max {max_failures:?}: {failures} failed, {terminal} terminal of {scheduled}"
        );
    }
    // The engine applies the same rule. Scheduled (the default): the first failures of a
    // 100-device canary keep it running; 10 of 100 do; the 11th stops it.
    let fleet = sensors(1000, 0);
    let run = |extra: serde_json::Value, failures: usize, then_successes: usize| {
        let mut r = create(spec(&pkg, None, extra), &pkg, None, &fleet, T0);
        let canary = sent(&mut r);
        assert_eq!(canary.len(), 100);
        for (d, _) in canary.iter().take(failures) {
            r.handle(Input::Report(report(d, Failure, Some("1.2.0"))), T0)
                .unwrap();
        }
        for (d, _) in canary.iter().skip(failures).take(then_successes) {
            r.handle(Input::Report(report(d, Success, Some("2.0.0"))), T0)
                .unwrap();
        }
        r.state()
    };
    let canary = json!({"canary_percent": 10});
    assert_eq!(
        run(canary.clone(), 1, 0),
        RolloutState::Active,
        "1 of 100 scheduled"
    );
    assert_eq!(
        run(canary.clone(), 10, 90),
        RolloutState::Active,
        "10 of 100"
    );
    assert_eq!(
        run(canary.clone(), 11, 0),
        RolloutState::Paused,
        "11 of 100"
    );
    // Terminal, the named option: one early failure is 100 % of the terminal devices.
    let terminal = json!({"canary_percent": 10, "halt": {"denominator": "terminal"}});
    assert_eq!(run(terminal.clone(), 1, 0), RolloutState::Paused);
    let late =
        json!({"canary_percent": 10, "halt": {"denominator": "terminal", "min_terminal": 20}});
    assert_eq!(
        run(late, 2, 17),
        RolloutState::Active,
        "19 terminal: below min_terminal"
    );
}

#[test]
fn cohorts_are_reproducible_nested_and_stratified() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(2000, 0);
    let plan = |canary: u32| {
        spec(
            &pkg,
            None,
            json!({"canary_percent": canary, "salt": "fixed-salt",
            "waves": [{"percent": 100, "gate": "approval"}]}),
        )
    };
    let cohort = |canary: u32| {
        let mut r = create(plan(canary), &pkg, None, &fleet, T0);
        let mut c: Vec<String> = sent(&mut r).into_iter().map(|(d, _)| d).collect();
        c.sort();
        c
    };
    let five = cohort(5);
    let ten = cohort(10);
    assert_eq!(five.len(), 100);
    assert_eq!(ten.len(), 200);
    assert_eq!(cohort(5), five, "the same salt gives the same cohort");
    assert!(
        five.iter().all(|d| ten.contains(d)),
        "the 10 % cohort contains the 5 % cohort"
    );
    // The cohort is the devices with the lowest buckets.
    let mut by_key: Vec<(u64, String)> = fleet
        .iter()
        .map(|d| {
            (
                rollout::order_key("fixed-salt", d.device_id.as_str()),
                d.device_id.to_string(),
            )
        })
        .collect();
    by_key.sort();
    let mut lowest: Vec<String> = by_key.into_iter().take(100).map(|(_, d)| d).collect();
    lowest.sort();
    assert_eq!(five, lowest);
    // Another salt, another cohort.
    let mut s = plan(5);
    s.salt = Some("other".into());
    let mut r = create(s, &pkg, None, &fleet, T0);
    let mut other: Vec<String> = sent(&mut r).into_iter().map(|(d, _)| d).collect();
    other.sort();
    assert_ne!(other, five);
    // Stratified: a 1 % canary of three hardware profiles samples each of them.
    let mut s = plan(1);
    s.stratify = true;
    let mut r = create(s, &pkg, None, &fleet, T0);
    let canary = sent(&mut r);
    let profiles: std::collections::BTreeSet<String> = canary
        .iter()
        .map(|(d, _)| {
            fleet
                .iter()
                .find(|p| p.device_id.as_str() == d)
                .unwrap()
                .hardware_profile
                .to_string()
        })
        .collect();
    assert_eq!(profiles.len(), 3, "{canary:?}");
}

fn succeed_all(r: &mut Host, devices: &[(String, bool)], now: UnixMs) {
    for (d, rollback) in devices {
        let v = if *rollback { "1.9.0" } else { "2.0.0" };
        r.handle(Input::Report(report(d, Success, Some(v))), now)
            .unwrap();
    }
}

#[test]
fn waves_open_by_their_gates_and_the_rollout_completes() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(100, 0);
    let mut r = start(
        &pkg,
        &fleet,
        json!({"canary_percent": 10, "waves": [
            {"percent": 30, "min_soak_ms": 60000},
            {"percent": 60, "gate": "approval"},
            {"percent": 100, "gate": "external"}]}),
    );
    let w0 = sent(&mut r);
    assert_eq!(w0.len(), 10);
    succeed_all(&mut r, &w0, T0 + 1);
    // Soak: the next wave waits a minute after the canary finished.
    r.handle(Input::Tick, T0 + 59_000).unwrap();
    assert!(sent(&mut r).is_empty());
    assert_eq!(r.poll_timeout(), Some(T0 + 1 + 60_000));
    r.handle(Input::Tick, T0 + 61_000).unwrap();
    let w1 = sent(&mut r);
    assert_eq!(w1.len(), 20);
    succeed_all(&mut r, &w1, T0 + 62_000);
    // Approval.
    r.handle(Input::Tick, T0 + 70_000).unwrap();
    assert!(sent(&mut r).is_empty());
    assert!(
        events(&mut r)
            .iter()
            .any(|e| e.starts_with("profile.ota.rollout.gate_waiting."))
    );
    r.handle(
        Input::Approve {
            wave: 2,
            by: alice(),
        },
        T0 + 80_000,
    )
    .unwrap();
    let w2 = sent(&mut r);
    assert_eq!(w2.len(), 30);
    succeed_all(&mut r, &w2, T0 + 81_000);
    // External verdict.
    assert!(sent(&mut r).is_empty());
    r.handle(
        Input::Verdict {
            wave: 3,
            pass: true,
            by: "monitor".parse().unwrap(),
        },
        T0 + 90_000,
    )
    .unwrap();
    let w3 = sent(&mut r);
    assert_eq!(w3.len(), 40);
    succeed_all(&mut r, &w3, T0 + 91_000);
    assert_eq!(r.state(), RolloutState::Completed);
    assert!(events(&mut r).contains(&"profile.ota.rollout.completed.acme.rol_4c7e".to_string()));
    // A failing external verdict trips the halt action instead.
    let mut r = start(
        &pkg,
        &fleet,
        json!({"canary_percent": 10, "waves": [{"percent": 100, "gate": "external"}]}),
    );
    let w0 = sent(&mut r);
    succeed_all(&mut r, &w0, T0);
    r.handle(
        Input::Verdict {
            wave: 1,
            pass: false,
            by: "monitor".parse().unwrap(),
        },
        T0 + 1,
    )
    .unwrap();
    assert_eq!(r.state(), RolloutState::Paused);
}

#[test]
fn a_success_gate_holds_the_next_wave_until_an_operator_overrides() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(100, 0);
    let mut r = start(
        &pkg,
        &fleet,
        json!({"canary_percent": 10, "failure_threshold_percent": 50,
            "waves": [{"percent": 100, "success_gate_percent": 95}]}),
    );
    let w0 = sent(&mut r);
    succeed_all(&mut r, &w0[1..], T0);
    r.handle(Input::Report(report(&w0[0].0, Failure, Some("1.2.0"))), T0)
        .unwrap();
    assert_eq!(
        r.state(),
        RolloutState::Active,
        "1 of 10 is below the 50 % halt threshold"
    );
    assert!(
        sent(&mut r).is_empty(),
        "90 % succeeded, the gate needs 95 %"
    );
    events(&mut r);
    r.handle(
        Input::Approve {
            wave: 1,
            by: alice(),
        },
        T0 + 1,
    )
    .unwrap();
    assert_eq!(sent(&mut r).len(), 90);
    let ev = events(&mut r);
    assert_eq!(
        ev[0], "profile.ota.rollout.approved.acme.rol_4c7e",
        "{ev:?}"
    );
}

#[test]
fn resume_acknowledges_the_failures_seen_when_it_paused() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(200, 0);
    // The terminal-devices denominator: the first failure trips at once.
    let plan = json!({"canary_percent": 10, "halt": {"denominator": "terminal"}});
    let mut r = create(spec(&pkg, None, plan.clone()), &pkg, None, &fleet, T0);
    let w0 = sent(&mut r);
    r.handle(Input::Report(report(&w0[0].0, Failure, Some("1.2.0"))), T0)
        .unwrap();
    assert_eq!(r.state(), RolloutState::Paused);
    let trail_before = r.audit_chain().next_seq;
    // A second trip while paused is a no-op.
    r.handle(Input::Report(report(&w0[1].0, Failure, Some("1.2.0"))), T0)
        .unwrap();
    assert_eq!(r.state(), RolloutState::Paused);
    let paused = events(&mut r)
        .iter()
        .filter(|e| e.contains(".paused."))
        .count();
    assert_eq!(paused, 1, "paused once");
    assert!(r.audit_chain().next_seq > trail_before);
    // Resuming acknowledges the failure that tripped it; the one reported while paused is
    // judged then (1 of 1 terminal) and halts it again, until it is acknowledged in turn.
    r.handle(Input::Resume { by: alice() }, T0 + 1).unwrap();
    assert_eq!(r.state(), RolloutState::Paused);
    r.handle(Input::Resume { by: alice() }, T0 + 1).unwrap();
    assert_eq!(r.state(), RolloutState::Active);
    // The two acknowledged failures no longer count; 17 successes and one new failure do
    // (1 of 18 is 5.6 %: below 10 %).
    succeed_all(&mut r, &w0[2..19], T0 + 2);
    r.handle(
        Input::Report(report(&w0[19].0, Failure, Some("1.2.0"))),
        T0 + 3,
    )
    .unwrap();
    assert_eq!(
        r.state(),
        RolloutState::Active,
        "{:?}",
        r.status().halt_reason
    );
    // Without the acknowledgement it would be 3 of 20 (15 %).
    let counts = rollout::HaltCounts {
        scheduled: 20,
        terminal: 20,
        failures: 3,
    };
    let s = spec(&pkg, None, plan);
    assert!(rollout::halt_trips(&s, rollout::HaltScope::Wave { wave: 0 }, counts).is_some());
}

#[test]
fn late_reports_are_recorded_but_never_reopen_a_finished_rollout() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(20, 0);
    let mut r = start(&pkg, &fleet, json!({"canary_percent": 100}));
    let all = sent(&mut r);
    succeed_all(&mut r, &all, T0);
    assert_eq!(r.state(), RolloutState::Completed);
    drain_audit(&mut r);
    r.handle(
        Input::Report(report(&all[0].0, Failure, Some("1.2.0"))),
        T0 + 5,
    )
    .unwrap();
    assert_eq!(r.state(), RolloutState::Completed);
    assert_eq!(r.device_state(&all[0].0), Some(DeviceState::Succeeded));
    let rec = drain_audit(&mut r);
    assert_eq!(rec.len(), 1);
    assert!(
        matches!(
            &rec[0].effects[..],
            [Effect::LateReport {
                state: DeviceState::Succeeded,
                ..
            }]
        ),
        "{:?}",
        rec[0].effects
    );
    assert!(matches!(
        r.handle(Input::Pause { by: alice() }, T0 + 6),
        Err(RolloutError::State {
            input: "pause",
            state: RolloutState::Completed
        })
    ));
    let e = r
        .handle(Input::Report(report("dev-9999", Success, None)), T0)
        .unwrap_err();
    assert!(
        matches!(&e, RolloutError::UnknownDevice { device_id } if device_id.as_str() == "dev-9999")
    );
    // A report for another rollout names both, without Rust's debug formatting.
    let mut other = report(&all[1].0, Success, None);
    other.rollout_id = Some("rol_other".parse().unwrap());
    let e = r.handle(Input::Report(other), T0).unwrap_err();
    assert!(matches!(&e, RolloutError::WrongRollout { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "the report is for rollout rol_other, not rol_4c7e"
    );
    assert_eq!(e.status(), ota_core::Status::RolloutNotFound);
    // A report of one of its devices for another rollout is refused, and the refusal
    // recorded; a report of a device it does not have is not.
    let refusals: Vec<_> = drain_audit(&mut r)
        .into_iter()
        .flat_map(|rec| rec.effects)
        .collect();
    assert!(
        matches!(&refusals[..], [Effect::ReportRefused { device_id, .. }] if device_id.as_str() == all[1].0),
        "{refusals:?}"
    );
}

/// A rollout of `policy` (cohort rollback scope, no halt) with a device in `state`, and the
/// device. The rollout is active, or rolling back for the rollback states and `cancelled`.
fn device_in(state: DeviceState, policy: &str) -> (Host, String) {
    use DeviceState::*;
    use ota_core::report::ReportStatus as R;
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let mut fleet = sensors(200, 13);
    fleet[0]
        .installed
        .insert(pkg.package().name.clone(), pkg.package().version.clone());
    // One send a minute holds all but one canary device `scheduled`, and a rollback's devices
    // `rollback_scheduled`.
    let paced = matches!(state, Scheduled | RollbackScheduled);
    let mut plan = json!({"canary_percent": 10, "failure_threshold_percent": 100,
        "in_flight": policy, "rollback_scope": "cohort"});
    if paced {
        plan["pacing"] = json!({"per_minute": 1});
    }
    let mut r = create(spec(&pkg, Some(&rb), plan), &pkg, Some(&rb), &fleet, T0);
    let canary = sent(&mut r);
    let first = canary[0].0.clone();
    let find = |r: &Host, st: DeviceState| {
        r.devices()
            .find(|(_, s)| *s == st)
            .map(|(d, _)| d.to_string())
            .unwrap_or_else(|| panic!("no device {st:?}"))
    };
    let say = |r: &mut Host, d: &str, status| {
        r.handle(Input::Report(report(d, status, Some("2.0.0"))), T0)
            .unwrap()
    };
    let rollback = |r: &mut Host| r.handle(Input::Rollback { by: alice() }, T0 + 1).unwrap();
    let d = match state {
        Pending | Scheduled | Incompatible | AlreadyInstalled => find(&r, state),
        Sent => first,
        InProgress | Succeeded | Failed | Rejected => {
            say(&mut r, &first, R::InProgress);
            if state != InProgress {
                let st = [R::Success, R::Failure, R::Rejected][[Succeeded, Failed, Rejected]
                    .iter()
                    .position(|s| *s == state)
                    .unwrap()];
                say(&mut r, &first, st);
            }
            first
        }
        TimedOut => {
            say(&mut r, &first, R::InProgress);
            r.handle(Input::Tick, T0 + 3_600_000).unwrap();
            first
        }
        Removed => {
            r.handle(
                Input::Leave {
                    device_id: first.parse().unwrap(),
                },
                T0,
            )
            .unwrap();
            first
        }
        Cancelled | RollbackScheduled | RollbackSent | RolledBack | RollbackFailed => {
            // A second device rolling back keeps the rollout rolling back.
            say(&mut r, &first, R::Success);
            if let Some((second, _)) = canary.get(1) {
                say(&mut r, second, R::Success);
            }
            rollback(&mut r);
            match state {
                RolledBack => r
                    .handle(Input::Report(report(&first, R::Success, Some("1.9.0"))), T0)
                    .unwrap(),
                RollbackFailed => say(&mut r, &first, R::Failure),
                _ => {}
            }
            if state == Cancelled {
                find(&r, Cancelled)
            } else {
                first
            }
        }
        other => panic!("no recipe for {other:?}"),
    };
    assert_eq!(r.device_state(&d), Some(state), "setup of {state:?}");
    let _ = r.take_commands();
    (r, d)
}

/// What the module docs' table says a command does to a device in `state` under `policy`:
/// the state after it (`None`: the command is refused in that rollout state), and whether the
/// device is told to stop. `resume` is a pause and then a resume.
fn documented(state: DeviceState, command: &str, policy: &str) -> (Option<DeviceState>, bool) {
    use DeviceState::*;
    let rolling_back = matches!(
        state,
        Cancelled | RollbackScheduled | RollbackSent | RolledBack | RollbackFailed
    );
    let (soft, forced) = (policy == "soft_cancel", policy == "forced_cancel");
    let stops = match state {
        Sent => soft || forced,
        InProgress => forced,
        _ => false,
    };
    match command {
        "pause" | "resume" | "rollback" if rolling_back => (None, false),
        "pause" => (Some(if stops { Scheduled } else { state }), stops),
        "resume" => (Some(if stops { Sent } else { state }), stops),
        "abort" => match state {
            Pending | Scheduled | RollbackScheduled => (Some(Cancelled), false),
            Sent | InProgress if stops => (Some(Cancelled), true),
            // Sent and never said it started: soft cancel stops it too.
            RollbackSent if soft || forced => (Some(Cancelled), true),
            _ => (Some(state), false),
        },
        "rollback" => match state {
            Pending | Scheduled => (Some(Cancelled), false),
            Sent | InProgress if stops => (Some(Cancelled), true),
            Succeeded | Failed | TimedOut | Rejected => (Some(RollbackSent), false),
            _ => (Some(state), false),
        },
        _ => unreachable!(),
    }
}

#[test]
fn every_command_against_every_device_state_under_every_policy_is_as_documented() {
    let mut cells = 0;
    for state in DeviceState::ALL {
        for command in ["pause", "resume", "abort", "rollback"] {
            for policy in ["finish", "soft_cancel", "forced_cancel"] {
                let (mut r, d) = device_in(state, policy);
                let (after, cancelled) = documented(state, command, policy);
                let at = T0 + 10;
                let res = match command {
                    "pause" => r.handle(Input::Pause { by: alice() }, at),
                    "resume" => r
                        .handle(Input::Pause { by: alice() }, at)
                        .and_then(|()| r.handle(Input::Resume { by: alice() }, at + 10)),
                    "abort" => r.handle(Input::Abort { by: alice() }, at),
                    "rollback" => r.handle(Input::Rollback { by: alice() }, at),
                    _ => unreachable!(),
                };
                let cell = format!("{state:?} × {command} ({policy})");
                match after {
                    None => {
                        assert!(
                            matches!(res, Err(RolloutError::State { .. })),
                            "{cell}: {res:?}"
                        );
                        assert_eq!(r.device_state(&d), Some(state), "{cell}: refused");
                    }
                    Some(after) => {
                        res.unwrap_or_else(|e| panic!("{cell}: {e}"));
                        assert_eq!(r.device_state(&d), Some(after), "{cell}");
                    }
                }
                let cmds = r.take_commands();
                let stopped = cmds.iter().any(|c| {
                    matches!(c, RolloutCommand::Cancel { device_id, .. } if device_id.as_str() == d)
                });
                assert_eq!(stopped, cancelled, "{cell}: {cmds:?}");
                cells += 1;
            }
        }
    }
    assert_eq!(cells, 16 * 4 * 3);
}

#[test]
fn soft_cancel_stops_only_devices_that_have_not_started_installing() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(100, 0);
    let plan =
        json!({"canary_percent": 10, "failure_threshold_percent": 100, "in_flight": "soft_cancel"});
    let mut r = create(spec(&pkg, None, plan), &pkg, None, &fleet, T0);
    let canary = sent(&mut r);
    let (installing, waiting) = (&canary[0].0, &canary[1].0);
    r.handle(Input::Report(report(installing, InProgress, None)), T0)
        .unwrap();
    r.handle(Input::Pause { by: alice() }, T0 + 1).unwrap();
    let cancelled: Vec<String> = r
        .take_commands()
        .into_iter()
        .filter_map(|c| match c {
            RolloutCommand::Cancel { device_id, forced } => {
                assert!(!forced);
                Some(device_id.to_string())
            }
            _ => None,
        })
        .collect();
    assert!(cancelled.contains(waiting));
    assert!(!cancelled.contains(installing), "it had started installing");
    assert_eq!(r.device_state(installing), Some(DeviceState::InProgress));
    // Its outcome is real, and counts.
    r.handle(
        Input::Report(report(installing, Success, Some("2.0.0"))),
        T0 + 2,
    )
    .unwrap();
    assert_eq!(r.device_state(installing), Some(DeviceState::Succeeded));
    assert_eq!(r.status().cumulative.succeeded, 1);
}

#[test]
fn a_device_that_finishes_after_being_cancelled_counts_as_updated_and_is_rolled_back() {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let fleet = sensors(100, 0);
    let plan = json!({"canary_percent": 10, "failure_threshold_percent": 100,
        "in_flight": "forced_cancel", "rollback_scope": "updated_only"});
    // Rolled back with forced cancel: the device was mid-install, finished anyway and says so.
    let mut r = create(
        spec(&pkg, Some(&rb), plan.clone()),
        &pkg,
        Some(&rb),
        &fleet,
        T0,
    );
    let canary = sent(&mut r);
    let (done, late) = (&canary[0].0, &canary[1].0);
    r.handle(Input::Report(report(done, Success, Some("2.0.0"))), T0)
        .unwrap();
    r.handle(Input::Report(report(late, InProgress, None)), T0)
        .unwrap();
    r.handle(Input::Rollback { by: alice() }, T0 + 1).unwrap();
    assert_eq!(r.device_state(late), Some(DeviceState::Cancelled));
    assert_eq!(sent(&mut r), vec![(done.clone(), true)]);
    r.handle(Input::Report(report(late, Success, Some("2.0.0"))), T0 + 2)
        .unwrap();
    assert_eq!(
        sent(&mut r),
        vec![(late.clone(), true)],
        "it runs the new version: the updated_only rollback reaches it"
    );
    assert_eq!(r.status().cumulative.succeeded, 2);
    // Aborted with forced cancel: a device that finishes anyway counts as updated.
    let mut r = create(spec(&pkg, Some(&rb), plan), &pkg, Some(&rb), &fleet, T0);
    let canary = sent(&mut r);
    let d = &canary[0].0;
    r.handle(Input::Report(report(d, InProgress, None)), T0)
        .unwrap();
    r.handle(Input::Abort { by: alice() }, T0 + 1).unwrap();
    assert_eq!(r.device_state(d), Some(DeviceState::Cancelled));
    r.handle(Input::Report(report(d, Success, Some("2.0.0"))), T0 + 2)
        .unwrap();
    assert_eq!(r.device_state(d), Some(DeviceState::Succeeded));
    assert_eq!(r.status().cumulative.succeeded, 1);
    // A device that was never sent cannot have finished: its report changes nothing.
    let never = r
        .devices()
        .find(|(_, s)| *s == DeviceState::Cancelled)
        .map(|(d, _)| d.to_string())
        .unwrap();
    r.handle(
        Input::Report(report(&never, Success, Some("2.0.0"))),
        T0 + 3,
    )
    .unwrap();
    assert_eq!(r.device_state(&never), Some(DeviceState::Cancelled));
    assert_eq!(r.status().cumulative.succeeded, 1);
}

#[test]
fn aborting_a_rollback_stops_the_rollback_devices_by_policy() {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let fleet = sensors(100, 0);
    // (policy, device stopped that had not started, device stopped that had started)
    for (policy, idle, started) in [
        ("finish", false, false),
        ("soft_cancel", true, false),
        ("forced_cancel", true, true),
    ] {
        let plan =
            json!({"canary_percent": 10, "failure_threshold_percent": 100, "in_flight": policy});
        let mut r = create(spec(&pkg, Some(&rb), plan), &pkg, Some(&rb), &fleet, T0);
        let canary = sent(&mut r);
        let (a, b) = (&canary[0].0, &canary[1].0);
        succeed_all(&mut r, &canary[..2], T0);
        r.handle(Input::Rollback { by: alice() }, T0 + 1).unwrap();
        assert_eq!(sent(&mut r).len(), 2);
        r.handle(Input::Report(report(b, InProgress, None)), T0 + 2)
            .unwrap();
        r.handle(Input::Abort { by: alice() }, T0 + 3).unwrap();
        let cancelled: Vec<String> = r
            .take_commands()
            .into_iter()
            .filter_map(|c| match c {
                RolloutCommand::Cancel { device_id, .. } => Some(device_id.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(cancelled.contains(a), idle, "{policy}: {cancelled:?}");
        assert_eq!(cancelled.contains(b), started, "{policy}: {cancelled:?}");
        let expect = |stopped| {
            Some(if stopped {
                DeviceState::Cancelled
            } else {
                DeviceState::RollbackSent
            })
        };
        assert_eq!(r.device_state(a), expect(idle), "{policy}");
        assert_eq!(r.device_state(b), expect(started), "{policy}");
        assert_eq!(r.state(), RolloutState::Aborted);
    }
}

#[test]
fn rollback_goes_to_its_scope_with_pacing_and_tracks_each_device() {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let fleet = sensors(100, 0);
    for (scope, expect) in [("updated_only", 8), ("cohort", 10), ("all", 100)] {
        let s = spec(
            &pkg,
            Some(&rb),
            json!({"canary_percent": 10, "failure_threshold_percent": 100,
            "rollback_scope": scope, "pacing": {"max_in_flight": 5}}),
        );
        let mut r = create(s, &pkg, Some(&rb), &fleet, T0);
        let w0 = sent(&mut r);
        assert_eq!(w0.len(), 5, "max in flight");
        succeed_all(&mut r, &w0, T0);
        let w0b = sent(&mut r);
        succeed_all(&mut r, &w0b[..3], T0);
        for (d, _) in &w0b[3..] {
            r.handle(Input::Report(report(d, Failure, Some("1.2.0"))), T0)
                .unwrap();
        }
        r.handle(Input::Rollback { by: alice() }, T0 + 1).unwrap();
        assert_eq!(r.state(), RolloutState::RollingBack);
        let mut rolled = 0;
        loop {
            let batch = sent(&mut r);
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 5, "pacing is kept");
            assert!(batch.iter().all(|(_, rollback)| *rollback));
            rolled += batch.len();
            succeed_all(&mut r, &batch, T0 + 2);
        }
        assert_eq!(rolled, expect, "scope {scope}");
        assert_eq!(r.state(), RolloutState::Completed);
        assert_eq!(r.status().devices[&DeviceState::RolledBack], expect as u64);
        assert!(
            events(&mut r).contains(&"profile.ota.rollout.rolled_back.acme.rol_4c7e".to_string())
        );
    }
}

#[test]
fn timers_resend_time_out_and_expire_offline_devices() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(40, 0);
    let s = spec(
        &pkg,
        None,
        json!({"canary_percent": 100, "failure_threshold_percent": 100,
        "timeouts": {"ack_ms": 1000, "in_progress_ms": 5000, "offline_expiry_ms": 10000},
        "retries": {"no_ack": {"max": 2}, "timed_out": {"max": 1, "backoff_ms": 100}}}),
    );
    let mut r = create(s, &pkg, None, &fleet, T0);
    let all = sent(&mut r);
    let (online, slow, offline) = (&all[0].0, &all[1].0, &all[2].0);
    r.handle(Input::Report(report(online, InProgress, None)), T0 + 10)
        .unwrap();
    r.handle(Input::Report(report(slow, InProgress, None)), T0 + 10)
        .unwrap();
    for (d, _) in &all[3..] {
        r.handle(Input::Report(report(d, Success, Some("2.0.0"))), T0 + 10)
            .unwrap();
    }
    r.handle(
        Input::Report(report(online, Success, Some("2.0.0"))),
        T0 + 20,
    )
    .unwrap();
    // No answer within ack_ms: sent again, twice, then it waits for the expiry.
    r.handle(Input::Tick, T0 + 1000).unwrap();
    assert_eq!(sent(&mut r), vec![(offline.clone(), false)]);
    r.handle(Input::Tick, T0 + 2000).unwrap();
    r.handle(Input::Tick, T0 + 3000).unwrap();
    assert_eq!(sent(&mut r).len(), 1, "only two resends");
    // The slow device times out in progress, is retried after its backoff, and times out again.
    r.handle(Input::Tick, T0 + 5010).unwrap();
    assert_eq!(r.device_state(slow), Some(DeviceState::Scheduled));
    r.handle(Input::Tick, T0 + 5200).unwrap();
    assert_eq!(sent(&mut r), vec![(slow.clone(), false)]);
    // The retry's report names its attempt.
    let retried = |d: &str, status| Input::AttemptReport {
        report: report(d, status, None),
        attempt: 2,
    };
    r.handle(retried(slow, InProgress), T0 + 5300).unwrap();
    r.handle(Input::Tick, T0 + 10_300).unwrap();
    assert_eq!(r.device_state(slow), Some(DeviceState::TimedOut));
    // The offline device expires: timed out, but not a failure (offline_is_failure is false).
    r.handle(Input::Tick, T0 + 10_000).unwrap();
    assert_eq!(r.device_state(offline), Some(DeviceState::TimedOut));
    let s = r.status();
    assert_eq!(s.cumulative.failures, 1, "only the slow device counts");
    assert_eq!(r.state(), RolloutState::Completed);
}

#[test]
fn retries_follow_their_class_and_refusals_are_never_retried() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(40, 0);
    let s = spec(
        &pkg,
        None,
        json!({"canary_percent": 100, "failure_threshold_percent": 100,
        "retries": {"failed": {"max": 2, "backoff_ms": 1000}}}),
    );
    let mut r = create(s, &pkg, None, &fleet, T0);
    let all = sent(&mut r);
    let (flaky, refuser) = (&all[0].0, &all[1].0);
    r.handle(Input::Report(report(flaky, Failure, Some("1.2.0"))), T0)
        .unwrap();
    assert_eq!(r.device_state(flaky), Some(DeviceState::Scheduled));
    r.handle(Input::Tick, T0 + 999).unwrap();
    assert!(sent(&mut r).is_empty(), "backoff");
    r.handle(Input::Tick, T0 + 1000).unwrap();
    assert_eq!(sent(&mut r), vec![(flaky.clone(), false)]);
    let on = |attempt| Input::AttemptReport {
        report: report(flaky, Failure, Some("1.2.0")),
        attempt,
    };
    r.handle(on(2), T0 + 1500).unwrap();
    r.handle(Input::Tick, T0 + 1500 + 2000).unwrap();
    assert_eq!(sent(&mut r).len(), 1, "the backoff doubles");
    r.handle(on(3), T0 + 4000).unwrap();
    assert_eq!(
        r.device_state(flaky),
        Some(DeviceState::Failed),
        "two retries, then final"
    );
    r.handle(Input::Report(report(refuser, Rejected, Some("1.2.0"))), T0)
        .unwrap();
    assert_eq!(r.device_state(refuser), Some(DeviceState::Rejected));
    assert_eq!(
        r.status().cumulative.failures,
        1,
        "rejected is not counted unless configured"
    );
}

#[test]
fn pacing_never_exceeds_its_limits_in_any_window() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(600, 0);
    let s = spec(
        &pkg,
        None,
        json!({"canary_percent": 100,
        "pacing": {"per_minute": 50, "max_in_flight": 80, "ramp": {"initial_per_minute": 10, "double_every_ms": 120000}}}),
    );
    let mut r = create(s, &pkg, None, &fleet, T0);
    let mut sends: Vec<u64> = Vec::new();
    let mut in_flight: Vec<String> = Vec::new();
    let mut now = T0;
    let mut collect = |r: &mut Host, now: UnixMs, in_flight: &mut Vec<String>| {
        for (d, _) in sent(r) {
            sends.push(now.get());
            in_flight.push(d);
        }
    };
    collect(&mut r, now, &mut in_flight);
    while r
        .status()
        .devices
        .get(&DeviceState::Scheduled)
        .is_some_and(|n| *n > 0)
    {
        assert!(r.in_flight() <= 80);
        // Devices finish in batches of 20 once 40 are out.
        if in_flight.len() > 40 {
            for d in in_flight.drain(..20) {
                r.handle(Input::Report(report(&d, Success, Some("2.0.0"))), now)
                    .unwrap();
            }
            collect(&mut r, now, &mut in_flight);
        }
        now = now + 1_000;
        r.handle(Input::Tick, now).unwrap();
        collect(&mut r, now, &mut in_flight);
        assert!(now < T0 + 4 * 3_600_000, "stuck");
    }
    let sends: Vec<u64> = sends;
    assert_eq!(sends.len(), 600);
    for (i, t) in sends.iter().enumerate() {
        let in_window = sends[i..].iter().take_while(|u| **u < t + 60_000).count();
        assert!(in_window <= 50, "{in_window} sends in the minute from {t}");
        // The ramp: 10 a minute, doubling every two minutes, up to 50 — counted over the
        // minute that ends with each send.
        let limit = (10u64 << ((t - T0.get()) / 120_000).min(10)).min(50) as usize;
        let before = sends[..=i]
            .iter()
            .rev()
            .take_while(|u| **u + 60_000 > *t)
            .count();
        assert!(
            before <= limit,
            "{before} sends in the minute up to {t}, the ramp allows {limit}"
        );
    }
    // The ramp starts at 10 a minute.
    assert_eq!(sends.iter().filter(|t| **t < T0.get() + 60_000).count(), 10);
}

#[test]
fn nothing_goes_out_outside_the_windows() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(40, 0);
    // 2026-11-23T01:00Z is a Monday; the window is Mondays 02:00-03:00 at UTC+01:00.
    let monday = UnixMs(1_795_395_600_000);
    let s = spec(
        &pkg,
        None,
        json!({"canary_percent": 100, "window": {"start_at": UnixMs(monday.get() - 3_600_000), "end_at": monday + 86_400_000,
        "maintenance": [{"days": ["mon"], "start": "02:00", "duration_minutes": 60, "utc_offset_minutes": 60}]}}),
    );
    let mut r = create(
        s.clone(),
        &pkg,
        None,
        &fleet,
        UnixMs(monday.get() - 7_200_000),
    );
    assert!(sent(&mut r).is_empty(), "before start_at");
    r.handle(Input::Tick, UnixMs(monday.get() - 60_000))
        .unwrap();
    assert!(
        sent(&mut r).is_empty(),
        "inside start_at, outside maintenance"
    );
    r.handle(Input::Tick, monday).unwrap();
    assert_eq!(sent(&mut r).len(), 40);
    let mut r = create(s, &pkg, None, &fleet, monday + 86_400_000 + 1);
    r.handle(Input::Tick, monday + 7 * 86_400_000).unwrap();
    assert!(sent(&mut r).is_empty(), "after end_at");
}

#[test]
fn devices_that_join_are_placed_by_bucket_and_those_that_leave_are_removed() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(200, 0);
    let s = spec(&pkg, None, json!({"canary_percent": 10, "salt": "s"}));
    let mut r = create(s, &pkg, None, &fleet, T0);
    let canary = sent(&mut r);
    let mut newcomers = sensors(400, 0)[200..].to_vec();
    let mut in_canary = 0;
    for p in newcomers.drain(..) {
        let id = p.device_id.to_string();
        r.handle(Input::Join(Box::new(p)), T0 + 1).unwrap();
        let wave = r.device_wave(&id).unwrap();
        if wave == 0 {
            in_canary += 1;
            assert_eq!(r.device_state(&id), Some(DeviceState::Sent));
        } else {
            assert_eq!(r.device_state(&id), Some(DeviceState::Pending));
        }
    }
    assert!(
        in_canary > 5 && in_canary < 40,
        "{in_canary} of 200 newcomers fell in the 10 % canary"
    );
    // A doorbell joins: incompatible.
    let mut bell = sensors(1, 0)[0].clone();
    bell.device_id = "bell-1".parse().unwrap();
    bell.device_type = "doorbell".parse().unwrap();
    r.handle(Input::Join(Box::new(bell)), T0 + 2).unwrap();
    assert_eq!(r.device_state("bell-1"), Some(DeviceState::Incompatible));
    // A device outside the target cannot join.
    let mut stranger = sensors(1, 0)[0].clone();
    stranger.device_id = "x-1".parse().unwrap();
    stranger.labels.clear();
    assert!(matches!(
        r.handle(Input::Join(Box::new(stranger)), T0),
        Err(RolloutError::NotInTarget { device_id }) if device_id.as_str() == "x-1"
    ));
    // Leaving: removed, a command in flight cancelled, and the canary no longer waits for it.
    let gone: Name = canary[0].0.parse().unwrap();
    r.handle(
        Input::Leave {
            device_id: gone.clone(),
        },
        T0 + 3,
    )
    .unwrap();
    assert_eq!(r.device_state(gone.as_str()), Some(DeviceState::Removed));
    assert!(
        r.take_commands()
            .into_iter()
            .any(|c| matches!(c, RolloutCommand::Cancel { device_id, .. } if device_id == gone))
    );
}

/// [`scenario`]'s creation inputs: the package, the rollback package, the fleet and the plan.
fn scenario_inputs() -> (
    VerifiedPackage,
    VerifiedPackage,
    Vec<DeviceProfile>,
    ota_core::plan::RolloutSpec,
) {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let fleet = sensors(120, 11);
    let s = spec(
        &pkg,
        Some(&rb),
        json!({"canary_percent": 10, "halt": {"denominator": "terminal"},
            "waves": [{"percent": 50, "gate": "approval"}, {"percent": 100}]}),
    );
    (pkg, rb, fleet, s)
}

fn scenario() -> (Host, Vec<AuditRecord>) {
    let (pkg, rb, fleet, s) = scenario_inputs();
    let mut r = create(s, &pkg, Some(&rb), &fleet, T0);
    let mut trail = drain_audit(&mut r);
    let w0 = sent(&mut r);
    succeed_all(&mut r, &w0, T0 + 1);
    r.handle(
        Input::Approve {
            wave: 1,
            by: alice(),
        },
        T0 + 2,
    )
    .unwrap();
    let w1 = sent(&mut r);
    r.handle(
        Input::Report(report(&w1[0].0, Failure, Some("1.2.0"))),
        T0 + 3,
    )
    .unwrap();
    r.handle(Input::Resume { by: alice() }, T0 + 4).unwrap();
    r.handle(Input::Tick, T0 + 5).unwrap();
    r.handle(Input::Rollback { by: alice() }, T0 + 6).unwrap();
    let rb_sent = sent(&mut r);
    succeed_all(&mut r, &rb_sent, T0 + 7);
    trail.extend(drain_audit(&mut r));
    (r, trail)
}

#[test]
fn the_audit_trail_replays_to_the_same_state_and_detects_tampering() {
    let (live, trail) = scenario();
    assert!(audit::verify(&trail).is_ok());
    let effects: Vec<&Effect> = trail.iter().flat_map(|r| &r.effects).collect();
    let has = |f: &dyn Fn(&Effect) -> bool| effects.iter().any(|e| f(e));
    assert!(has(
        &|e| matches!(e, Effect::Published { signed_by, .. } if !signed_by.is_empty())
    ));
    assert!(has(&|e| matches!(e, Effect::Approved { wave: 1 })));
    assert!(has(
        &|e| matches!(e, Effect::DeviceUpdated { version: Some(v), .. } if v.to_string() == "2.0.0")
    ));
    assert!(has(&|e| matches!(e, Effect::Paused)));
    assert!(has(&|e| matches!(e, Effect::RollingBack { .. })));
    assert!(has(&|e| matches!(e, Effect::DeviceRolledBack { .. })));
    // Effects are typed: their JSON names a kind, never a sentence.
    let line = trail[0].to_json();
    assert!(line.contains(r#""kind":"published""#), "{line}");
    let (pkg, rb, fleet, s) = scenario_inputs();
    let create = |s| creation(s, &pkg, Some(&rb), &fleet, T0);
    let replayed = Rollout::replay(create(s.clone()), &trail).unwrap();
    assert!(replayed.same_state(&live));
    // An edited record is caught by the chain; a trail from another plan by the replay.
    let mut edited = trail.clone();
    edited[3].effects[0] = Effect::Paused;
    assert!(matches!(
        Rollout::replay(create(s.clone()), &edited),
        Err(RolloutError::TrailBroken(audit::AuditError::Altered {
            seq: 3
        }))
    ));
    let mut dropped = trail.clone();
    dropped.remove(2);
    assert!(matches!(
        audit::verify(&dropped),
        Err(audit::AuditError::Broken {
            seq: 3,
            expected: 2
        })
    ));
    let mut other = s.clone();
    other.canary_percent = 20.0;
    assert_eq!(
        Rollout::replay(create(other), &trail).unwrap_err().status(),
        ota_core::Status::ReplayMismatch
    );
}

/// The creation inputs of [`scenario`]'s rollout, to replay its trail.
fn replay_scenario(trail: &[AuditRecord]) -> Result<Rollout, RolloutError> {
    let (pkg, rb, fleet, s) = scenario_inputs();
    Rollout::replay(creation(s, &pkg, Some(&rb), &fleet, T0), trail)
}

/// A trail stored before report lines holds every routine report as a whole object. It must
/// still verify, replay (as ota-server restores a rollout), and go on from its stored hashes.
#[test]
fn a_trail_stored_with_every_report_whole_still_replays_and_goes_on_from_its_hashes() {
    let (live, trail) = scenario();
    let lines = trail.iter().filter(|r| r.is_report_line()).count();
    assert!(lines >= 5, "{lines} report lines");
    // The same records, each written whole and chained as an earlier release did.
    let mut tip = "0".repeat(64);
    let mut text = String::new();
    for r in &trail {
        let body = format!(
            r#"{{"seq":{},"at":{},"cause":{},"input":{},"effects":{},"prev":"{tip}""#,
            r.seq,
            r.at.get(),
            serde_json::to_string(&r.cause).unwrap(),
            serde_json::to_string(&r.input).unwrap(),
            serde_json::to_string(&r.effects).unwrap(),
        );
        tip = ota_core::Sha256Digest::of(format!("{body}}}").as_bytes()).to_hex();
        text += &format!(r#"{body},"hash":"{tip}"}}"#);
        text.push('\n');
    }
    assert!(!text.contains("\n["), "no report line");
    let old = audit::parse_lines(&text).unwrap();
    let head: audit::AuditHead = format!("{}:{tip}", trail.len() - 1).parse().unwrap();
    audit::verify_with_head(&old, &head).unwrap();
    assert_ne!(head, live.audit_head());
    let replayed = replay_scenario(&old).unwrap();
    assert_eq!(replayed.audit_head(), head);
    // The next record links to the stored trail's last hash.
    assert_eq!(replayed.audit_chain().tip, head.hash);
    // An edited stored record is still caught.
    let edited = text.replacen(r#""status":"success""#, r#""status":"failure""#, 1);
    assert!(replay_scenario(&audit::parse_lines(&edited).unwrap()).is_err());
}

/// A record of a step with one effect (a report's, the commonest) keeps room for that one
/// only: a host holds each record until it is written.
#[test]
fn a_one_effect_records_effects_hold_room_for_one() {
    let (_, trail) = scenario();
    let one: Vec<_> = trail.iter().filter(|r| r.effects.len() == 1).collect();
    assert!(one.len() >= 5, "{} one-effect records", one.len());
    for r in one {
        assert_eq!(r.effects.capacity(), 1, "record {}", r.seq);
    }
}

/// A stored record whose input the engine refuses now (its rules changed, or the trail is
/// another's) fails the replay naming the record and saying why.
#[test]
fn a_stored_record_whose_input_is_refused_now_fails_the_replay_saying_why() {
    let (_, trail) = scenario();
    let mut r = replay_scenario(&trail[..1]).unwrap();
    let mut bad = trail[1].clone();
    bad.input = Input::Report(report("dev-9999", InProgress, Some("1.2.0")));
    let e = r.follow(&bad).unwrap_err();
    assert!(
        matches!(&e, RolloutError::ReplayRefused { seq: 1, refusal } if matches!(**refusal, RolloutError::UnknownDevice { .. })),
        "{e}"
    );
    assert_eq!(e.status(), ota_core::Status::ReplayMismatch);
    assert!(e.to_string().contains("dev-9999"), "{e}");
    // The same record followed as stored is taken.
    let mut r = replay_scenario(&trail[..1]).unwrap();
    r.follow(&trail[1]).unwrap();
}

#[test]
fn the_status_and_snapshot_anchor_the_trail_head_so_a_dropped_last_record_is_caught() {
    let (live, trail) = scenario();
    let head = live.status().audit_head;
    let last = trail.last().unwrap();
    assert_eq!((head.seq, head.hash), (last.seq, last.hash));
    assert_eq!(live.snapshot().audit_head(), head);
    assert!(audit::verify_with_head(&trail, &head).is_ok());
    let short = &trail[..trail.len() - 1];
    assert!(
        audit::verify(short).is_ok(),
        "the shortened chain still links"
    );
    assert!(matches!(
        audit::verify_with_head(short, &head),
        Err(audit::AuditError::HeadMismatch { expected_seq, records })
            if expected_seq == last.seq && records == last.seq
    ));
}

#[test]
fn each_steps_audit_record_comes_before_the_commands_and_events_it_caused() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(40, 0);
    let s = spec(&pkg, None, json!({"canary_percent": 10}));
    let mut r = Rollout::create(creation(s, &pkg, None, &fleet, T0)).unwrap();
    let kinds = |r: &mut Rollout| -> Vec<&'static str> {
        std::iter::from_fn(|| r.poll())
            .map(|o| match o {
                Output::Audit(_) => "audit",
                Output::Command(_) => "command",
                Output::Event(_) => "event",
                _ => "other",
            })
            .collect()
    };
    let created = kinds(&mut r);
    assert_eq!(created[0], "audit");
    assert_eq!(created.iter().filter(|k| **k == "audit").count(), 1);
    assert_eq!(created.iter().filter(|k| **k == "command").count(), 4);
    // A pause: its record, then its event.
    r.handle(Input::Pause { by: alice() }, T0 + 1).unwrap();
    assert_eq!(kinds(&mut r), ["audit", "event"]);
    // A refused input leaves nothing to poll.
    assert!(r.handle(Input::Pause { by: alice() }, T0 + 2).is_ok());
    assert_eq!(kinds(&mut r), ["audit"], "a no-op pause is still recorded");
    assert!(matches!(
        r.handle(
            Input::Approve {
                wave: 9,
                by: alice()
            },
            T0 + 3
        ),
        Err(RolloutError::UnknownWave { wave: 9 })
    ));
    assert!(kinds(&mut r).is_empty());
    // Events carry seed 004's subject.
    r.handle(Input::Resume { by: alice() }, T0 + 4).unwrap();
    let outputs: Vec<Output> = std::iter::from_fn(|| r.poll()).collect();
    let ev: Vec<String> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(r.subject(e)),
            _ => None,
        })
        .collect();
    assert_eq!(ev, ["profile.ota.rollout.resumed.acme.rol_4c7e"]);
}

#[test]
fn snapshots_restore_to_the_same_rollout_with_the_callers_packages() {
    let (live, _) = scenario();
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let json = live.snapshot().to_json();
    let snap = Snapshot::from_json(json.as_bytes(), &Limits::DEFAULT).unwrap();
    assert_eq!(snap.package_id(), pkg.id());
    let restored = Rollout::restore(snap.clone(), &pkg, Some(&rb)).unwrap();
    assert!(restored.same_state(&live));
    assert_eq!(restored.status(), live.status());
    // Another package, or a missing rollback package, is refused by id.
    let other = firmware("2.0.1", false);
    assert!(matches!(
        Rollout::restore(snap.clone(), &other, Some(&rb)),
        Err(RolloutError::PackageMismatch { requested, given })
            if requested == *pkg.id() && given == *other.id()
    ));
    assert!(matches!(
        Rollout::restore(snap.clone(), &pkg, None),
        Err(RolloutError::RollbackMissing { .. })
    ));
    // A snapshot whose parts disagree is refused.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["open_wave"] = json!(99);
    let bad = Snapshot::from_json(v.to_string().as_bytes(), &Limits::DEFAULT).unwrap();
    assert!(matches!(
        Rollout::restore(bad, &pkg, Some(&rb)),
        Err(RolloutError::SnapshotInvalid { .. })
    ));
    let e = Snapshot::from_json(b"{}", &Limits::DEFAULT).unwrap_err();
    assert_eq!(e.status(), ota_core::Status::MissingField, "{e}");
    // A restored rollout carries on exactly like the live one.
    let fleet = sensors(100, 0);
    let s = spec(
        &pkg,
        None,
        json!({"canary_percent": 10, "timeouts": {"ack_ms": 1000}}),
    );
    let mut a = create(s, &pkg, None, &fleet, T0);
    let _ = sent(&mut a);
    let snap = Snapshot::from_json(a.snapshot().to_json().as_bytes(), &Limits::DEFAULT).unwrap();
    let mut b = Host::new(Rollout::restore(snap, &pkg, None).unwrap());
    a.handle(Input::Tick, T0 + 1000).unwrap();
    b.handle(Input::Tick, T0 + 1000).unwrap();
    assert_eq!(sent(&mut a), sent(&mut b));
    assert!(a.same_state(&b));
}

/// A rollout of a package that came through TUF, not DSSE: it snapshots and restores (the
/// snapshot holds no envelope; the caller's verified package is checked by id).
#[cfg(feature = "tuf")]
#[test]
fn a_rollout_of_a_tuf_verified_package_snapshots_and_restores() {
    use ota_host::tuf::client::Client;
    use ota_host::tuf::repo::{Expiries, Repo, Roles};
    use ota_tests::{TUF_NOW, signing_key, tuf_role};
    let dir = std::env::temp_dir().join(format!("ota-rollout-tuf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let roles = Roles {
        root: tuf_role(&[1, 2], 2),
        targets: tuf_role(&[3], 1),
        snapshot: tuf_role(&[4], 1),
        timestamp: tuf_role(&[5], 1),
    };
    let keys: Vec<_> = [1, 2, 3, 4, 5].iter().map(|k| signing_key(*k)).collect();
    let repo = Repo::create(dir.join("repo"), &roles, &keys, &Expiries::from(TUF_NOW)).unwrap();
    let mut p = ota_tests::firmware_package();
    p.version = "2.0.0".parse().unwrap();
    let artifact = ota_tests::seal_into(&mut p, b"firmware 2.0.0");
    let path = dir.join("fw.enc");
    std::fs::write(&path, artifact).unwrap();
    repo.add_package(
        "temp-sensor-fw/2.0.0/fw.enc",
        &path,
        &p,
        &keys[2..],
        &Expiries::from(TUF_NOW),
    )
    .unwrap();
    let root = std::fs::read(repo.metadata_dir().join("1.root.json")).unwrap();
    let trusted = Client::new(
        root,
        repo.metadata_dir().to_str().unwrap(),
        repo.targets_dir().to_str().unwrap(),
    )
    .unwrap()
    .state_dir(dir.join("state"))
    .refresh(TUF_NOW + 1000)
    .unwrap();
    let pkg = trusted
        .resolve("temp-sensor-fw/2.0.0/fw.enc")
        .unwrap()
        .package;
    assert!(matches!(
        pkg.provenance(),
        ota_core::sign::Provenance::Tuf { .. }
    ));

    let (mut r, canary) = forty_sensors_with_a_ten_percent_canary(&pkg);
    succeed_all(&mut r, &canary[..2], T0 + 1);
    let json = r.snapshot().to_json();
    assert!(!json.contains("envelope"), "no envelope in the snapshot");
    let snap = Snapshot::from_json(json.as_bytes(), &Limits::DEFAULT).unwrap();
    let restored = Rollout::restore(snap, &pkg, None).unwrap();
    assert!(restored.same_state(&r));
    assert_eq!(restored.status().cumulative.succeeded, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

fn batched(device: &str, status: ota_core::report::ReportStatus, attempt: u32) -> BatchedReport {
    BatchedReport {
        device_id: device.parse().unwrap(),
        status,
        attempt,
        firmware_version: (status == Success).then(|| "2.0.0".parse().unwrap()),
        reason: None,
    }
}

#[test]
fn a_batch_of_reports_is_one_step_with_one_record_that_replays() {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let fleet = sensors(120, 11);
    let s = spec(&pkg, Some(&rb), json!({"canary_percent": 10}));
    let mut r = create(s.clone(), &pkg, Some(&rb), &fleet, T0);
    let mut trail = drain_audit(&mut r);
    let canary: Vec<String> = sent(&mut r).into_iter().map(|(d, _)| d).collect();
    assert!(canary.len() >= 3);
    // Each device in progress then succeeded; the last one's report names a stale attempt.
    let mut reports = Vec::new();
    for d in &canary[..canary.len() - 1] {
        reports.push(batched(d, InProgress, 1));
        reports.push(batched(d, Success, 1));
    }
    let last = &canary[canary.len() - 1];
    reports.push(batched(last, InProgress, 2));
    let batch = ReportBatch {
        rollout_id: "rol_4c7e".parse().unwrap(),
        reports,
    };
    r.handle(Input::Reports(batch.clone()), T0 + 1).unwrap();
    let records = drain_audit(&mut r);
    assert_eq!(records.len(), 1, "one record for the batch");
    let rec = &records[0];
    assert_eq!(rec.cause, ota_core::audit::Cause::Devices);
    assert_eq!(rec.input, Input::Reports(batch));
    let done: Vec<Name> = canary[..canary.len() - 1]
        .iter()
        .map(|d| d.parse().unwrap())
        .collect();
    assert_eq!(
        rec.effects[..2],
        [
            Effect::DevicesInProgress {
                devices: done.clone()
            },
            Effect::DevicesUpdated {
                version: Some("2.0.0".parse().unwrap()),
                devices: done.clone()
            },
        ]
    );
    assert!(rec.effects[2..].iter().any(
        |e| matches!(e, Effect::ReportRefused { device_id, .. } if device_id.as_str() == last.as_str())
    ));
    for d in &done {
        assert_eq!(r.device_state(d.as_str()), Some(DeviceState::Succeeded));
    }
    assert_eq!(r.device_state(last), Some(DeviceState::Sent));
    // The report arrays are short in the trail: trailing defaults left out.
    let line = rec.to_json();
    assert!(
        line.contains(&format!(r#"["{}","in_progress"]"#, done[0])),
        "{line}"
    );
    assert!(
        line.contains(&format!(r#"["{last}","in_progress",2]"#)),
        "{line}"
    );
    assert_eq!(audit::parse_lines(&line).unwrap(), records);
    trail.extend(records);
    trail.extend(drain_audit(&mut r));
    let replayed = Rollout::replay(creation(s, &pkg, Some(&rb), &fleet, T0), &trail).unwrap();
    assert!(replayed.same_state(&r));
}

#[test]
fn handle_reports_says_which_report_of_a_batch_was_refused_and_why() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(120, 11);
    let mut r = start(&pkg, &fleet, json!({"canary_percent": 10}));
    let _ = drain_audit(&mut r);
    let canary: Vec<String> = sent(&mut r).into_iter().map(|(d, _)| d).collect();
    let mut wrong = batched(&canary[2], Success, 1);
    wrong.firmware_version = Some("9.9.9".parse().unwrap());
    let batch = ReportBatch {
        rollout_id: "rol_4c7e".parse().unwrap(),
        reports: vec![
            batched(&canary[0], Success, 1),
            batched(&canary[1], InProgress, 2),
            wrong,
            batched(&canary[3], InProgress, 1),
        ],
    };
    let each = r.handle_reports(batch.clone(), T0 + 1).unwrap();
    assert_eq!(each.len(), 4, "one result per report");
    assert!(each[0].is_ok() && each[3].is_ok());
    assert!(
        matches!(
            &each[1],
            Err(RolloutError::StaleAttempt {
                reported: 2,
                current: 1,
                ..
            })
        ),
        "{:?}",
        each[1]
    );
    assert!(
        matches!(&each[2], Err(RolloutError::WrongVersion { .. })),
        "{:?}",
        each[2]
    );
    // The same refusals the record says, and the same state as `handle` reaches.
    let rec = drain_audit(&mut r).remove(0);
    let refused: Vec<&str> = rec
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::ReportRefused { device_id, .. } => Some(device_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(refused, [canary[1].as_str(), canary[2].as_str()]);
    let mut by_handle = start(&pkg, &fleet, json!({"canary_percent": 10}));
    let _ = drain_audit(&mut by_handle);
    let _ = sent(&mut by_handle);
    by_handle.handle(Input::Reports(batch), T0 + 1).unwrap();
    assert!(by_handle.same_state(&r));
    assert_eq!(r.device_state(&canary[0]), Some(DeviceState::Succeeded));
    assert_eq!(r.device_state(&canary[3]), Some(DeviceState::InProgress));
}

#[test]
fn a_batch_naming_another_rollout_or_an_unknown_device_changes_nothing() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(40, 0);
    let mut r = start(&pkg, &fleet, json!({}));
    let _ = drain_audit(&mut r);
    let d = sent(&mut r)[0].0.clone();
    let before = r.snapshot().clone();
    let other = ReportBatch {
        rollout_id: "rol_other".parse().unwrap(),
        reports: vec![batched(&d, InProgress, 1)],
    };
    assert!(matches!(
        r.handle(Input::Reports(other), T0 + 1),
        Err(RolloutError::WrongRollout { .. })
    ));
    let unknown = ReportBatch {
        rollout_id: "rol_4c7e".parse().unwrap(),
        reports: vec![
            batched(&d, InProgress, 1),
            batched("dev-nobody", InProgress, 1),
        ],
    };
    assert!(matches!(
        r.handle(Input::Reports(unknown), T0 + 1),
        Err(RolloutError::UnknownDevice { device_id }) if device_id.as_str() == "dev-nobody"
    ));
    // Longer than the groups the engine looks devices up in (256): the first unknown device
    // is the one named, wherever it lies, and still nothing changes.
    let mut reports: Vec<BatchedReport> = (0..300).map(|_| batched(&d, InProgress, 1)).collect();
    reports.push(batched("dev-nobody", InProgress, 1));
    reports.extend((0..300).map(|_| batched(&d, InProgress, 1)));
    reports.push(batched("dev-nobody-either", InProgress, 1));
    let long = ReportBatch {
        rollout_id: "rol_4c7e".parse().unwrap(),
        reports,
    };
    assert!(matches!(
        r.handle(Input::Reports(long), T0 + 1),
        Err(RolloutError::UnknownDevice { device_id }) if device_id.as_str() == "dev-nobody"
    ));
    assert!(drain_audit(&mut r).is_empty());
    assert_eq!(*r.snapshot(), before);
    assert_eq!(r.device_state(&d), Some(DeviceState::Sent));
}

#[test]
fn a_batch_longer_than_a_read_ahead_group_replays_and_ends_where_its_reports_one_by_one_do() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(1200, 0);
    let s = spec(&pkg, None, json!({"canary_percent": 60}));
    let mut r = create(s.clone(), &pkg, None, &fleet, T0);
    let mut trail = drain_audit(&mut r);
    let devices: Vec<String> = sent(&mut r).into_iter().map(|(d, _)| d).collect();
    assert!(devices.len() > 600, "{} sent", devices.len());
    // Every device in progress, then most of them succeeded, a few failed: 2,000 or so
    // reports in one batch, over several groups.
    let mut reports = Vec::new();
    for d in &devices {
        reports.push(batched(d, InProgress, 1));
    }
    for (k, d) in devices.iter().enumerate() {
        reports.push(batched(d, if k % 97 == 0 { Failure } else { Success }, 1));
    }
    let batch = ReportBatch {
        rollout_id: "rol_4c7e".parse().unwrap(),
        reports,
    };
    let mut one_by_one = create(s.clone(), &pkg, None, &fleet, T0);
    let _ = drain_audit(&mut one_by_one);
    let _ = sent(&mut one_by_one);
    for item in &batch.reports {
        one_by_one
            .handle(
                Input::AttemptReport {
                    report: item.report(&batch.rollout_id),
                    attempt: item.attempt,
                },
                T0 + 1,
            )
            .unwrap();
    }
    r.handle(Input::Reports(batch), T0 + 1).unwrap();
    // The same devices in the same states, the same counts; only the trails differ (one
    // record against one a report).
    let (mut batched_status, by_one) = (r.status(), one_by_one.status());
    assert_eq!(batched_status.audit_head.seq, 1);
    assert_eq!(by_one.audit_head.seq, 1440);
    batched_status.audit_head = by_one.audit_head;
    assert_eq!(batched_status, by_one);
    for d in &devices {
        assert_eq!(r.device_state(d), one_by_one.device_state(d), "{d}");
    }
    assert_eq!(r.device_state(&devices[0]), Some(DeviceState::Failed));
    assert_eq!(r.device_state(&devices[1]), Some(DeviceState::Succeeded));
    trail.extend(drain_audit(&mut r));
    let replayed = Rollout::replay(creation(s, &pkg, None, &fleet, T0), &trail).unwrap();
    assert!(replayed.same_state(&r));
}

#[test]
fn a_snapshot_keeps_its_devices_column_wise_and_refuses_a_broken_or_old_table() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(40, 0);
    let mut r = start(&pkg, &fleet, json!({}));
    let _ = drain_audit(&mut r);
    let v: serde_json::Value = serde_json::from_str(&r.snapshot().to_json()).unwrap();
    assert_eq!(v["devices"]["ids"].as_array().unwrap().len(), 40);
    assert_eq!(v["devices"]["state"].as_array().unwrap().len(), 40);
    let parse =
        |v: &serde_json::Value| Snapshot::from_json(v.to_string().as_bytes(), &Limits::DEFAULT);
    assert!(parse(&v).is_ok());
    let mut short = v.clone();
    short["devices"]["timer"].as_array_mut().unwrap().pop();
    let e = parse(&short).unwrap_err().to_string();
    assert!(
        e.contains("devices.timer: 39 entries for 40 device ids"),
        "{e}"
    );
    let mut state = v.clone();
    state["devices"]["state"][3] = json!(16);
    let e = parse(&state).unwrap_err().to_string();
    assert!(
        e.contains("devices.state[3]: 16 is not a device state"),
        "{e}"
    );
    // The format before the columns: one object per device.
    let mut old = v.clone();
    old["devices"] = json!({"ids": ["dev-0000"], "slots": [{"state": "pending"}]});
    let e = parse(&old).unwrap_err().to_string();
    assert!(e.contains("slots"), "{e}");
}

/// A rollback package signed and verified here, with the signed `rollback` given.
fn rollback_package(
    version: &str,
    rollback: Option<ota_core::package::Rollback>,
) -> VerifiedPackage {
    let mut p = ota_tests::firmware_package();
    p.version = version.parse().unwrap();
    p.rollback = rollback;
    ota_tests::seal_into(&mut p, version.as_bytes());
    let key = ota_tests::signing_key(1);
    let env = ota_core::sign::sign(&p, &[&key]).unwrap();
    let trusted = [key.public_key()].into_iter().collect();
    ota_core::sign::verify_envelope(env, &trusted, 1, &Limits::DEFAULT).unwrap()
}

#[test]
fn a_rollback_package_every_device_would_refuse_is_refused_at_creation() {
    let fleet = sensors(40, 0);
    let try_create = |pkg: &VerifiedPackage, rb: &VerifiedPackage| {
        Rollout::create(creation(
            spec(pkg, Some(rb), json!({})),
            pkg,
            Some(rb),
            &fleet,
            T0,
        ))
    };
    let pkg = firmware("2.0.0", false);
    // Signed as a rollback of the version the rollout sends: taken.
    assert!(try_create(&pkg, &firmware("1.9.0", true)).is_ok());
    // A rollback of another version, no rollback at all, or one expired: refused, named.
    let newer = firmware("2.1.0", false);
    let e = try_create(&newer, &firmware("1.9.0", true)).unwrap_err();
    assert!(matches!(&e, RolloutError::RollbackNotBound { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("rollback_package_id: ")
            && text.contains("1.9.0")
            && text.contains("rollback of 2.0.0"),
        "{text}"
    );
    assert_eq!(e.status(), ota_core::Status::PlanInvalid);
    let e = try_create(&pkg, &firmware("1.9.0", false)).unwrap_err();
    assert!(
        e.to_string().contains("not signed as a rollback at all"),
        "{e}"
    );
    let expired = ota_core::package::Rollback {
        from: "2.0.0".parse().unwrap(),
        expires: "2020-01-01T00:00:00Z".parse().unwrap(),
    };
    let e = try_create(&pkg, &rollback_package("1.9.0", Some(expired))).unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    // Not a downgrade (a fix rolled forward as the "rollback"): not checked.
    assert!(try_create(&pkg, &firmware("2.0.1", false)).is_ok());
}

/// A device that joins an earlier wave once the last wave is open is sent and awaited: the
/// rollout completes only when it is done too.
#[test]
fn a_rollout_completes_only_once_a_device_joined_into_an_earlier_wave_is_done() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(20, 0);
    let plan =
        json!({"canary_percent": 10, "salt": "s", "waves": [{"percent": 100, "min_soak_ms": 0}]});
    let mut r = create(spec(&pkg, None, plan), &pkg, None, &fleet, T0);
    let canary = sent(&mut r);
    succeed_all(&mut r, &canary, T0 + 1);
    let last = sent(&mut r);
    assert!(!last.is_empty(), "the last wave opened");
    // Newcomers until one lands in the canary (wave 0), closed long ago.
    let joined = sensors(400, 0)[200..]
        .iter()
        .find_map(|p| {
            let id = p.device_id.to_string();
            r.handle(Input::Join(Box::new(p.clone())), T0 + 2).unwrap();
            (r.device_wave(&id) == Some(0)).then_some(id)
        })
        .expect("a newcomer in the canary");
    assert_eq!(r.device_state(&joined), Some(DeviceState::Sent));
    succeed_all(&mut r, &last, T0 + 3);
    let others: Vec<(String, bool)> = sent(&mut r)
        .into_iter()
        .filter(|(d, _)| *d != joined)
        .collect();
    succeed_all(&mut r, &others, T0 + 3);
    assert_eq!(
        r.state(),
        RolloutState::Active,
        "the joined device is still open"
    );
    succeed_all(&mut r, &[(joined.clone(), false)], T0 + 4);
    assert_eq!(r.state(), RolloutState::Completed);
}
