//! A creation's compatibility pass judged in parts, on threads (`ota_host::rollout::create`,
//! `Judge`, `Rollout::create_judged`): the same rollout as judged on one thread, whatever the
//! thread count and the order the parts are judged in; verdicts that are not the fleet's are
//! refused, and a request the core refuses is refused the same way before any device is judged.

use ota_core::rollout::{Judge, Output, Rollout, RolloutError, Verdict};
use ota_core::{DeviceProfile, UnixMs};
use ota_tests::fleet::{creation, firmware, sensors, spec};
use serde_json::json;

const T0: UnixMs = UnixMs(1_800_000_000_000);

/// 40,000 sensors (above `MIN_PARALLEL`): every 13th a doorbell the firmware does not fit,
/// every 10th on another profile (outside the target), every 17th already on 2.0.0.
fn fleet() -> Vec<DeviceProfile> {
    let mut fleet = sensors(40_000, 13);
    for (i, d) in fleet.iter_mut().enumerate() {
        if i % 10 == 3 {
            d.labels
                .insert("profile".parse().unwrap(), "prof_other".into());
        }
        if i % 17 == 5 {
            d.installed
                .insert("temp-sensor-fw".parse().unwrap(), "2.0.0".parse().unwrap());
        }
    }
    fleet
}

fn outputs(mut r: Rollout) -> (Rollout, Vec<Output>) {
    let out = std::iter::from_fn(|| r.poll()).collect();
    (r, out)
}

#[test]
fn a_rollout_judged_on_any_number_of_threads_is_the_rollout_judged_on_one() {
    let (pkg, rb) = (firmware("2.0.0", false), firmware("1.9.0", true));
    let fleet = fleet();
    let plan = json!({"waves": [{"percent": 20}, {"percent": 60}, {"percent": 100}]});
    let make = || {
        creation(
            spec(&pkg, Some(&rb), plan.clone()),
            &pkg,
            Some(&rb),
            &fleet,
            T0,
        )
    };
    let (one, one_out) = outputs(Rollout::create(make()).unwrap());
    // Every kind of verdict is there, so each is carried across the threads.
    let verdicts = Judge::new(&make()).unwrap().verdicts(0..fleet.len());
    let kinds = |f: fn(&Verdict) -> bool| verdicts.iter().filter(|v| f(v)).count();
    assert!(kinds(|v| matches!(v, Verdict::Outside)) > 1000);
    assert!(kinds(|v| matches!(v, Verdict::Incompatible(_))) > 1000);
    assert!(kinds(|v| matches!(v, Verdict::AlreadyInstalled)) > 1000);
    assert!(kinds(|v| matches!(v, Verdict::Eligible { .. })) > 20_000);
    for threads in [0, 1, 2, 3, 7] {
        let (r, out) = outputs(ota_host::rollout::create(make(), threads).unwrap());
        assert!(r.same_state(&one), "{threads} threads");
        assert_eq!(out, one_out, "{threads} threads");
    }
    // Parts judged in any order and joined in the fleet's order make the same rollout.
    let judge = Judge::new(&make()).unwrap();
    let mut parts: Vec<_> = (0..5)
        .rev()
        .map(|p| (p, judge.verdicts(p * 8_000..(p + 1) * 8_000)))
        .collect();
    parts.sort_by_key(|(p, _)| *p);
    let joined: Vec<Verdict> = parts.into_iter().flat_map(|(_, v)| v).collect();
    assert_eq!(joined, verdicts);
    assert!(judge.verdicts(39_999..60_000).len() == 1 && judge.verdicts(50_000..60_000).is_empty());
    drop(judge);
    let (r, out) = outputs(Rollout::create_judged(make(), joined).unwrap());
    assert!(r.same_state(&one));
    assert_eq!(out, one_out);
}

