//! `ota tuf`: a standard TUF client command line, so any TUF test harness can drive it, the
//! Trust Center, and the publisher's repository commands.
//!
//! The client contract:
//! - `ota tuf --metadata-dir DIR init TRUSTED_ROOT_FILE`: copy the trusted root into DIR, with
//!   no network request.
//! - `ota tuf --metadata-url URL --metadata-dir DIR refresh`: update the top-level metadata in DIR.
//! - `ota tuf --metadata-url URL --metadata-dir DIR --target-name NAME [--target-name NAME2 ...]
//!   --target-dir TDIR --target-base-url TURL download`: refresh, then download each target in
//!   order into TDIR under a stable file name (the name percent-encoded, every byte but
//!   `A-Za-z0-9-._~`), stopping at the first failure.
//!
//! Exit status 0 on success, 1 on any failure. DIR holds the trusted metadata, each role in a
//! file named after it, quoted as in a URL (`root.json`, `timestamp.json`, `snapshot.json`,
//! `targets.json`, and each delegated role a target search visited), written as soon as the
//! role verified. A target already in TDIR with the right length and hashes is not downloaded
//! again.

use std::path::{Path, PathBuf};

use ota_core::UnixMs;
use ota_host::tuf::client::{Client, STATE_FILES, TrustCenter, Trusted};
use ota_host::tuf::repo::{Expiries, Repo, Role, Roles};
use ota_host::tuf::{TufError, TufLimits};
use serde_json::json;

use crate::input;
use crate::keys;
use crate::out::{self, CliError, Outcome};

/// `ota tuf`. The client's flags may come before the subcommand, as the standard client
/// contract above has them, or after it; each subcommand's help shows only its own.
#[derive(clap::Args)]
pub struct TufArgs {
    #[command(flatten)]
    dir: Dir,
    #[command(flatten)]
    remote: Remote,
    #[command(flatten)]
    targets: Targets,
    #[command(subcommand)]
    command: TufCommand,
}

/// The trusted metadata's directory.
#[derive(clap::Args, Clone, Default)]
struct Dir {
    /// The directory holding the trusted metadata.
    #[arg(long)]
    metadata_dir: Option<PathBuf>,
}

/// Where the repository is, and the time to judge it by.
#[derive(clap::Args, Clone, Default)]
struct Remote {
    /// Where the repository's metadata is (`http(s)://`, `file://`, or a directory).
    #[arg(long)]
    metadata_url: Option<String>,
    #[command(flatten)]
    clock: Clock,
}

/// The time to judge by.
#[derive(clap::Args, Clone, Default)]
struct Clock {
    /// Judge expiries at this time (RFC 3339, e.g. `2026-04-15T07:32:37Z`) instead of the
    /// system clock; new metadata expires relative to it too.
    #[arg(long)]
    now: Option<jiff::Timestamp>,
}

/// The targets to download, and where.
#[derive(clap::Args, Clone, Default)]
struct Targets {
    /// A target to download (repeat, in order).
    #[arg(long = "target-name")]
    target_names: Vec<String>,
    /// Where downloaded targets go.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Where the repository's targets are (default: --metadata-url).
    #[arg(long)]
    target_base_url: Option<String>,
}

