//! The client's side: the core's [`Updater`] driven over files and HTTP, from a trusted root;
//! targets resolved to verified packages (searching delegations lazily), downloaded, and shown
//! (the Trust Center).
//!
//! Time is an input: every role's expiry is judged at the `now` the caller gives. The trusted
//! metadata lives in a state directory, each role in its own file named after it, quoted
//! (`root.json`, `timestamp.json`, `snapshot.json`, `targets.json`, and `ROLE.json` for each
//! delegated role a search visited): each file is replaced as soon as its role verified, so a
//! refresh that fails part-way keeps what it verified before the failure (the specification's
//! 5.3.8, 5.4.6, 5.5.7, 5.6.6).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use url::Url;

use super::fetch::{Fetcher, Flow, Stopped};
use super::{TufError, TufLimits, dir_url};
use ota_core::UnixMs;
use ota_core::digest::Sha256Digest;
use ota_core::package::Package;
use ota_core::sign::VerifiedPackage;
use ota_core::tuf::hashes::{Mismatch, Verifier};
use ota_core::tuf::{Config, FoundTarget, Input, Output, UpdateError, Updater};

pub use super::fetch::Transport;

/// The top-level metadata files a state directory holds (delegated roles add their own).
pub const STATE_FILES: [&str; 4] = [
    "root.json",
    "timestamp.json",
    "snapshot.json",
    "targets.json",
];

/// The most outputs one drive of the updater carries out: a bound far above any real
/// repository (a root chain of `max_root_updates`, and `max_delegations` roles).
const MAX_STEPS: usize = 1 << 20;

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
    transport: Transport,
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
    /// When it expires (as the metadata writes it, RFC 3339).
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
    /// Its SHA-256 (hex; empty when it lists none).
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
    /// Every target of the top-level targets role.
    pub targets: Vec<TargetInfo>,
}

/// How the updater's requests are carried out.
#[derive(Debug)]
struct Io {
    fetcher: Fetcher,
    metadata: Url,
    targets: Url,
    /// Where local copies are read from.
    load: Option<PathBuf>,
    /// Whether verified roles are written there.
    persist: bool,
}

/// A refreshed, verified repository. Target searches load delegated roles as they need them.
#[derive(Debug)]
pub struct Trusted {
    updater: Mutex<Updater>,
    io: Io,
    now: UnixMs,
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
            transport: Transport::default(),
        })
    }

    /// Keeps the trusted metadata in `dir`: its `root.json`, when present, is trusted instead of
    /// the root given to [`Client::new`], its other files guard against rollback, and each
    /// role is written there as soon as it verified.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state = Some(dir.into());
        self
    }

    /// Other size limits.
    pub fn limits(mut self, limits: TufLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Another HTTP transport: the progress timeout, and how many tries in a row may fail
    /// (see [`Transport`]).
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Refreshes the top-level metadata at time `now` (Unix ms), as the specification's client
    /// workflow says (see [`ota_core::tuf::updater`]).
    pub fn refresh(&self, now: UnixMs) -> Result<Trusted, TufError> {
        let mut root = self.root.clone();
        if let Some(state) = &self.state {
            crate::durable::create_dir_all(state).map_err(|e| TufError::Fetch {
                detail: format!("{}: {e}", state.display()),
            })?;
            match std::fs::read(state.join("root.json")) {
                Ok(bytes) => root = bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(TufError::Fetch {
                        detail: format!("{}: {e}", state.join("root.json").display()),
                    });
                }
            }
        }
        let io = Io {
            fetcher: Fetcher::new(self.transport)?,
            metadata: self.metadata.clone(),
            targets: self.targets.clone(),
            load: self.state.clone(),
            persist: self.state.is_some(),
        };
        refresh(&root, io, self.limits, now)
    }

    /// The trusted metadata of a state directory, verified again offline (no network): its
    /// root, timestamp, snapshot and targets, each checked as a refresh checks them. For the
    /// Trust Center of what a device trusts now.
    pub fn offline(state: &Path, now: UnixMs, limits: TufLimits) -> Result<Trusted, TufError> {
        let root = std::fs::read(state.join("root.json")).map_err(|e| TufError::Fetch {
            detail: format!("{}: {e}", state.join("root.json").display()),
        })?;
        // The state directory as the repository: no newer root is there, the timestamp is the
        // one trusted (the same version, so kept), and the snapshot and targets load locally.
        let url = dir_url(state)?;
        let io = Io {
            fetcher: Fetcher::new(Transport::default())?,
            metadata: url.clone(),
            targets: url,
            load: Some(state.to_path_buf()),
            persist: false,
        };
        refresh(&root, io, limits, now)
    }
}

