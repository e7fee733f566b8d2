//! The rollout engine against a hostile or careless world (issue 15, items 7 to 9): reports
//! that do not match the rollout, the package or the attempt; snapshots whose parts do not
//! agree; plans with extreme numbers and large static groups.

use ota_core::audit;
use ota_core::report::DeviceReport;
use ota_core::report::ReportStatus::{Failure, InProgress, Success};
use ota_core::rollout::{DeviceState, Effect, Input, Rollout, RolloutError, Snapshot};
use ota_core::{Limits, Status, UnixMs, VerifiedPackage};
use ota_tests::fleet::{Host, create, creation, firmware, report, sensors, sent, spec};
use serde_json::{Value, json};

const T0: UnixMs = UnixMs(1_800_000_000_000);

/// 40 sensors, a 10 % canary (four devices sent), with `extra` plan fields.
fn canary_of_four(
    pkg: &VerifiedPackage,
    rb: Option<&VerifiedPackage>,
    extra: Value,
) -> (Host, Vec<String>) {
    let fleet = sensors(40, 0);
    let mut plan = json!({"canary_percent": 10});
    if let (Some(p), Some(e)) = (plan.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    let mut h = create(spec(pkg, rb, plan), pkg, rb, &fleet, T0);
    let canary = sent(&mut h).into_iter().map(|(d, _)| d).collect();
    (h, canary)
}

/// The effects of the records written since the last call.
fn effects(h: &mut Host) -> Vec<Effect> {
    h.take_trail().into_iter().flat_map(|r| r.effects).collect()
}

fn refused(effects: &[Effect], device: &str) -> bool {
    effects.iter().any(
        |e| matches!(e, Effect::ReportRefused { device_id, .. } if device_id.as_str() == device),
    )
}

// --- Item 7: a report must match the rollout, the package and the attempt. ----------------

#[test]
fn a_success_naming_another_version_is_refused_and_recorded() {
    let pkg = firmware("2.0.0", false);
    let (mut h, canary) = canary_of_four(&pkg, None, json!({}));
    h.take_trail();
    let d = &canary[0];
    let e = h
        .handle(Input::Report(report(d, Success, Some("1.2.0"))), T0 + 1)
        .unwrap_err();
    assert!(
        matches!(&e, RolloutError::WrongVersion { expected, found, .. }
            if expected.to_string() == "2.0.0" && found.to_string() == "1.2.0"),
        "{e}"
    );
    assert_eq!(e.status(), Status::InvalidValue);
    assert!(e.to_string().starts_with("firmware_version: "), "{e}");
    assert_eq!(h.device_state(d), Some(DeviceState::Sent));
    assert_eq!(h.status().cumulative.succeeded, 0);
    // Recorded by its stable name, not the message's English (rewording it must not change
    // what a replay writes).
    let recorded = effects(&mut h);
    assert!(refused(&recorded, d), "the refusal is recorded");
    assert!(
        recorded
            .iter()
            .any(|e| matches!(e, Effect::ReportRefused { reason, .. }
            if reason == "wrong_version")),
        "{recorded:?}"
    );
    // The right version counts.
    h.handle(Input::Report(report(d, Success, Some("2.0.0"))), T0 + 2)
        .unwrap();
    assert_eq!(h.device_state(d), Some(DeviceState::Succeeded));
}

#[test]
fn a_success_naming_no_version_is_refused_and_recorded() {
    let pkg = firmware("2.0.0", false);
    let (mut h, canary) = canary_of_four(&pkg, None, json!({}));
    h.take_trail();
    let d = &canary[0];
    let e = h
        .handle(Input::Report(report(d, Success, None)), T0 + 1)
        .unwrap_err();
    assert!(
        matches!(&e, RolloutError::SuccessWithoutVersion { expected, .. }
            if expected.to_string() == "2.0.0"),
        "{e}"
    );
    assert_eq!(e.status(), Status::MissingField);
    assert!(e.to_string().starts_with("firmware_version: "), "{e}");
    assert_eq!(h.device_state(d), Some(DeviceState::Sent));
    assert_eq!(h.status().cumulative.succeeded, 0);
    assert!(refused(&effects(&mut h), d), "the refusal is recorded");
    // A failure need not name a version (the device may not know what runs).
    h.handle(Input::Report(report(d, Failure, None)), T0 + 2)
        .unwrap();
    assert_eq!(h.device_state(d), Some(DeviceState::Failed));
}

#[test]
fn a_report_saying_its_attempt_back_is_about_that_attempt() {
    let pkg = firmware("2.0.0", false);
    let retries = json!({"retries": {"failed": {"max": 1, "backoff_ms": 1000}}});
    let (mut h, canary) = canary_of_four(&pkg, None, retries);
    let d = &canary[0];
    let said = |status, version, attempt| DeviceReport {
        attempt,
        ..report(d, status, version)
    };
    // The device says back attempt 1: a plain report would be the same.
    assert!(matches!(
        Input::device_report(said(Failure, Some("1.2.0"), Some(1))),
        Input::AttemptReport { attempt: 1, ref report } if report.attempt.is_none()
    ));
    assert!(matches!(
        Input::device_report(said(Failure, Some("1.2.0"), None)),
        Input::Report(_)
    ));
    h.handle(
        Input::device_report(said(Failure, Some("1.2.0"), Some(1))),
        T0 + 1,
    )
    .unwrap();
    h.handle(Input::Tick, T0 + 1001).unwrap();
    assert_eq!(sent(&mut h), vec![(d.clone(), false)], "the retry went out");
    assert_eq!(h.attempt(d), Some(2));
    h.take_trail();
    // Attempt 1 said back, or none said (ambiguous: it may be a replay): refused.
    for stale in [
        said(Failure, Some("1.2.0"), Some(1)),
        said(Success, Some("2.0.0"), None),
    ] {
        let e = h
            .handle(Input::device_report(stale), T0 + 1002)
            .unwrap_err();
        assert!(
            matches!(e, RolloutError::StaleAttempt { current: 2, .. }),
            "{e}"
        );
    }
    assert!(refused(&effects(&mut h), d));
    h.handle(
        Input::device_report(said(Success, Some("2.0.0"), Some(2))),
        T0 + 1003,
    )
    .unwrap();
    assert_eq!(h.device_state(d), Some(DeviceState::Succeeded));
}

#[test]
fn an_update_success_after_the_rollback_went_out_is_not_a_rollback() {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let (mut h, canary) = canary_of_four(&pkg, Some(&rb), json!({}));
    let d = &canary[0];
    h.handle(Input::Report(report(d, Success, Some("2.0.0"))), T0 + 1)
        .unwrap();
    h.handle(
        Input::Rollback {
            by: "alice".parse().unwrap(),
        },
        T0 + 2,
    )
    .unwrap();
    assert_eq!(h.device_state(d), Some(DeviceState::RollbackSent));
    h.take_trail();
    // The update's success, replayed: the device was last sent 1.9.0.
    let e = h
        .handle(Input::Report(report(d, Success, Some("2.0.0"))), T0 + 3)
        .unwrap_err();
    assert!(matches!(e, RolloutError::WrongVersion { .. }), "{e}");
    assert_eq!(h.device_state(d), Some(DeviceState::RollbackSent));
    assert!(refused(&effects(&mut h), d));
    h.handle(Input::Report(report(d, Success, Some("1.9.0"))), T0 + 4)
        .unwrap();
    assert_eq!(h.device_state(d), Some(DeviceState::RolledBack));
}

#[test]
fn a_replayed_first_failure_does_not_fail_the_retry() {
    let pkg = firmware("2.0.0", false);
    let retries = json!({"retries": {"failed": {"max": 1, "backoff_ms": 1000}}});
    let (mut h, canary) = canary_of_four(&pkg, None, retries);
    let d = &canary[0];
    assert_eq!(h.attempt(d), Some(1));
    let first = report(d, Failure, Some("1.2.0"));
    h.handle(Input::Report(first.clone()), T0 + 1).unwrap();
    assert_eq!(h.device_state(d), Some(DeviceState::Scheduled));
    h.handle(Input::Tick, T0 + 1001).unwrap();
    assert_eq!(sent(&mut h), vec![(d.clone(), false)], "the retry went out");
    assert_eq!(h.attempt(d), Some(2));
    h.take_trail();
    // The first failure, replayed (with or without its attempt): refused, recorded.
    for replay in [
        Input::Report(first.clone()),
        Input::AttemptReport {
            report: first.clone(),
            attempt: 1,
        },
    ] {
        let e = h.handle(replay, T0 + 1002).unwrap_err();
        assert!(
            matches!(
                e,
                RolloutError::StaleAttempt {
                    reported: 1,
                    current: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.status(), Status::RolloutState);
        assert_eq!(h.device_state(d), Some(DeviceState::Sent));
    }
    assert!(refused(&effects(&mut h), d));
    // The retry's own report counts.
    h.handle(
        Input::AttemptReport {
            report: report(d, Success, Some("2.0.0")),
            attempt: 2,
        },
        T0 + 1003,
    )
    .unwrap();
    assert_eq!(h.device_state(d), Some(DeviceState::Succeeded));
    assert_eq!(h.status().cumulative.failures, 0);
}

#[test]
fn a_report_without_rollout_id_is_refused_and_recorded() {
    let pkg = firmware("2.0.0", false);
    let (mut h, canary) = canary_of_four(&pkg, None, json!({}));
    h.take_trail();
    let d = &canary[0];
    let mut r = report(d, Failure, Some("1.2.0"));
    r.rollout_id = None;
    let e = h.handle(Input::Report(r), T0 + 1).unwrap_err();
    assert!(
        matches!(&e, RolloutError::ReportWithoutRollout { device_id, .. } if device_id.as_str() == d),
        "{e}"
    );
    assert_eq!(e.status(), Status::MissingField);
    assert!(e.to_string().starts_with("rollout_id: "), "{e}");
    assert_eq!(h.device_state(d), Some(DeviceState::Sent));
    assert!(refused(&effects(&mut h), d));
}

#[test]
fn refused_reports_replay_from_the_trail() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(40, 0);
    let plan = spec(&pkg, None, json!({"canary_percent": 10}));
    let mut h = create(plan.clone(), &pkg, None, &fleet, T0);
    let d = sent(&mut h)[0].0.clone();
    h.handle(Input::Report(report(&d, InProgress, Some("1.2.0"))), T0 + 1)
        .unwrap();
    h.pump();
    let before = h.snapshot().clone();
    let _ = h.handle(Input::Report(report(&d, Success, Some("9.9.9"))), T0 + 2);
    h.handle(Input::Report(report(&d, Success, Some("2.0.0"))), T0 + 3)
        .unwrap();
    let trail = h.take_trail();
    audit::verify_with_head(&trail, &h.audit_head()).unwrap();
    // The refusal is recorded as a refused report, which a host replaying the records after
    // a snapshot takes without error.
    let after: Vec<_> = trail
        .iter()
        .filter(|rec| rec.seq > before.audit_head().seq)
        .collect();
    assert!(
        matches!(after[0].input, Input::RefusedReport { attempt: 1, .. }),
        "{:?}",
        after[0]
    );
    let mut tail = Host::new(Rollout::restore(before, &pkg, None).unwrap());
    for rec in &after {
        tail.handle(rec.input.clone(), rec.at).unwrap();
    }
    assert_eq!(
        tail.take_trail(),
        after.into_iter().cloned().collect::<Vec<_>>()
    );
    assert!(tail.same_state(&h));
    // A report that would be taken is no refusal to record.
    let ok = report(&d, Success, Some("2.0.0"));
    let mut fresh = create(plan.clone(), &pkg, None, &fleet, T0);
    sent(&mut fresh);
    let e = fresh
        .handle(
            Input::RefusedReport {
                report: ok,
                attempt: 1,
            },
            T0 + 1,
        )
        .unwrap_err();
    assert!(matches!(e, RolloutError::NotRefused { .. }), "{e}");
    let replayed = Rollout::replay(creation(plan, &pkg, None, &fleet, T0), &trail).unwrap();
    assert!(replayed.same_state(&h));
}

/// ota-server stores each audit record as JSON and, on restart, reads them back and replays
/// them against the records the rollout writes again. A success rate such as 11 of 12
/// (91.66666666666667 %) in a held wave's record must read back as the same number, or the
/// record no longer matches its hash and the replay diverges.
#[test]
fn a_trail_read_back_from_json_verifies_and_replays_whatever_its_success_rate() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(120, 0);
    let plan = spec(
        &pkg,
        None,
        json!({"canary_percent": 10, "failure_threshold_percent": 100,
            "waves": [{"percent": 100, "success_gate_percent": 100}]}),
    );
    let mut h = create(plan.clone(), &pkg, None, &fleet, T0);
    let canary = sent(&mut h);
    assert_eq!(canary.len(), 12);
    for (n, (d, _)) in canary.iter().enumerate() {
        let r = if n == 0 {
            report(d, Failure, Some("1.2.0"))
        } else {
            report(d, Success, Some("2.0.0"))
        };
        h.handle(Input::Report(r), T0 + 1 + n as u64).unwrap();
    }
    let trail = h.take_trail();
    let held = trail.iter().flat_map(|r| &r.effects).find_map(|e| match e {
        Effect::WaveHeld {
            success_percent, ..
        } => Some(*success_percent),
        _ => None,
    });
    assert_eq!(held, Some(1100.0 / 12.0));
    let text: String = trail.iter().map(|r| r.to_json() + "\n").collect();
    let back = audit::parse_lines(&text).unwrap();
    audit::verify(&back).unwrap_or_else(|e| panic!("the trail read back: {e}"));
    assert_eq!(back, trail);
    let replayed = Rollout::replay(
        ota_core::rollout::Create {
            rollout_id: "rol_4c7e".parse().unwrap(),
            tenant: "acme".parse().unwrap(),
            spec: plan,
            package: &pkg,
            rollback: None,
            fleet: &fleet,
            by: "alice".parse().unwrap(),
            now: T0,
        },
        &back,
    )
    .unwrap_or_else(|e| panic!("the trail read back replays: {e}"));
    assert!(replayed.same_state(&h));
}

#[test]
fn a_report_of_a_device_outside_the_rollout_is_not_recorded() {
    let pkg = firmware("2.0.0", false);
    let (mut h, _) = canary_of_four(&pkg, None, json!({}));
    h.take_trail();
    let stranger = DeviceReport {
        rollout_id: None,
        ..report("dev-9999", Success, Some("2.0.0"))
    };
    let e = h.handle(Input::Report(stranger), T0 + 1).unwrap_err();
    assert!(matches!(e, RolloutError::UnknownDevice { .. }), "{e}");
    assert!(h.take_trail().is_empty());
}

// --- Item 9: extreme numbers and large groups. ---------------------------------------------

#[test]
fn a_fleet_naming_a_device_twice_is_refused_naming_the_first_named_again() {
    let pkg = firmware("2.0.0", false);
    let mut fleet = sensors(40, 0);
    // Device 30 is named again at 35, device 10 at 38: the first named again, in the fleet's
    // order, is device 30.
    fleet[35].device_id = fleet[30].device_id.clone();
    fleet[38].device_id = fleet[10].device_id.clone();
    let plan = spec(&pkg, None, json!({"canary_percent": 10}));
    match Rollout::create(creation(plan, &pkg, None, &fleet, T0)) {
        Err(RolloutError::DuplicateDevice { device_id }) => {
            assert_eq!(device_id, fleet[30].device_id)
        }
        other => panic!("{:?}", other.map(|r| r.status())),
    }
}

#[test]
fn a_huge_max_devices_creates_without_overflow() {
    let pkg = firmware("2.0.0", false);
    let (h, canary) = canary_of_four(
        &pkg,
        None,
        json!({"waves": [{"percent": 50, "max_devices": u64::MAX}, {"percent": 100, "max_devices": u64::MAX}]}),
    );
    assert_eq!(canary.len(), 4);
    let s = h.status();
    assert_eq!(
        s.waves.iter().map(|w| w.devices).collect::<Vec<_>>(),
        vec![4, 16, 20],
        "a cap above the fleet caps nothing"
    );
}

#[test]
fn a_static_group_target_is_tested_as_a_set() {
    use ota_core::plan::{Membership, Target};
    let fleet = sensors(5000, 0);
    // Every other device, listed in reverse: membership does not depend on the list's order.
    let group: Vec<_> = fleet
        .iter()
        .step_by(2)
        .rev()
        .map(|d| d.device_id.clone())
        .collect();
    let target = Target::Group {
        devices: group.clone(),
    };
    let m = target.membership();
    assert!(matches!(&m, Membership::Group(set) if set.len() == group.len()));
    let members = fleet.iter().filter(|d| m.contains(d)).count();
    assert_eq!(members, 2500);
    assert!(fleet.iter().all(|d| m.contains(d) == target.contains(d)));

    // A rollout to the group takes exactly its devices, and a device joining is tested
    // against the same set.
    let pkg = firmware("2.0.0", false);
    let plan = spec(
        &pkg,
        None,
        json!({"target": {"kind": "group", "devices": group}, "target_profile_id": null}),
    );
    let mut h = create(plan, &pkg, None, &fleet, T0);
    assert_eq!(h.status().eligible, 2500);
    let e = h
        .handle(Input::Join(Box::new(fleet[1].clone())), T0 + 1)
        .unwrap_err();
    assert!(matches!(e, RolloutError::NotInTarget { .. }), "{e}");
    h.handle(
        Input::Leave {
            device_id: fleet[0].device_id.clone(),
        },
        T0 + 2,
    )
    .unwrap();
    h.handle(Input::Join(Box::new(fleet[0].clone())), T0 + 3)
        .unwrap();
    assert_ne!(
        h.device_state(fleet[0].device_id.as_str()),
        Some(DeviceState::Removed)
    );
}

/// 20 000 devices that never answer, with an offline expiry of 120 days: past two of the
/// timer heap's 32-bit windows (49.7 days each). Each device times out once, at its expiry;
/// the ticks at the windows' ends only put the waiting devices back. (That the heap is not
/// rebuilt once for each of them, which took minutes at this size, the timers' own tests count.)
#[test]
fn an_offline_expiry_past_two_timer_windows_times_out_every_device_without_quadratic_ticks() {
    const DAY: u64 = 86_400_000;
    const N: usize = 20_000;
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(N, 0);
    let plan = json!({"canary_percent": 100,
        "retries": {"no_ack": {"max": 0}},
        "timeouts": {"offline_expiry_ms": 120 * DAY}});
    let mut h = create(spec(&pkg, None, plan), &pkg, None, &fleet, T0);
    assert_eq!(sent(&mut h).len(), N);
    // The acknowledgements are overdue and no resend is left: each device waits for its expiry.
    h.handle(Input::Tick, T0 + 600_000).unwrap();
    let expiry = T0 + 120 * DAY;
    let mut ticks = 0;
    loop {
        let at = h.poll_timeout().expect("a timer is set");
        assert!(at <= expiry, "{at} is past the expiry {expiry}");
        if at == expiry {
            break;
        }
        h.handle(Input::Tick, at).unwrap();
        assert!(h.devices().all(|(_, s)| s == DeviceState::Sent));
        ticks += 1;
        assert!(ticks < 10, "{ticks} ticks before the expiry");
    }
    h.take_trail();
    h.handle(Input::Tick, expiry).unwrap();
    assert!(h.devices().all(|(_, s)| s == DeviceState::TimedOut));
    let timed_out = effects(&mut h)
        .iter()
        .filter(|e| matches!(e, Effect::DeviceTimedOut { offline: true, .. }))
        .count();
    assert_eq!(timed_out, N, "each device times out once");
}

/// Devices of a wave not yet opened leave and join again. With strata, a device's order key
/// may fall within an earlier wave's bound (another stratum's), so it joins that wave: the
/// rollout it leaves must still restore from its snapshot, the device listed nowhere else.
#[test]
fn devices_that_leave_and_rejoin_into_another_wave_leave_a_snapshot_that_restores() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(200, 0);
    let plan = spec(
        &pkg,
        None,
        json!({"canary_percent": 10, "stratify": true,
            "waves": [{"percent": 50, "gate": "approval"}, {"percent": 100}]}),
    );
    let mut h = create(plan, &pkg, None, &fleet, T0);
    h.take_trail();
    let waiting: Vec<_> = h
        .devices()
        .filter(|(_, s)| *s == DeviceState::Pending)
        .map(|(d, _)| d.to_string())
        .collect();
    assert!(!waiting.is_empty());
    let mut moved = 0;
    for (n, d) in waiting.iter().enumerate() {
        let p = fleet.iter().find(|p| p.device_id.as_str() == d).unwrap();
        let at = T0 + 1 + 2 * n as u64;
        h.handle(
            Input::Leave {
                device_id: p.device_id.clone(),
            },
            at,
        )
        .unwrap();
        h.handle(Input::Join(Box::new(p.clone())), at + 1).unwrap();
        moved += usize::from(h.device_state(d) != Some(DeviceState::Pending));
    }
    assert!(moved > 0, "no device joined an opened wave");
    let snap = Snapshot::from_json(h.snapshot().to_json().as_bytes(), &Limits::DEFAULT).unwrap();
    let back = Rollout::restore(snap, &pkg, None)
        .unwrap_or_else(|e| panic!("{moved} device(s) moved wave: {e}"));
    assert!(back.same_state(&h));
}