#[derive(clap::Subcommand)]
enum TufCommand {
    /// Copy the trusted root into the metadata directory (no network).
    #[command(after_help = "Examples:\n  ota tuf init --metadata-dir state root.json")]
    Init {
        #[command(flatten)]
        dir: Dir,
        /// The trusted root.json, shipped out of band.
        trusted_root: PathBuf,
    },
    /// Update the top-level metadata in the metadata directory.
    #[command(
        after_help = "Examples:\n  ota tuf refresh --metadata-dir state --metadata-url https://tuf.example.com/metadata"
    )]
    Refresh {
        #[command(flatten)]
        dir: Dir,
        #[command(flatten)]
        remote: Remote,
    },
    /// Refresh, then download each --target-name into --target-dir.
    #[command(
        after_help = "Examples:\n  ota tuf download --metadata-dir state --metadata-url https://tuf.example.com/metadata \\\n      --target-base-url https://tuf.example.com/targets --target-name fw/2.0.0.enc --target-dir out"
    )]
    Download {
        #[command(flatten)]
        dir: Dir,
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        targets: Targets,
    },
    /// The Trust Center: roles, keys, thresholds, versions, expiries, targets, and who signed
    /// what. Offline from the metadata directory, or refreshed first with --metadata-url.
    #[command(after_help = "Examples:\n  ota tuf inspect --metadata-dir state --json")]
    Inspect {
        #[command(flatten)]
        dir: Dir,
        #[command(flatten)]
        remote: Remote,
    },
    /// Create a repository: --key signs every role unless a role's own keys are given.
    #[command(
        after_help = "Examples:\n  ota tuf create-repo --repo repo/ --key keys/private.pem\n  ota tuf create-repo --repo repo/ --root-key r1.pem --root-key r2.pem --root-threshold 2 --key online.pem"
    )]
    CreateRepo(CreateRepoArgs),
    /// Add a packed package (its envelope and artifact) to a repository as a target.
    #[command(
        after_help = "Examples:\n  ota tuf add-target --repo repo/ --package out/package.json --artifact out/prod/fw-arm64-1.4.0.enc --key keys/private.pem"
    )]
    AddTarget(AddTargetArgs),
    /// Re-sign only the timestamp.
    #[command(
        after_help = "Examples:\n  ota tuf resign-timestamp --repo repo/ --key keys/timestamp.pem --days 1"
    )]
    ResignTimestamp(ResignArgs),
    /// Rotate the root keys: the new root is cross-signed by the old threshold.
    #[command(
        after_help = "Examples:\n  ota tuf rotate-root --repo repo/ --new-root-key new/public.pem --key old/private.pem --key new/private.pem"
    )]
    RotateRoot(RotateArgs),
}

/// The client's flags as given, before the subcommand or after it (after wins).
#[derive(Default)]
struct Flags {
    metadata_dir: Option<PathBuf>,
    metadata_url: Option<String>,
    now: Option<jiff::Timestamp>,
    target_names: Vec<String>,
    target_dir: Option<PathBuf>,
    target_base_url: Option<String>,
}

impl Flags {
    /// The flags given before the subcommand `name`, which takes `dir`, `remote` and
    /// `targets` (each `None` when it does not take them), merged with those given after it.
    fn merge(
        top: &TufArgs,
        name: &str,
        dir: Option<&Dir>,
        remote: Option<&Remote>,
        targets: Option<&Targets>,
    ) -> Result<Flags, CliError> {
        let given_top = [
            (
                "metadata-dir",
                top.dir.metadata_dir.is_some(),
                dir.is_some(),
            ),
            (
                "metadata-url",
                top.remote.metadata_url.is_some(),
                remote.is_some(),
            ),
            // Every subcommand but init judges or signs at a time.
            ("now", top.remote.clock.now.is_some(), name != "init"),
            (
                "target-name",
                !top.targets.target_names.is_empty(),
                targets.is_some(),
            ),
            (
                "target-dir",
                top.targets.target_dir.is_some(),
                targets.is_some(),
            ),
            (
                "target-base-url",
                top.targets.target_base_url.is_some(),
                targets.is_some(),
            ),
        ];
        if let Some((flag, ..)) = given_top.iter().find(|(_, given, takes)| *given && !takes) {
            return Err(CliError::usage(format!(
                "--{flag} is not a flag of `ota tuf {name}`"
            )));
        }
        let or = |a: &Option<String>, b: Option<&Option<String>>| {
            b.and_then(|b| b.clone()).or_else(|| a.clone())
        };
        let sub_targets = targets.cloned().unwrap_or_default();
        Ok(Flags {
            metadata_dir: dir
                .and_then(|d| d.metadata_dir.clone())
                .or_else(|| top.dir.metadata_dir.clone()),
            metadata_url: or(&top.remote.metadata_url, remote.map(|r| &r.metadata_url)),
            now: remote.and_then(|r| r.clock.now).or(top.remote.clock.now),
            target_names: if sub_targets.target_names.is_empty() {
                top.targets.target_names.clone()
            } else {
                sub_targets.target_names
            },
            target_dir: sub_targets
                .target_dir
                .or_else(|| top.targets.target_dir.clone()),
            target_base_url: or(
                &top.targets.target_base_url,
                targets.map(|t| &t.target_base_url),
            ),
        })
    }

