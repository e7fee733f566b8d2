//! TUF: packages signed into TUF update metadata with tough, the second route to a
//! [`VerifiedPackage`](ota_core::sign::VerifiedPackage) beside the DSSE envelope.
//!
//! - [`repo`]: the publisher's side. A repository with ed25519 keys and a threshold per role,
//!   consistent snapshots and an expiry per role; packages are added as targets (the sealed
//!   artifact is the target file; the package statement and its model manifest ride in the
//!   target's `custom.ota` as JSON text); targets, snapshot and timestamp are signed; the
//!   timestamp can be re-signed alone; the root key can be rotated (the new root cross-signed
//!   by the old threshold). Nothing is written unless everything was signed.
//! - [`client`]: the device's and the control plane's side: the core's sans-IO
//!   [`Updater`](ota_core::tuf::Updater) driven over a local directory or an HTTP base URL,
//!   at a time given as input. It keeps the trusted metadata in a directory (each role as soon
//!   as it verified), resolves a target name to a `VerifiedPackage` with its expected length
//!   and hashes (searching delegations lazily), downloads targets, and lists what was signed
//!   and by which key (the Trust Center). Beside it, privately: `fetch` (files, and HTTP with
//!   reqwest: progress timeouts, not whole-transfer ones, and downloads resumed by range).
//!
//! Behind the `tuf` feature: tough brings tokio and aws-lc (the publisher signs with tough's
//! editor; the client verifies in the core, pure Rust, and fetches with reqwest). The calls here
//! are blocking; each runs a current-thread runtime inside.
//!
//! Layout of a repository directory: `metadata/` (`N.root.json`, `root.json`, `N.targets.json`,
//! `N.snapshot.json`, `timestamp.json`) and `targets/` (consistent snapshots: `{sha256}.{name}`;
//! a name in a directory, `dir/{sha256}.{base}` as the specification has it and also
//! `{sha256}.dir/{base}` as tough 0.24 asks for it), so clients use `file://…/metadata` and
//! `file://…/targets`, or the same under an HTTP server.

pub mod client;
mod fetch;
pub mod repo;

use std::collections::HashMap;
use std::path::PathBuf;

use tough::async_trait;
use tough::key_source::KeySource;
use tough::schema::key::{Ed25519Key, Ed25519Scheme, Key};
use tough::sign::Sign;

use ota_core::sign::{PublicKey, SigningKey};
use ota_core::status::Status;

/// A TUF operation failed. Each attack the client meets has its own variant and status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TufError {
    /// A role's metadata lacks its threshold of valid signatures.
    #[error("{role} metadata: {detail}")]
    ThresholdNotMet {
        /// The role.
        role: String,
        /// tough's account.
        detail: String,
    },
    /// A role's metadata is signed only by keys the role does not trust.
    #[error("{role} metadata is signed only by keys {role} does not trust ({keyids})")]
    UnknownKey {
        /// The role.
        role: String,
        /// The key ids that signed.
        keyids: String,
    },
    /// A role's metadata carries two signatures by one key.
    #[error("{role} metadata: {detail}")]
    DuplicateSignature {
        /// The role.
        role: String,
        /// tough's account.
        detail: String,
    },
    /// Metadata older than the version already trusted: a rollback attack.
    #[error("rollback refused: {detail}")]
    Rollback {
        /// What went back.
        detail: String,
    },
    /// Metadata that expired before `now`: a freeze attack, or a stale repository.
    #[error("{role} metadata expired at {expires}")]
    Expired {
        /// The role.
        role: String,
        /// When (RFC 3339).
        expires: String,
    },
    /// A target's bytes differ from the targets metadata.
    #[error("target {name}: {detail}")]
    TargetMismatch {
        /// The target.
        name: String,
        /// What differs.
        detail: String,
    },
    /// A target is longer than the targets metadata says (endless data).
    #[error("target {name} is longer than its {length} bytes")]
    TargetTooLong {
        /// The target.
        name: String,
        /// The length the metadata gives.
        length: u64,
    },
    /// Metadata larger than its limit.
    #[error("metadata too large: {detail}")]
    MetadataTooLarge {
        /// Which, and the limit.
        detail: String,
    },
    /// Metadata that does not match the version or hash another role names (mix and match).
    #[error("metadata does not match what another role names: {detail}")]
    MixAndMatch {
        /// What differs.
        detail: String,
    },
    /// A target name that is not a safe relative path.
    #[error("unsafe target name {name:?}: {why}")]
    UnsafeTargetName {
        /// The name.
        name: String,
        /// Why.
        why: String,
    },
    /// No such target.
    #[error("no target named {name:?}")]
    TargetNotFound {
        /// The name.
        name: String,
    },
    /// A new root not signed by the threshold of the trusted root (or by its own).
    #[error("root rotation refused: {detail}")]
    RootRotationRefused {
        /// tough's account.
        detail: String,
    },
    /// The repository could not be read (a missing file, a network error, a timeout, an
    /// HTTP status other than success).
    #[error("fetching: {detail}")]
    Fetch {
        /// What failed.
        detail: String,
    },
    /// A target's bytes could not be written where the caller asked (its write callback or
    /// file refused them).
    #[error("writing target {name}: {detail}")]
    Write {
        /// The target.
        name: String,
        /// What failed.
        detail: String,
    },
    /// Malformed metadata.
    #[error("invalid metadata: {detail}")]
    MetadataInvalid {
        /// What is wrong.
        detail: String,
    },
    /// The publisher could not build, sign or write the repository.
    #[error("repository: {detail}")]
    Repository {
        /// What failed.
        detail: String,
    },
    /// A target's package statement is missing, invalid or not about its bytes.
    #[error("target {name}: {detail}")]
    PackageInvalid {
        /// The target.
        name: String,
        /// What is wrong.
        detail: String,
    },
}

