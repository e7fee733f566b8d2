//! The publisher's side of the demo, shared by the live system and the simulation: the
//! signing key, the two engines, and each version sealed and signed through the real `pack`
//! command and put in a store through the real `publish` command.

use std::path::{Path, PathBuf};

use ota_core::Sha256Digest;
use ota_core::seal::SealKey;
use ota_core::sign::{SigningKey, VerifiedPackage};
use ota_sim::Rng;
use serde_json::{Value, json};

use super::NAME;
use crate::out::{self, CliError};
use crate::pack::{self, PackArgs};
use crate::publish::{self, PublishArgs};

/// What `ota pack` made of one version.
pub(super) struct Packed {
    /// The signed package, verified.
    pub package: VerifiedPackage,
    /// The AES key of its artifact.
    pub key: SealKey,
    /// The directory `ota pack` wrote (`package.json`, `registration.json`, the artifact).
    pub dir: PathBuf,
    /// The artifact's object key (`prod/yolo-v8n-arm64-VERSION.enc`).
    pub object_key: String,
    /// The SHA-256 of the engine it carries.
    pub plaintext_sha256: Sha256Digest,
}

/// The publisher's signing key, from `rng`, written to `work/keys` (PKCS#8 and public PEM).
pub(super) fn signer(work: &Path, rng: &mut Rng) -> Result<SigningKey, CliError> {
    let signer = SigningKey::from_secret(rng.bytes32());
    let keys = work.join("keys");
    out::write_atomic(
        &keys.join("private.pem"),
        signer.to_pkcs8_pem().as_bytes(),
        true,
    )?;
    out::write_atomic(
        &keys.join("public.pem"),
        signer.public_key().to_pem().as_bytes(),
        false,
    )?;
    Ok(signer)
}

/// Seals and signs `engine` as `version` through the real `pack` command (the key in
/// `work/keys`); a rollback version is signed as a rollback from `rollback_from`.
pub(super) fn pack(
    work: &Path,
    version: &str,
    engine: &[u8],
    rollback_from: Option<&str>,
    rng: &mut Rng,
) -> Result<Packed, CliError> {
    let rollback = rollback_from.is_some();
    let model = work.join("model");
    let engine_path = model.join(format!("{NAME}-{version}.engine"));
    out::write_atomic(&engine_path, engine, false)?;
    let sha = Sha256Digest::of(engine);
    let manifest = manifest(version, engine.len() as u64, &sha.to_hex());
    let manifest_path = model.join(format!("manifest-{version}.json"));
    out::write_atomic(&manifest_path, manifest.to_string().as_bytes(), false)?;
    let key = SealKey::from_bytes(rng.bytes32());
    let dir = work.join(format!("out-{version}"));
    let packed = pack::run(
        &PackArgs {
            file: engine_path,
            manifest: Some(manifest_path),
            key: work.join("keys/private.pem"),
            resource_name: NAME.into(),
            dev_stage: "prod".into(),
            architecture: "arm64".into(),
            version: version.into(),
            out: dir.clone(),
            reproducible: true,
            seal_key: Some(key.to_hex()),
            device_types: vec!["line-camera".into()],
            hardware_profiles: Vec::new(),
            release_notes: if rollback {
                format!("Rollback to {version}.")
            } else {
                "Retrained on plant-7 data.".into()
            },
            rollback_from: rollback_from.map(str::to_string),
            // Fixed, so that a seed gives the same packages (and transcript) every run.
            rollback_expires: rollback_from.map(|_| "2100-01-01T00:00:00Z".to_string()),
            s3_endpoint: None,
            bucket: None,
            cdn_base: Some("https://cdn.demo.invalid".into()),
            tuf_repo: None,
            tuf_keys: Vec::new(),
            ..PackArgs::default()
        },
        true,
    )?;
    Ok(Packed {
        package: packed.package,
        key,
        dir,
        object_key: packed.record.object_key(),
        plaintext_sha256: sha,
    })
}

/// Puts a packed version in the local store `store` through the real `publish` command (the
/// artifact at its object key, the signed envelope beside it).
pub(super) fn publish(packed: &Packed, store: &Path) -> Result<(), CliError> {
    publish::publish(
        &PublishArgs {
            dir: packed.dir.clone(),
            store: Some(store.display().to_string()),
            s3_endpoint: None,
            s3_access_key: None,
            s3_secret_key: None,
            bucket: None,
            cdn_base: None,
            region: "us-east-1".into(),
            admin_api_url: None,
            admin_api_token: None,
            admin_api_publish_path: String::new(),
            admin_api_timeout: 60,
        },
        true,
    )?;
    Ok(())
}

/// The manifest of the YOLOv8n TensorRT engine built for Jetson Orin NX, at `version`, listing
/// the engine as its one file.
fn manifest(version: &str, engine_size: u64, engine_sha256: &str) -> Value {
    let mut m: Value =
        serde_json::from_str(include_str!("yolo-v8n-orin-nx.json")).unwrap_or_default();
    m["version"] = json!(version);
    m["files"] = json!([{"path": "model/yolo-v8n.engine", "role": "engine",
                         "size_bytes": engine_size, "sha256": engine_sha256}]);
    m
}
