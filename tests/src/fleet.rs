//! Fleets and packages for the rollout tests: seed 004's temperature sensors.

use ota_core::plan::RolloutSpec;
use ota_core::report::{DeviceReport, ReportStatus};
use ota_core::rollout::{Create, Rollout, RolloutCommand};
use ota_core::sign::{self, VerifiedPackage};
use ota_core::{DeviceProfile, Limits};

/// `n` temperature sensors of device profile `prof_temp_v2` (shared with the benchmarks
/// and the demo in `ota-sim`).
pub use ota_sim::fleet::sensors;

/// The seed 004 firmware 2.0.0, sealed and signed by key 1.
pub fn firmware(version: &str, rollback: bool) -> VerifiedPackage {
    let mut p = crate::firmware_package();
    p.version = version.parse().expect("version");
    p.rollback = rollback;
    crate::seal_into(&mut p, version.as_bytes());
    let key = crate::signing_key(1);
    let env = sign::sign(&p, &[&key]).expect("sign");
    let trusted = [key.public_key()].into_iter().collect();
    sign::verify_envelope(env, &trusted, 1, &Limits::DEFAULT).expect("verify")
}

/// The trusted keys of [`firmware`].
pub fn trusted() -> ota_core::sign::TrustedKeys {
    [crate::signing_key(1).public_key()].into_iter().collect()
}

/// A rollout request for `package` (and `rollback`) to `prof_temp_v2`, with `extra` JSON
/// fields merged in.
pub fn spec(
    package: &VerifiedPackage,
    rollback: Option<&VerifiedPackage>,
    extra: serde_json::Value,
) -> RolloutSpec {
    let mut v = serde_json::json!({
        "package_id": package.id(),
        "target_profile_id": "prof_temp_v2",
        "canary_percent": 5,
        "failure_threshold_percent": 10,
    });
    if let Some(r) = rollback {
        v["rollback_package_id"] = serde_json::json!(r.id());
    }
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in more {
            obj.insert(k.clone(), x.clone());
        }
    }
    RolloutSpec::from_json(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// Creates a rollout `rol_4c7e` for tenant `acme` at time `now`.
pub fn create(
    spec: RolloutSpec,
    package: &VerifiedPackage,
    rollback: Option<&VerifiedPackage>,
    fleet: &[DeviceProfile],
    now: u64,
) -> Rollout {
    Rollout::create(Create {
        rollout_id: "rol_4c7e".parse().expect("id"),
        tenant: "acme".parse().expect("tenant"),
        spec,
        package,
        rollback,
        fleet,
        by: "alice".parse().expect("name"),
        now,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The devices sent a command since the last call, in order (rollback or not).
pub fn sent(r: &mut Rollout) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(c) = r.poll_command() {
        if let RolloutCommand::Send {
            device_id,
            rollback,
            ..
        } = c
        {
            out.push((device_id.to_string(), rollback));
        }
    }
    out
}

/// A report from `device` for rollout `rol_4c7e`.
pub fn report(device: &str, status: ReportStatus, version: Option<&str>) -> DeviceReport {
    DeviceReport {
        device_id: device.parse().expect("device id"),
        rollout_id: Some("rol_4c7e".parse().expect("id")),
        firmware_version: version.map(|v| v.parse().expect("version")),
        status,
        reason: (status == ReportStatus::Failure).then(|| "health probe failed".to_string()),
    }
}
