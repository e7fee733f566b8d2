//! The only ways a package signed into a TUF repository becomes a [`VerifiedPackage`]:
//! [`verify_target`], and [`Updater::package`] for a target the updater found.
//!
//! A TUF client (the core's [`Updater`], driven over files or HTTP) walks the chain: it rotates the root,
//! checks the timestamp, snapshot and targets versions, hashes and expiries. What it hands
//! here is the trusted root and the targets metadata, byte for byte as it trusts them, and a
//! target name. [`verify_target`] checks, with no I/O and no trust in the caller beyond the
//! root it names:
//!
//! - the targets metadata carries at least the root's `targets` threshold of valid Ed25519
//!   signatures, by distinct keys the root lists for that role, over the canonical JSON of its
//!   `signed` part;
//! - the target exists and its `custom.ota.package` is a sealed package statement describing
//!   exactly the target's bytes (`length` and `hashes.sha256`).
//!
//! It is the TUF counterpart of [`crate::sign::verify`], which takes trusted keys and a DSSE
//! envelope.

use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;

use crate::digest::Sha256Digest;
use crate::limits::Limits;
use crate::package::Package;
use crate::sign::{KeyId, Provenance, VerifiedPackage};
use crate::status::Status;

use super::metadata;
use super::updater::{FoundTarget, Updater};

/// Why a TUF target did not verify as a package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TufTargetError {
    /// The root or targets metadata is not what TUF specifies (the field is named).
    #[error("{role} metadata: {field}: {detail}")]
    Metadata {
        /// `root` or `targets`.
        role: &'static str,
        /// The JSON path of the offending field.
        field: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The metadata is larger than the limit.
    #[error("{role} metadata is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// `root` or `targets`.
        role: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Fewer valid signatures by distinct trusted keys than the root's threshold.
    #[error("targets metadata: {valid} valid signatures by trusted keys, threshold {threshold}")]
    ThresholdNotMet {
        /// Valid signatures counted.
        valid: usize,
        /// The root's threshold for the targets role.
        threshold: u64,
    },
    /// No such target.
    #[error("target {name} not found")]
    TargetNotFound {
        /// The target's name.
        name: String,
    },
    /// The target carries no valid package statement, or one that describes other bytes.
    #[error("target {name}: {detail}")]
    PackageInvalid {
        /// The target's name.
        name: String,
        /// What is wrong.
        detail: String,
    },
}

impl TufTargetError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            TufTargetError::Metadata { .. } => Status::TufMetadataInvalid,
            TufTargetError::TooLarge { .. } => Status::TufMetadataTooLarge,
            TufTargetError::ThresholdNotMet { .. } => Status::TufThresholdNotMet,
            TufTargetError::TargetNotFound { .. } => Status::TufTargetNotFound,
            TufTargetError::PackageInvalid { .. } => Status::TufPackageInvalid,
        }
    }
}

/// The versions a TUF-verified package was reached with, as its provenance records them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainVersions {
    /// The trusted timestamp's version.
    pub timestamp: u64,
    /// The trusted snapshot's version.
    pub snapshot: u64,
}

/// Verifies `target` in the targets metadata `targets` against the keys and threshold the
/// trusted root `root` gives the targets role (see the module docs), and returns the package
/// its `custom.ota.package` statement describes. `chain` records the timestamp and snapshot
/// versions the caller's client verified, in the package's provenance.
pub fn verify_target(
    root: &[u8],
    targets: &[u8],
    target: &str,
    chain: ChainVersions,
    limits: &Limits,
) -> Result<VerifiedPackage, TufTargetError> {
    let root = parse("root", root, limits)?;
    let targets = parse("targets", targets, limits)?;
    let keys = role_keys(&root)?;
    let signed = field(&targets, "targets", "signed")?;
    let message = metadata::canonical(signed);
    let mut signers: Vec<[u8; 32]> = Vec::new();
    let mut tuf_keyids = Vec::new();
    let mut tried: Vec<[u8; 32]> = Vec::new();
    let sigs = field(&targets, "targets", "signatures")?
        .as_array()
        .ok_or_else(|| bad("targets", "signatures", "must be an array"))?;
    for (i, sig) in sigs.iter().enumerate() {
        let at = |f: &str| format!("signatures[{i}].{f}");
        let keyid = sig
            .get("keyid")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("targets", &at("keyid"), "must be a string"))?;
        let sig = sig
            .get("sig")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("targets", &at("sig"), "must be a string"))?;
        let Some((_, public)) = keys.keys.iter().find(|(id, _)| id == keyid) else {
            continue;
        };
        // Each key once, on its first signature (whatever id names it): more signatures by it
        // cost no more hashing.
        if tried.contains(public) {
            continue;
        }
        tried.push(*public);
        let Some(sig) = hex::decode(sig)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
        else {
            continue;
        };
        let valid = VerifyingKey::from_bytes(public)
            .and_then(|k| k.verify_strict(&message, &Signature::from_bytes(&sig)))
            .is_ok();
        if valid {
            signers.push(*public);
            tuf_keyids.push(keyid.to_string());
        }
    }
    if (signers.len() as u64) < keys.threshold {
        return Err(TufTargetError::ThresholdNotMet {
            valid: signers.len(),
            threshold: keys.threshold,
        });
    }
    let package = target_package(signed, target)?;
    let versions = [
        version(&root, "root")?,
        chain.timestamp,
        chain.snapshot,
        version(&targets, "targets")?,
    ];
    let provenance = Provenance::Tuf {
        target: target.to_string(),
        versions,
        tuf_keyids,
    };
    let signed_by = signers.iter().map(KeyId::of).collect();
    VerifiedPackage::from_tuf(package, signed_by, provenance).map_err(|e| {
        TufTargetError::PackageInvalid {
            name: target.into(),
            detail: e.to_string(),
        }
    })
}