fn config(limits: TufLimits) -> Config {
    Config {
        max_root_rotations: limits.max_root_updates,
        max_delegations: limits.max_delegations,
        root_max_length: limits.max_root_size,
        timestamp_max_length: limits.max_timestamp_size,
        snapshot_max_length: limits.max_snapshot_size,
        targets_max_length: limits.max_targets_size,
    }
}

fn refresh(root: &[u8], io: Io, limits: TufLimits, now: UnixMs) -> Result<Trusted, TufError> {
    let mut updater = Updater::new(root, config(limits)).map_err(TufError::from)?;
    // The trusted root is kept with the rest from the start.
    if let (true, Some(dir)) = (io.persist, &io.load)
        && !dir.join("root.json").exists()
    {
        write_atomically(&dir.join("root.json"), root)?;
    }
    match drive(&mut updater, &io, Input::Refresh, now)? {
        Output::Refreshed => Ok(Trusted {
            updater: Mutex::new(updater),
            io,
            now,
        }),
        other => Err(TufError::MetadataInvalid {
            detail: format!("the refresh concluded {other:?}"),
        }),
    }
}

/// Feeds `input`, then carries out the updater's outputs until it concludes.
fn drive(updater: &mut Updater, io: &Io, input: Input, now: UnixMs) -> Result<Output, TufError> {
    updater.handle(input, now).map_err(TufError::from)?;
    for _ in 0..MAX_STEPS {
        let Some(output) = updater.poll() else {
            return Err(TufError::MetadataInvalid {
                detail: "the updater stopped without concluding".into(),
            });
        };
        let next = match output {
            Output::Load { role_file } => {
                let bytes = io
                    .load
                    .as_ref()
                    .and_then(|d| std::fs::read(d.join(&role_file)).ok());
                Input::Loaded { role_file, bytes }
            }
            Output::Fetch {
                url_path,
                max_length,
            } => match io.fetcher.get(&io.metadata, &url_path, max_length) {
                Ok(bytes) => Input::Fetched { url_path, bytes },
                Err(e) => Input::FetchFailed {
                    url_path,
                    not_found: e.not_found,
                    detail: e.detail,
                },
            },
            Output::Persist { role_file, bytes } => {
                if let (true, Some(dir)) = (io.persist, &io.load) {
                    write_atomically(&dir.join(&role_file), &bytes)?;
                }
                continue;
            }
            Output::Failed(e) => return Err(e.into()),
            concluded => return Ok(concluded),
        };
        updater.handle(next, now).map_err(TufError::from)?;
    }
    Err(TufError::MetadataInvalid {
        detail: format!("the updater took more than {MAX_STEPS} steps"),
    })
}

/// Replaces a metadata file durably ([`crate::durable::replace_with`]): a power cut leaves the
/// old role or the new one, never an empty or half-written file that would stop every later
/// refresh. Owner-only (0600), as before.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TufError> {
    let shown = path.display();
    crate::durable::replace_with(
        path,
        true,
        |f| {
            f.write_all(bytes)
                .map_err(|e| format!("writing {shown}: {e}"))
        },
        |step, e| format!("{step} {shown}: {e}"),
    )
    .map_err(|detail| TufError::Fetch { detail })
}

