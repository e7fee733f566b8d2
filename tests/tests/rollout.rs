//! The rollout engine: seed 004's and seed 000's scenarios, the halt rule's boundary, cohorts,
//! every operator command against every device state, timers, retries, pacing, windows,
//! membership, the audit trail and snapshots.

use ota_core::audit::{self, AuditRecord};
use ota_core::name::Name;
use ota_core::report::ReportStatus::{Failure, InProgress, Rejected, Success};
use ota_core::rollout::{self, Create, DeviceState, Rollout, RolloutCommand, RolloutState};
use ota_tests::fleet::{create, firmware, report, sensors, sent, spec, trusted};
use serde_json::json;

const T0: u64 = 1_800_000_000_000;

fn alice() -> Name {
    "alice".parse().unwrap()
}

fn drain_audit(r: &mut Rollout) -> Vec<AuditRecord> {
    std::iter::from_fn(|| r.poll_audit()).collect()
}

fn events(r: &mut Rollout) -> Vec<String> {
    std::iter::from_fn(|| r.poll_event())
        .map(|e| e.subject)
        .collect()
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

#[test]
fn seed_000_a_four_device_canary_with_one_probe_failure_pauses_with_no_device_down() {
    let pkg = firmware("2.1.0", false);
    let fleet = sensors(40, 0);
    let mut r = create(
        spec(&pkg, None, json!({"canary_percent": 10})),
        &pkg,
        None,
        &fleet,
        T0,
    );
    let canary = sent(&mut r);
    assert_eq!(canary.len(), 4);
    let now = T0 + 1000;
    for (i, (d, _)) in canary.iter().enumerate() {
        r.handle_report(&report(d, InProgress, Some("1.2.0")), now)
            .unwrap();
        if i == 2 {
            // The probe failed; the device restored 1.2.0 on its own and says so.
            r.handle_report(&report(d, Failure, Some("1.2.0")), now)
                .unwrap();
        } else {
            r.handle_report(&report(d, Success, Some("2.1.0")), now)
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
    r.handle_tick(now + 3_600_000);
    assert!(sent(&mut r).is_empty());
}

#[test]
fn the_halt_boundary_is_strictly_greater_and_table_tested() {
    let pkg = firmware("2.0.0", false);
    let base = spec(&pkg, None, json!({}));
    // (threshold, min_terminal, max_failures, terminal, failures, trips)
    type Row = (f64, u64, Option<u64>, u64, u64, bool);
    let table: &[Row] = &[
        (10.0, 1, None, 10, 1, false), // exactly 10 %: no
        (10.0, 1, None, 100, 10, false),
        (10.0, 1, None, 100, 11, true), // 11 %: yes
        (10.0, 1, None, 9, 1, true),    // 11.1 %
        (10.0, 1, None, 1, 0, false),
        (10.0, 1, None, 1, 1, true),
        (10.0, 5, None, 4, 4, false), // not enough terminal devices yet
        (10.0, 5, None, 5, 1, true),
        (0.0, 1, None, 1000, 1, true), // zero tolerance
        (0.0, 1, None, 1000, 0, false),
        (100.0, 1, None, 10, 10, false),  // can never exceed 100 %
        (100.0, 1, Some(2), 10, 3, true), // but the count can
        (100.0, 1, Some(2), 10, 2, false),
        (50.0, 1, None, 4, 2, false),
        (50.0, 1, None, 4, 3, true),
    ];
    for &(threshold, min_terminal, max_failures, terminal, failures, trips) in table {
        let mut s = base.clone();
        s.failure_threshold_percent = threshold;
        s.halt.min_terminal = min_terminal;
        s.halt.max_failures = max_failures;
        assert_eq!(
            rollout::halt_trips(&s, terminal, failures).is_some(),
            trips,
            "threshold {threshold}, min {min_terminal}, max {max_failures:?}: {failures} of {terminal}"
        );
    }
    // The engine applies the same rule: 10 of 100 canary failures keep it running, 11 stop it.
    let fleet = sensors(1000, 0);
    let mut r = create(
        spec(&pkg, None, json!({"canary_percent": 10})),
        &pkg,
        None,
        &fleet,
        T0,
    );
    let canary = sent(&mut r);
    assert_eq!(canary.len(), 100);
    for (i, (d, _)) in canary.iter().enumerate() {
        let status = if i < 10 { Failure } else { Success };
        // The failures come last, so the ratio never exceeds 10 % on the way.
        let _ = status;
        let _ = d;
    }
    for (d, _) in canary.iter().skip(10) {
        r.handle_report(&report(d, Success, Some("2.0.0")), T0)
            .unwrap();
    }
    for (d, _) in canary.iter().take(10) {
        r.handle_report(&report(d, Failure, Some("1.2.0")), T0)
            .unwrap();
    }
    assert_ne!(
        r.state(),
        RolloutState::Paused,
        "10 of 100 is not more than 10 %"
    );
    let mut r2 = create(
        spec(&pkg, None, json!({"canary_percent": 10})),
        &pkg,
        None,
        &fleet,
        T0,
    );
    let canary = sent(&mut r2);
    for (d, _) in canary.iter().skip(11) {
        r2.handle_report(&report(d, Success, Some("2.0.0")), T0)
            .unwrap();
    }
    for (d, _) in canary.iter().take(11) {
        r2.handle_report(&report(d, Failure, Some("1.2.0")), T0)
            .unwrap();
    }
    assert_eq!(
        r2.state(),
        RolloutState::Paused,
        "11 of 100 is more than 10 %"
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

fn succeed_all(r: &mut Rollout, devices: &[(String, bool)], now: u64) {
    for (d, rollback) in devices {
        let v = if *rollback { "1.9.0" } else { "2.0.0" };
        r.handle_report(&report(d, Success, Some(v)), now).unwrap();
    }
}

#[test]
fn waves_open_by_their_gates_and_the_rollout_completes() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(100, 0);
    let mut r = create(
        spec(
            &pkg,
            None,
            json!({"canary_percent": 10, "waves": [
            {"percent": 30, "min_soak_ms": 60000},
            {"percent": 60, "gate": "approval"},
            {"percent": 100, "gate": "external"}]}),
        ),
        &pkg,
        None,
        &fleet,
        T0,
    );
    let w0 = sent(&mut r);
    assert_eq!(w0.len(), 10);
    succeed_all(&mut r, &w0, T0 + 1);
    // Soak: the next wave waits a minute after the canary finished.
    r.handle_tick(T0 + 59_000);
    assert!(sent(&mut r).is_empty());
    assert_eq!(r.poll_timeout(), Some(T0 + 1 + 60_000));
    r.handle_tick(T0 + 61_000);
    let w1 = sent(&mut r);
    assert_eq!(w1.len(), 20);
    succeed_all(&mut r, &w1, T0 + 62_000);
    // Approval.
    r.handle_tick(T0 + 70_000);
    assert!(sent(&mut r).is_empty());
    assert!(
        events(&mut r)
            .iter()
            .any(|e| e.starts_with("profile.ota.rollout.gate_waiting."))
    );
    r.handle_approve(2, &alice(), T0 + 80_000).unwrap();
    let w2 = sent(&mut r);
    assert_eq!(w2.len(), 30);
    succeed_all(&mut r, &w2, T0 + 81_000);
    // External verdict.
    assert!(sent(&mut r).is_empty());
    r.handle_verdict(3, true, &"monitor".parse().unwrap(), T0 + 90_000)
        .unwrap();
    let w3 = sent(&mut r);
    assert_eq!(w3.len(), 40);
    succeed_all(&mut r, &w3, T0 + 91_000);
    assert_eq!(r.state(), RolloutState::Completed);
    assert!(events(&mut r).contains(&"profile.ota.rollout.completed.acme.rol_4c7e".to_string()));
    // A failing external verdict trips the halt action instead.
    let mut r = create(
        spec(
            &pkg,
            None,
            json!({"canary_percent": 10, "waves": [{"percent": 100, "gate": "external"}]}),
        ),
        &pkg,
        None,
        &fleet,
        T0,
    );
    let w0 = sent(&mut r);
    succeed_all(&mut r, &w0, T0);
    r.handle_verdict(1, false, &"monitor".parse().unwrap(), T0 + 1)
        .unwrap();
    assert_eq!(r.state(), RolloutState::Paused);
}

#[test]
fn a_success_gate_holds_the_next_wave_until_an_operator_overrides() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(100, 0);
    let mut r = create(
        spec(
            &pkg,
            None,
            json!({"canary_percent": 10, "failure_threshold_percent": 50,
            "waves": [{"percent": 100, "success_gate_percent": 95}]}),
        ),
        &pkg,
        None,
        &fleet,
        T0,
    );
    let w0 = sent(&mut r);
    succeed_all(&mut r, &w0[1..], T0);
    r.handle_report(&report(&w0[0].0, Failure, Some("1.2.0")), T0)
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
    r.handle_approve(1, &alice(), T0 + 1).unwrap();
    assert_eq!(sent(&mut r).len(), 90);
    let ev = events(&mut r);
    assert_eq!(
        ev[0], "profile.ota.rollout.approved.acme.rol_4c7e",
        "{ev:?}"
    );
}

#[test]
fn resume_acknowledges_the_failures_that_tripped_it() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(200, 0);
    let mut r = create(
        spec(&pkg, None, json!({"canary_percent": 10})),
        &pkg,
        None,
        &fleet,
        T0,
    );
    let w0 = sent(&mut r);
    r.handle_report(&report(&w0[0].0, Failure, Some("1.2.0")), T0)
        .unwrap();
    assert_eq!(r.state(), RolloutState::Paused);
    let trail_before = r.audit_chain().next_seq;
    // A second trip while paused is a no-op.
    r.handle_report(&report(&w0[1].0, Failure, Some("1.2.0")), T0)
        .unwrap();
    assert_eq!(r.state(), RolloutState::Paused);
    assert!(
        !events(&mut r)
            .iter()
            .filter(|e| e.contains(".paused."))
            .count()
            > 1
    );
    assert!(r.audit_chain().next_seq > trail_before);
    r.handle_resume(&alice(), T0 + 1).unwrap();
    assert_eq!(r.state(), RolloutState::Active);
    // The two acknowledged failures no longer count; 17 successes and one new failure do
    // (1 of 18 is 5.6 %: below 10 %).
    succeed_all(&mut r, &w0[2..19], T0 + 2);
    r.handle_report(&report(&w0[19].0, Failure, Some("1.2.0")), T0 + 3)
        .unwrap();
    assert_eq!(
        r.state(),
        RolloutState::Active,
        "{:?}",
        r.status().halt_reason
    );
    // Without the acknowledgement it would be 3 of 20 (15 %).
    assert!(rollout::halt_trips(&spec(&pkg, None, json!({})), 20, 3).is_some());
}

#[test]
fn late_reports_are_recorded_but_never_reopen_a_finished_rollout() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(20, 0);
    let mut r = create(
        spec(&pkg, None, json!({"canary_percent": 100})),
        &pkg,
        None,
        &fleet,
        T0,
    );
    let all = sent(&mut r);
    succeed_all(&mut r, &all, T0);
    assert_eq!(r.state(), RolloutState::Completed);
    drain_audit(&mut r);
    r.handle_report(&report(&all[0].0, Failure, Some("1.2.0")), T0 + 5)
        .unwrap();
    assert_eq!(r.state(), RolloutState::Completed);
    assert_eq!(r.device_state(&all[0].0), Some(DeviceState::Succeeded));
    let rec = drain_audit(&mut r);
    assert_eq!(rec.len(), 1);
    assert!(
        rec[0].effects[0].starts_with("late report from dev-"),
        "{:?}",
        rec[0].effects
    );
    assert!(r.handle_pause(&alice(), T0 + 6).is_err());
    assert!(
        r.handle_report(&report("dev-9999", Success, None), T0)
            .is_err()
    );
}

/// Puts a fresh rollout's first canary device into `state` (where reachable) and returns it.
fn device_in(state: DeviceState, in_flight: &str) -> (Rollout, String) {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let fleet = sensors(200, 13);
    let s = spec(
        &pkg,
        Some(&rb),
        json!({"canary_percent": 10, "failure_threshold_percent": 100,
        "in_flight": in_flight, "rollback_scope": "cohort"}),
    );
    let mut r = create(s, &pkg, Some(&rb), &fleet, T0);
    let canary = sent(&mut r);
    let d = canary[0].0.clone();
    let pick = |st: DeviceState| r_device(&fleet, &pkg, st);
    let (d, want) = match state {
        DeviceState::Pending => (pick(DeviceState::Pending), state),
        DeviceState::Incompatible => (pick(DeviceState::Incompatible), state),
        DeviceState::Sent => (d, state),
        DeviceState::InProgress => {
            r.handle_report(&report(&d, InProgress, None), T0).unwrap();
            (d, state)
        }
        DeviceState::Succeeded => {
            r.handle_report(&report(&d, Success, Some("2.0.0")), T0)
                .unwrap();
            (d, state)
        }
        DeviceState::Failed => {
            r.handle_report(&report(&d, Failure, Some("1.2.0")), T0)
                .unwrap();
            (d, state)
        }
        DeviceState::Rejected => {
            r.handle_report(&report(&d, Rejected, Some("1.2.0")), T0)
                .unwrap();
            (d, state)
        }
        DeviceState::TimedOut => {
            r.handle_report(&report(&d, InProgress, None), T0).unwrap();
            r.handle_tick(T0 + 3_600_000 + 1);
            (d, state)
        }
        DeviceState::Scheduled => {
            // Held by max_in_flight: pause, and the scheduled devices of the canary stay held.
            let d2 = canary[1].0.clone();
            r.handle_pause(&alice(), T0).unwrap();
            (d2, DeviceState::Sent)
        }
        other => panic!("no recipe for {other:?}"),
    };
    let _ = want;
    let _ = sent(&mut r);
    (r, d)
}

fn r_device(
    fleet: &[ota_core::DeviceProfile],
    pkg: &ota_core::VerifiedPackage,
    st: DeviceState,
) -> String {
    let spec = spec(pkg, None, json!({"canary_percent": 10}));
    let r = create(spec, pkg, None, fleet, T0);
    r.devices()
        .find(|(_, s)| *s == st)
        .map(|(d, _)| d.to_string())
        .expect("a device in that state")
}

#[test]
fn every_command_against_every_device_state_is_defined() {
    use DeviceState::*;
    // (device state, command, in-flight policy, the device's state after it)
    let table: &[(DeviceState, &str, &str, DeviceState)] = &[
        (Pending, "pause", "finish", Pending),
        (Pending, "abort", "finish", Cancelled),
        (Pending, "rollback", "finish", Cancelled),
        (Sent, "pause", "finish", Sent),
        (Sent, "pause", "soft_cancel", Scheduled),
        (Sent, "pause", "forced_cancel", Scheduled),
        (Sent, "abort", "finish", Sent),
        (Sent, "abort", "soft_cancel", Cancelled),
        (Sent, "rollback", "finish", Sent),
        (Sent, "rollback", "forced_cancel", Cancelled),
        (InProgress, "pause", "finish", InProgress),
        (InProgress, "abort", "finish", InProgress),
        (InProgress, "abort", "forced_cancel", Cancelled),
        (InProgress, "rollback", "finish", InProgress),
        (Succeeded, "pause", "finish", Succeeded),
        (Succeeded, "abort", "finish", Succeeded),
        (Succeeded, "rollback", "finish", RollbackSent),
        (Failed, "pause", "finish", Failed),
        (Failed, "abort", "finish", Failed),
        (Failed, "rollback", "finish", RollbackSent),
        (Rejected, "rollback", "finish", RollbackSent),
        (TimedOut, "abort", "finish", TimedOut),
        (TimedOut, "rollback", "finish", RollbackSent),
        (Incompatible, "pause", "finish", Incompatible),
        (Incompatible, "abort", "finish", Incompatible),
        (Incompatible, "rollback", "finish", Incompatible),
    ];
    for &(state, command, policy, after) in table {
        let (mut r, d) = device_in(state, policy);
        assert_eq!(r.device_state(&d), Some(state), "setup {state:?}");
        let res = match command {
            "pause" => r.handle_pause(&alice(), T0 + 10),
            "abort" => r.handle_abort(&alice(), T0 + 10),
            "rollback" => r.handle_rollback(&alice(), T0 + 10),
            _ => unreachable!(),
        };
        res.unwrap_or_else(|e| panic!("{state:?} {command}: {e}"));
        assert_eq!(
            r.device_state(&d),
            Some(after),
            "{state:?} × {command} ({policy})"
        );
        let cmds: Vec<RolloutCommand> = std::iter::from_fn(|| r.poll_command()).collect();
        let cancelled = cmds.iter().any(
            |c| matches!(c, RolloutCommand::Cancel { device_id, .. } if device_id.as_str() == d),
        );
        assert_eq!(
            cancelled,
            policy != "finish" && matches!(state, Sent | InProgress),
            "{state:?} × {command} ({policy}): {cmds:?}"
        );
        // Resume where it is allowed: the held device goes out again.
        if command == "pause" {
            r.handle_resume(&alice(), T0 + 20).unwrap();
            if after == Scheduled {
                assert_eq!(
                    r.device_state(&d),
                    Some(Sent),
                    "resume sends a held device again"
                );
            }
        }
    }
    // Commands that do not fit the rollout's state are refused.
    let (mut r, _) = device_in(Succeeded, "finish");
    r.handle_abort(&alice(), T0).unwrap();
    for e in [
        r.handle_pause(&alice(), T0),
        r.handle_resume(&alice(), T0),
        r.handle_rollback(&alice(), T0),
        r.handle_abort(&alice(), T0),
    ] {
        assert_eq!(e.unwrap_err().status(), ota_core::Status::RolloutState);
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
            r.handle_report(&report(d, Failure, Some("1.2.0")), T0)
                .unwrap();
        }
        r.handle_rollback(&alice(), T0 + 1).unwrap();
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
    r.handle_report(&report(online, InProgress, None), T0 + 10)
        .unwrap();
    r.handle_report(&report(slow, InProgress, None), T0 + 10)
        .unwrap();
    for (d, _) in &all[3..] {
        r.handle_report(&report(d, Success, Some("2.0.0")), T0 + 10)
            .unwrap();
    }
    r.handle_report(&report(online, Success, Some("2.0.0")), T0 + 20)
        .unwrap();
    // No answer within ack_ms: sent again, twice, then it waits for the expiry.
    r.handle_tick(T0 + 1000);
    assert_eq!(sent(&mut r), vec![(offline.clone(), false)]);
    r.handle_tick(T0 + 2000);
    r.handle_tick(T0 + 3000);
    assert_eq!(sent(&mut r).len(), 1, "only two resends");
    // The slow device times out in progress, is retried after its backoff, and times out again.
    r.handle_tick(T0 + 5010);
    assert_eq!(r.device_state(slow), Some(DeviceState::Scheduled));
    r.handle_tick(T0 + 5200);
    assert_eq!(sent(&mut r), vec![(slow.clone(), false)]);
    r.handle_report(&report(slow, InProgress, None), T0 + 5300)
        .unwrap();
    r.handle_tick(T0 + 10_300);
    assert_eq!(r.device_state(slow), Some(DeviceState::TimedOut));
    // The offline device expires: timed out, but not a failure (offline_is_failure is false).
    r.handle_tick(T0 + 10_000);
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
    r.handle_report(&report(flaky, Failure, Some("1.2.0")), T0)
        .unwrap();
    assert_eq!(r.device_state(flaky), Some(DeviceState::Scheduled));
    r.handle_tick(T0 + 999);
    assert!(sent(&mut r).is_empty(), "backoff");
    r.handle_tick(T0 + 1000);
    assert_eq!(sent(&mut r), vec![(flaky.clone(), false)]);
    r.handle_report(&report(flaky, Failure, Some("1.2.0")), T0 + 1500)
        .unwrap();
    r.handle_tick(T0 + 1500 + 2000);
    assert_eq!(sent(&mut r).len(), 1, "the backoff doubles");
    r.handle_report(&report(flaky, Failure, Some("1.2.0")), T0 + 4000)
        .unwrap();
    assert_eq!(
        r.device_state(flaky),
        Some(DeviceState::Failed),
        "two retries, then final"
    );
    r.handle_report(&report(refuser, Rejected, Some("1.2.0")), T0)
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
    let mut collect = |r: &mut Rollout, now: u64, in_flight: &mut Vec<String>| {
        for (d, _) in sent(r) {
            sends.push(now);
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
                r.handle_report(&report(&d, Success, Some("2.0.0")), now)
                    .unwrap();
            }
            collect(&mut r, now, &mut in_flight);
        }
        now += 1_000;
        r.handle_tick(now);
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
        let limit = (10u64 << ((t - T0) / 120_000).min(10)).min(50) as usize;
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
    assert_eq!(sends.iter().filter(|t| **t < T0 + 60_000).count(), 10);
}

#[test]
fn nothing_goes_out_outside_the_windows() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(40, 0);
    // 2026-11-23T01:00Z is a Monday; the window is Mondays 02:00-03:00 at UTC+01:00.
    let monday = 1_795_395_600_000u64;
    let s = spec(
        &pkg,
        None,
        json!({"canary_percent": 100, "window": {"start_at": monday - 3_600_000, "end_at": monday + 86_400_000,
        "maintenance": [{"days": ["mon"], "start": "02:00", "duration_minutes": 60, "utc_offset_minutes": 60}]}}),
    );
    let mut r = create(s.clone(), &pkg, None, &fleet, monday - 7_200_000);
    assert!(sent(&mut r).is_empty(), "before start_at");
    r.handle_tick(monday - 60_000);
    assert!(
        sent(&mut r).is_empty(),
        "inside start_at, outside maintenance"
    );
    r.handle_tick(monday);
    assert_eq!(sent(&mut r).len(), 40);
    let mut r = create(s, &pkg, None, &fleet, monday + 86_400_000 + 1);
    r.handle_tick(monday + 7 * 86_400_000);
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
        r.handle_join(p, T0 + 1).unwrap();
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
    r.handle_join(bell, T0 + 2).unwrap();
    assert_eq!(r.device_state("bell-1"), Some(DeviceState::Incompatible));
    // A device outside the target cannot join.
    let mut stranger = sensors(1, 0)[0].clone();
    stranger.device_id = "x-1".parse().unwrap();
    stranger.labels.clear();
    assert!(r.handle_join(stranger, T0).is_err());
    // Leaving: removed, a command in flight cancelled, and the canary no longer waits for it.
    let gone: Name = canary[0].0.parse().unwrap();
    r.handle_leave(&gone, T0 + 3).unwrap();
    assert_eq!(r.device_state(gone.as_str()), Some(DeviceState::Removed));
    assert!(
        std::iter::from_fn(|| r.poll_command()).any(|c| matches!(c, RolloutCommand::Cancel { .. }))
    );
}

