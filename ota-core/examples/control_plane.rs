//! A control plane's rollout, with no service around it: create a rollout of firmware 2.0.0
//! to 240 sensors with a 5 % canary, carry out what the engine asks, feed the devices'
//! reports until every wave has gone out, then snapshot, restore and replay the audit trail.
//! README.md's control-plane snippet is the part between the `README` markers;
//! `cargo run -p ota-core --example control_plane` runs it.

use ota_core::audit::AuditRecord;
use ota_core::plan::RolloutSpec;
use ota_core::report::{DeviceReport, ReportStatus};
use ota_core::rollout::{Create, RolloutState};
use ota_core::sign::{self, TrustedKeys};
use ota_core::{DeviceProfile, Limits, Package, UnixMs, VerifiedPackage, seal};

/// Firmware `version`, sealed and signed; `rollback` makes it a signed rollback package
/// that replaces 2.0.0.
fn firmware(
    version: &str,
    rollback: bool,
    signer: &ota_core::keys::SigningKey,
) -> Result<VerifiedPackage, Box<dyn std::error::Error>> {
    let key = seal::SealKey::from_bytes([0x33; 32]);
    let (_, sealed) = seal::seal_bytes(&key, [7; 16], version.as_bytes())?;
    let mut p = Package::from_json(include_bytes!(
        "../../tests/fixtures/packages/valid/seed-004-firmware.json"
    ))?;
    p.version = version.parse()?;
    if rollback {
        p.rollback = Some(ota_core::package::Rollback {
            from: "2.0.0".parse()?,
            expires: "2100-01-01T00:00:00Z".parse()?,
        });
    }
    p.set_sealed(&sealed);
    let trusted: TrustedKeys = [signer.public_key()].into_iter().collect();
    Ok(sign::verify_envelope(
        sign::sign(&p, &[signer])?,
        &trusted,
        1,
        &Limits::DEFAULT,
    )?)
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let signer = ota_core::keys::SigningKey::generate(&mut rng);
    let verified = firmware("2.0.0", false, &signer)?;
    let rollback = firmware("1.9.0", true, &signer)?;
    let profiles = (0..240)
        .map(|i| {
            DeviceProfile::from_json(format!(
                r#"{{"device_id": "dev_{i:04}", "device_type": "temp-sensor",
                    "hardware_profile": "acme-sensor-v2", "arch": "armv7",
                    "installed": {{"temp-sensor-fw": "1.2.0"}}, "labels": {{"profile": "prof_temp_v2"}}}}"#
            ).as_bytes())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let spec = RolloutSpec::from_json(
        format!(
            r#"{{"package_id": "{}", "rollback_package_id": "{}", "target_profile_id": "prof_temp_v2",
                "canary_percent": 5, "failure_threshold_percent": 10,
                "waves": [{{"percent": 50}}, {{"percent": 100}}]}}"#,
            verified.id(),
            rollback.id()
        )
        .as_bytes(),
        &Limits::DEFAULT,
    )?;
    let (rollout_id, tenant, by) = ("rol_4c7e".parse()?, "acme".parse()?, "alice".parse()?);
    let limits = Limits::DEFAULT;
    let mut now = UnixMs(1_800_000_000_000);
    let mut trail: Vec<AuditRecord> = Vec::new();
    let mut sent: Vec<DeviceReport> = Vec::new();
    let create_inputs = || Create {
        rollout_id: "rol_4c7e".parse().expect("id"),
        tenant: "acme".parse().expect("tenant"),
        spec: spec.clone(),
        package: &verified,
        rollback: Some(&rollback),
        fleet: &profiles,
        by: "alice".parse().expect("name"),
        now: UnixMs(1_800_000_000_000),
    };

    // README: control plane
    use ota_core::rollout::{Input, Output, Rollout, RolloutCommand, Snapshot};

    let mut r = Rollout::create(Create {
        rollout_id,
        tenant,
        spec: spec.clone(),
        package: &verified,
        rollback: Some(&rollback),
        fleet: &profiles,
        by,
        now,
    })?;
    loop {
        while let Some(out) = r.poll() {
            // in order: a step's record first
            match out {
                Output::Audit(a) => trail.push(*a), // append a.to_json() to the hash-chained trail
                Output::Command(RolloutCommand::Send { device_id, .. }) => {
                    // a persistent ota_start command to the device, carrying its attempt
                    let attempt = r.attempt(device_id.as_str()).unwrap_or(1);
                    let report = DeviceReport {
                        device_id,
                        rollout_id: Some(r.id().clone()),
                        firmware_version: Some("2.0.0".parse()?),
                        status: ReportStatus::Success,
                        reason: None,
                        attempt: Some(attempt),
                    };
                    sent.push(report); // what the device will answer
                }
                Output::Event(e) => println!("{}", r.subject(&e)), // profile.ota.rollout.started.acme.rol_4c7e
                _ => {}
            }
        }
        if r.state() != RolloutState::Active {
            break; // completed (or paused, aborted, rolled back)
        }
        for report in sent.drain(..) {
            r.handle(Input::device_report(report), now)?; // about the attempt it names
        }
        now = r.poll_timeout().unwrap_or(now).max(now); // then Input::Tick at that instant
        r.handle(Input::Tick, now)?; // (Pause, Resume, Approve, Rollback... too)
    }
    let saved = r.snapshot().to_json(); // persist anywhere; it holds the trail's head
    let back = Rollout::restore(
        Snapshot::from_json(saved.as_bytes(), &limits)?,
        &verified,
        Some(&rollback),
    )?;
    let same = Rollout::replay(create_inputs(), &trail)?; // the trail rebuilds the same state
    // README: end

    assert!(
        back.same_state(&r) && same.same_state(&r),
        "restored and replayed alike"
    );
    println!(
        "{:?}: {} audit records, head {:?}",
        r.state(),
        trail.len(),
        r.audit_head()
    );
    assert_eq!(r.state(), RolloutState::Completed);
    assert!(
        trail.len() > 240,
        "a record for the creation and for each report at least"
    );
    Ok(())
}
