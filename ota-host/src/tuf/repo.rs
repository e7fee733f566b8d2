//! The publisher's side of a TUF repository, with tough's editor.
//!
//! Every operation signs everything it changes before it writes anything: new metadata goes to
//! a temporary directory first and is renamed into place with `timestamp.json` last, so a
//! client never sees half an update.

use std::collections::HashMap;
use std::io::Read;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use serde_json::json;
use tough::editor::RepositoryEditor;
use tough::editor::signed::{PathExists, SignedRole};
use tough::schema::{Hashes, KeyHolder, RoleKeys, RoleType, Root, Target, Timestamp};
use tough::{ExpirationEnforcement, FilesystemTransport, RepositoryLoader, TargetName};

use super::{
    TufError, TufLimits, check_target_name, dir_url, key_sources, runtime, timestamp, tuf_key,
    tuf_keyid,
};
use crate::durable::create_dir_all;
use ota_core::UnixMs;
use ota_core::chunk::ChunkHasher;
use ota_core::package::Package;
use ota_core::sign::{PublicKey, SigningKey};

const SPEC_VERSION: &str = "1.0.0";

/// The keys of one role and how many of them must sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The role's public keys.
    pub keys: Vec<PublicKey>,
    /// How many must sign (at least 1, at most the number of keys).
    pub threshold: u64,
}

/// The four top-level roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    /// Root: signs the roles and keys.
    pub root: Role,
    /// Targets: signs what the packages are.
    pub targets: Role,
    /// Snapshot: signs which targets metadata is current.
    pub snapshot: Role,
    /// Timestamp: signs which snapshot is current, often.
    pub timestamp: Role,
}

/// When each role's new metadata expires (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiries {
    /// Root.
    pub root: UnixMs,
    /// Targets.
    pub targets: UnixMs,
    /// Snapshot.
    pub snapshot: UnixMs,
    /// Timestamp.
    pub timestamp: UnixMs,
}

impl Expiries {
    /// The usual spread from `now` (Unix ms): root a year, targets three months, snapshot a
    /// week, timestamp a day.
    pub fn from(now: UnixMs) -> Self {
        const DAY: u64 = 86_400_000;
        Expiries {
            root: now + 365 * DAY,
            targets: now + 90 * DAY,
            snapshot: now + 7 * DAY,
            timestamp: now + DAY,
        }
    }
}

/// A TUF repository directory (`metadata/` and `targets/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    dir: PathBuf,
}

fn nonzero(v: u64, what: &str) -> Result<NonZeroU64, TufError> {
    NonZeroU64::new(v).ok_or_else(|| TufError::repository(format!("{what} must be at least 1")))
}

fn io(path: &Path, e: impl std::fmt::Display) -> TufError {
    TufError::repository(format!("{}: {e}", path.display()))
}

impl Repo {
    /// The repository in `dir` (not read until used).
    pub fn open(dir: impl Into<PathBuf>) -> Self {
        Repo { dir: dir.into() }
    }

