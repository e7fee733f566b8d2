//! The client's side: refresh from a trusted root, resolve targets to verified packages,
//! download them, and show what was signed (the Trust Center).
//!
//! Time is an input: tough's own expiry checks (on the system clock) are off, and every role's
//! expiry is checked against the `now` the caller gives. The trusted metadata lives in a state
//! directory under its plain names (`root.json`, `timestamp.json`, `snapshot.json`,
//! `targets.json`), read before a refresh (the trusted root and the versions a rollback is
//! checked against) and replaced only after a refresh that passed every check.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use serde::Serialize;
use tough::schema::{Role, RoleType, Root, Signed};
use tough::{ExpirationEnforcement, RepositoryLoader, TargetName};
use url::Url;

use super::classify::{Phase, classify};
use super::transport::{KEPT, Recording};
use super::{TufError, TufLimits, check_target_name, dir_url, runtime};
use ota_core::UnixMs;
use ota_core::digest::Sha256Digest;
use ota_core::package::Package;
use ota_core::sign::VerifiedPackage;

/// The trusted metadata files a state directory holds, and nothing else ending in `.json`.
pub const STATE_FILES: [&str; 4] = [
    "root.json",
    "timestamp.json",
    "snapshot.json",
    "targets.json",
];

/// Where metadata or targets come from: an `http(s)://` or `file://` URL, or a directory.
pub fn location(s: &str) -> Result<Url, TufError> {
    if s.starts_with("http://") || s.starts_with("https://") || s.starts_with("file://") {
        let mut url = Url::parse(s).map_err(|e| TufError::Fetch {
            detail: format!("{s}: {e}"),
        })?;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(url)
    } else {
        dir_url(Path::new(s))
    }
}

/// A TUF client configuration.
#[derive(Debug, Clone)]
pub struct Client {
    root: Vec<u8>,
    metadata: Url,
    targets: Url,
    state: Option<PathBuf>,
    limits: TufLimits,
}

/// A verified package resolved from a target, with what its bytes must be.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The package, verified through TUF.
    pub package: VerifiedPackage,
    /// The target's length.
    pub length: u64,
    /// The target's SHA-256.
    pub sha256: Sha256Digest,
}

/// One role in the Trust Center.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleInfo {
    /// `root`, `timestamp`, `snapshot` or `targets`.
    pub role: String,
    /// The version trusted.
    pub version: u64,
    /// When it expires (RFC 3339).
    pub expires: String,
    /// How many signatures it needs.
    pub threshold: u64,
    /// The role's keys (TUF key ids).
    pub keyids: Vec<String>,
    /// The role's keys whose signatures on this metadata are valid.
    pub signed_by: Vec<String>,
}

/// One target in the Trust Center.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetInfo {
    /// Its name.
    pub name: String,
    /// Its length.
    pub length: u64,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// The package it carries (`name version`), if any.
    pub package: Option<String>,
    /// The package's id, if it carries one that parses.
    pub package_id: Option<String>,
}

/// What the repository signed and by which keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustCenter {
    /// The four top-level roles, root first.
    pub roles: Vec<RoleInfo>,
    /// Every target.
    pub targets: Vec<TargetInfo>,
}

/// A refreshed, verified repository.
pub struct Trusted {
    repo: tough::Repository,
    rt: tokio::runtime::Runtime,
    now: UnixMs,
    limits: TufLimits,
}

impl std::fmt::Debug for Trusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Trusted(root v{})", self.repo.root().signed.version)
    }
}

impl Client {
    /// A client trusting `root` (a root.json), reading metadata and targets from `metadata` and
    /// `targets` (each an `http(s)://` or `file://` URL, or a directory).
    pub fn new(root: Vec<u8>, metadata: &str, targets: &str) -> Result<Self, TufError> {
        Ok(Client {
            root,
            metadata: location(metadata)?,
            targets: location(targets)?,
            state: None,
            limits: TufLimits::default(),
        })
    }