#[test]
fn verdicts_that_are_not_one_per_device_of_the_fleet_are_refused() {
    let pkg = firmware("2.0.0", false);
    let fleet = sensors(100, 13);
    let make = || creation(spec(&pkg, None, json!({})), &pkg, None, &fleet, T0);
    let verdicts = Judge::new(&make()).unwrap().verdicts(0..99);
    let e = Rollout::create_judged(make(), verdicts).unwrap_err();
    assert_eq!(
        e,
        RolloutError::VerdictsMismatch {
            verdicts: 99,
            devices: 100
        }
    );
    assert_eq!(e.status(), ota_core::Status::InvalidArgument);
    assert_eq!(
        e.to_string(),
        "99 verdicts were given for a fleet of 100 devices"
    );
}

#[test]
fn a_request_refused_before_the_fleet_is_judged_is_refused_alike_on_threads() {
    // The request names another package: every path refuses it the same way, and the
    // threaded one before it judges a device.
    let (pkg, other) = (firmware("2.0.0", false), firmware("2.0.1", false));
    let fleet = fleet();
    let make = || creation(spec(&other, None, json!({})), &pkg, None, &fleet, T0);
    let one = Rollout::create(make()).unwrap_err();
    assert!(matches!(one, RolloutError::PackageMismatch { .. }), "{one}");
    assert_eq!(Judge::new(&make()).unwrap_err(), one);
    assert_eq!(ota_host::rollout::create(make(), 2).unwrap_err(), one);
    let judged = Rollout::create_judged(make(), Vec::new()).unwrap_err();
    assert_eq!(
        judged, one,
        "the request is checked before the verdicts' count"
    );
}

/// Firmware 1.9.0 signed as a rollback from 2.0.0 that fits only the v2 and v3 sensor boards,
/// not `acme-sensor-lite`.
fn rollback_without_lite() -> ota_core::VerifiedPackage {
    let mut p = ota_tests::firmware_package();
    p.version = "1.9.0".parse().unwrap();
    p.rollback = Some(ota_tests::rollback_from("2.0.0"));
    p.compatibility.hardware_profiles = vec![
        "acme-sensor-v2".parse().unwrap(),
        "acme-sensor-v3".parse().unwrap(),
    ];
    ota_tests::seal_into(&mut p, b"1.9.0");
    let key = ota_tests::signing_key(1);
    let env = ota_core::sign::sign(&p, &[&key]).unwrap();
    let trusted = [key.public_key()].into_iter().collect();
    ota_core::sign::verify_envelope(env, &trusted, 1, &ota_core::Limits::DEFAULT).unwrap()
}

#[test]
fn a_fleet_refused_for_a_device_in_a_later_part_is_refused_alike_on_any_number_of_threads() {
    let pkg = firmware("2.0.0", false);
    let rb = rollback_without_lite();
    // The rollback fits no lite board, and the first lite board is past the middle: the
    // refusal names it, and counts them all, whichever thread judged them.
    let mut misfits = fleet();
    for d in &mut misfits[..25_000] {
        if d.hardware_profile.as_str() == "acme-sensor-lite" {
            d.hardware_profile = "acme-sensor-v2".parse().unwrap();
        }
    }
    let make = |f| creation(spec(&pkg, Some(&rb), json!({})), &pkg, Some(&rb), f, T0);
    let one = Rollout::create(make(&misfits)).unwrap_err();
    let RolloutError::RollbackDoesNotFit { devices, first } = &one else {
        panic!("{one}");
    };
    assert_eq!(first.as_str(), "dev-25001");
    assert!(*devices > 3_000, "{devices}");
    for threads in [3, usize::MAX] {
        assert_eq!(
            ota_host::rollout::create(make(&misfits), threads).unwrap_err(),
            one,
            "{threads} threads"
        );
    }
    // A device named twice, the second time in the last part: the one named again is reported.
    let mut twice = fleet();
    twice[39_000].device_id = twice[5].device_id.clone();
    let one = Rollout::create(make(&twice)).unwrap_err();
    assert_eq!(
        one,
        RolloutError::DuplicateDevice {
            device_id: "dev-0005".parse().unwrap()
        }
    );
    for threads in [3, usize::MAX] {
        assert_eq!(
            ota_host::rollout::create(make(&twice), threads).unwrap_err(),
            one,
            "{threads} threads"
        );
    }
}
