//! The rollout engine against a hostile or careless world (issue 15, items 7 to 9): reports
//! that do not match the rollout, the package or the attempt; snapshots whose parts do not
//! agree; plans with extreme numbers and large static groups.

use ota_core::audit;
use ota_core::report::DeviceReport;
use ota_core::report::ReportStatus::{Failure, InProgress, Success};
use ota_core::rollout::{DeviceState, Effect, Input, Rollout, RolloutError};
use ota_core::{Status, UnixMs, VerifiedPackage};
use ota_tests::fleet::{Host, create, firmware, report, sensors, sent, spec};
use serde_json::{Value, json};

const T0: UnixMs = UnixMs(1_800_000_000_000);

/// 40 sensors, a 10 % canary (four devices sent), with `extra` plan fields.
fn canary_of_four(pkg: &VerifiedPackage, rb: Option<&VerifiedPackage>, extra: Value) -> (Host, Vec<String>) {
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
    effects.iter().any(|e| {
        matches!(e, Effect::ReportRefused { device_id, .. } if device_id.as_str() == device)
    })
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
    assert!(refused(&effects(&mut h), d), "the refusal is recorded");
    // The right version counts.
    h.handle(Input::Report(report(d, Success, Some("2.0.0"))), T0 + 2)
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
    h.handle(Input::Rollback { by: "alice".parse().unwrap() }, T0 + 2)
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
            matches!(e, RolloutError::StaleAttempt { reported: 1, current: 2, .. }),
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
    let _ = h.handle(Input::Report(report(&d, Success, Some("9.9.9"))), T0 + 2);
    h.handle(Input::Report(report(&d, Success, Some("2.0.0"))), T0 + 3)
        .unwrap();
    let trail = h.take_trail();
    audit::verify_with_head(&trail, &h.audit_head()).unwrap();
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
        &trail,
    )
    .unwrap();
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
    let group: Vec<_> = fleet.iter().step_by(2).rev().map(|d| d.device_id.clone()).collect();
    let target = Target::Group { devices: group.clone() };
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
    h.handle(Input::Leave { device_id: fleet[0].device_id.clone() }, T0 + 2)
        .unwrap();
    h.handle(Input::Join(Box::new(fleet[0].clone())), T0 + 3)
        .unwrap();
    assert_ne!(h.device_state(fleet[0].device_id.as_str()), Some(DeviceState::Removed));
}
