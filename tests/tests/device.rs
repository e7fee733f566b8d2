//! The device path: the agent updates, verifies every chunk, survives power cuts at every step,
//! refuses every attack before touching the active slot, and rolls back on a failed probe.

use std::collections::VecDeque;

use ota_core::agent::{AgentError, AgentRecord, AgentState, Input, Output, RecordError, Rejection};
use ota_core::assignment::{Assignment, Assignments, ChunkFetch, Proof, ProtocolError};
use ota_core::catalog::Catalog;
use ota_core::download::ChunkRequest;
use ota_core::probe::{ProbeError, ProbeResult, ProbeSpec};
use ota_core::report::ReportStatus;
use ota_core::seal::SealKey;
use ota_core::sign::{self, TrustedKeys, VerifiedPackage};
use ota_core::{DeviceProfile, Limits, Package, Status, UnixMs};
use ota_sim::network::{chunk, in_order};
use ota_sim::{Rng, noise};
use ota_tests::device::{Device, config, healthy, unhealthy};
use ota_tests::{rollback_from, signing_key};

const OLD: &[u8] = b"firmware 1.2.0, the version the device runs";

fn sensor() -> DeviceProfile {
    DeviceProfile::from_json(
        br#"{"device_id":"dev_8f3a","device_type":"temp-sensor","hardware_profile":"acme-sensor-v2","arch":"armv7",
             "installed":{"temp-sensor-fw":"1.2.0"}}"#,
    )
    .unwrap()
}

fn trusted() -> TrustedKeys {
    [signing_key(1).public_key()].into_iter().collect()
}

/// A signed firmware package of `plaintext` at `version`: (verified, artifact, key).
fn publish(
    plaintext: &[u8],
    version: &str,
    tweak: impl FnOnce(&mut Package),
) -> (VerifiedPackage, Vec<u8>, SealKey) {
    let key = SealKey::from_bytes([0x33; 32]);
    let (artifact, sealed) = ota_core::seal::seal_bytes(&key, [7; 16], plaintext).unwrap();
    let mut p = ota_tests::firmware_package();
    p.version = version.parse().unwrap();
    p.set_sealed(&sealed);
    tweak(&mut p);
    let env = sign::sign(&p, &[&signing_key(1)]).unwrap();
    (
        sign::verify_envelope(env, &trusted(), 1, &Limits::DEFAULT).unwrap(),
        artifact,
        key,
    )
}

fn assignment(v: &VerifiedPackage, key: &SealKey) -> Assignment {
    Assignment::new(v, key.clone(), Some("rol_4c7e".parse().unwrap()), None).unwrap()
}

fn device(probe: ota_tests::device::ProbeOutcome) -> Device {
    Device::new(config(sensor(), trusted()), OLD, probe)
}

/// An exec probe of `path` with `args` that may take a second.
fn exec_probe(path: &str, args: &[&str]) -> ProbeSpec {
    ProbeSpec::Exec {
        path: path.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        timeout_ms: 1000,
    }
}

fn last_report(d: &Device) -> &ota_core::report::DeviceReport {
    d.disk.reports.last().expect("a report")
}

/// Asserts the device's last report is a failure whose reason says `why`.
#[track_caller]
fn assert_failed_because(d: &Device, why: &str) {
    let report = last_report(d);
    assert_eq!(report.status, ReportStatus::Failure, "{report:?}");
    let reason = report.reason.as_deref().unwrap_or_default();
    assert!(reason.contains(why), "{report:?}");
}

/// A healthy device that took the assignment of `v` and the first chunk of its `artifact`.
fn downloading(v: &VerifiedPackage, key: &SealKey, artifact: &[u8]) -> Device {
    let mut d = device(healthy());
    d.assign(assignment(v, key)).unwrap();
    d.drain(&mut None).unwrap();
    let (o, data) = in_order(&mut d.wanted, artifact).unwrap();
    d.chunk(o, &data).unwrap();
    d
}

/// Whether `e` refuses a probe for running an interpreter.
fn refuses_interpreter(e: &AgentError) -> bool {
    matches!(
        e,
        AgentError::Rejected(Rejection::ProbeNotAllowed(ProbeError::Interpreter { .. }))
    )
}

#[test]
fn an_update_installs_swaps_probes_and_commits() {
    let new = noise(300_000, 1);
    let (v, artifact, key) = publish(&new, "2.0.0", |_| {});
    let mut d = device(healthy());
    d.assign(assignment(&v, &key)).unwrap();
    d.run(&artifact, &mut in_order, None).unwrap();
    assert_eq!(d.disk.active_bytes(), new);
    assert_eq!(d.agent().state(), AgentState::Idle);
    assert_eq!(
        d.agent().installed("temp-sensor-fw").unwrap().to_string(),
        "2.0.0"
    );
    let r = last_report(&d);
    assert_eq!(
        (
            r.status,
            r.firmware_version.as_ref().unwrap().to_string().as_str()
        ),
        (ReportStatus::Success, "2.0.0")
    );
    assert_eq!(r.rollout_id.as_ref().unwrap().as_str(), "rol_4c7e");
    assert_eq!(d.disk.reports[0].status, ReportStatus::InProgress);
    // The states were persisted in order.
    let states: Vec<String> = d
        .log
        .iter()
        .filter(|l| !l.starts_with("persist"))
        .cloned()
        .collect();
    assert_eq!(
        states,
        [
            "report in_progress",
            "swap",
            "probe",
            "probe",
            "report success"
        ]
    );
}