// --- Item 8: restore validates every invariant the engine relies on. -----------------------

/// A rollout in the middle of things, with retries, a rollback package and devices in many
/// states, as snapshot JSON; and its packages.
fn busy_snapshot() -> (Value, VerifiedPackage, VerifiedPackage) {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let plan = json!({"failure_threshold_percent": 50,
        "waves": [{"percent": 50, "min_soak_ms": 10}, {"percent": 100, "gate": "approval"}],
        "retries": {"failed": {"max": 1, "backoff_ms": 100}},
        "pacing": {"per_minute": 30}});
    let (mut h, canary) = canary_of_four(&pkg, Some(&rb), plan);
    h.handle(
        Input::Report(report(&canary[0], Success, Some("2.0.0"))),
        T0 + 1,
    )
    .unwrap();
    h.handle(
        Input::Report(report(&canary[1], Failure, Some("1.2.0"))),
        T0 + 2,
    )
    .unwrap();
    h.handle(Input::Report(report(&canary[2], InProgress, None)), T0 + 3)
        .unwrap();
    h.handle(
        Input::Report(report(&canary[3], Success, Some("2.0.0"))),
        T0 + 4,
    )
    .unwrap();
    h.handle(Input::Tick, T0 + 200).unwrap();
    h.take_trail();
    let v = serde_json::from_str(&h.snapshot().to_json()).unwrap();
    (v, pkg, rb)
}