impl TufError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            TufError::ThresholdNotMet { .. } => Status::TufThresholdNotMet,
            TufError::UnknownKey { .. } => Status::TufUnknownKey,
            TufError::DuplicateSignature { .. } => Status::TufDuplicateSignature,
            TufError::Rollback { .. } => Status::TufRollback,
            TufError::Expired { .. } => Status::TufExpired,
            TufError::TargetMismatch { .. } => Status::TufTargetMismatch,
            TufError::TargetTooLong { .. } => Status::TufTargetTooLong,
            TufError::MetadataTooLarge { .. } => Status::TufMetadataTooLarge,
            TufError::MixAndMatch { .. } => Status::TufMixAndMatch,
            TufError::UnsafeTargetName { .. } => Status::TufUnsafeTargetName,
            TufError::TargetNotFound { .. } => Status::TufTargetNotFound,
            TufError::RootRotationRefused { .. } => Status::TufRootRotationRefused,
            TufError::Fetch { .. } => Status::TufFetch,
            TufError::Write { .. } => Status::Io,
            TufError::MetadataInvalid { .. } => Status::TufMetadataInvalid,
            TufError::Repository { .. } => Status::TufRepository,
            TufError::PackageInvalid { .. } => Status::TufPackageInvalid,
        }
    }

    pub(crate) fn repository(detail: impl std::fmt::Display) -> Self {
        TufError::Repository {
            detail: detail.to_string(),
        }
    }
}

/// The size limits of TUF metadata (tough's `Limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TufLimits {
    /// The largest root metadata. Default 512 KiB.
    pub max_root_size: u64,
    /// The largest targets metadata when the snapshot does not give its length. Default 16 MiB.
    pub max_targets_size: u64,
    /// The largest timestamp metadata. Default 16 KiB.
    pub max_timestamp_size: u64,
    /// The largest snapshot metadata when the timestamp does not give its length. Default 1 MiB.
    pub max_snapshot_size: u64,
    /// The most root versions one refresh walks through. Default 1024.
    pub max_root_updates: u64,
    /// The most targets roles one target search visits. Default 32.
    pub max_delegations: usize,
}

impl Default for TufLimits {
    fn default() -> Self {
        TufLimits {
            max_root_size: 512 * 1024,
            max_targets_size: 16 * 1024 * 1024,
            max_timestamp_size: 16 * 1024,
            max_snapshot_size: 1024 * 1024,
            max_root_updates: 1024,
            max_delegations: 32,
        }
    }
}