/// Delivers chunks shuffled, duplicated, corrupted, from another artifact, and dropped
/// (a dropped chunk is asked for again later, as a host retrying would).
fn chaos(
    seed: u64,
    other: Vec<u8>,
) -> impl FnMut(&mut VecDeque<ChunkRequest>, &[u8]) -> Option<(u64, Vec<u8>)> {
    let mut rng = Rng::new(seed);
    let mut retry: Vec<ChunkRequest> = Vec::new();
    move |wanted: &mut VecDeque<ChunkRequest>, artifact: &[u8]| loop {
        if wanted.is_empty() {
            wanted.extend(retry.drain(..));
        }
        if wanted.is_empty() {
            return None;
        }
        let i = rng.index(wanted.len());
        let r = wanted[i];
        let roll = rng.below(10);
        if roll == 0 {
            // Dropped on the floor: the host retries later.
            wanted.remove(i);
            retry.push(r);
            continue;
        }
        if roll > 2 {
            wanted.remove(i); // delivered; corrupted ones (roll 1..=2) stay wanted
        }
        let mut data = chunk(artifact, &r).to_vec();
        match roll {
            1 => {
                let at = rng.index(data.len());
                data[at] ^= 0x55;
            }
            2 => {
                // A chunk of another package at the same offset (mix-and-match), where it
                // has one as long.
                let theirs = chunk(&other, &r);
                if theirs.len() == data.len() {
                    data.copy_from_slice(theirs);
                }
            }
            _ => {}
        }
        // Sometimes the same chunk arrives twice.
        if rng.below(8) == 0 {
            wanted.push_back(r);
        }
        return Some((r.offset, data));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Random orders, duplicates, corruptions, chunks of another artifact and drops always
    /// end in a byte-identical install.
    #[test]
    fn random_orders_duplicates_corruptions_and_drops_install_byte_identically(
        seed in proptest::prelude::any::<u64>(),
        size in 1usize..400_000,
    ) {
        let new = noise(size, seed | 1);
        let (v, artifact, key) = publish(&new, "2.0.0", |_| {});
        let (_, other, _) = publish(&noise(size, seed ^ 0x55), "2.0.1", |_| {});
        let mut d = device(healthy());
        d.assign(assignment(&v, &key)).unwrap();
        d.run(&artifact, &mut chaos(seed, other), None).unwrap();
        proptest::prop_assert_eq!(d.disk.active_bytes(), new);
        proptest::prop_assert_eq!(last_report(&d).status, ReportStatus::Success);
    }
}

/// The outcome a device must end in: a good version, and a report saying which.
fn assert_good_end(d: &mut Device, new: &[u8], what: &str) {
    let active = d.disk.active_bytes();
    let installed = d.agent().installed("temp-sensor-fw").unwrap().to_string();
    assert_eq!(d.agent().state(), AgentState::Idle, "{what}");
    let Some(report) = d.disk.reports.last().cloned() else {
        // The power went before the assignment was persisted: the device never took it, and
        // the control plane's persistent command brings it again.
        assert_eq!(
            (active.as_slice(), installed.as_str()),
            (OLD, "1.2.0"),
            "{what}"
        );
        return;
    };
    if active == new {
        assert_eq!(installed, "2.0.0", "{what}");
        assert_eq!(report.status, ReportStatus::Success, "{what}");
    } else {
        assert_eq!(active, OLD, "{what}: the device is on neither version");
        assert_eq!(installed, "1.2.0", "{what}");
        assert_eq!(report.status, ReportStatus::Failure, "{what}");
        assert_eq!(
            report.firmware_version.unwrap().to_string(),
            "1.2.0",
            "{what}"
        );
    }
}

#[test]
fn a_power_cut_at_every_step_boundary_ends_on_a_good_version() {
    let new = noise(200_000, 4);
    let (v, artifact, key) = publish(&new, "2.0.0", |_| {});
    for probe_ok in [true, false] {
        // Count the commands of an uninterrupted run.
        let mut d = device(if probe_ok { healthy() } else { unhealthy() });
        d.assign(assignment(&v, &key)).unwrap();
        let mut budget = Some(usize::MAX);
        d.drain(&mut budget).unwrap();
        d.run(&artifact, &mut in_order, None).unwrap();
        let total = d.log.len() + 8;
        for k in 0..total {
            let mut d = device(if probe_ok { healthy() } else { unhealthy() });
            d.assign(assignment(&v, &key)).unwrap();
            let what = format!("probe ok {probe_ok}, cut after {k} commands");
            if d.run(&artifact, &mut in_order, Some(k)).is_none() {
                d.power_cut();
                d.boot();
                d.run(&artifact, &mut in_order, None).unwrap();
            }
            assert_good_end(&mut d, &new, &what);
            if d.disk.reports.is_empty() {
                // Never taken: the control plane's persistent command delivers it again.
                d.assign(assignment(&v, &key)).unwrap();
                d.run(&artifact, &mut in_order, None).unwrap();
                assert_good_end(&mut d, &new, &what);
            }
            // A sick version is always gone. A healthy one is kept, unless the power cut came
            // while it was being probed: that counts as a failed probe, and the report says so.
            let kept = d.disk.active_bytes() == new;
            if !probe_ok {
                assert!(!kept, "{what}");
            } else if !kept {
                let reason = last_report(&d).reason.clone().unwrap_or_default();
                assert!(
                    reason.contains("restarted while probing"),
                    "{what}: {reason}"
                );
            }
        }
    }
}

/// A power cut after the record says "assigned" and before the in-progress report that
/// follows it is queued loses no report: on its next boot the device says it started.
#[test]
fn a_power_cut_between_the_assignment_and_its_report_still_reports_in_progress() {
    let new = noise(200_000, 6);
    let (v, artifact, key) = publish(&new, "2.0.0", |_| {});
    let mut d = device(healthy());
    d.assign(assignment(&v, &key)).unwrap();
    // The first output is the record saying assigned; the report comes next.
    assert!(d.run(&artifact, &mut in_order, Some(1)).is_none());
    assert_eq!(d.log, ["persist"]);
    assert!(d.disk.reports.is_empty());
    d.power_cut();
    d.boot();
    d.run(&artifact, &mut in_order, None).unwrap();
    let said: Vec<ReportStatus> = d.disk.reports.iter().map(|r| r.status).collect();
    assert_eq!(said, [ReportStatus::InProgress, ReportStatus::Success]);
    assert_eq!(d.disk.active_bytes(), new);
}

#[test]
fn a_power_cut_in_the_middle_of_slot_writes_resumes_and_finishes() {
    let new = noise(500_000, 5);
    let (v, artifact, key) = publish(&new, "2.0.0", |_| {});
    for cut in [0u64, 1, 4096, 65_535, 65_536, 200_000, 499_999] {
        let mut d = device(healthy());
        d.assign(assignment(&v, &key)).unwrap();
        d.disk.cut_power_after(Some(cut));
        // Deliver chunks until the slot writer fails: the power is gone.
        let _ = d.run(&artifact, &mut in_order, None);
        d.power_cut();
        d.boot();
        d.run(&artifact, &mut in_order, None).unwrap();
        assert_good_end(&mut d, &new, &format!("cut after {cut} slot bytes"));
    }
}

#[test]
fn a_flipped_byte_in_staging_is_found_on_resume_and_refetched() {
    let new = noise(400_000, 6);
    let (v, artifact, key) = publish(&new, "2.0.0", |_| {});
    let mut d = device(healthy());
    d.assign(assignment(&v, &key)).unwrap();
    let mut budget = None;
    d.drain(&mut budget).unwrap();
    // Deliver everything but the first chunk, so nothing is installed yet.
    let first = d.wanted.pop_front().unwrap();
    while let Some((o, data)) = in_order(&mut d.wanted, &artifact) {
        d.chunk(o, &data).unwrap();
    }
    // Persist the download state by hand: cut the power after a persisted record.
    let rec = d.agent().record().clone();
    let mut rec = rec;
    if let Some(u) = rec.update.as_mut() {
        u.download = Some(ota_core::download::DownloadState {
            package_id: v.id().clone(),
            sha256: v.package().sha256,
            verified: "fe".into(), // chunks 1..=6 of 0..=6
        });
    }
    d.disk.record = Some(rec.to_json());
    d.power_cut();
    d.disk.staging[70_000] ^= 1; // chunk 1 rots on disk
    d.boot();
    let mut budget = None;
    d.drain(&mut budget).unwrap();
    // Chunk 0 was never fetched; chunk 1 rotted on disk; the rest survived.
    let asked: Vec<usize> = d.wanted.iter().map(|r| r.index).collect();
    assert_eq!(asked, [0, 1]);
    let _ = first;
    d.run(&artifact, &mut in_order, None).unwrap();
    assert_eq!(d.disk.active_bytes(), new);
}

/// Staging that cannot take a verified chunk (a full disk) fails the update at once: the
/// device reports why and is idle again on its old version, instead of waiting on a chunk
/// nothing asks for again until the download's deadline, holding the staging space.
#[test]
fn a_full_staging_disk_fails_the_update_and_leaves_the_old_version() {
    let new = noise(400_000, 9);
    let (v, artifact, key) = publish(&new, "2.0.0", |_| {});
    let mut d = device(healthy());
    d.disk.staging_capacity = Some(100_000);
    d.assign(assignment(&v, &key)).unwrap();
    d.drain(&mut None).unwrap();
    let (o, data) = in_order(&mut d.wanted, &artifact).unwrap();
    d.chunk(o, &data).unwrap();
    let (o, data) = in_order(&mut d.wanted, &artifact).unwrap();
    let e = d.chunk(o, &data).unwrap_err();
    assert!(e.to_string().contains("staging"), "{e}");
    d.drain(&mut None).unwrap();
    assert_failed_because(&d, "staging storage");
    assert_eq!(d.agent().state(), AgentState::Idle);
    assert_eq!(d.disk.active_bytes(), OLD);
    assert_eq!(d.persisted().map(|r| r.state), Some(AgentState::Idle));
}

/// A tick during a download records the chunks verified since the last record (a host about
/// to stop ticks first), so the next boot asks only for the rest.
#[test]
fn a_tick_mid_download_records_what_was_verified_and_a_boot_fetches_only_the_rest() {
    let new = noise(400_000, 10);
    let (v, artifact, key) = publish(&new, "2.0.0", |_| {});
    let mut d = downloading(&v, &key, &artifact);
    let (o, data) = in_order(&mut d.wanted, &artifact).unwrap();
    d.chunk(o, &data).unwrap();
    d.drain(&mut None).unwrap();
    let before = d
        .persisted()
        .and_then(|r| r.update)
        .and_then(|u| u.download);
    assert!(before.is_none_or(|dl| dl.verified.chars().all(|c| c == '0')));
    d.handle(Input::Tick).unwrap();
    d.drain(&mut None).unwrap();
    d.power_cut();
    d.boot();
    d.drain(&mut None).unwrap();
    let asked: Vec<usize> = d.wanted.iter().map(|r| r.index).collect();
    assert_eq!(asked, [2, 3, 4, 5, 6], "chunks 0 and 1 were recorded");
    d.run(&artifact, &mut in_order, None).unwrap();
    assert_eq!(d.disk.active_bytes(), new);
}

/// Runs an attack: the active slot's hash is the same before and after, and nothing was
/// written to any slot unless `writes_allowed`.
fn attack(
    name: &str,
    d: &mut Device,
    f: impl FnOnce(&mut Device) -> Result<(), AgentError>,
    writes_allowed: bool,
) -> AgentError {
    let before = d.disk.active_digest();
    d.disk.take_slot_writes();
    let err = f(d).expect_err(name);
    let mut budget = None;
    d.drain(&mut budget);
    assert_eq!(
        d.disk.active_digest(),
        before,
        "{name}: the active slot changed"
    );
    if !writes_allowed {
        assert_eq!(d.disk.take_slot_writes(), 0, "{name}: a slot was written");
    }
    err
}

#[test]
fn attacks_are_refused_before_the_active_slot_is_touched() {
    let new = noise(300_000, 7);
    let (v, artifact, key) = publish(&new, "2.0.0", |_| {});

    // A signature by an unknown key.
    let mut d = device(healthy());
    let mut p = v.package().clone();
    p.release_notes = "trojan".into();
    let stranger = sign::sign(&p, &[&signing_key(9)]).unwrap();
    let mut a = assignment(&v, &key);
    a.proof = Proof::Dsse(stranger);
    let e = attack("unknown key", &mut d, |d| d.assign(a), false);
    assert!(
        matches!(
            e,
            AgentError::Rejected(Rejection::Signature(sign::SignError::ThresholdNotMet {
                needed: 1,
                found: 0
            }))
        ),
        "{e:?}"
    );
    assert_eq!(e.status(), Status::ThresholdNotMet);
    assert_eq!(last_report(&d).status, ReportStatus::Rejected);

    // Metadata that lies about the signed statement.
    let mut a = assignment(&v, &key);
    a.size_bytes += 16;
    let e = attack("lying metadata", &mut d, |d| d.assign(a), false);
    assert!(
        matches!(
            e,
            AgentError::Rejected(Rejection::MetadataMismatch {
                field: "size_bytes"
            })
        ),
        "{e:?}"
    );
    assert_eq!(e.status(), Status::StatementInvalid);
    // An assignment that names another package than its envelope proves.
    let mut a = assignment(&v, &key);
    a.package_id = "pkg_0000000000000000".parse().unwrap();
    let e = attack("another package id", &mut d, |d| d.assign(a), false);
    assert!(
        matches!(&e, AgentError::Rejected(Rejection::PackageMismatch { requested, given })
            if requested.as_str() == "pkg_0000000000000000" && given == v.id()),
        "{e:?}"
    );
    assert_eq!(e.status(), Status::StatementInvalid);
    // A TUF target that no TUF client verified.
    let mut a = assignment(&v, &key);
    a.proof = Proof::Tuf {
        target: "temp-sensor-fw/2.0.0/fw.enc".into(),
    };
    let e = attack("unverified tuf target", &mut d, |d| d.assign(a), false);
    assert!(
        matches!(&e, AgentError::Rejected(Rejection::Unverified { target }) if target == "temp-sensor-fw/2.0.0/fw.enc"),
        "{e:?}"
    );
    // A DSSE package handed over by the host does not stand in for a TUF target's.
    let mut a = assignment(&v, &key);
    a.proof = Proof::Tuf {
        target: "temp-sensor-fw/2.0.0/fw.enc".into(),
    };
    let e = attack(
        "dsse package for a tuf target",
        &mut d,
        |d| d.assign_verified(a, v.clone()),
        false,
    );
    assert!(
        matches!(e, AgentError::Rejected(Rejection::Unverified { .. })),
        "{e:?}"
    );
    // An envelope is verified by the agent itself; a package the host hands over with it
    // must be the same one.
    let (stray, _, _) = publish(b"another", "2.0.1", |_| {});
    let e = attack(
        "another package beside the envelope",
        &mut d,
        |d| d.assign_verified(assignment(&v, &key), stray.clone()),
        false,
    );
    assert!(
        matches!(&e, AgentError::Rejected(Rejection::PackageMismatch { requested, given })
            if requested == v.id() && given == stray.id()),
        "{e:?}"
    );

    // Incompatible hardware.
    let (wrong_type, _, _) = publish(&new, "2.0.0", |p| {
        p.compatibility.device_types = vec!["doorbell".parse().unwrap()]
    });
    let e = attack(
        "incompatible",
        &mut d,
        |d| d.assign(assignment(&wrong_type, &key)),
        false,
    );
    assert!(
        matches!(&e, AgentError::Rejected(Rejection::Incompatible { reasons })
            if reasons.len() == 1 && reasons[0].reason == ota_core::Reason::DeviceTypeMismatch),
        "{e:?}"
    );
    assert_eq!(e.status(), Status::NotCompatible);
    assert!(e.to_string().contains("device_type_mismatch"), "{e}");

    // Endless data: more than the signed size, at the last chunk.
    d.assign(assignment(&v, &key)).unwrap();
    let last = (artifact.len() / 65536 * 65536) as u64;
    let mut data = artifact[last as usize..].to_vec();
    data.extend_from_slice(&[0; 64]);
    let e = attack("endless data", &mut d, |d| d.chunk(last, &data), true);
    assert_eq!(e.status(), Status::TooLong);
    // A chunk from another artifact.
    let (_, other, _) = publish(&noise(300_000, 8), "2.0.0", |_| {});
    let e = attack(
        "mix and match",
        &mut d,
        |d| d.chunk(65536, &other[65536..131_072]),
        true,
    );
    assert_eq!(e.status(), Status::ChunkDigestMismatch);
    assert!(e.to_string().contains("chunk 1"), "{e}");
    // Misaligned and oversize data.
    assert_eq!(
        d.chunk(100, &artifact[100..200]).unwrap_err().status(),
        Status::ChunkMisaligned
    );
    assert_eq!(
        d.chunk(0, &artifact[..70_000]).unwrap_err().status(),
        Status::ChunkOutOfRange
    );
    d.run(&artifact, &mut in_order, None).unwrap();
    assert_eq!(d.disk.active_bytes(), new);

    // A downgrade, directly and after a reboot.
    let (older, _, _) = publish(b"firmware 1.9.0", "1.9.0", |_| {});
    let e = attack(
        "downgrade",
        &mut d,
        |d| d.assign(assignment(&older, &key)),
        false,
    );
    assert!(
        matches!(&e, AgentError::Rejected(Rejection::Downgrade { name, installed, offered })
            if name.as_str() == "temp-sensor-fw" && installed.to_string() == "2.0.0"
                && offered.to_string() == "1.9.0"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "assignment refused: downgrade refused: temp-sensor-fw 1.9.0 is older than 2.0.0"
    );
    assert_eq!(e.status(), Status::Downgrade);
    d.power_cut();
    d.boot();
    let e = attack(
        "downgrade after reboot",
        &mut d,
        |d| d.assign(assignment(&older, &key)),
        false,
    );
    assert_eq!(e.status(), Status::Downgrade);
    // The same version again is success, not a new install.
    let e = attack(
        "already installed",
        &mut d,
        |d| d.assign(assignment(&v, &key)),
        false,
    );
    assert!(
        matches!(&e, AgentError::Rejected(Rejection::AlreadyInstalled { version, .. }) if version.to_string() == "2.0.0"),
        "{e:?}"
    );
    assert_eq!(e.status(), Status::AlreadyInstalled);
    assert_eq!(last_report(&d).status, ReportStatus::Success);
}

#[test]
fn a_decompression_bomb_with_a_valid_signature_is_stopped_at_its_declared_size() {
    // A megabyte of zeros, declared as 4 KiB: the publisher's key signed a lie.
    let (v, artifact, key) = publish(&vec![0u8; 1 << 20], "2.0.0", |p| {
        if let Some(s) = p.seal.as_mut() {
            s.plaintext_size = 4096;
        }
    });
    let mut d = device(healthy());
    let before = d.disk.active_digest();
    d.assign(assignment(&v, &key)).unwrap();
    d.run(&artifact, &mut in_order, None).unwrap();
    assert_eq!(d.disk.active_digest(), before);
    assert!(
        d.disk.inactive_len() <= 4096,
        "wrote {} bytes",
        d.disk.inactive_len()
    );
    let r = last_report(&d);
    assert_eq!(r.status, ReportStatus::Failure);
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .contains("exceeds its limit of 4096"),
        "{r:?}"
    );
    assert_eq!(
        d.agent().installed("temp-sensor-fw").unwrap().to_string(),
        "1.2.0"
    );
}

#[test]
fn a_signed_rollback_may_go_back_a_version() {
    let (v2, a2, key) = publish(b"firmware 2.0.0", "2.0.0", |_| {});
    let (v1, a1, _) = publish(b"firmware 1.5.0", "1.5.0", |p| {
        p.rollback = Some(rollback_from("2.0.0"));
    });
    let mut d = device(healthy());
    d.assign(assignment(&v2, &key)).unwrap();
    d.run(&a2, &mut in_order, None).unwrap();
    d.assign(assignment(&v1, &key)).unwrap();
    d.run(&a1, &mut in_order, None).unwrap();
    assert_eq!(d.disk.active_bytes(), b"firmware 1.5.0");
    // The highest version is still remembered.
    assert_eq!(
        d.agent().record().highest["temp-sensor-fw"].to_string(),
        "2.0.0"
    );
}

#[test]
fn a_replayed_rollback_package_is_not_a_permanent_downgrade_pass() {
    let (v2, a2, key) = publish(b"firmware 2.0.0", "2.0.0", |_| {});
    let (v3, a3, _) = publish(b"firmware 3.0.0", "3.0.0", |_| {});
    let from_2 = |p: &mut Package| p.rollback = Some(rollback_from("2.0.0"));
    let (old, _, _) = publish(b"firmware 0.0.1", "0.0.1", from_2);
    let (back, _, _) = publish(b"firmware 1.5.0", "1.5.0", from_2);
    let mut d = device(healthy());
    d.assign(assignment(&v2, &key)).unwrap();
    d.run(&a2, &mut in_order, None).unwrap();
    // Older than what ran before 2.0.0 (1.2.0): not a rollback of this upgrade.
    let e = d.assign(assignment(&old, &key)).unwrap_err();
    assert!(
        matches!(&e, AgentError::Rejected(Rejection::RollbackTooFar { floor, .. }) if floor == "1.2.0"),
        "{e:?}"
    );
    assert_eq!(e.status(), Status::Downgrade);
    // After another upgrade, the rollback signed for 2.0.0 is replayed: refused too.
    d.assign(assignment(&v3, &key)).unwrap();
    d.run(&a3, &mut in_order, None).unwrap();
    let not_from = |e: &AgentError| {
        matches!(e, AgentError::Rejected(Rejection::RollbackNotFrom { from, running, .. })
            if from.to_string() == "2.0.0" && running == "3.0.0")
    };
    let e = d.assign(assignment(&back, &key)).unwrap_err();
    assert!(not_from(&e), "{e:?}");
    // It survives a restart.
    d.power_cut();
    d.boot();
    let e = d.assign(assignment(&back, &key)).unwrap_err();
    assert!(not_from(&e), "{e:?}");
    assert_eq!(d.disk.active_bytes(), b"firmware 3.0.0");
}

#[test]
fn a_rollback_package_downgrades_only_a_device_on_the_version_it_replaces() {
    let (v2, a2, key) = publish(b"firmware 2.0.0", "2.0.0", |_| {});
    let (v21, a21, _) = publish(b"firmware 2.1.0", "2.1.0", |_| {});
    // Signed to roll back 2.1.0, offered to a device that runs 2.0.0: no downgrade.
    let (back, _, _) = publish(b"firmware 1.5.0", "1.5.0", |p| {
        p.rollback = Some(rollback_from("2.1.0"));
    });
    let mut d = device(healthy());
    d.assign(assignment(&v2, &key)).unwrap();
    d.run(&a2, &mut in_order, None).unwrap();
    let e = d.assign(assignment(&back, &key)).unwrap_err();
    assert!(
        matches!(&e, AgentError::Rejected(Rejection::RollbackNotFrom { running, .. }) if running == "2.0.0"),
        "{e:?}"
    );
    assert_eq!(e.status(), Status::Downgrade);
    assert!(e.to_string().contains("replaces 2.1.0"), "{e}");
    assert_eq!(d.disk.active_bytes(), b"firmware 2.0.0");
    // On 2.1.0 (floor 2.0.0), it is the rollback it was signed as, down to the floor only:
    // 1.5.0 is below it.
    d.assign(assignment(&v21, &key)).unwrap();
    d.run(&a21, &mut in_order, None).unwrap();
    let e = d.assign(assignment(&back, &key)).unwrap_err();
    assert!(
        matches!(&e, AgentError::Rejected(Rejection::RollbackTooFar { .. })),
        "{e:?}"
    );
    let (to_2, a_to_2, _) = publish(b"firmware 2.0.0, again", "2.0.0", |p| {
        p.rollback = Some(rollback_from("2.1.0"));
    });
    d.assign(assignment(&to_2, &key)).unwrap();
    d.run(&a_to_2, &mut in_order, None).unwrap();
    assert_eq!(d.disk.active_bytes(), b"firmware 2.0.0, again");
}

#[test]
fn an_expired_rollback_package_is_refused() {
    let (v2, a2, key) = publish(b"firmware 2.0.0", "2.0.0", |_| {});
    let (back, a_back, _) = publish(b"firmware 1.5.0", "1.5.0", |p| {
        p.rollback = Some(ota_core::package::Rollback {
            from: "2.0.0".parse().unwrap(),
            // 1970-01-01T00:30:00Z: the simulated clock starts at 00:16:40.
            expires: "1970-01-01T00:30:00Z".parse().unwrap(),
        });
    });
    let mut d = device(healthy());
    d.assign(assignment(&v2, &key)).unwrap();
    d.run(&a2, &mut in_order, None).unwrap();
    d.now = UnixMs(30 * 60_000);
    let e = d.assign(assignment(&back, &key)).unwrap_err();
    assert!(
        matches!(&e, AgentError::Rejected(Rejection::RollbackExpired { expires, .. }) if expires == "1970-01-01T00:30:00Z"),
        "{e:?}"
    );
    assert_eq!(e.status(), Status::Downgrade);
    assert_eq!(d.disk.active_bytes(), b"firmware 2.0.0");
    // A millisecond earlier it was a rollback.
    d.now = UnixMs(30 * 60_000 - 1);
    d.assign(assignment(&back, &key)).unwrap();
    d.run(&a_back, &mut in_order, None).unwrap();
    assert_eq!(d.disk.active_bytes(), b"firmware 1.5.0");
}

#[test]
fn a_failed_probe_restores_the_previous_version_on_its_own() {
    let new = noise(100_000, 9);
    let (v, artifact, key) = publish(&new, "2.0.0", |_| {});
    let mut d = device(unhealthy());
    d.assign(assignment(&v, &key)).unwrap();
    d.run(&artifact, &mut in_order, None).unwrap();
    assert_eq!(d.disk.active_bytes(), OLD);
    let r = last_report(&d);
    assert_eq!(r.status, ReportStatus::Failure);
    assert!(
        r.reason.as_deref().unwrap().contains("exit status 1"),
        "{r:?}"
    );
    let tail: Vec<&str> = d
        .log
        .iter()
        .map(String::as_str)
        .filter(|l| *l != "persist")
        .collect();
    assert_eq!(
        tail,
        [
            "report in_progress",
            "swap",
            "probe",
            "restore",
            "report failure"
        ]
    );
}

#[test]
fn restarting_while_probing_is_a_failed_probe_and_boots_are_counted() {
    let (v, artifact, key) = publish(&noise(100_000, 10), "2.0.0", |_| {});
    // With one failure tolerated, a single restart is survived; the second is not.
    let mut cfg = config(sensor(), trusted());
    cfg.policy.failures_tolerated = 1;
    let mut d = Device::new(cfg, OLD, healthy());
    d.assign(assignment(&v, &key)).unwrap();
    // Run until probing starts.
    let mut budget = None;
    d.drain(&mut budget).unwrap();
    while let Some((o, data)) = in_order(&mut d.wanted, &artifact) {
        let _ = d.chunk(o, &data);
        d.drain(&mut budget).unwrap();
    }
    assert_eq!(d.agent().state(), AgentState::Probing);
    // Each boot persists the failed probe it counts before anything else happens.
    d.power_cut();
    d.boot();
    assert_eq!(d.agent().state(), AgentState::Probing);
    d.drain(&mut Some(1));
    assert_eq!(d.log.last().map(String::as_str), Some("persist"));
    d.power_cut();
    d.boot();
    d.run(&artifact, &mut in_order, None).unwrap();
    assert_eq!(d.disk.active_bytes(), OLD);
    assert!(
        last_report(&d)
            .reason
            .as_deref()
            .unwrap()
            .contains("restarted while probing")
    );
}

fn run_with_real_probe(spec: ProbeSpec, prepare: impl FnOnce()) -> (Vec<u8>, ReportStatus) {
    let new = noise(50_000, 11);
    let (v, artifact, key) = publish(&new, "2.0.0", |_| {});
    let allow = config(sensor(), trusted()).exec_allowlist;
    let runner: ota_tests::device::ProbeOutcome = Box::new(move |spec: &ProbeSpec| {
        ota_host::probe::run(
            spec,
            &allow,
            std::time::SystemTime::now() - std::time::Duration::from_secs(1),
        )
    });
    // The device's own policy: a readiness file, arguments and remote hosts come only from it.
    let mut c = config(sensor(), trusted());
    c.default_probe = Some(spec);
    let mut d = Device::new(c, OLD, runner);
    prepare();
    d.assign(assignment(&v, &key)).unwrap();
    d.run(&artifact, &mut in_order, None).unwrap();
    (d.disk.active_bytes(), last_report(&d).status)
}

/// A one-shot HTTP server on loopback that answers `status` to every request, for `n`
/// requests, then stops.
fn http_server(status: u16, n: usize) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().take(n) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    port
}