fn restore(
    v: &Value,
    pkg: &VerifiedPackage,
    rb: &VerifiedPackage,
) -> Result<Rollout, RolloutError> {
    let snap = Snapshot::from_json(v.to_string().as_bytes(), &Limits::DEFAULT)
        .unwrap_or_else(|e| panic!("the mutated snapshot still parses: {e}"));
    Rollout::restore(snap, pkg, Some(rb))
}

/// Feeds a restored rollout every kind of input, and reads everything it offers.
fn drive(r: Rollout) {
    let mut h = Host::new(r);
    let ids: Vec<String> = h.devices().map(|(d, _)| d.to_string()).collect();
    let alice: ota_core::name::Name = "alice".parse().unwrap();
    let mut now = T0.get() + 300;
    let _ = h.status();
    let _ = h.poll_timeout();
    for (n, d) in ids.iter().enumerate() {
        for st in [InProgress, Success, Failure] {
            let attempt = h.attempt(d).unwrap_or(1);
            let v = if st == Success { "2.0.0" } else { "1.2.0" };
            let input = Input::AttemptReport {
                report: report(d, st, Some(v)),
                attempt,
            };
            let _ = h.handle(input, UnixMs(now));
        }
        if n % 7 == 0 {
            now += 60_000;
            let _ = h.handle(Input::Tick, UnixMs(now));
        }
    }
    for input in [
        Input::Approve {
            wave: 1,
            by: alice.clone(),
        },
        Input::Verdict {
            wave: 2,
            pass: false,
            by: alice.clone(),
        },
        Input::Pause { by: alice.clone() },
        Input::Resume { by: alice.clone() },
        Input::Leave {
            device_id: ids[0].parse().unwrap(),
        },
        Input::Join(Box::new(sensors(41, 0)[40].clone())),
        Input::Rollback { by: alice.clone() },
        Input::Tick,
        Input::Abort { by: alice },
    ] {
        now += 3_600_000;
        let _ = h.handle(input, UnixMs(now));
        let _ = h.handle(Input::Tick, UnixMs(now + 1));
    }
    let _ = h.status();
    let _ = h.take_trail();
}