    /// Where the metadata lives.
    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join("metadata")
    }

    /// Where the target files live.
    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join("targets")
    }

    /// The current root metadata file (`N.root.json` with the highest N).
    pub fn root_path(&self) -> Result<PathBuf, TufError> {
        let meta = self.metadata_dir();
        let mut best: Option<(u64, PathBuf)> = None;
        let entries = std::fs::read_dir(&meta).map_err(|e| io(&meta, e))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(n) = name
                .strip_suffix(".root.json")
                .and_then(|v| v.parse::<u64>().ok())
                && best.as_ref().is_none_or(|(b, _)| n > *b)
            {
                best = Some((n, e.path()));
            }
        }
        best.map(|(_, p)| p)
            .ok_or_else(|| TufError::repository(format!("{}: no N.root.json", meta.display())))
    }

    /// Creates a repository: a root with these roles (consistent snapshots), signed by the
    /// root keys among `keys`, and empty targets, snapshot and timestamp signed by theirs.
    pub fn create(
        dir: impl Into<PathBuf>,
        roles: &Roles,
        keys: &[SigningKey],
        expires: &Expiries,
    ) -> Result<Repo, TufError> {
        let repo = Repo::open(dir);
        let meta = repo.metadata_dir();
        if meta.exists() {
            return Err(TufError::repository(format!(
                "{}: a repository is already there",
                meta.display()
            )));
        }
        let mut root = Root {
            spec_version: SPEC_VERSION.into(),
            consistent_snapshot: true,
            version: nonzero(1, "the root version")?,
            expires: timestamp(expires.root)?,
            keys: HashMap::new(),
            roles: HashMap::new(),
            _extra: HashMap::new(),
        };
        for (kind, role) in [
            (RoleType::Root, &roles.root),
            (RoleType::Targets, &roles.targets),
            (RoleType::Snapshot, &roles.snapshot),
            (RoleType::Timestamp, &roles.timestamp),
        ] {
            set_role(&mut root, kind, role)?;
        }
        let rt = runtime()?;
        let staging = tempfile::tempdir_in(parent_of(&repo.dir)?).map_err(|e| io(&repo.dir, e))?;
        let signed_root = rt.block_on(sign_root(&root, &[&root], keys))?;
        let root_file = staging.path().join("1.root.json");
        std::fs::write(&root_file, signed_root.buffer()).map_err(|e| io(&root_file, e))?;
        let staged = staging.path().join("metadata");
        rt.block_on(async {
            let mut editor = RepositoryEditor::new(&root_file)
                .await
                .map_err(TufError::repository)?;
            editor
                .targets_version(nonzero(1, "")?)
                .map_err(TufError::repository)?
                .targets_expires(timestamp(expires.targets)?)
                .map_err(TufError::repository)?
                .snapshot_version(nonzero(1, "")?)
                .snapshot_expires(timestamp(expires.snapshot)?)
                .timestamp_version(nonzero(1, "")?)
                .timestamp_expires(timestamp(expires.timestamp)?);
            let signed = editor
                .sign(&key_sources(keys))
                .await
                .map_err(TufError::repository)?;
            signed.write(&staged).await.map_err(TufError::repository)
        })?;
        std::fs::write(staged.join("root.json"), signed_root.buffer())
            .map_err(|e| io(&staged, e))?;
        create_dir_all(&repo.dir).map_err(|e| io(&repo.dir, e))?;
        create_dir_all(&repo.targets_dir()).map_err(|e| io(&repo.dir, e))?;
        sync_parent(&repo.targets_dir())?;
        sync_parent(&repo.dir)?;
        rename(&staged, &meta)?;
        Ok(repo)
    }

    /// The repository as it stands, verified from its own current root (expiry is not
    /// enforced: the publisher may be renewing expired metadata).
    fn load(&self, rt: &tokio::runtime::Runtime) -> Result<(PathBuf, tough::Repository), TufError> {
        let root_path = self.root_path()?;
        let root = std::fs::read(&root_path).map_err(|e| io(&root_path, e))?;
        let repo = rt.block_on(
            RepositoryLoader::new(
                &root,
                dir_url(&self.metadata_dir())?,
                dir_url(&self.targets_dir())?,
            )
            .transport(FilesystemTransport)
            .expiration_enforcement(ExpirationEnforcement::Unsafe)
            .limits(TufLimits::default().tough())
            .load(),
        );
        let repo =
            repo.map_err(|e| TufError::repository(format!("loading {}: {e}", self.dir.display())))?;
        Ok((root_path, repo))
    }

    /// Adds (or replaces) a package as target `name`: the sealed artifact at `artifact` is the
    /// target file, and the statement and its model manifest go into `custom.ota` (`package`
    /// and `manifest`, each as its JSON text). Targets,
    /// snapshot and timestamp are signed with the keys among `keys` and written, or nothing is.
    pub fn add_package(
        &self,
        name: &str,
        artifact: &Path,
        package: &Package,
        keys: &[SigningKey],
        expires: &Expiries,
    ) -> Result<(), TufError> {
        check_target_name(name)?;
        let invalid = |detail: String| TufError::PackageInvalid {
            name: name.to_string(),
            detail,
        };
        if package.chunks.is_none() || package.seal.is_none() {
            return Err(invalid(
                "the package is not sealed (no chunk table or seal)".into(),
            ));
        }
        let digests = hash_file(artifact)?;
        if digests.sha256 != package.sha256 || digests.size_bytes != package.size_bytes {
            return Err(invalid(format!(
                "{} is {} bytes with sha256 {}, the package says {} bytes, {}",
                artifact.display(),
                digests.size_bytes,
                digests.sha256,
                package.size_bytes,
                package.sha256
            )));
        }
        if Some(&digests.chunks) != package.chunks.as_ref() {
            return Err(invalid(
                "the artifact's chunks differ from the package's chunk table".into(),
            ));
        }
        // As text: canonical JSON, which TUF signs, has no floating-point numbers, and a
        // manifest's metrics and preprocessing constants are.
        let statement = package.to_json();
        let manifest = serde_json::from_str::<serde_json::Value>(&statement)
            .ok()
            .and_then(|v| v.get("manifest").map(ToString::to_string));
        let target = Target {
            length: package.size_bytes,
            hashes: Hashes {
                sha256: package.sha256.as_bytes().to_vec().into(),
                _extra: HashMap::new(),
            },
            custom: HashMap::from([(
                "ota".to_string(),
                json!({"package": statement, "manifest": manifest}),
            )]),
            _extra: HashMap::new(),
        };
        let target_name = TargetName::new(name).map_err(|e| TufError::UnsafeTargetName {
            name: name.into(),
            why: e.to_string(),
        })?;
        let rt = runtime()?;
        let (root_path, current) = self.load(&rt)?;
        let versions = (
            current.targets().signed.version.get() + 1,
            current.snapshot().signed.version.get() + 1,
            current.timestamp().signed.version.get() + 1,
        );
        let staging = tempfile::tempdir_in(&self.dir).map_err(|e| io(&self.dir, e))?;
        rt.block_on(async {
            let mut editor = RepositoryEditor::from_repo(&root_path, current)
                .await
                .map_err(TufError::repository)?;
            editor
                .add_target(target_name.clone(), target)
                .map_err(TufError::repository)?
                .targets_version(nonzero(versions.0, "")?)
                .map_err(TufError::repository)?
                .targets_expires(timestamp(expires.targets)?)
                .map_err(TufError::repository)?
                .snapshot_version(nonzero(versions.1, "")?)
                .snapshot_expires(timestamp(expires.snapshot)?)
                .timestamp_version(nonzero(versions.2, "")?)
                .timestamp_expires(timestamp(expires.timestamp)?);
            let signed = editor
                .sign(&key_sources(keys))
                .await
                .map_err(TufError::repository)?;
            signed
                .copy_target(
                    artifact,
                    &self.targets_dir(),
                    PathExists::Skip,
                    Some(&target_name),
                )
                .await
                .map_err(TufError::repository)?;
            synced_target(&self.targets_dir(), name, &package.sha256.to_hex())?;
            spec_target_path(&self.targets_dir(), name, &package.sha256.to_hex())?;
            signed
                .write(staging.path())
                .await
                .map_err(TufError::repository)
        })?;
        self.install(staging.path(), versions.0, versions.1)
    }

    /// Re-signs only the timestamp: a new version naming the same snapshot, expiring at
    /// `expires` (Unix ms), signed by the timestamp keys among `keys`.
    pub fn refresh_timestamp(&self, keys: &[SigningKey], expires: UnixMs) -> Result<(), TufError> {
        let rt = runtime()?;
        let (_, current) = self.load(&rt)?;
        let old = &current.timestamp().signed;
        let mut ts = Timestamp::new(
            SPEC_VERSION.into(),
            nonzero(old.version.get() + 1, "")?,
            timestamp(expires)?,
        );
        ts.meta = old.meta.clone();
        let holder = KeyHolder::Root(current.root().signed.clone());
        let signed = rt
            .block_on(SignedRole::new(
                ts,
                &holder,
                &key_sources(keys),
                &SystemRandom::new(),
            ))
            .map_err(TufError::repository)?;
        let staging = tempfile::tempdir_in(&self.dir).map_err(|e| io(&self.dir, e))?;
        rt.block_on(signed.write(staging.path(), true))
            .map_err(TufError::repository)?;
        rename(
            &staging.path().join("timestamp.json"),
            &self.metadata_dir().join("timestamp.json"),
        )
    }

    /// Rotates the root: version N+1 with `root` as its root role (other roles unchanged),
    /// expiring at `expires`, signed by a threshold of the new root keys *and* a threshold of
    /// the old ones (all found among `keys`). Refused, with nothing written, otherwise.
    pub fn rotate_root(
        &self,
        root: &Role,
        keys: &[SigningKey],
        expires: UnixMs,
    ) -> Result<(), TufError> {
        let rt = runtime()?;
        let (_, current) = self.load(&rt)?;
        let old = current.root().signed.clone();
        let mut new = old.clone();
        new.version = nonzero(old.version.get() + 1, "")?;
        new.expires = timestamp(expires)?;
        set_role(&mut new, RoleType::Root, root)?;
        let used: Vec<_> = new
            .roles
            .values()
            .flat_map(|r| r.keyids.iter().cloned())
            .collect();
        new.keys.retain(|id, _| used.contains(id));
        let signed = rt.block_on(sign_root(&new, &[&new, &old], keys))?;
        let staging = tempfile::tempdir_in(&self.dir).map_err(|e| io(&self.dir, e))?;
        let name = format!("{}.root.json", new.version);
        std::fs::write(staging.path().join(&name), signed.buffer())
            .map_err(|e| io(staging.path(), e))?;
        std::fs::write(staging.path().join("root.json"), signed.buffer())
            .map_err(|e| io(staging.path(), e))?;
        rename(
            &staging.path().join(&name),
            &self.metadata_dir().join(&name),
        )?;
        rename(
            &staging.path().join("root.json"),
            &self.metadata_dir().join("root.json"),
        )
    }

    /// Moves freshly signed metadata into place, the timestamp last.
    fn install(
        &self,
        staged: &Path,
        targets_version: u64,
        snapshot_version: u64,
    ) -> Result<(), TufError> {
        let meta = self.metadata_dir();
        for name in [
            format!("{targets_version}.targets.json"),
            format!("{snapshot_version}.snapshot.json"),
            "timestamp.json".to_string(),
        ] {
            rename(&staged.join(&name), &meta.join(&name))?;
        }
        Ok(())
    }
}