#[test]
fn each_kind_of_probe_failure_leads_to_a_restore() {
    let exec = |path: &str| ProbeSpec::Exec {
        path: path.into(),
        args: vec![],
        timeout_ms: 2_000,
    };
    assert_eq!(
        run_with_real_probe(exec("/bin/false"), || {}),
        (OLD.to_vec(), ReportStatus::Failure)
    );
    assert_eq!(
        run_with_real_probe(exec("/bin/true"), || {}).1,
        ReportStatus::Success
    );

    let port = http_server(503, 4);
    let http = |port: u16| ProbeSpec::Http {
        url: format!("http://127.0.0.1:{port}/healthz"),
        timeout_ms: 2_000,
        allow_remote: false,
    };
    assert_eq!(
        run_with_real_probe(http(port), || {}),
        (OLD.to_vec(), ReportStatus::Failure)
    );
    let port = http_server(200, 4);
    assert_eq!(
        run_with_real_probe(http(port), || {}).1,
        ReportStatus::Success
    );

    let dir = std::env::temp_dir().join(format!("ota-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("never-written");
    let file = ProbeSpec::File {
        path: missing.display().to_string(),
    };
    assert_eq!(
        run_with_real_probe(file, || {}),
        (OLD.to_vec(), ReportStatus::Failure)
    );
    let ready = dir.join("ready");
    let spec = ProbeSpec::File {
        path: ready.display().to_string(),
    };
    let r = ready.clone();
    assert_eq!(
        run_with_real_probe(spec, move || std::fs::write(r, b"up").unwrap()).1,
        ReportStatus::Success
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_probe_that_may_not_run_refuses_the_assignment() {
    let (v, _, key) = publish(b"x", "2.0.0", |_| {});
    let mut d = device(healthy());
    for spec in [
        exec_probe("/bin/sh", &["-c", "reboot"]),
        ProbeSpec::Http {
            url: "http://10.1.2.3/healthz".into(),
            timeout_ms: 1000,
            allow_remote: false,
        },
    ] {
        let mut a = assignment(&v, &key);
        a.probe = Some(spec);
        let e = attack("bad probe", &mut d, |d| d.assign(a), false);
        assert!(
            matches!(e, AgentError::Rejected(Rejection::ProbeNotAllowed(_))),
            "{e:?}"
        );
        assert_eq!(e.status(), Status::ProbeRefused);
    }
}

#[test]
fn an_unsigned_probe_may_not_carry_arguments_a_remote_host_or_a_readiness_file() {
    let (v, _, key) = publish(b"x", "2.0.0", |_| {});
    let mut d = device(healthy());
    for (spec, why) in [
        // Allowlisted, but its arguments make it any command.
        (
            exec_probe("/usr/bin/healthcheck", &["sh", "-c", "reboot"]),
            "arguments",
        ),
        (
            ProbeSpec::Http {
                url: "http://10.1.2.3/healthz".into(),
                timeout_ms: 1000,
                allow_remote: true,
            },
            "allow_remote",
        ),
        // Always there: always healthy.
        (
            ProbeSpec::File {
                path: "/proc/self/stat".into(),
            },
            "readiness file",
        ),
    ] {
        let mut a = assignment(&v, &key);
        a.probe = Some(spec);
        let e = attack("unsigned probe", &mut d, |d| d.assign(a), false);
        assert!(
            matches!(
                &e,
                AgentError::Rejected(Rejection::ProbeNotAllowed(ProbeError::Unsigned { .. }))
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains(why), "{e}");
        assert_eq!(e.status(), Status::ProbeRefused);
    }
    // The same probes are the device's to choose: its own policy may use them.
    let mut c = config(sensor(), trusted());
    c.default_probe = Some(ProbeSpec::File {
        path: "/var/run/app.ready".into(),
    });
    let mut d = Device::new(c, OLD, healthy());
    d.assign(assignment(&v, &key)).unwrap();
}

#[test]
fn a_signed_probe_is_run_in_preference_to_the_assignments() {
    let signed = exec_probe("/bin/false", &["--signed"]);
    let s = signed.clone();
    let new = noise(70_000, 3);
    let (v, artifact, key) = publish(&new, "2.0.0", |p| p.probe = Some(s));
    let ran = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen = ran.clone();
    let mut d = device(Box::new(move |spec: &ProbeSpec| {
        seen.borrow_mut().push(spec.clone());
        ProbeResult {
            healthy: *spec != exec_probe("/bin/false", &["--signed"]),
            detail: "ran".into(),
        }
    }));
    // The assignment asks for an always-healthy probe; the signed one decides.
    let mut a = assignment(&v, &key);
    a.probe = Some(exec_probe("/bin/true", &[]));
    d.assign(a).unwrap();
    d.run(&artifact, &mut in_order, None).unwrap();
    assert!(!ran.borrow().is_empty());
    assert!(
        ran.borrow().iter().all(|p| *p == signed),
        "{:?}",
        ran.borrow()
    );
    assert_eq!(last_report(&d).status, ReportStatus::Failure);
    assert_eq!(d.disk.active_bytes(), OLD);
    // The device's allowlist still bounds it: a signed probe it does not allow is refused.
    let (v, _, key) = publish(b"x", "2.0.1", |p| {
        p.probe = Some(exec_probe("/usr/bin/other-health", &[]));
    });
    let e = attack(
        "signed probe",
        &mut d,
        |d| d.assign(assignment(&v, &key)),
        false,
    );
    assert!(
        matches!(
            &e,
            AgentError::Rejected(Rejection::ProbeNotAllowed(ProbeError::NotAllowed { .. }))
        ),
        "{e:?}"
    );
}

#[test]
fn an_allowlisted_interpreter_never_runs_as_a_probe() {
    let (v, _, key) = publish(b"x", "2.0.0", |_| {});
    let mut c = config(sensor(), trusted());
    let launchers = [
        "/usr/bin/env",
        "/bin/sh",
        "/bin/bash",
        "/usr/bin/python3.11",
        "/usr/bin/perl",
        "/bin/busybox",
    ];
    c.exec_allowlist
        .extend(launchers.iter().map(|p| p.to_string()));
    let mut d = Device::new(c.clone(), OLD, healthy());
    for path in launchers {
        // From the assignment, without arguments, ...
        let mut a = assignment(&v, &key);
        a.probe = Some(exec_probe(path, &[]));
        let e = attack("interpreter", &mut d, |d| d.assign(a), false);
        assert!(refuses_interpreter(&e), "{path}: {e:?}");
        assert_eq!(e.status(), Status::ProbeRefused);
        // ... from the device's own policy, with them, ...
        let mut c = c.clone();
        c.default_probe = Some(exec_probe(path, &["sh", "-c", "reboot"]));
        let mut own = Device::new(c, OLD, healthy());
        let e = attack(
            "interpreter",
            &mut own,
            |d| d.assign(assignment(&v, &key)),
            false,
        );
        assert!(refuses_interpreter(&e), "{path}: {e:?}");
        // ... or signed into the package: refused when it is signed or read.
        let mut p = v.package().clone();
        p.probe = Some(exec_probe(path, &["-c", "reboot"]));
        let e = Package::from_json(p.to_json().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("probe"), "{e}");
        assert!(e.to_string().contains("interpreter"), "{e}");
        assert!(sign::sign(&p, &[&signing_key(1)]).is_err(), "{path}");
    }
}

#[test]
fn the_seed_004_protocol_end_to_end() {
    let new = noise(150_000, 12);
    let (v, artifact, key) = publish(&new, "2.0.0", |_| {});
    let (other, _, _) = publish(&noise(150_000, 13), "2.0.1", |_| {});
    let mut catalog = Catalog::new();
    let id = catalog.register(v.clone(), UnixMs(0));
    catalog
        .check_artifact(&id, artifact.as_slice(), UnixMs(1))
        .unwrap();
    let other_id = catalog.register(other, UnixMs(0));
    let mut assignments = Assignments::new();
    let dev = "dev_8f3a".parse().unwrap();
    let profile = "prof_temp_v2".parse().unwrap();
    assignments.profiles.insert(profile, other_id.clone());
    assert_eq!(
        assignments.resolve(&dev, Some(&"prof_temp_v2".parse().unwrap())),
        Some(&other_id)
    );
    assignments.devices.insert(dev, id.clone());
    // The device-level assignment beats the profile's.
    assert_eq!(
        assignments.resolve(
            &"dev_8f3a".parse().unwrap(),
            Some(&"prof_temp_v2".parse().unwrap())
        ),
        Some(&id)
    );

    let fetch = |package: &ota_core::PackageId, offset: u64, length: u64| ChunkFetch {
        device_id: "dev_8f3a".parse().unwrap(),
        profile_id: Some("prof_temp_v2".parse().unwrap()),
        package_id: package.clone(),
        offset,
        length,
    };
    let e = assignments
        .authorize(&catalog, &fetch(&other_id, 0, 65536))
        .unwrap_err();
    assert!(matches!(e, ProtocolError::PermissionDenied { .. }));
    assert_eq!(e.status(), Status::PermissionDenied);

    // The device fetches through the protocol, clamped to 64 KiB, until `complete`.
    let mut d = device(healthy());
    d.assign(assignment(&v, &key)).unwrap();
    let mut serve = |wanted: &mut VecDeque<ChunkRequest>, artifact: &[u8]| {
        let r = wanted.pop_back()?; // the last chunk first
        let g = assignments
            .authorize(&catalog, &fetch(&id, r.offset, 1 << 30))
            .unwrap();
        assert_eq!(g.length, r.length);
        assert_eq!(
            g.complete,
            r.offset + u64::from(r.length) == artifact.len() as u64
        );
        let end = (g.offset + u64::from(g.length)) as usize;
        Some((g.offset, artifact[g.offset as usize..end].to_vec()))
    };
    d.run(&artifact, &mut serve, None).unwrap();
    assert_eq!(d.disk.active_bytes(), new);
}

#[test]
fn agent_records_round_trip_and_refuse_nonsense() {
    let limits = Limits::default();
    let r =
        AgentRecord::new([("temp-sensor-fw".parse().unwrap(), "1.2.0".parse().unwrap())].into());
    assert_eq!(
        AgentRecord::from_json(r.to_json().as_bytes(), &limits).unwrap(),
        r
    );
    let e = AgentRecord::from_json(br#"{"state":"probing"}"#, &limits).unwrap_err();
    assert_eq!(e.status(), Status::Invalid);
    assert!(
        e.to_string().contains("state probing needs the update"),
        "{e}"
    );
    let mut d = device(healthy());
    let e = d.handle(Input::Swapped).unwrap_err();
    assert!(
        matches!(
            e,
            AgentError::WrongState {
                state: AgentState::Idle,
                input: "a swap"
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "a swap in state idle");
    let e = d
        .handle(Input::ProbeResult(ProbeResult {
            healthy: true,
            detail: String::new(),
        }))
        .unwrap_err();
    assert_eq!(e.status(), Status::WrongState);
    let e = d.chunk(0, b"x").unwrap_err();
    assert!(
        matches!(
            e,
            AgentError::WrongState {
                input: "a chunk",
                ..
            }
        ),
        "{e:?}"
    );
    // A tick is harmless in any state.
    d.handle(Input::Tick).unwrap();
}

#[test]
fn every_persist_carries_the_typed_record_as_it_was_then() {
    let (v, _, key) = publish(&noise(100_000, 14), "2.0.0", |_| {});
    let mut d = device(healthy());
    d.assign(assignment(&v, &key)).unwrap();
    let mut states = Vec::new();
    let agent = d.agent();
    while let Some(out) = agent.poll() {
        if let Output::Persist(record) = out {
            states.push(record.state);
            // The record round-trips through its JSON form unchanged.
            let again = AgentRecord::from_json(record.to_json().as_bytes(), &Limits::default());
            assert_eq!(again.unwrap(), *record);
        }
    }
    assert_eq!(states, [AgentState::Assigned, AgentState::Downloading]);
    assert_eq!(d.agent().record().state, AgentState::Downloading);
}

/// Runs an update until the agent asks for the swap; returns the instant it asked.
fn until_swap(d: &mut Device, artifact: &[u8]) -> (UnixMs, ota_core::agent::SlotContent) {
    for _ in 0..100_000 {
        match d.agent().poll() {
            Some(Output::Fetch(r)) => d.wanted.push_back(r),
            Some(Output::Swap { to }) => return (d.now, to),
            Some(Output::Persist(r)) => d.disk.record = Some(r.to_json()),
            Some(_) => {}
            None => {
                let (o, data) = in_order(&mut d.wanted, artifact).expect("a chunk to deliver");
                d.chunk(o, &data).unwrap();
            }
        }
    }
    panic!("no swap asked for");
}

#[test]
fn a_swap_or_restore_repeated_after_a_power_cut_names_the_same_slot_content() {
    let (v, artifact, key) = publish(&noise(70_000, 16), "2.0.0", |_| {});
    let mut d = device(unhealthy());
    d.assign(assignment(&v, &key)).unwrap();
    let (_, to) = until_swap(&mut d, &artifact);
    assert_eq!(to.version.to_string(), "2.0.0");
    assert_eq!(
        to.to_json(),
        r#"{"name":"temp-sensor-fw","version":"2.0.0"}"#
    );
    // The host swapped; the power goes before the agent hears of it. On resume the command
    // names the same content, so a host that labels its slots does nothing twice.
    d.disk.swap();
    d.power_cut();
    d.boot();
    let again = d.agent().poll();
    assert_eq!(again, Some(Output::Swap { to: to.clone() }));
    d.handle(Input::Swapped).unwrap();
    // The probe fails: the restore names the failed content, again after a cut.
    let mut restore = None;
    for _ in 0..100 {
        match d.agent().poll() {
            Some(Output::Probe { .. }) => d
                .handle(Input::ProbeResult(ProbeResult {
                    healthy: false,
                    detail: "exit status 1".into(),
                }))
                .unwrap(),
            Some(Output::RestorePrevious { from }) => {
                restore = Some(from);
                break;
            }
            Some(Output::Persist(r)) => d.disk.record = Some(r.to_json()),
            Some(_) => {}
            None => {
                d.now = d.agent().poll_timeout().expect("a probe is due");
                d.handle(Input::Tick).unwrap();
            }
        }
    }
    assert_eq!(restore.as_ref(), Some(&to));
    d.disk.restore_previous();
    d.power_cut();
    d.boot();
    assert_eq!(d.agent().poll(), Some(Output::RestorePrevious { from: to }));
}

#[test]
fn a_cancel_ends_a_download_and_the_next_assignment_is_taken() {
    let (v, artifact, key) = publish(&noise(200_000, 19), "2.0.0", |_| {});
    // A chunk, then the artifact disappears: the control plane cancels.
    let mut d = downloading(&v, &key, &artifact);
    assert_eq!(d.agent().state(), AgentState::Downloading);
    d.handle(Input::Cancel).unwrap();
    d.drain(&mut None).unwrap();
    assert_eq!(d.agent().state(), AgentState::Idle);
    assert_failed_because(&d, "cancelled");
    assert_eq!(d.disk.active_bytes(), OLD);
    // Nothing in progress: a cancel is harmless; the next assignment is taken.
    d.handle(Input::Cancel).unwrap();
    d.wanted.clear();
    d.assign(assignment(&v, &key)).unwrap();
    d.run(&artifact, &mut in_order, None).unwrap();
    assert_eq!(last_report(&d).status, ReportStatus::Success);
    assert_eq!(d.disk.active_bytes(), noise(200_000, 19));
}

#[test]
fn a_cancel_after_the_swap_restores_the_previous_version() {
    let (v, artifact, key) = publish(&noise(70_000, 20), "2.0.0", |_| {});
    let mut d = device(healthy());
    d.assign(assignment(&v, &key)).unwrap();
    let (_, to) = until_swap(&mut d, &artifact);
    d.handle(Input::Swapped).unwrap();
    d.handle(Input::Cancel).unwrap();
    let outs: Vec<Output> = std::iter::from_fn(|| d.agent().poll()).collect();
    assert!(
        outs.iter()
            .any(|o| *o == Output::RestorePrevious { from: to.clone() }),
        "{outs:?}"
    );
    assert_eq!(d.agent().state(), AgentState::RollingBack);
}

#[test]
fn a_download_that_does_not_finish_by_its_deadline_fails_even_across_restarts() {
    let (v, _artifact, key) = publish(&noise(200_000, 21), "2.0.0", |_| {});
    let mut d = device(healthy());
    let assigned = d.now;
    d.assign(assignment(&v, &key)).unwrap();
    let mut budget = None;
    d.drain(&mut budget).unwrap();
    let deadline = assigned + d.config.download_deadline_ms;
    assert_eq!(d.agent().poll_timeout(), Some(deadline));
    // The artifact never comes; the device restarts: the deadline still counts from the
    // assignment.
    d.power_cut();
    d.boot();
    d.drain(&mut budget).unwrap();
    assert_eq!(d.agent().state(), AgentState::Downloading);
    assert_eq!(d.agent().poll_timeout(), Some(deadline));
    d.now = deadline;
    d.handle(Input::Tick).unwrap();
    d.drain(&mut budget).unwrap();
    assert_eq!(d.agent().state(), AgentState::Idle);
    assert_failed_because(&d, "did not finish");
    assert_eq!(d.disk.active_bytes(), OLD);
}

#[test]
fn a_readiness_file_is_judged_against_the_instant_of_the_swap_not_when_the_agent_hears_of_it() {
    let (v, artifact, key) = publish(&noise(70_000, 17), "2.0.0", |_| {});
    let mut d = device(healthy());
    d.assign(assignment(&v, &key)).unwrap();
    let (asked, _) = until_swap(&mut d, &artifact);
    // The device reboots into the new version, which writes its readiness file during boot;
    // the agent hears of the swap half a minute later.
    d.now = asked + 30_000;
    d.handle(Input::Swapped).unwrap();
    d.now = d.now + 1_000;
    d.handle(Input::Tick).unwrap();
    let mut probe = None;
    while let Some(out) = d.agent().poll() {
        if let Output::Probe { swapped_at, .. } = out {
            probe = Some(swapped_at);
        }
    }
    assert_eq!(probe, Some(asked), "the instant the swap was asked for");
}

#[test]
fn a_probe_timeout_is_bounded_by_the_policy_deadline() {
    let (v, artifact, key) = publish(&noise(70_000, 18), "2.0.0", |_| {});
    let mut d = device(healthy());
    let mut a = assignment(&v, &key);
    a.probe = Some(ProbeSpec::Exec {
        path: "/bin/true".into(),
        args: vec![],
        timeout_ms: u64::MAX,
    });
    d.assign(a).unwrap();
    let (asked, _) = until_swap(&mut d, &artifact);
    d.handle(Input::Swapped).unwrap();
    let deadline = asked + d.config.policy.deadline_ms;
    d.now = asked + 2_000;
    d.handle(Input::Tick).unwrap();
    let mut timeout = None;
    while let Some(out) = d.agent().poll() {
        if let Output::Probe {
            spec: ProbeSpec::Exec { timeout_ms, .. },
            ..
        } = out
        {
            timeout = Some(timeout_ms);
        }
    }
    assert_eq!(timeout, Some(deadline.get() - d.now.get()));
}

#[test]
fn the_timeout_is_the_instant_a_probe_is_due_never_zero() {
    let (v, artifact, key) = publish(&noise(70_000, 15), "2.0.0", |_| {});
    let mut d = device(healthy());
    d.assign(assignment(&v, &key)).unwrap();
    assert_eq!(
        d.agent().poll_timeout(),
        Some(d.now + d.config.download_deadline_ms),
        "downloading waits on input, or for the download deadline"
    );
    // Deliver every chunk; stop before the host carries out the swap.
    let mut budget = None;
    loop {
        let out = d.agent().poll();
        match out {
            Some(Output::Fetch(r)) => d.wanted.push_back(r),
            Some(Output::Swap { .. }) => break,
            Some(_) => {}
            None => {
                let (o, data) = in_order(&mut d.wanted, &artifact).expect("a chunk to deliver");
                d.chunk(o, &data).unwrap();
            }
        }
    }
    assert_eq!(d.agent().state(), AgentState::Swapped);
    assert_eq!(
        d.agent().poll_timeout(),
        None,
        "waiting for the host's swap"
    );
    // The swap's instant is when it was asked for; the host reports it a little later, when
    // the new version runs, and probing counts from then.
    let swapped_at = d.now;
    d.now = swapped_at + 500;
    d.handle(Input::Swapped).unwrap();
    d.drain(&mut budget).unwrap();
    // The policy of `config`: the first probe 1 s after the swap took effect.
    assert_eq!(d.agent().poll_timeout(), Some(swapped_at + 1_500));
    // Late: the instant it was due stays the answer (a past instant means now).
    d.now = swapped_at + 30_000;
    assert_eq!(d.agent().poll_timeout(), Some(swapped_at + 1_500));
    d.handle(Input::Tick).unwrap();
    // The probe is in flight: nothing to wait for but its result.
    assert_eq!(d.agent().poll_timeout(), None);
    let probe = d.agent().poll();
    assert!(
        matches!(&probe, Some(Output::Probe { swapped_at: at, .. }) if *at == swapped_at),
        "{probe:?}"
    );
    d.handle(Input::ProbeResult(ProbeResult {
        healthy: true,
        detail: "ok".into(),
    }))
    .unwrap();
    assert_eq!(
        d.agent().poll_timeout(),
        Some(swapped_at + 31_000),
        "the next probe, one interval after the last"
    );
}

#[test]
fn restoring_with_another_package_is_refused() {
    let (v, artifact, key) = publish(&noise(200_000, 16), "2.0.0", |_| {});
    let (other, _, _) = publish(&noise(1000, 17), "2.0.1", |_| {});
    let mut d = downloading(&v, &key, &artifact);
    d.power_cut();
    let e = match d.boot_with(other.clone()) {
        Err(e) => e,
        Ok(()) => panic!("restored with another package"),
    };
    assert!(
        matches!(&e, AgentError::Record(RecordError::PackageMismatch { requested, given })
            if requested == v.id() && given == other.id()),
        "{e:?}"
    );
    assert_eq!(e.status(), Status::RecordInvalid);
    // The right package resumes and finishes.
    d.boot_with(v.clone()).unwrap();
    d.run(&artifact, &mut in_order, None).unwrap();
    assert_eq!(last_report(&d).status, ReportStatus::Success);
}

/// A healthy device that installed an update (of noise seeded `seed`) and swapped to it, the
/// swap needing a reboot: powered off before it boots the new version. Gives the device, the
/// new version's bytes, the artifact and the swap's instant.
fn rebooting_into_the_update(seed: u64) -> (Device, Vec<u8>, Vec<u8>, UnixMs) {
    let new = noise(70_000, seed);
    let (v, artifact, key) = publish(&new, "2.0.0", |_| {});
    let mut d = device(healthy());
    d.assign(assignment(&v, &key)).unwrap();
    let (swapped_at, _) = until_swap(&mut d, &artifact);
    d.disk.swap();
    d.power_cut();
    (d, new, artifact, swapped_at)
}

/// A switch that takes effect only after a reboot, and a slow boot (five minutes, past the
/// probe's 120 s deadline): the probe's initial delay and deadline count from when the new
/// version runs, so a healthy update is committed, not rolled back unprobed.
#[test]
fn the_probe_counts_from_when_the_new_version_runs_not_from_the_swap() {
    let (mut d, new, artifact, swapped_at) = rebooting_into_the_update(23);
    d.now = swapped_at + 300_000;
    d.boot();
    d.run(&artifact, &mut in_order, None).unwrap();
    let r = last_report(&d);
    assert_eq!(r.status, ReportStatus::Success, "{:?}", r.reason);
    assert!(d.disk.active_bytes() == new, "the new version runs");
}

/// A device without a real-time clock boots at an early time (before NTP) after the reboot
/// its switch needed: probing counts from the swap's instant, not from that early time, so
/// when NTP steps the clock forward the deadline has not passed, and the update is probed.
#[test]
fn an_early_clock_after_the_reboot_does_not_fail_the_probe_when_ntp_corrects_it() {
    let (mut d, new, artifact, swapped_at) = rebooting_into_the_update(29);
    // Booted at the build date, long before the swap; it hears the swap took effect then.
    d.now = UnixMs(1);
    d.boot();
    d.handle(Input::Swapped).unwrap();
    let mut budget = None;
    d.drain(&mut budget).unwrap();
    assert_eq!(d.agent().state(), AgentState::Probing);
    // NTP sets the clock right, a few seconds after the swap.
    d.now = swapped_at + 3_000;
    d.run(&artifact, &mut in_order, None).unwrap();
    assert_eq!(last_report(&d).status, ReportStatus::Success);
    assert!(d.disk.active_bytes() == new, "the new version runs");
}