#[test]
fn restore_refuses_each_inconsistent_snapshot_with_a_typed_error() {
    let (v, pkg, rb) = busy_snapshot();
    drive(restore(&v, &pkg, &rb).expect("the snapshot as written restores"));
    // The waves opened keep no list of their devices; those still closed do.
    let open = v["open_wave"].as_u64().unwrap() as usize;
    for (w, list) in v["members"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            list.as_array().unwrap().is_empty(),
            w <= open,
            "wave {w}: {list}"
        );
    }
    let n = v["devices"]["ids"].as_array().unwrap().len();
    type Mutation = (&'static str, fn(&mut Value, usize));
    let mutations: [Mutation; 18] = [
        ("a device's wave out of range", |v, _| {
            v["devices"]["wave"][0] = json!(9)
        }),
        ("the open wave out of range", |v, _| {
            v["open_wave"] = json!(7)
        }),
        ("a ready index out of range", |v, n| v["ready"] = json!([n])),
        ("a wave member out of range", |v, n| {
            v["members"][0] = json!([0, n + 5])
        }),
        ("empty bounds", |v, _| v["bounds"] = json!([])),
        ("bounds out of order", |v, _| {
            v["bounds"] = json!([u64::MAX, 1, 2])
        }),
        ("acknowledged above counted", |v, _| {
            v["waves"][0]["acknowledged"]["failures"] = json!(3)
        }),
        ("cumulative acknowledged above cumulative", |v, _| {
            v["cumulative_acknowledged"]["terminal"] = json!(99)
        }),
        ("failures above terminal", |v, _| {
            v["waves"][0]["counts"]["failures"] = json!(5)
        }),
        ("counts that overflow their sum", |v, _| {
            v["waves"][0]["counts"]["terminal"] = json!(u64::MAX);
            v["waves"][1]["counts"]["terminal"] = json!(u64::MAX);
        }),
        ("cumulative other than the waves' sum", |v, _| {
            v["cumulative"]["succeeded"] = json!(0)
        }),
        ("a wave opened beyond the open wave", |v, _| {
            v["waves"][2]["opened_at"] = json!(5)
        }),
        ("a device named twice", |v, _| {
            v["devices"]["ids"][3] = v["devices"]["ids"][1].clone()
        }),
        ("a device in two waves' members", |v, _| {
            // The last wave has not opened: its list still stands.
            let first = v["members"][2][0].clone();
            assert!(first.is_u64(), "{}", v["members"]);
            v["members"][2].as_array_mut().unwrap().push(first);
        }),
        (
            "a device of a wave not yet opened left off its list",
            |v, _| {
                v["members"][2].as_array_mut().unwrap().remove(0);
            },
        ),
        ("a device listed in another wave", |v, _| {
            let first = v["members"][2][0].clone();
            v["members"][1].as_array_mut().unwrap().push(first);
        }),
        ("an audit chain at its end", |v, _| {
            v["audit"]["next_seq"] = json!(u64::MAX)
        }),
        ("an audit chain with no record", |v, _| {
            v["audit"]["next_seq"] = json!(0)
        }),
    ];
    for (what, mutate) in mutations {
        let mut bad = v.clone();
        mutate(&mut bad, n);
        match restore(&bad, &pkg, &rb) {
            Err(RolloutError::SnapshotInvalid { .. }) => {}
            Err(e) => panic!("{what}: refused with another error: {e}"),
            Ok(_) => panic!("{what}: restored"),
        }
    }
}