/// Syncs the target tough copied (to `HASH.name` under consistent snapshots) and the
/// directory entries that lead to it: the metadata naming it is renamed into place after.
fn synced_target(targets: &Path, name: &str, sha256_hex: &str) -> Result<(), TufError> {
    let path = targets.join(format!("{sha256_hex}.{name}"));
    sync_tree(&path).map_err(|e| io(&path, e))?;
    // The directories from the file's up to `targets` (a name `dir/base` has one between).
    let mut dir = path.parent();
    while let Some(d) = dir {
        crate::durable::sync_dir(d).map_err(|e| io(d, e))?;
        if d == targets {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

/// Under consistent snapshots tough writes a target named `dir/name` at `HASH.dir/name`; the
/// specification (and python-tuf, go-tuf) fetch `dir/HASH.name`. This links (or copies) the
/// file there too, so clients of either kind find it.
fn spec_target_path(targets: &Path, name: &str, sha256_hex: &str) -> Result<(), TufError> {
    let Some((dir, base)) = name.rsplit_once('/') else {
        return Ok(());
    };
    let tough_path = targets.join(format!("{sha256_hex}.{name}"));
    let spec_dir = targets.join(dir);
    let spec_path = spec_dir.join(format!("{sha256_hex}.{base}"));
    if spec_path.exists() {
        return Ok(());
    }
    create_dir_all(&spec_dir).map_err(|e| io(&spec_dir, e))?;
    std::fs::hard_link(&tough_path, &spec_path)
        .or_else(|_| std::fs::copy(&tough_path, &spec_path).map(|_| ()))
        .map_err(|e| io(&spec_path, e))?;
    sync_tree(&spec_path).map_err(|e| io(&spec_path, e))?;
    sync_parent(&spec_path)?;
    sync_parent(&spec_dir)
}

/// Renames `from` over `to` durably: `from` (a file, or a directory and what it holds) is
/// synced before, the directory of `to` after, so what a publisher was told is written
/// survives a power cut (tough writes its files without syncing them).
fn rename(from: &Path, to: &Path) -> Result<(), TufError> {
    sync_tree(from).map_err(|e| io(from, e))?;
    std::fs::rename(from, to).map_err(|e| io(to, e))?;
    sync_parent(to)
}

/// Syncs a file, or a directory, its files and its subdirectories.
fn sync_tree(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            sync_tree(&entry?.path())?;
        }
    } else if !meta.is_file() {
        return Ok(());
    }
    std::fs::File::open(path)?.sync_all()
}

/// Syncs the directory holding `path` (its entry for `path`).
fn sync_parent(path: &Path) -> Result<(), TufError> {
    let dir = crate::durable::parent(path);
    crate::durable::sync_dir(dir).map_err(|e| io(dir, e))
}

fn parent_of(dir: &Path) -> Result<PathBuf, TufError> {
    let abs = std::path::absolute(dir).map_err(|e| io(dir, e))?;
    let parent = abs.parent().map(Path::to_path_buf).unwrap_or(abs);
    create_dir_all(&parent).map_err(|e| io(&parent, e))?;
    Ok(parent)
}

/// Sets a role's keys and threshold in a root, adding the keys.
fn set_role(root: &mut Root, kind: RoleType, role: &Role) -> Result<(), TufError> {
    if role.threshold == 0 || role.threshold > role.keys.len() as u64 {
        return Err(TufError::repository(format!(
            "{kind} role: a threshold of {} with {} key(s)",
            role.threshold,
            role.keys.len()
        )));
    }
    let mut keyids = Vec::new();
    for k in &role.keys {
        let key = tuf_key(k);
        let id = key.key_id().map_err(TufError::repository)?;
        root.keys.insert(id.clone(), key);
        if !keyids.contains(&id) {
            keyids.push(id);
        }
    }
    root.roles.insert(
        kind,
        RoleKeys {
            keyids,
            threshold: nonzero(role.threshold, "a threshold")?,
            _extra: HashMap::new(),
        },
    );
    Ok(())
}

/// Signs a root with the keys each of `holders` trusts for the root role, and checks that every
/// holder's threshold is met (the new root's own, and for a rotation the old root's).
async fn sign_root(
    root: &Root,
    holders: &[&Root],
    keys: &[SigningKey],
) -> Result<SignedRole<Root>, TufError> {
    let sources = key_sources(keys);
    let rng = SystemRandom::new();
    let mut signed: Option<SignedRole<Root>> = None;
    let mut signatures = Vec::new();
    for holder in holders {
        let s = SignedRole::new(
            root.clone(),
            &KeyHolder::Root((*holder).clone()),
            &sources,
            &rng,
        )
        .await
        .map_err(TufError::repository)?;
        let role = holder
            .roles
            .get(&RoleType::Root)
            .ok_or_else(|| TufError::repository("no root role"))?;
        let valid = s
            .signed()
            .signatures
            .iter()
            .filter(|sig| role.keyids.contains(&sig.keyid))
            .count() as u64;
        if valid < role.threshold.get() {
            return Err(TufError::repository(format!(
                "root version {}: {valid} of the {} signature(s) needed from the keys of root version {}",
                root.version, role.threshold, holder.version
            )));
        }
        signatures.extend(s.signed().signatures.clone());
        signed.get_or_insert(s);
    }
    let first = signed.ok_or_else(|| TufError::repository("no root to sign"))?;
    first
        .add_old_signatures(signatures)
        .map_err(TufError::repository)
}

fn hash_file(path: &Path) -> Result<ota_core::chunk::Digests, TufError> {
    let mut f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut h = ChunkHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| io(path, e))?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

/// The TUF key ids of public keys, for messages and the Trust Center.
pub fn keyids(keys: &[PublicKey]) -> Result<Vec<String>, TufError> {
    keys.iter().map(tuf_keyid).collect()
}