    /// Keeps the trusted metadata in `dir`: its `root.json`, when present, is trusted instead of
    /// the root given to [`Client::new`], and after each successful refresh the four files are
    /// replaced.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state = Some(dir.into());
        self
    }

    /// Other size limits.
    pub fn limits(mut self, limits: TufLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Refreshes the metadata at time `now` (Unix ms): root updates, timestamp, snapshot and
    /// targets, each verified (signatures and thresholds, versions against rollback, hashes and
    /// lengths against mix-and-match, sizes, expiry).
    pub fn refresh(&self, now: UnixMs) -> Result<Trusted, TufError> {
        let rt = runtime()?;
        let datastore = tempfile::tempdir().map_err(|e| TufError::Fetch {
            detail: format!("a temporary directory: {e}"),
        })?;
        let mut root = self.root.clone();
        if let Some(state) = &self.state {
            for name in STATE_FILES {
                let path = state.join(name);
                match std::fs::read(&path) {
                    Ok(bytes) if name == "root.json" => root = bytes,
                    Ok(bytes) => {
                        std::fs::write(datastore.path().join(name), bytes).map_err(|e| {
                            TufError::Fetch {
                                detail: format!("{}: {e}", datastore.path().display()),
                            }
                        })?
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(TufError::Fetch {
                            detail: format!("{}: {e}", path.display()),
                        });
                    }
                }
            }
        }
        let recording = Recording::new(Some(self.targets.clone()));
        let loaded = rt.block_on(
            RepositoryLoader::new(&root, self.metadata.clone(), self.targets.clone())
                .transport(recording.clone())
                .datastore(datastore.path())
                .expiration_enforcement(ExpirationEnforcement::Unsafe)
                .limits(self.limits.tough())
                .load(),
        );
        recording.keep_only(KEPT);
        let repo = loaded.map_err(|e| classify(&e, Phase::Metadata, "", &root, &recording))?;
        let trusted = Trusted {
            repo,
            rt,
            now,
            limits: self.limits,
        };
        trusted.check_expiry()?;
        if let Some(state) = &self.state {
            std::fs::create_dir_all(state).map_err(|e| TufError::Fetch {
                detail: format!("{}: {e}", state.display()),
            })?;
            // The files exactly as the repository signed them (the last of each fetched, all
            // verified since the load succeeded), so hashes in the snapshot and timestamp
            // still match them; tough's own datastore copies are re-serialized.
            for name in STATE_FILES {
                let role = name.trim_end_matches(".json");
                let fetched = match role {
                    "root" => Some(recording.last_root().unwrap_or_else(|| root.clone())),
                    _ => recording.last(role),
                };
                let bytes = match fetched {
                    Some(bytes) => bytes,
                    None => {
                        std::fs::read(datastore.path().join(name)).map_err(|e| TufError::Fetch {
                            detail: format!("{name} after the refresh: {e}"),
                        })?
                    }
                };
                write_atomically(&state.join(name), &bytes)?;
            }
        }
        Ok(trusted)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TufError> {
    let fail = |e: &dyn std::fmt::Display| TufError::Fetch {
        detail: format!("{}: {e}", path.display()),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(|e| fail(&e))?;
    tmp.write_all(bytes).map_err(|e| fail(&e))?;
    tmp.persist(path).map_err(|e| fail(&e.error))?;
    Ok(())
}

fn rfc3339(t: &jiff::Timestamp) -> String {
    t.to_string()
}

fn millis(t: &jiff::Timestamp) -> UnixMs {
    UnixMs(u64::try_from(t.as_millisecond()).unwrap_or(0))
}

impl Trusted {
    fn check_expiry(&self) -> Result<(), TufError> {
        let r = &self.repo;
        for (role, expires) in [
            ("timestamp", r.timestamp().signed.expires),
            ("snapshot", r.snapshot().signed.expires),
            ("targets", r.targets().signed.expires),
            ("root", r.root().signed.expires),
        ] {
            if millis(&expires) <= self.now {
                return Err(TufError::Expired {
                    role: role.into(),
                    expires: rfc3339(&expires),
                });
            }
        }
        Ok(())
    }

    /// The names of every target.
    pub fn target_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .repo
            .all_targets()
            .map(|(n, _)| n.raw().to_string())
            .collect();
        names.sort();
        names
    }

    /// The versions trusted: root, timestamp, snapshot, targets.
    pub fn versions(&self) -> [u64; 4] {
        let r = &self.repo;
        [
            r.root().signed.version.get(),
            r.timestamp().signed.version.get(),
            r.snapshot().signed.version.get(),
            r.targets().signed.version.get(),
        ]
    }

    fn target(&self, name: &str) -> Result<(TargetName, &tough::schema::Target), TufError> {
        check_target_name(name)?;
        let tn = TargetName::new(name).map_err(|e| TufError::UnsafeTargetName {
            name: name.into(),
            why: e.to_string(),
        })?;
        let target = self
            .repo
            .targets()
            .signed
            .find_target(&tn, false)
            .map_err(|_| TufError::TargetNotFound { name: name.into() })?;
        Ok((tn, target))
    }

    /// Resolves a target to the package it carries, verified: the statement in its
    /// `custom.ota.package` must be sealed and describe exactly the target's bytes.
    pub fn resolve(&self, name: &str) -> Result<Resolved, TufError> {
        let (_, target) = self.target(name)?;
        let invalid = |detail: String| TufError::PackageInvalid {
            name: name.into(),
            detail,
        };
        let sha256: [u8; 32] = target
            .hashes
            .sha256
            .as_ref()
            .try_into()
            .map_err(|_| invalid("the target's sha256 is not 32 bytes".into()))?;
        // The core checks the targets role's signatures itself against the trusted root: a
        // package is verified there or not at all.
        let root = serde_json::to_vec(self.repo.root()).map_err(|e| invalid(e.to_string()))?;
        let targets =
            serde_json::to_vec(self.repo.targets()).map_err(|e| invalid(e.to_string()))?;
        let [_, timestamp, snapshot, _] = self.versions();
        let package = ota_core::tuf::verify_target(
            &root,
            &targets,
            name,
            ota_core::tuf::ChainVersions {
                timestamp,
                snapshot,
            },
            &self.limits.core(),
        )
        .map_err(|e| invalid(e.to_string()))?;
        Ok(Resolved {
            package,
            length: target.length,
            sha256: Sha256Digest::from_bytes(sha256),
        })
    }

    /// Downloads a target into `out`, verified against its length and SHA-256 as it streams.
    /// On an error, what was written must be discarded. Returns the bytes written.
    pub fn download(&self, name: &str, out: &mut dyn Write) -> Result<u64, TufError> {
        let (tn, target) = self.target(name)?;
        let length = target.length;
        self.rt.block_on(async {
            let classify_target = |e: &tough::error::Error| TufError::from_target(e, name, length);
            let stream = self
                .repo
                .read_target(&tn)
                .await
                .map_err(|e| classify_target(&e))?
                .ok_or_else(|| TufError::TargetNotFound { name: name.into() })?;
            let mut stream = std::pin::pin!(stream);
            let mut n = 0u64;
            while let Some(chunk) = stream.next().await {
                let bytes = chunk.map_err(|e| classify_target(&e))?;
                out.write_all(&bytes).map_err(|e| TufError::Fetch {
                    detail: format!("writing target {name}: {e}"),
                })?;
                n += bytes.len() as u64;
            }
            Ok(n)
        })
    }

    /// The Trust Center: every role with its keys, threshold, version, expiry and valid
    /// signers, and every target with its hashes, length and package.
    pub fn trust_center(&self) -> TrustCenter {
        let r = &self.repo;
        let root = &r.root().signed;
        let role =
            |kind: RoleType, version: u64, expires: &jiff::Timestamp, signed_by: Vec<String>| {
                let keys = root.roles.get(&kind);
                RoleInfo {
                    role: kind.to_string(),
                    version,
                    expires: rfc3339(expires),
                    threshold: keys.map_or(0, |k| k.threshold.get()),
                    keyids: keys
                        .map(|k| k.keyids.iter().map(|id| hex::encode(&**id)).collect())
                        .unwrap_or_default(),
                    signed_by,
                }
            };
        let roles = vec![
            role(
                RoleType::Root,
                root.version.get(),
                &root.expires,
                valid_signers(root, r.root()),
            ),
            role(
                RoleType::Timestamp,
                r.timestamp().signed.version.get(),
                &r.timestamp().signed.expires,
                valid_signers(root, r.timestamp()),
            ),
            role(
                RoleType::Snapshot,
                r.snapshot().signed.version.get(),
                &r.snapshot().signed.expires,
                valid_signers(root, r.snapshot()),
            ),
            role(
                RoleType::Targets,
                r.targets().signed.version.get(),
                &r.targets().signed.expires,
                valid_signers(root, r.targets()),
            ),
        ];
        let mut targets: Vec<TargetInfo> = r
            .all_targets()
            .map(|(name, t)| {
                let package = statement(t).and_then(Result::ok);
                TargetInfo {
                    name: name.raw().to_string(),
                    length: t.length,
                    sha256: hex::encode(&*t.hashes.sha256),
                    package: package
                        .as_ref()
                        .map(|p| format!("{} {}", p.name, p.version)),
                    package_id: package
                        .map(|p| ota_core::sign::PackageId::of(p.to_json().as_bytes()).to_string()),
                }
            })
            .collect();
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        TrustCenter { roles, targets }
    }
}

/// The package statement a target carries in `custom.ota.package`: the statement's JSON text
/// (as [`Repo::add_package`](super::repo::Repo::add_package) writes it, since canonical JSON
/// has no floating-point numbers and manifests do), or the statement as a JSON object.
fn statement(target: &tough::schema::Target) -> Option<Result<Package, ota_core::ParseError>> {
    let value = target.custom.get("ota")?.get("package")?;
    Some(match value.as_str() {
        Some(text) => Package::from_json(text.as_bytes()),
        None => Package::from_json(value.to_string().as_bytes()),
    })
}

/// The role keys whose signatures on `signed` are valid, as TUF key ids (hex), in the order of
/// the signatures: each signature is checked alone against a threshold of one.
fn valid_signers<T: Role + Serialize + Clone>(root: &Root, signed: &Signed<T>) -> Vec<String> {
    let mut one = root.clone();
    if let Some(keys) = one.roles.get_mut(&T::TYPE) {
        keys.threshold = std::num::NonZeroU64::MIN;
    }
    let mut out = Vec::new();
    for sig in &signed.signatures {
        let single = Signed {
            signed: signed.signed.clone(),
            signatures: vec![sig.clone()],
        };
        let id = hex::encode(&*sig.keyid);
        if one.verify_role(&single).is_ok() && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

impl Client {
    /// The trusted metadata of a state directory, verified again offline (no network): its
    /// root, timestamp, snapshot and targets, laid out as a repository and loaded from its own
    /// root. For the Trust Center of what a device trusts now.
    pub fn offline(state: &Path, now: UnixMs, limits: TufLimits) -> Result<Trusted, TufError> {
        let read = |name: &str| {
            std::fs::read(state.join(name)).map_err(|e| TufError::Fetch {
                detail: format!("{}: {e}", state.join(name).display()),
            })
        };
        let version = |bytes: &[u8], name: &str| -> Result<u64, TufError> {
            serde_json::from_slice::<serde_json::Value>(bytes)
                .ok()
                .and_then(|v| {
                    v.pointer("/signed/version")
                        .and_then(serde_json::Value::as_u64)
                })
                .ok_or_else(|| TufError::MetadataInvalid {
                    detail: format!("{name}: no signed.version"),
                })
        };
        let layout = tempfile::tempdir().map_err(|e| TufError::Fetch {
            detail: format!("a temporary directory: {e}"),
        })?;
        let root = read("root.json")?;
        for name in ["timestamp.json", "snapshot.json", "targets.json"] {
            let bytes = read(name)?;
            let v = version(&bytes, name)?;
            let write = |file: String| {
                std::fs::write(layout.path().join(file), &bytes).map_err(|e| TufError::Fetch {
                    detail: format!("{}: {e}", layout.path().display()),
                })
            };
            write(name.to_string())?;
            write(format!("{v}.{name}"))?;
        }
        let dir = layout.path().to_string_lossy().into_owned();
        Client::new(root, &dir, &dir)?.limits(limits).refresh(now)
    }
}
