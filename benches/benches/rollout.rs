//! The rollout engine at fleet scale: 1,000,000 devices of mixed Jetson profiles.
//!
//! Reports creation time (compatibility filtering and cohorts included), reports processed
//! per second while driving the rollout through its waves to completion, the snapshot's size
//! and the restore time, and the memory per device. No outside system does this job in a
//! process to measure against; the figures to compare with are documented limits: AWS IoT
//! Jobs dispatches at most 1,000 devices a minute, and hawkBit caps a group at 20,000
//! targets.

use std::time::Instant;

use ota_core::report::{DeviceReport, ReportStatus};
use ota_core::rollout::{Create, Input, Output, Rollout, RolloutCommand, RolloutState, Snapshot};
use ota_core::sign::{self, SigningKey};
use ota_core::{Limits, UnixMs, seal};

fn main() {
    let n = std::env::var("OTA_FLEET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000usize);
    let t = Instant::now();
    let fleet = ota_sim::fleet::mostly_compatible_jetsons(n, 42);
    eprintln!(
        "built a fleet of {n} profiles in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // A signed, sealed model package.
    let mut package = ota_benches::yolo_package();
    let (_, sealed) =
        seal::seal_bytes(&seal::SealKey::from_bytes([1; 32]), [2; 16], b"engine").unwrap();
    package.set_sealed(&sealed);
    let signer = SigningKey::from_secret([1; 32]);
    let env = sign::sign(&package, &[&signer]).unwrap();
    let trusted: sign::TrustedKeys = [signer.public_key()].into_iter().collect();
    let verified = sign::verify_envelope(env, &trusted, 1, &Limits::DEFAULT).unwrap();
    let spec = ota_core::plan::RolloutSpec::from_json(
        serde_json::json!({
            "package_id": verified.id(),
            "target": {"kind": "selector", "device_types": ["line-camera"]},
            "canary_percent": 1,
            "waves": [{"percent": 10}, {"percent": 50}, {"percent": 100}],
            "failure_threshold_percent": 10,
        })
        .to_string()
        .as_bytes(),
        &Limits::DEFAULT,
    )
    .unwrap();

    let t = Instant::now();
    let mut r = Rollout::create(Create {
        rollout_id: "rol_scale".parse().unwrap(),
        tenant: "acme".parse().unwrap(),
        spec,
        package: &verified,
        rollback: None,
        fleet: &fleet,
        by: "bench".parse().unwrap(),
        now: UnixMs(0),
    })
    .unwrap();
    let create_s = t.elapsed().as_secs_f64();
    let s = r.status();
    let targeted: u64 = s.devices.values().sum();
    println!(
        "create: {targeted} devices in the target ({} eligible, {} incompatible, {} already installed) in {create_s:.2} s",
        s.eligible,
        s.devices
            .get(&ota_core::rollout::DeviceState::Incompatible)
            .unwrap_or(&0),
        s.devices
            .get(&ota_core::rollout::DeviceState::AlreadyInstalled)
            .unwrap_or(&0)
    );
    drop(fleet);

    // Drive to completion: every device sent reports in progress, then success (2 reports).
    let mut reports = 0u64;
    let mut report_time = 0f64;
    let mut now = UnixMs(1);
    let mut audit_records = 0u64;
    let mut audit_bytes = 0u64;
    loop {
        let mut sent = Vec::new();
        while let Some(o) = r.poll() {
            match o {
                Output::Audit(a) => {
                    audit_records += 1;
                    audit_bytes += a.to_json().len() as u64 + 1;
                }
                Output::Command(RolloutCommand::Send { device_id, .. }) => sent.push(device_id),
                _ => {}
            }
        }
        if sent.is_empty() {
            if r.state() != RolloutState::Active {
                break;
            }
            now = now + 1000;
            r.handle(Input::Tick, now).unwrap();
            continue;
        }
        let t = Instant::now();
        for d in &sent {
            for status in [ReportStatus::InProgress, ReportStatus::Success] {
                let rep = DeviceReport {
                    device_id: d.clone(),
                    rollout_id: Some(r.id().clone()),
                    firmware_version: (status == ReportStatus::Success)
                        .then(|| r.package().package().version.clone()),
                    status,
                    reason: None,
                    attempt: None,
                };
                r.handle(Input::Report(rep), now).unwrap();
                reports += 1;
            }
        }
        report_time += t.elapsed().as_secs_f64();
    }
    let s = r.status();
    println!(
        "drive: {reports} reports in {report_time:.2} s = {:.0} reports/s (audit trail: {audit_records} records, {:.0} MiB); state {:?}, {} succeeded",
        reports as f64 / report_time,
        audit_bytes as f64 / (1 << 20) as f64,
        s.status,
        s.cumulative.succeeded
    );

    let t = Instant::now();
    let snap = r.snapshot().to_json();
    let snap_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let state = Snapshot::from_json(snap.as_bytes(), &Limits::DEFAULT).unwrap();
    let restored = Rollout::restore(state, &verified, None).unwrap();
    let restore_s = t.elapsed().as_secs_f64();
    assert!(restored.same_state(&r));
    println!(
        "snapshot: {:.1} MiB ({:.0} bytes/device) in {snap_s:.2} s; restore {restore_s:.2} s",
        snap.len() as f64 / (1 << 20) as f64,
        snap.len() as f64 / targeted as f64
    );
    println!(
        "memory: {:.0} bytes/device (ids, the index, the compact per-device record, wave lists)",
        r.bytes_per_device()
    );
    println!(
        "for reference (documented limits, not measured): AWS IoT Jobs dispatches at most 1,000 devices/minute; hawkBit caps a group at 20,000 targets"
    );
}