    /// The time to judge by, in milliseconds since the Unix epoch.
    fn now(&self) -> UnixMs {
        clock(self.now)
    }
}

/// `ota tuf create-repo`.
#[derive(clap::Args)]
pub struct CreateRepoArgs {
    #[command(flatten)]
    clock: Clock,
    /// The repository directory (`metadata/` and `targets/` are made in it).
    #[arg(long)]
    repo: PathBuf,
    /// A private key (PKCS#8) for every role without its own.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Root keys (repeat).
    #[arg(long = "root-key")]
    root_keys: Vec<PathBuf>,
    /// Targets keys (repeat).
    #[arg(long = "targets-key")]
    targets_keys: Vec<PathBuf>,
    /// Snapshot keys (repeat).
    #[arg(long = "snapshot-key")]
    snapshot_keys: Vec<PathBuf>,
    /// Timestamp keys (repeat).
    #[arg(long = "timestamp-key")]
    timestamp_keys: Vec<PathBuf>,
    /// The root threshold (default: all root keys).
    #[arg(long)]
    root_threshold: Option<u64>,
    /// The targets threshold (default: all targets keys).
    #[arg(long)]
    targets_threshold: Option<u64>,
    /// The snapshot threshold (default: all snapshot keys).
    #[arg(long)]
    snapshot_threshold: Option<u64>,
    /// The timestamp threshold (default: all timestamp keys).
    #[arg(long)]
    timestamp_threshold: Option<u64>,
}

/// `ota tuf add-target`.
#[derive(clap::Args)]
pub struct AddTargetArgs {
    #[command(flatten)]
    clock: Clock,
    /// The repository directory.
    #[arg(long)]
    repo: PathBuf,
    /// The package: the envelope `ota pack` wrote (verified against the targets keys).
    #[arg(long)]
    package: PathBuf,
    /// The sealed artifact.
    #[arg(long)]
    artifact: PathBuf,
    /// The target's name (default: the artifact's file name; `ota pack --tuf-repo` uses the
    /// object key).
    #[arg(long)]
    name: Option<String>,
    /// Private keys for targets, snapshot and timestamp (repeat).
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
}

/// `ota tuf resign-timestamp`.
#[derive(clap::Args)]
pub struct ResignArgs {
    #[command(flatten)]
    clock: Clock,
    /// The repository directory.
    #[arg(long)]
    repo: PathBuf,
    /// Timestamp keys (repeat).
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
    /// Days until it expires.
    #[arg(long, default_value_t = 1)]
    days: u64,
}

/// `ota tuf rotate-root`.
#[derive(clap::Args)]
pub struct RotateArgs {
    #[command(flatten)]
    clock: Clock,
    /// The repository directory.
    #[arg(long)]
    repo: PathBuf,
    /// The new root's public keys (PEM files or hex; repeat).
    #[arg(long = "new-root-key", required = true)]
    new_root_keys: Vec<String>,
    /// The new root threshold (default: all new keys).
    #[arg(long)]
    threshold: Option<u64>,
    /// Private keys: enough old root keys and new root keys (repeat).
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
    /// Days until the new root expires.
    #[arg(long, default_value_t = 365)]
    days: u64,
}

const DAY: u64 = 86_400_000;

/// `now`, or the system clock's, in milliseconds since the Unix epoch.
fn clock(now: Option<jiff::Timestamp>) -> UnixMs {
    millis(now.unwrap_or_else(jiff::Timestamp::now))
}

/// `t` as an instant (the epoch for anything before it).
pub fn millis(t: jiff::Timestamp) -> UnixMs {
    UnixMs(u64::try_from(t.as_millisecond()).unwrap_or(0))
}