impl Updater {
    /// The package target `found` carries (its `custom.ota.package` statement must be sealed
    /// and describe exactly its bytes), verified by this updater: the role that lists it is
    /// trusted, through the chain from the root. Its `signed_by` are the Ed25519 keys whose
    /// signatures on that role counted.
    pub fn package(&self, found: &FoundTarget) -> Result<VerifiedPackage, TufTargetError> {
        let held = self
            .targets(&found.role)
            .ok_or_else(|| TufTargetError::TargetNotFound {
                name: found.target.name.clone(),
            })?;
        let env = metadata::open(&found.role, "targets", &held.bytes).map_err(|e| {
            TufTargetError::Metadata {
                role: "targets",
                field: ".".into(),
                detail: e.to_string(),
            }
        })?;
        let package = target_package(&env.signed, &found.target.name)?;
        let [root, timestamp, snapshot, _] = self.versions();
        let provenance = Provenance::Tuf {
            target: found.target.name.clone(),
            versions: [root, timestamp, snapshot, held.meta.common.version],
            tuf_keyids: held.signers.clone(),
        };
        let signed_by = held.signer_keys.iter().map(KeyId::of).collect();
        VerifiedPackage::from_tuf(package, signed_by, provenance).map_err(|e| {
            TufTargetError::PackageInvalid {
                name: found.target.name.clone(),
                detail: e.to_string(),
            }
        })
    }
}

/// The targets role's keys (TUF key id, raw Ed25519 public key) and threshold in a root.
struct RoleKeys {
    keys: Vec<(String, [u8; 32])>,
    threshold: u64,
}

fn role_keys(root: &Value) -> Result<RoleKeys, TufTargetError> {
    let signed = field(root, "root", "signed")?;
    let role = signed
        .get("roles")
        .and_then(|r| r.get("targets"))
        .ok_or_else(|| bad("root", "signed.roles.targets", "missing"))?;
    let threshold = role
        .get("threshold")
        .and_then(Value::as_u64)
        .filter(|t| *t >= 1)
        .ok_or_else(|| {
            bad(
                "root",
                "signed.roles.targets.threshold",
                "must be an integer of at least 1",
            )
        })?;
    let ids = role
        .get("keyids")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("root", "signed.roles.targets.keyids", "must be an array"))?;
    let mut keys = Vec::new();
    for id in ids.iter().filter_map(Value::as_str) {
        let Some(key) = signed.get("keys").and_then(|k| k.get(id)) else {
            continue;
        };
        let is_ed25519 = key.get("keytype").and_then(Value::as_str) == Some("ed25519")
            && key.get("scheme").and_then(Value::as_str) == Some("ed25519");
        let public = key
            .get("keyval")
            .and_then(|v| v.get("public"))
            .and_then(Value::as_str)
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        if let (true, Some(public)) = (is_ed25519, public) {
            keys.push((id.to_string(), public));
        }
    }
    Ok(RoleKeys { keys, threshold })
}

fn target_package(signed: &Value, name: &str) -> Result<Package, TufTargetError> {
    let target = signed
        .get("targets")
        .and_then(|t| t.get(name))
        .ok_or_else(|| TufTargetError::TargetNotFound { name: name.into() })?;
    let invalid = |detail: String| TufTargetError::PackageInvalid {
        name: name.into(),
        detail,
    };
    let statement = target
        .get("custom")
        .and_then(|c| c.get("ota"))
        .and_then(|o| o.get("package"))
        .ok_or_else(|| invalid("no custom.ota.package".into()))?;
    // The statement's JSON text (canonical JSON has no floating-point numbers and manifests
    // do), or the statement as an object.
    let package = match statement.as_str() {
        Some(text) => Package::from_json(text.as_bytes()),
        None => Package::from_json(statement.to_string().as_bytes()),
    }
    .map_err(|e| invalid(e.to_string()))?;
    let length = target
        .get("length")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("length: must be an integer".into()))?;
    let sha256: Sha256Digest = target
        .get("hashes")
        .and_then(|h| h.get("sha256"))
        .and_then(Value::as_str)
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| invalid("hashes.sha256: must be 64 lowercase hex characters".into()))?;
    if package.size_bytes != length || package.sha256 != sha256 {
        return Err(invalid(format!(
            "the statement says {} bytes with sha256 {}, the target {} bytes with {}",
            package.size_bytes, package.sha256, length, sha256
        )));
    }
    Ok(package)
}

fn parse(role: &'static str, bytes: &[u8], limits: &Limits) -> Result<Value, TufTargetError> {
    let max = limits.max_tuf_metadata_bytes;
    if bytes.len() > max {
        return Err(TufTargetError::TooLarge {
            role,
            size: bytes.len(),
            max,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| bad(role, ".", &e.to_string()))
}

fn field<'a>(doc: &'a Value, role: &'static str, name: &str) -> Result<&'a Value, TufTargetError> {
    doc.get(name).ok_or_else(|| bad(role, name, "missing"))
}

fn version(doc: &Value, role: &'static str) -> Result<u64, TufTargetError> {
    doc.get("signed")
        .and_then(|s| s.get("version"))
        .and_then(Value::as_u64)
        .ok_or_else(|| bad(role, "signed.version", "must be an integer"))
}

fn bad(role: &'static str, field: &str, detail: &str) -> TufTargetError {
    TufTargetError::Metadata {
        role,
        field: field.into(),
        detail: detail.into(),
    }
}