fn scenario() -> (Rollout, Vec<AuditRecord>) {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let fleet = sensors(120, 11);
    let s = spec(
        &pkg,
        Some(&rb),
        json!({"canary_percent": 10, "waves": [{"percent": 50, "gate": "approval"}, {"percent": 100}]}),
    );
    let mut r = create(s, &pkg, Some(&rb), &fleet, T0);
    let mut trail = drain_audit(&mut r);
    let w0 = sent(&mut r);
    succeed_all(&mut r, &w0, T0 + 1);
    r.handle_approve(1, &alice(), T0 + 2).unwrap();
    let w1 = sent(&mut r);
    r.handle_report(&report(&w1[0].0, Failure, Some("1.2.0")), T0 + 3)
        .unwrap();
    r.handle_resume(&alice(), T0 + 4).unwrap();
    r.handle_tick(T0 + 5);
    r.handle_rollback(&alice(), T0 + 6).unwrap();
    let rb_sent = sent(&mut r);
    succeed_all(&mut r, &rb_sent, T0 + 7);
    trail.extend(drain_audit(&mut r));
    (r, trail)
}

#[test]
fn the_audit_trail_replays_to_the_same_state_and_detects_tampering() {
    let (live, trail) = scenario();
    assert!(audit::verify(&trail).is_ok());
    let text: Vec<String> = trail.iter().flat_map(|r| r.effects.clone()).collect();
    for phrase in [
        "published pkg_",
        "signed by",
        "wave 1 approved",
        "updated to 2.0.0",
        "paused",
        "rolling back",
        "rolled back",
    ] {
        assert!(
            text.iter().any(|e| e.contains(phrase)),
            "no {phrase:?} in {text:?}"
        );
    }
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let fleet = sensors(120, 11);
    let s = spec(
        &pkg,
        Some(&rb),
        json!({"canary_percent": 10, "waves": [{"percent": 50, "gate": "approval"}, {"percent": 100}]}),
    );
    let create = |s| Create {
        rollout_id: "rol_4c7e".parse().unwrap(),
        tenant: "acme".parse().unwrap(),
        spec: s,
        package: &pkg,
        rollback: Some(&rb),
        fleet: &fleet,
        by: alice(),
        now: T0,
    };
    let replayed = Rollout::replay(create(s.clone()), &trail).unwrap();
    assert!(replayed.same_state(&live));
    // An edited record is caught by the chain; a trail from another fleet by the replay.
    let mut edited = trail.clone();
    edited[3].effects[0] = "nothing to see".into();
    assert!(Rollout::replay(create(s.clone()), &edited).is_err());
    let mut dropped = trail.clone();
    dropped.remove(2);
    assert!(audit::verify(&dropped).is_err());
    let mut other = s.clone();
    other.canary_percent = 20.0;
    assert_eq!(
        Rollout::replay(create(other), &trail).unwrap_err().status(),
        ota_core::Status::ReplayMismatch
    );
}

#[test]
fn snapshots_restore_to_the_same_rollout() {
    let (live, _) = scenario();
    let snap = live.snapshot();
    let restored = Rollout::restore(snap.as_bytes(), &trusted(), 1).unwrap();
    assert!(restored.same_state(&live));
    assert_eq!(restored.status(), live.status());
    let e = Rollout::restore(snap.as_bytes(), &ota_core::sign::TrustedKeys::new(), 1).unwrap_err();
    assert!(e.to_string().contains("signature"), "{e}");
    assert!(Rollout::restore(b"{}", &trusted(), 1).is_err());
    // A restored rollout carries on exactly like the live one.
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(100, 0);
    let s = spec(
        &pkg,
        None,
        json!({"canary_percent": 10, "timeouts": {"ack_ms": 1000}}),
    );
    let mut a = create(s, &pkg, None, &fleet, T0);
    let _ = sent(&mut a);
    let mut b = Rollout::restore(a.snapshot().as_bytes(), &trusted(), 1).unwrap();
    a.handle_tick(T0 + 1000);
    b.handle_tick(T0 + 1000);
    assert_eq!(sent(&mut a), sent(&mut b));
    assert!(a.same_state(&b));
}
