//! Setting the demo up: keys, the two engines packed and published through the real `pack`
//! and `publish` commands, the plant, and the rollout created over it.

use std::collections::BTreeMap;
use std::path::Path;

use ota_core::Limits;
use ota_core::Sha256Digest;
use ota_core::name::Name;
use ota_core::plan::RolloutSpec;
use ota_core::rollout::{Create, Rollout};
use ota_core::seal::SealKey;
use ota_core::sign::VerifiedPackage;
use ota_sim::{Network, Rng};
use serde_json::json;

use super::device::{CORRUPTION, LOSS};
use super::{Demo, T0, Totals};
use crate::demo::{DemoArgs, NAME, NEW, OLD, publisher};
use crate::out::{self, CliError, Out};
use crate::signals::Stop;

/// What the publisher made.
pub(super) struct Published {
    pub package: VerifiedPackage,
    pub key: SealKey,
    pub artifact: Vec<u8>,
    pub plaintext_sha256: Sha256Digest,
}

impl<'a> Demo<'a> {
    pub(super) fn new(
        a: &'a DemoArgs,
        out: Out,
        work: &Path,
        stop: Stop,
    ) -> Result<Self, CliError> {
        let mut transcript = Vec::new();
        let mut say = |line: String| {
            if !out.json {
                out::progress(&line);
            }
            transcript.push(line);
        };
        // 1. Keys, the engines and their manifests.
        let mut rng = Rng::stream(a.seed, "publisher");
        let signer = publisher::signer(work, &mut rng)?;
        let size = (a.model_mb * 1024.0 * 1024.0) as usize;
        let new_engine = ota_sim::weights(size, &mut rng);
        let old_engine = ota_sim::weights(size, &mut rng);
        say(format!(
            "publisher   key {} · model {NAME} {NEW}, TensorRT 8.6 engine for Jetson Orin NX, {}",
            &signer.key_id().to_string()[..12],
            out::bytes(size as u64)
        ));
        // 2. Pack, sign and publish both versions.
        let new = publish_version(work, NEW, &new_engine, None, &mut rng)?;
        let old = publish_version(work, OLD, &old_engine, Some(NEW), &mut rng)?;
        say(format!(
            "artifact    signed DSSE · {} ({}, {} chunks) · rollback {} signed as {}",
            new.package.id(),
            out::bytes(new.artifact.len() as u64),
            new.package.chunks().len(),
            OLD,
            old.package.id()
        ));
        // 3. The plant.
        let plant = ota_sim::fleet::plant(a.devices, &mut Rng::stream(a.seed, "fleet"));
        let mut hrng = Rng::stream(a.seed, "health");
        let bad = plant
            .iter()
            .map(|d| (d.device_id.to_string(), hrng.chance(a.failure_rate)))
            .collect();
        // 4. The rollout.
        let spec = json!({
            "package_id": new.package.id(),
            "target_profile_id": "prof_line_camera",
            "canary_percent": a.canary,
            "waves": [
                {"percent": 30, "min_soak_ms": 900_000, "success_gate_percent": 90},
                {"percent": 100, "min_soak_ms": 900_000, "success_gate_percent": 90},
            ],
            "failure_threshold_percent": a.threshold,
                        "rollback_package_id": old.package.id(),
            "pacing": {"max_in_flight": 50},
        });
        let spec = RolloutSpec::from_json(spec.to_string().as_bytes(), &Limits::DEFAULT)
            .map_err(|e| CliError::usage(format!("the demo's rollout request: {e}")))?;
        let waves = spec.all_waves().len();
        let rollout = Rollout::create(Create {
            rollout_id: name("rol_demo")?,
            tenant: name("acme")?,
            spec,
            package: &new.package,
            rollback: Some(&old.package),
            fleet: &plant,
            by: name("alice")?,
            now: T0,
        })
        .map_err(|e| CliError::failure(Some(e.status()), e))?;
        let status = rollout.status();
        let reasons: Vec<String> = status
            .incompatible_reasons
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let incompatible: u64 = status.incompatible_reasons.values().sum();
        say(format!(
            "fleet       {} line cameras at plant-7 · {} eligible · {incompatible} incompatible ({})",
            plant.len(),
            status.eligible,
            if reasons.is_empty() {
                "none".into()
            } else {
                reasons.join(", ")
            }
        ));
        say(format!(
            "rollout — {NAME}@{NEW} → plant-7 (canary {}%, halt above {}% failed)",
            a.canary, a.threshold
        ));
        Ok(Demo {
            args: a,
            out,
            work: work.to_path_buf(),
            transcript,
            new,
            old,
            old_engine,
            signer,
            fleet: plant,
            bad,
            devices: BTreeMap::new(),
            rollout,
            trail: Vec::new(),
            now: T0,
            net: Network::new(Rng::stream(a.seed, "network"), LOSS, CORRUPTION),
            waves,
            open_wave: 0,
            approved: 0,
            rolled_back: false,
            totals: Totals::default(),
            stop,
        })
    }
}

pub(super) fn name(s: &str) -> Result<Name, CliError> {
    s.parse().map_err(|e| CliError::usage(format!("{s}: {e}")))
}

/// Packs and publishes one version through the real `pack` and `publish` commands, into the
/// local store `work/store`.
fn publish_version(
    work: &Path,
    version: &str,
    engine: &[u8],
    rollback_from: Option<&str>,
    rng: &mut Rng,
) -> Result<Published, CliError> {
    let packed = publisher::pack(work, version, engine, rollback_from, rng)?;
    let store = work.join("store");
    publisher::publish(&packed, &store)?;
    let artifact = out::read(&store.join(&packed.object_key), usize::MAX)?;
    Ok(Published {
        package: packed.package,
        key: packed.key,
        artifact,
        plaintext_sha256: packed.plaintext_sha256,
    })
}