/// Every number of the snapshot set to each extreme: the restore refuses it with a typed
/// error, or the rollout it gives takes every kind of input without a panic.
#[test]
fn a_restored_snapshot_never_panics_whatever_its_numbers() {
    let (v, pkg, rb) = busy_snapshot();
    let mut paths = Vec::new();
    numbers(&v, &mut Vec::new(), &mut paths);
    assert!(paths.len() > 40, "{}", paths.len());
    let mut restored = 0;
    for path in &paths {
        for x in [0, 1, 2, 3, 41, 1 << 32, u64::MAX] {
            let mut bad = v.clone();
            *at(&mut bad, path) = json!(x);
            let Ok(snap) = Snapshot::from_json(bad.to_string().as_bytes(), &Limits::DEFAULT) else {
                continue;
            };
            let outcome =
                std::panic::catch_unwind(|| match Rollout::restore(snap, &pkg, Some(&rb)) {
                    Ok(r) => {
                        drive(r);
                        true
                    }
                    Err(_) => false,
                });
            match outcome {
                Ok(ok) => restored += usize::from(ok),
                Err(_) => panic!("{} = {x}: panicked", path.join(".")),
            }
        }
    }
    assert!(restored > 0);
}

fn numbers(v: &Value, here: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Number(_) => out.push(here.clone()),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                here.push(i.to_string());
                numbers(x, here, out);
                here.pop();
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                here.push(k.clone());
                numbers(x, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(v, |v, k| match v {
        Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
        other => &mut other[k.as_str()],
    })
}

#[test]
fn a_rollback_never_resends_the_update_to_a_device_that_has_not_acked_it() {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let (mut h, canary) = canary_of_four(&pkg, Some(&rb), json!({}));
    // One device updated, so the rollback has one to roll back; the others never answer.
    h.handle(
        Input::Report(report(&canary[0], Success, Some("2.0.0"))),
        T0 + 1,
    )
    .unwrap();
    h.handle(
        Input::Rollback {
            by: "alice".parse().unwrap(),
        },
        T0 + 2,
    )
    .unwrap();
    assert_eq!(h.device_state(&canary[1]), Some(DeviceState::Sent));
    h.take_commands();
    // Past every no-ack deadline (three resends, ten minutes apart), short of the offline
    // expiry: the silent devices get nothing, least of all the update being rolled back.
    for minute in 1..=40 {
        h.handle(Input::Tick, T0 + minute * 60_000).unwrap();
    }
    let updates: Vec<_> = sent(&mut h).into_iter().filter(|(_, rb)| !rb).collect();
    assert!(updates.is_empty(), "the update was resent: {updates:?}");
    assert_eq!(h.device_state(&canary[1]), Some(DeviceState::Sent));
}

#[test]
fn a_plan_built_in_code_is_checked_like_a_parsed_one() {
    let pkg = firmware("2.0.0", false);
    let mut s = spec(&pkg, None, json!({"canary_percent": 10}));
    s.pacing.per_minute = Some(0);
    let fleet = sensors(40, 0);
    let e = Rollout::create(creation(s, &pkg, None, &fleet, T0)).unwrap_err();
    assert!(matches!(e, RolloutError::PlanFault { .. }), "{e}");
    assert_eq!(e.status(), Status::PlanInvalid);
    assert!(e.to_string().contains("per_minute"), "{e}");
}

/// Resuming acknowledges the failures seen when the rollout paused (those that tripped the
/// halt among them), not those in-flight devices reported while it was paused: they are
/// judged on resume, and halt it again.
#[test]
fn failures_reported_while_paused_are_judged_when_it_resumes() {
    let pkg = firmware("2.0.0", false);
    let (mut h, canary) = canary_of_four(
        &pkg,
        None,
        json!({"failure_threshold_percent": 25, "in_flight": "finish"}),
    );
    let fail = |h: &mut Host, d: &str, at: u64| {
        h.handle(Input::Report(report(d, Failure, None)), T0 + at)
            .unwrap();
    };
    fail(&mut h, &canary[0], 1);
    fail(&mut h, &canary[1], 2);
    assert_eq!(h.state(), ota_core::rollout::RolloutState::Paused);
    // The two others finish while it is paused, and fail too.
    fail(&mut h, &canary[2], 3);
    fail(&mut h, &canary[3], 4);
    h.take_trail();
    h.handle(
        Input::Resume {
            by: "alice".parse().unwrap(),
        },
        T0 + 5,
    )
    .unwrap();
    assert_eq!(h.state(), ota_core::rollout::RolloutState::Paused);
    assert!(
        effects(&mut h)
            .iter()
            .any(|e| matches!(e, Effect::HaltTripped { .. })),
        "the failures reported while paused trip the halt again"
    );
    // Acknowledged in turn, they let it go on.
    h.handle(
        Input::Resume {
            by: "alice".parse().unwrap(),
        },
        T0 + 6,
    )
    .unwrap();
    assert_eq!(h.state(), ota_core::rollout::RolloutState::Active);
}

/// A canary smaller than `min_terminal` that fails whole trips the halt: the rule waits for
/// `min_terminal` outcomes, or for every device in scope when there are fewer.
#[test]
fn a_canary_smaller_than_min_terminal_that_fails_whole_halts() {
    let pkg = firmware("2.0.0", false);
    let (mut h, canary) = canary_of_four(&pkg, None, json!({"halt": {"min_terminal": 20}}));
    assert_eq!(canary.len(), 4);
    for (i, d) in canary.iter().enumerate() {
        h.handle(Input::Report(report(d, Failure, None)), T0 + 1 + i as u64)
            .unwrap();
    }
    assert_eq!(h.state(), ota_core::rollout::RolloutState::Paused);
}

/// Only the next wave to open may be approved, and only while the rollout runs or is paused:
/// an approval given ahead would let a later wave past its success gate unseen.
#[test]
fn only_the_next_wave_may_be_approved() {
    let pkg = firmware("2.0.0", false);
    let waves = json!({"waves": [{"percent": 30, "gate": "approval"}, {"percent": 100, "gate": "approval"}]});
    let (mut h, _) = canary_of_four(&pkg, None, waves);
    let approve = |h: &mut Host, wave: usize| {
        h.handle(
            Input::Approve {
                by: "alice".parse().unwrap(),
                wave,
            },
            T0 + 1,
        )
    };
    let e = approve(&mut h, 2).unwrap_err();
    assert!(
        matches!(e, RolloutError::NotNextWave { wave: 2, next: 1 }),
        "{e}"
    );
    assert_eq!(e.status(), Status::RolloutState);
    assert!(matches!(
        approve(&mut h, 9).unwrap_err(),
        RolloutError::UnknownWave { wave: 9 }
    ));
    approve(&mut h, 1).unwrap();
    h.handle(
        Input::Abort {
            by: "alice".parse().unwrap(),
        },
        T0 + 2,
    )
    .unwrap();
    assert!(matches!(
        approve(&mut h, 1).unwrap_err(),
        RolloutError::State { .. }
    ));
}

/// A device held by a pause (its command cancelled while out) that finished anyway counts as
/// updated, and the rollback that follows reaches it: it runs the new version.
#[test]
fn a_device_held_by_a_pause_that_finished_anyway_is_rolled_back() {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let (mut h, canary) = canary_of_four(&pkg, Some(&rb), json!({"in_flight": "forced_cancel"}));
    h.handle(Input::Report(report(&canary[0], Failure, None)), T0 + 1)
        .unwrap();
    assert_eq!(h.state(), ota_core::rollout::RolloutState::Paused);
    assert_eq!(h.device_state(&canary[1]), Some(DeviceState::Scheduled));
    // The cancel came too late: it had installed and committed the update.
    h.handle(
        Input::Report(report(&canary[1], Success, Some("2.0.0"))),
        T0 + 2,
    )
    .unwrap();
    assert_eq!(h.device_state(&canary[1]), Some(DeviceState::Succeeded));
    h.handle(
        Input::Rollback {
            by: "alice".parse().unwrap(),
        },
        T0 + 3,
    )
    .unwrap();
    assert_eq!(h.device_state(&canary[1]), Some(DeviceState::RollbackSent));
}

/// A rollback is a command of its own, numbered after the update's last attempt: a late copy
/// of the device's failure of the update (its outbox sent it again, its answer lost) is not
/// taken for the rollback's failure.
#[test]
fn a_late_copy_of_the_updates_failure_is_not_taken_for_the_rollbacks() {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let (mut h, canary) = canary_of_four(&pkg, Some(&rb), json!({"rollback_scope": "cohort"}));
    let d = &canary[0];
    // The device says back the attempt it was told, as `ota-agent` does.
    let mut failed = report(d, Failure, None);
    failed.attempt = Some(1);
    h.handle(Input::device_report(failed.clone()), T0 + 1)
        .unwrap();
    assert_eq!(h.device_state(d), Some(DeviceState::Failed));
    h.handle(
        Input::Rollback {
            by: "alice".parse().unwrap(),
        },
        T0 + 2,
    )
    .unwrap();
    assert_eq!(h.device_state(d), Some(DeviceState::RollbackSent));
    let rollback_attempt = h.attempt(d).unwrap();
    assert_eq!(rollback_attempt, 2, "one after the update's only attempt");
    h.take_trail();
    // The update's failure again.
    let e = h.handle(Input::device_report(failed), T0 + 3).unwrap_err();
    assert!(
        matches!(
            e,
            RolloutError::StaleAttempt {
                reported: 1,
                current: 2,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(h.device_state(d), Some(DeviceState::RollbackSent));
    assert!(refused(&effects(&mut h), d), "the refusal is recorded");
    // The rollback's own report, on its attempt, counts.
    let mut done = report(d, Success, Some("1.9.0"));
    done.attempt = Some(rollback_attempt);
    h.handle(Input::device_report(done), T0 + 4).unwrap();
    assert_eq!(h.device_state(d), Some(DeviceState::RolledBack));
}

/// A device that timed out in progress and was scheduled for a retry may have finished its
/// first attempt after all: its success on that earlier attempt counts (it runs the version it
/// names), before the retry went out or after, so an `updated_only` rollback reaches it.
#[test]
fn a_success_on_an_attempt_a_timeout_retry_replaced_counts_and_the_rollback_reaches_it() {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let (mut h, canary) = canary_of_four(
        &pkg,
        Some(&rb),
        json!({"timeouts": {"in_progress_ms": 5000},
               "retries": {"timed_out": {"max": 2, "backoff_ms": 1000}}}),
    );
    let on = |d: &str, status, version: Option<&str>, attempt: u32| {
        let mut r = report(d, status, version);
        r.attempt = Some(attempt);
        Input::device_report(r)
    };
    let (waiting, resent) = (&canary[0], &canary[1]);
    for d in [waiting, resent] {
        h.handle(on(d, InProgress, None, 1), T0 + 10).unwrap();
    }
    // Both time out in progress: a retry is scheduled after its backoff.
    h.handle(Input::Tick, T0 + 5010).unwrap();
    assert_eq!(h.device_state(waiting), Some(DeviceState::Scheduled));
    assert_eq!(h.attempt(waiting), Some(2));
    // One finished its first attempt while its retry waited; the other once its retry was out.
    h.handle(on(waiting, Success, Some("2.0.0"), 1), T0 + 5500)
        .unwrap();
    assert_eq!(h.device_state(waiting), Some(DeviceState::Succeeded));
    h.handle(Input::Tick, T0 + 6100).unwrap();
    assert_eq!(h.device_state(resent), Some(DeviceState::Sent));
    h.handle(on(resent, Success, Some("2.0.0"), 1), T0 + 6200)
        .unwrap();
    assert_eq!(h.device_state(resent), Some(DeviceState::Succeeded));
    assert_eq!(h.status().cumulative.succeeded, 2);
    // A failure of an earlier attempt still counts for nothing.
    let third = &canary[2];
    h.handle(on(third, InProgress, None, 1), T0 + 5100).unwrap();
    h.handle(Input::Tick, T0 + 10_200).unwrap();
    assert_eq!(h.attempt(third), Some(2));
    let e = h
        .handle(on(third, Failure, None, 1), T0 + 10_300)
        .unwrap_err();
    assert!(matches!(e, RolloutError::StaleAttempt { .. }), "{e}");
    // Rolled back, both get the rollback package.
    h.take_commands();
    h.handle(
        Input::Rollback {
            by: "alice".parse().unwrap(),
        },
        T0 + 10_400,
    )
    .unwrap();
    let rolled: Vec<String> = sent(&mut h)
        .into_iter()
        .filter(|(_, rb)| *rb)
        .map(|(d, _)| d)
        .collect();
    assert!(
        rolled.contains(waiting) && rolled.contains(resent),
        "{rolled:?}"
    );
}

/// A failing external verdict on the wave in progress, given while the rollout is paused, is
/// judged when it resumes: it halts it again (it was dropped, and the rollout went on).
#[test]
fn a_failing_verdict_given_while_paused_halts_the_rollout_when_it_resumes() {
    let pkg = firmware("2.0.0", false);
    let (mut h, _) = canary_of_four(&pkg, None, json!({}));
    let alice: ota_core::Name = "alice".parse().unwrap();
    h.handle(Input::Pause { by: alice.clone() }, T0 + 1)
        .unwrap();
    h.handle(
        Input::Verdict {
            wave: 0,
            pass: false,
            by: "monitor".parse().unwrap(),
        },
        T0 + 2,
    )
    .unwrap();
    assert_eq!(h.state(), ota_core::rollout::RolloutState::Paused);
    h.handle(Input::Resume { by: alice.clone() }, T0 + 3)
        .unwrap();
    assert_eq!(h.state(), ota_core::rollout::RolloutState::Paused);
    let reason = h.status().halt_reason.unwrap_or_default();
    assert!(reason.contains("external verdict on wave 0"), "{reason}");
    // The operator resumes again, having seen it: it goes on.
    h.handle(Input::Resume { by: alice }, T0 + 4).unwrap();
    assert_eq!(h.state(), ota_core::rollout::RolloutState::Active);
}

/// A resend after no answer is a send: outside the plan's window it waits, like any other.
#[test]
fn no_resend_goes_out_once_the_window_has_ended() {
    let pkg = firmware("2.0.0", false);
    let (mut h, canary) = canary_of_four(
        &pkg,
        None,
        json!({"timeouts": {"ack_ms": 1000, "offline_expiry_ms": 600000},
               "retries": {"no_ack": {"max": 5}},
               "window": {"end_at": T0.get() + 1500}}),
    );
    h.take_commands();
    h.handle(Input::Tick, T0 + 1000).unwrap();
    assert_eq!(sent(&mut h).len(), canary.len(), "resent inside the window");
    for s in 2..=5 {
        h.handle(Input::Tick, T0 + s * 1000).unwrap();
    }
    let late = sent(&mut h);
    assert!(late.is_empty(), "resent after the window ended: {late:?}");
    assert_eq!(h.device_state(&canary[0]), Some(DeviceState::Sent));
    // The window will not open again: they wait for their offline expiry, waking for nothing
    // (no record) in between.
    h.take_trail();
    for s in 6..=60 {
        h.handle(Input::Tick, T0 + s * 1000).unwrap();
    }
    assert!(
        h.take_trail().is_empty(),
        "woken for nothing after the window ended"
    );
}

/// The same, when the rollback comes while the retry waits: the waiting device is cancelled,
/// and its success on the earlier attempt, after the rollback started, still counts, so the
/// rollback reaches it.
#[test]
fn a_success_on_a_timed_out_attempt_after_the_rollback_started_is_rolled_back() {
    let pkg = firmware("2.0.0", false);
    let rb = firmware("1.9.0", true);
    let (mut h, canary) = canary_of_four(
        &pkg,
        Some(&rb),
        json!({"timeouts": {"in_progress_ms": 5000},
               "retries": {"timed_out": {"max": 2, "backoff_ms": 60000}}}),
    );
    let d = &canary[0];
    h.handle(Input::Report(report(d, InProgress, None)), T0 + 10)
        .unwrap();
    h.handle(Input::Tick, T0 + 5010).unwrap();
    assert_eq!(h.device_state(d), Some(DeviceState::Scheduled));
    h.handle(
        Input::Rollback {
            by: "alice".parse().unwrap(),
        },
        T0 + 6000,
    )
    .unwrap();
    assert_eq!(h.device_state(d), Some(DeviceState::Cancelled));
    h.take_commands();
    let mut late = report(d, Success, Some("2.0.0"));
    late.attempt = Some(1);
    h.handle(Input::device_report(late), T0 + 7000).unwrap();
    let rolled: Vec<String> = sent(&mut h)
        .into_iter()
        .filter(|(_, rb)| *rb)
        .map(|(d, _)| d)
        .collect();
    assert_eq!(rolled, std::slice::from_ref(d));
}

/// A host that ticks at `poll_timeout` (as `ota-server` and the example do) while the plan's
/// maintenance window is closed is woken when the window opens: never given a deadline in the
/// past (it would tick in a loop until the window opened), nor one each ack period for silent
/// devices whose resends wait for next week's window.
#[test]
fn a_closed_maintenance_window_wakes_its_host_when_it_opens_and_not_in_between() {
    // 2026-11-23T01:00Z is a Monday; the window is Mondays 02:00-03:00 at UTC+01:00.
    let monday = UnixMs(1_795_395_600_000);
    let week = 7 * 86_400_000;
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(40, 0);
    let plan = json!({"canary_percent": 100,
        "timeouts": {"ack_ms": 60_000, "offline_expiry_ms": 3 * week},
        "retries": {"no_ack": {"max": 100}},
        "window": {"maintenance": [{"days": ["mon"], "start": "02:00", "duration_minutes": 60,
                                    "utc_offset_minutes": 60}]}});
    let friday = UnixMs(monday.get() - 3 * 86_400_000);
    let mut h = create(spec(&pkg, None, plan), &pkg, None, &fleet, friday);
    assert!(sent(&mut h).is_empty(), "outside the window");
    let (mut now, mut closed_wakes, mut sends) = (friday, 0, Vec::new());
    for _ in 0..500 {
        let next = h.poll_timeout().expect("devices wait: a deadline");
        assert!(next > now, "at {now} the deadline is {next}, not later");
        now = next;
        h.handle(Input::Tick, now).unwrap();
        let s = sent(&mut h);
        if !s.is_empty() {
            sends.push((now, s.len()));
        } else if !(now >= monday && now < monday + 3_600_000) {
            closed_wakes += 1;
        }
        if now >= monday + week {
            break;
        }
    }
    // Sent at the opening, resent each ack period inside it, then next Monday's opening.
    assert_eq!(sends.first(), Some(&(monday, 40)), "{sends:?}");
    assert_eq!(sends.last(), Some(&(monday + week, 40)), "{sends:?}");
    assert_eq!(sends.len(), 61, "{sends:?}");
    assert!(
        closed_wakes <= 2,
        "{closed_wakes} wakes with the window closed"
    );
}

/// A wave whose soak has passed and that waits for an approval (or a verdict, or reports)
/// gives its host no deadline: nothing a tick brings can open it. (`poll_timeout` gave the
/// soak's end, already past, for as long as the approval did not come: a host ticking at it
/// would tick in a loop.) Likewise the per-minute budget's renewal, once a step has passed it.
#[test]
fn a_wave_waiting_for_an_approval_after_its_soak_gives_no_deadline_already_past() {
    let pkg = firmware("2.0.0", false);
    let (mut h, canary) = canary_of_four(
        &pkg,
        None,
        json!({"waves": [{"percent": 100, "gate": "approval"}]}),
    );
    for (k, d) in canary.iter().enumerate() {
        h.handle(
            Input::Report(report(d, Success, Some("2.0.0"))),
            T0 + 10 + k as u64,
        )
        .unwrap();
    }
    let now = T0 + 60_000;
    h.handle(Input::Tick, now).unwrap();
    assert!(
        h.poll_timeout().is_none_or(|t| t > now),
        "at {now} the deadline is {:?}",
        h.poll_timeout()
    );
}