fn tuf_err(e: TufError) -> CliError {
    CliError::failure(Some(e.status()), e)
}

fn need<'a, T>(v: &'a Option<T>, flag: &str) -> Result<&'a T, CliError> {
    v.as_ref()
        .ok_or_else(|| CliError::usage(format!("give --{flag}")))
}

/// A target's file name in the target directory: percent-encoded, so it stays in the directory.
pub fn file_name(target: &str) -> String {
    ota_core::tuf::paths::quote(target)
}

/// Runs `ota tuf`.
pub fn tuf(a: &TufArgs) -> Result<Outcome, CliError> {
    let (name, dir, remote, targets) = match &a.command {
        TufCommand::Init { dir, .. } => ("init", Some(dir), None, None),
        TufCommand::Refresh { dir, remote } => ("refresh", Some(dir), Some(remote), None),
        TufCommand::Download {
            dir,
            remote,
            targets,
        } => ("download", Some(dir), Some(remote), Some(targets)),
        TufCommand::Inspect { dir, remote } => ("inspect", Some(dir), Some(remote), None),
        TufCommand::CreateRepo(_) => ("create-repo", None, None, None),
        TufCommand::AddTarget(_) => ("add-target", None, None, None),
        TufCommand::ResignTimestamp(_) => ("resign-timestamp", None, None, None),
        TufCommand::RotateRoot(_) => ("rotate-root", None, None, None),
    };
    let flags = &Flags::merge(a, name, dir, remote, targets)?;
    match &a.command {
        TufCommand::Init { trusted_root, .. } => init(flags, trusted_root),
        TufCommand::Refresh { .. } => {
            let t = refresh(flags)?;
            let v = t.versions();
            Ok(Outcome::ok(
                format!(
                    "refreshed: root v{}, timestamp v{}, snapshot v{}, targets v{}",
                    v[0], v[1], v[2], v[3]
                ),
                json!({"ok": true, "versions": {"root": v[0], "timestamp": v[1], "snapshot": v[2], "targets": v[3]}}),
            ))
        }
        TufCommand::Download { .. } => download(flags),
        TufCommand::Inspect { .. } => inspect(flags),
        TufCommand::CreateRepo(c) => create_repo(c, clock(c.clock.now.or(a.remote.clock.now))),
        TufCommand::AddTarget(c) => add_target(c, clock(c.clock.now.or(a.remote.clock.now))),
        TufCommand::ResignTimestamp(c) => {
            let now = clock(c.clock.now.or(a.remote.clock.now));
            Repo::open(&c.repo)
                .refresh_timestamp(&signing_keys(&c.keys)?, now + c.days * DAY)
                .map_err(tuf_err)?;
            Ok(Outcome::ok(
                format!("{}: timestamp re-signed", c.repo.display()),
                json!({"ok": true}),
            ))
        }
        TufCommand::RotateRoot(c) => {
            let now = clock(c.clock.now.or(a.remote.clock.now));
            let public: Vec<_> = c
                .new_root_keys
                .iter()
                .map(|k| {
                    let text = if Path::new(k).is_file() {
                        out::read_text(Path::new(k), out::MAX_KEY_FILE_BYTES)
                    } else {
                        Ok(k.clone())
                    };
                    text.and_then(|t| {
                        ota_core::sign::PublicKey::parse(&t)
                            .map_err(|e| CliError::usage(format!("{k}: {e}")))
                    })
                })
                .collect::<Result<_, _>>()?;
            let role = Role {
                threshold: c.threshold.unwrap_or(public.len() as u64),
                keys: public,
            };
            Repo::open(&c.repo)
                .rotate_root(&role, &signing_keys(&c.keys)?, now + c.days * DAY)
                .map_err(tuf_err)?;
            Ok(Outcome::ok(
                format!("{}: root rotated", c.repo.display()),
                json!({"ok": true}),
            ))
        }
    }
}