impl Trusted {
    fn updater(&self) -> std::sync::MutexGuard<'_, Updater> {
        self.updater
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Finds a target: in the top-level targets, else through the delegations that cover
    /// its name, loading (and persisting) each role the search visits.
    pub fn find(&self, name: &str) -> Result<FoundTarget, TufError> {
        let mut updater = self.updater();
        match drive(
            &mut updater,
            &self.io,
            Input::FindTarget { name: name.into() },
            self.now,
        )? {
            Output::Found(found) => Ok(found),
            other => Err(TufError::MetadataInvalid {
                detail: format!("the search concluded {other:?}"),
            }),
        }
    }

    /// The names of every target of the top-level targets role.
    pub fn target_names(&self) -> Vec<String> {
        let updater = self.updater();
        updater
            .targets("targets")
            .map(|t| t.meta.targets.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The versions trusted: root, timestamp, snapshot, targets.
    pub fn versions(&self) -> [u64; 4] {
        self.updater().versions()
    }

    /// Resolves a target to the package it carries, verified: the statement in its
    /// `custom.ota.package` must be sealed and describe exactly the target's bytes.
    pub fn resolve(&self, name: &str) -> Result<Resolved, TufError> {
        let found = self.find(name)?;
        let invalid = |detail: String| TufError::PackageInvalid {
            name: name.into(),
            detail,
        };
        let package = self
            .updater()
            .package(&found)
            .map_err(|e| invalid(e.to_string()))?;
        let sha256 = found
            .target
            .hashes
            .get("sha256")
            .and_then(|h| h.parse::<Sha256Digest>().ok())
            .ok_or_else(|| invalid("the target lists no sha256".into()))?;
        Ok(Resolved {
            package,
            length: found.target.length,
            sha256,
        })
    }

    /// Whether `path` already holds target `found`: its length and every hash it lists match
    /// (the artifact cache: such a target is not downloaded again).
    pub fn is_cached(&self, found: &FoundTarget, path: &Path) -> bool {
        let Ok(mut file) = std::fs::File::open(path) else {
            return false;
        };
        let Ok(mut v) = Verifier::new(Some(found.target.length), &found.target.hashes) else {
            return false;
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match std::io::Read::read(&mut file, &mut buf) {
                Ok(0) => return v.finish().is_ok(),
                Ok(n) => {
                    if v.update(&buf[..n]).is_err() {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Downloads a target into `out`, verified against its length and every hash it lists as
    /// it streams. Over HTTP a download that stalls or breaks off is resumed where it stopped
    /// (see [`Transport`]); the resumed bytes are verified with the rest. On an error, what was
    /// written must be discarded. Returns the bytes written.
    pub fn download(&self, name: &str, out: &mut dyn Write) -> Result<u64, TufError> {
        let found = self.find(name)?;
        self.download_found(&found, out)
    }

    /// Downloads a target a search found (see [`Trusted::download`]).
    pub fn download_found(
        &self,
        found: &FoundTarget,
        out: &mut dyn Write,
    ) -> Result<u64, TufError> {
        let name = &found.target.name;
        let length = found.target.length;
        let mismatch = |e: Mismatch| match e {
            Mismatch::TooLong { .. } => TufError::TargetTooLong {
                name: name.clone(),
                length,
            },
            other => TufError::TargetMismatch {
                name: name.clone(),
                detail: other.to_string(),
            },
        };
        let mut v = Verifier::new(Some(length), &found.target.hashes).map_err(mismatch)?;
        let mut sink = |piece: &[u8]| -> Result<Flow, TufError> {
            v.update(piece).map_err(mismatch)?;
            out.write_all(piece).map_err(|e| TufError::Write {
                name: name.clone(),
                detail: e.to_string(),
            })?;
            Ok(Flow::More)
        };
        match self
            .io
            .fetcher
            .fetch(&self.io.targets, &found.url_path, &mut sink)
        {
            Ok(_) => {}
            Err(Stopped::Sink(e)) => return Err(e),
            Err(Stopped::Fetch(e)) => {
                return Err(TufError::Fetch {
                    detail: format!("target {name}: {}", e.detail),
                });
            }
        }
        let n = v.seen();
        v.finish().map_err(mismatch)?;
        Ok(n)
    }

    /// The Trust Center: every top-level role with its keys, threshold, version, expiry and
    /// valid signers, and every top-level target with its hashes, length and package.
    pub fn trust_center(&self) -> TrustCenter {
        let u = self.updater();
        let root = &u.root().meta;
        let role = |name: &str, version: u64, expires: &str, signed_by: &[String]| {
            let keys = root.role(name);
            RoleInfo {
                role: name.into(),
                version,
                expires: expires.into(),
                threshold: keys.threshold,
                keyids: keys.keyids.clone(),
                signed_by: signed_by.to_vec(),
            }
        };
        let mut roles = vec![role(
            "root",
            root.common.version,
            &root.common.expires_text,
            &u.root().signers,
        )];
        if let Some(t) = u.timestamp() {
            roles.push(role(
                "timestamp",
                t.meta.common.version,
                &t.meta.common.expires_text,
                &t.signers,
            ));
        }
        if let Some(t) = u.snapshot() {
            roles.push(role(
                "snapshot",
                t.meta.common.version,
                &t.meta.common.expires_text,
                &t.signers,
            ));
        }
        let mut targets = Vec::new();
        if let Some(t) = u.targets("targets") {
            roles.push(role(
                "targets",
                t.meta.common.version,
                &t.meta.common.expires_text,
                &t.signers,
            ));
            for (name, target) in &t.meta.targets {
                let package = statement(target.custom.as_ref()).and_then(Result::ok);
                targets.push(TargetInfo {
                    name: name.clone(),
                    length: target.length,
                    sha256: target.hashes.get("sha256").unwrap_or_default().to_string(),
                    package: package
                        .as_ref()
                        .map(|p| format!("{} {}", p.name, p.version)),
                    package_id: package
                        .map(|p| ota_core::sign::PackageId::of(p.to_json().as_bytes()).to_string()),
                });
            }
        }
        TrustCenter { roles, targets }
    }
}

/// The package statement a target carries in `custom.ota.package`: the statement's JSON text
/// (as [`Repo::add_package`](super::repo::Repo::add_package) writes it, since canonical JSON
/// has no floating-point numbers and manifests do), or the statement as a JSON object.
fn statement(custom: Option<&serde_json::Value>) -> Option<Result<Package, ota_core::ParseError>> {
    let value = custom?.get("ota")?.get("package")?;
    Some(match value.as_str() {
        Some(text) => Package::from_json(text.as_bytes()),
        None => Package::from_json(value.to_string().as_bytes()),
    })
}

impl From<UpdateError> for TufError {
    fn from(e: UpdateError) -> Self {
        let detail = e.to_string();
        match e {
            UpdateError::ThresholdNotMet {
                role,
                valid,
                threshold,
            } => TufError::ThresholdNotMet {
                role,
                detail: format!("{valid} valid signatures by trusted keys, threshold {threshold}"),
            },
            UpdateError::UnknownKey { role, keyids } => TufError::UnknownKey { role, keyids },
            UpdateError::DuplicateSignature { role, keyid } => TufError::DuplicateSignature {
                role,
                detail: format!("two signatures by key {keyid}"),
            },
            UpdateError::RootRotation { version, detail } => TufError::RootRotationRefused {
                detail: format!("root v{version}: {detail}"),
            },
            UpdateError::Rollback { detail } => TufError::Rollback { detail },
            UpdateError::Expired { role, expires } => TufError::Expired { role, expires },
            UpdateError::VersionMismatch { .. } | UpdateError::MetaMismatch { .. } => {
                TufError::MixAndMatch { detail }
            }
            UpdateError::TooLarge { .. } => TufError::MetadataTooLarge { detail },
            UpdateError::Fetch { .. } => TufError::Fetch { detail },
            UpdateError::UnsafeTargetName { name, why } => TufError::UnsafeTargetName {
                name,
                why: why.into(),
            },
            UpdateError::TargetNotFound { name } => TufError::TargetNotFound { name },
            _ => TufError::MetadataInvalid { detail },
        }
    }
}