impl TufLimits {
    /// The core's limits for [`ota_core::tuf::verify_target`]: metadata as large as the
    /// largest root or targets these limits let through.
    pub fn core(&self) -> ota_core::Limits {
        let mut limits = ota_core::Limits::DEFAULT;
        let max = self.max_root_size.max(self.max_targets_size);
        limits.max_tuf_metadata_bytes = usize::try_from(max).unwrap_or(usize::MAX);
        limits
    }

    fn tough(&self) -> tough::Limits {
        tough::Limits {
            max_root_size: self.max_root_size,
            max_targets_size: self.max_targets_size,
            max_timestamp_size: self.max_timestamp_size,
            max_snapshot_size: self.max_snapshot_size,
            max_root_updates: self.max_root_updates,
        }
    }
}

/// The TUF form of an ed25519 public key.
pub fn tuf_key(key: &PublicKey) -> Key {
    Key::Ed25519 {
        keyval: Ed25519Key {
            public: key.to_bytes().to_vec().into(),
            _extra: HashMap::new(),
        },
        scheme: Ed25519Scheme::Ed25519,
        _extra: HashMap::new(),
    }
}

/// The TUF key id (hex) of a public key: SHA-256 of its canonical JSON.
pub fn tuf_keyid(key: &PublicKey) -> Result<String, TufError> {
    tuf_key(key)
        .key_id()
        .map(|id| hex::encode(&*id))
        .map_err(TufError::repository)
}

/// One of our signing keys, as tough's key source and signer (ed25519, deterministic).
#[derive(Clone)]
pub(crate) struct OurKey(pub(crate) SigningKey);

impl std::fmt::Debug for OurKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OurKey({})", self.0.key_id())
    }
}

#[async_trait]
impl Sign for OurKey {
    fn tuf_key(&self) -> Key {
        tuf_key(&self.0.public_key())
    }

    async fn sign(
        &self,
        msg: &[u8],
        _rng: &(dyn aws_lc_rs::rand::SecureRandom + Sync),
    ) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(self.0.sign(msg).to_vec())
    }
}

#[async_trait]
impl KeySource for OurKey {
    async fn as_sign(
        &self,
    ) -> Result<Box<dyn Sign>, Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(Box::new(self.clone()))
    }

    async fn write(
        &self,
        _value: &str,
        _key_id_hex: &str,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Err("ota keys are not written through tough".into())
    }
}

/// Our keys as tough's key sources, for signing metadata with tough directly (as the attack
/// fixtures do for what [`repo::Repo`] refuses to make).
pub fn key_sources(keys: &[SigningKey]) -> Vec<Box<dyn KeySource>> {
    keys.iter()
        .map(|k| Box::new(OurKey(k.clone())) as Box<dyn KeySource>)
        .collect()
}

/// An instant as an expiry, in whole seconds: the specification's form
/// (`YYYY-MM-DDTHH:MM:SSZ`), which other clients parse strictly.
pub(crate) fn timestamp(at: ota_core::UnixMs) -> Result<jiff::Timestamp, TufError> {
    let ms = at.get();
    i64::try_from(ms / 1000)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .ok_or_else(|| TufError::repository(format!("time {ms} ms is out of range")))
}

/// A current-thread runtime for the blocking calls.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, TufError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TufError::Fetch {
            detail: format!("starting the I/O runtime: {e}"),
        })
}

/// A directory as a `file://` URL (with its trailing slash, so names join under it).
pub(crate) fn dir_url(dir: &std::path::Path) -> Result<url::Url, TufError> {
    let abs: PathBuf = std::path::absolute(dir).map_err(|e| TufError::Fetch {
        detail: format!("{}: {e}", dir.display()),
    })?;
    url::Url::from_directory_path(&abs).map_err(|()| TufError::Fetch {
        detail: format!("{}: not a usable directory path", abs.display()),
    })
}

/// Whether a target name is a safe relative path: no `..`, no empty or `.` components, not
/// absolute, no backslash — the name as written must be the name as resolved.
pub fn check_target_name(name: &str) -> Result<(), TufError> {
    let bad = |why: &str| {
        Err(TufError::UnsafeTargetName {
            name: name.to_string(),
            why: why.to_string(),
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.starts_with('/') {
        return bad("it is absolute");
    }
    if name.contains('\\') || name.contains('\0') {
        return bad("it contains a backslash or NUL");
    }
    if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("a component is empty, `.` or `..`");
    }
    Ok(())
}