fn init(a: &Flags, trusted_root: &Path) -> Result<Outcome, CliError> {
    let dir = need(&a.metadata_dir, "metadata-dir")?;
    let root = out::read(
        trusted_root,
        ota_core::Limits::DEFAULT.max_tuf_metadata_bytes,
    )?;
    serde_json::from_slice::<serde_json::Value>(&root)
        .ok()
        .filter(|v| v.pointer("/signed/_type").and_then(|t| t.as_str()) == Some("root"))
        .ok_or_else(|| {
            CliError::failure(
                Some(ota_core::Status::TufMetadataInvalid),
                format!(
                    "{}: not a TUF root (signed._type is not \"root\")",
                    trusted_root.display()
                ),
            )
        })?;
    ota_host::durable::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
    for name in STATE_FILES.iter().skip(1) {
        let _ = std::fs::remove_file(dir.join(name));
    }
    out::write_atomic(&dir.join("root.json"), &root, false)?;
    Ok(Outcome::ok(
        format!("{}: trusting {}", dir.display(), trusted_root.display()),
        json!({"ok": true, "metadata_dir": dir}),
    ))
}

fn client(a: &Flags) -> Result<Client, CliError> {
    let dir = need(&a.metadata_dir, "metadata-dir")?;
    let url = need(&a.metadata_url, "metadata-url")?;
    let root_path = dir.join("root.json");
    let root = out::read(&root_path, ota_core::Limits::DEFAULT.max_tuf_metadata_bytes)?;
    let targets = a.target_base_url.clone().unwrap_or_else(|| url.clone());
    Ok(Client::new(root, url, &targets)
        .map_err(tuf_err)?
        .state_dir(dir))
}

fn refresh(a: &Flags) -> Result<Trusted, CliError> {
    client(a)?.refresh(a.now()).map_err(tuf_err)
}

fn download(a: &Flags) -> Result<Outcome, CliError> {
    let dir = need(&a.target_dir, "target-dir")?;
    need(&a.target_base_url, "target-base-url")?;
    if a.target_names.is_empty() {
        return Err(CliError::usage("give at least one --target-name"));
    }
    let t = refresh(a)?;
    ota_host::durable::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
    let mut done = Vec::new();
    for name in &a.target_names {
        let path = dir.join(file_name(name));
        let found = t.find(name).map_err(tuf_err)?;
        // The artifact cache: a target already there with the right length and hashes is not
        // downloaded again.
        if t.is_cached(&found, &path) {
            done.push(
                json!({"name": name, "file": path, "length": found.target.length, "cached": true}),
            );
            continue;
        }
        // Replaced whole and durably, as the C ABI's download is.
        let mut n = 0;
        ota_host::durable::replace_with(
            &path,
            false,
            |f| {
                n = t.download_found(&found, f).map_err(tuf_err)?;
                Ok(())
            },
            |step, e| CliError::io(&path, format!("{step} it: {e}")),
        )?;
        done.push(json!({"name": name, "file": path, "length": n, "cached": false}));
    }
    let text = done
        .iter()
        .map(|d| {
            format!(
                "{} -> {} ({} bytes)",
                d["name"].as_str().unwrap_or(""),
                d["file"].as_str().unwrap_or(""),
                d["length"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Outcome::ok(text, json!({"ok": true, "targets": done})))
}

fn inspect(a: &Flags) -> Result<Outcome, CliError> {
    let dir = need(&a.metadata_dir, "metadata-dir")?;
    let t = match &a.metadata_url {
        Some(_) => refresh(a)?,
        None => Client::offline(dir, a.now(), TufLimits::default()).map_err(tuf_err)?,
    };
    let tc = t.trust_center();
    Ok(Outcome::ok(
        describe(&tc),
        serde_json::to_value(&tc).unwrap_or_default(),
    ))
}

fn describe(tc: &TrustCenter) -> String {
    let short = |id: &str| id.chars().take(16).collect::<String>();
    let mut s =
        String::from("role       version  threshold  expires                 keys (signed)\n");
    for r in &tc.roles {
        let keys: Vec<String> = r
            .keyids
            .iter()
            .map(|k| {
                format!(
                    "{}{}",
                    short(k),
                    if r.signed_by.contains(k) { " ✓" } else { "" }
                )
            })
            .collect();
        s.push_str(&format!(
            "{:<10} {:>7}  {:>9}  {:<22}  {}\n",
            r.role,
            r.version,
            r.threshold,
            r.expires,
            keys.join(", ")
        ));
    }
    s.push_str(&format!("\n{} target(s)\n", tc.targets.len()));
    for t in &tc.targets {
        s.push_str(&format!(
            "  {}  {} bytes  sha256 {}{}\n",
            t.name,
            t.length,
            short(&t.sha256),
            t.package
                .as_ref()
                .map(|p| format!("  {p} ({})", t.package_id.as_deref().unwrap_or("?")))
                .unwrap_or_default()
        ));
    }
    s
}

fn signing_keys(paths: &[PathBuf]) -> Result<Vec<ota_core::sign::SigningKey>, CliError> {
    paths.iter().map(|p| keys::signing_key(p)).collect()
}

fn create_repo(c: &CreateRepoArgs, now: UnixMs) -> Result<Outcome, CliError> {
    let default = c.key.as_ref().map(|k| vec![k.clone()]).unwrap_or_default();
    let pick =
        |own: &Vec<PathBuf>, role: &str| -> Result<Vec<ota_core::sign::SigningKey>, CliError> {
            let paths = if own.is_empty() { &default } else { own };
            if paths.is_empty() {
                return Err(CliError::usage(format!("give --{role}-key or --key")));
            }
            signing_keys(paths)
        };
    let (root, targets, snapshot, timestamp) = (
        pick(&c.root_keys, "root")?,
        pick(&c.targets_keys, "targets")?,
        pick(&c.snapshot_keys, "snapshot")?,
        pick(&c.timestamp_keys, "timestamp")?,
    );
    let role = |ks: &[ota_core::sign::SigningKey], threshold: Option<u64>| Role {
        keys: ks.iter().map(|k| k.public_key()).collect(),
        threshold: threshold.unwrap_or(ks.len() as u64),
    };
    let roles = Roles {
        root: role(&root, c.root_threshold),
        targets: role(&targets, c.targets_threshold),
        snapshot: role(&snapshot, c.snapshot_threshold),
        timestamp: role(&timestamp, c.timestamp_threshold),
    };
    let all: Vec<_> = [root, targets, snapshot, timestamp].concat();
    let repo = Repo::create(&c.repo, &roles, &all, &Expiries::from(now)).map_err(tuf_err)?;
    let root_file = repo.root_path().map_err(tuf_err)?;
    Ok(Outcome::ok(
        format!(
            "created {} (metadata/, targets/); give clients {}",
            c.repo.display(),
            root_file.display()
        ),
        json!({"ok": true, "repo": c.repo, "root": root_file}),
    ))
}

fn add_target(c: &AddTargetArgs, now: UnixMs) -> Result<Outcome, CliError> {
    let keys = signing_keys(&c.keys)?;
    let trusted: Vec<String> = keys.iter().map(|k| k.public_key().to_hex()).collect();
    let verified = input::verified(&c.package, &trusted, 1)?;
    let name = match &c.name {
        Some(n) => n.clone(),
        None => c
            .artifact
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| CliError::usage("give --name"))?,
    };
    add(&c.repo, &name, &c.artifact, verified.package(), &keys, now)?;
    Ok(Outcome::ok(
        format!(
            "{}: target {name} added ({})",
            c.repo.display(),
            verified.id()
        ),
        json!({"ok": true, "target": name, "package_id": verified.id()}),
    ))
}

/// Adds a package to a repository as a target (for `ota pack --tuf-repo` too).
pub fn add(
    repo: &Path,
    name: &str,
    artifact: &Path,
    package: &ota_core::Package,
    keys: &[ota_core::sign::SigningKey],
    now: UnixMs,
) -> Result<(), CliError> {
    Repo::open(repo)
        .add_package(name, artifact, package, keys, &Expiries::from(now))
        .map_err(tuf_err)
}
