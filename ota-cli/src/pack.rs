//! `ota pack`: seal a file, sign its package statement, and write what publish_artifact.py's publish
//! script uploads and registers.
//!
//! Output in `--out DIR`:
//! - `DIR/{dev_stage}/{resource_name}-{architecture}-{version}.enc`: the sealed artifact
//!   (gzip, then AES-256-CBC with the IV prefixed), at publish_artifact.py's object key;
//! - `DIR/package.json`: the DSSE envelope of the package statement (the model manifest, the
//!   artifact's sha256, size and 64 KiB chunk table, and the seal);
//! - `DIR/registration.json`: publish_artifact.py's registration record (it holds the AES key: owner-only).
//!
//! Nothing is left behind on failure, and nothing old is lost: each file is written to a
//! temporary name, and all are renamed into place together, the artifact first, when complete
//! (see [`crate::outputs`]). New directories are owner-only.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use ota_core::name::Name;
use ota_core::registration::{self, Registration, Store};
use ota_core::seal::{SealError, SealKey, Sealer};
use ota_core::sign;
use ota_core::{ModelManifest, Package};
use serde_json::json;

use crate::bundle;
use crate::doc;
use crate::keys;
use crate::out::{self, CliError, Outcome};
use crate::outputs::Outputs;
use crate::progress;
use crate::signals::Stop;

const EXAMPLES: &str = "Examples:
  ota pack --file model/ --manifest model.yaml --key keys/private.pem \\
    --resource-name yolo --dev-stage prod --architecture arm64 --version 2026-04-15 \\
    --cdn-base https://cdn.example.com --out out/
  ota pack --type fw --file image.tar --package-version 1.4.0 --device-type gateway \\
    --min-version 1.2.0 --key keys/private.pem --resource-name gw-fw --dev-stage prod \\
    --architecture arm64 --version 1.4.0 --bucket fw --out out/";

/// What a package carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// An ML model, described by its manifest (--manifest).
    #[default]
    Model,
    /// Firmware (no manifest: --package-version).
    Fw,
    /// Software (no manifest: --package-version).
    Sw,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::Fw => "fw",
            Kind::Sw => "sw",
        }
    }
}

/// `ota pack`.
#[derive(clap::Args, Default)]
#[command(after_help = EXAMPLES)]
pub struct PackArgs {
    /// The file to ship (a model engine, a firmware image, a tarball), or a directory (a
    /// multi-file model), packed as a reproducible tar.
    #[arg(long)]
    pub(crate) file: PathBuf,
    /// What the package carries.
    #[arg(long = "type", value_enum, default_value_t = Kind::Model)]
    pub(crate) kind: Kind,
    /// The model manifest (JSON or YAML), required for a model: --file must be exactly its
    /// files[] (path, size, sha256); the package takes its name and version from it.
    #[arg(long)]
    pub(crate) manifest: Option<PathBuf>,
    /// The package's name, for fw and sw (default: --resource-name).
    #[arg(long, conflicts_with = "manifest")]
    pub(crate) name: Option<String>,
    /// The package's semantic version, for fw and sw (`1.4.0`).
    #[arg(long, conflicts_with = "manifest")]
    pub(crate) package_version: Option<String>,
    /// The release channel, for fw and sw (default `stable`; a model's is its manifest's).
    #[arg(long, conflicts_with = "manifest")]
    pub(crate) channel: Option<String>,
    /// The oldest installed version this package upgrades from.
    #[arg(long)]
    pub(crate) min_version: Option<String>,
    /// The newest installed version this package upgrades from.
    #[arg(long)]
    pub(crate) max_version: Option<String>,
    /// The signing key: a PKCS#8 file (PEM or DER, as `ota keygen` writes), or a PKCS#11 URI
    /// (`pkcs11:token=T;object=LABEL?module-path=...&pin-value=...`).
    #[arg(long)]
    pub(crate) key: PathBuf,
    /// publish_artifact.py's resource name (`my_model`).
    #[arg(long)]
    pub(crate) resource_name: String,
    /// publish_artifact.py's stage (`dev`, `prod`).
    #[arg(long)]
    pub(crate) dev_stage: String,
    /// publish_artifact.py's architecture (`arm64`).
    #[arg(long)]
    pub(crate) architecture: String,
    /// publish_artifact.py's free-form version (`2026-04-15`); the package's semantic version is the
    /// manifest's.
    #[arg(long)]
    pub(crate) version: String,
    /// The output directory.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Derive the IV from the key and the plaintext, so the same inputs give the same bytes
    /// (needs the key: --seal-key, --seal-key-file or OTA_SEAL_KEY).
    #[arg(long)]
    pub(crate) reproducible: bool,
    /// Replace a `registration.json` in `--out` that holds the key of another package whose
    /// artifact is still there (its only copy, for a random key).
    #[arg(long)]
    pub(crate) force: bool,
    /// The AES-256 key (64 hex characters, or a file holding them); random when no key is
    /// given. Prefer --seal-key-file or OTA_SEAL_KEY: a command line is visible to other
    /// users.
    #[arg(long, conflicts_with = "seal_key_file")]
    pub(crate) seal_key: Option<String>,
    /// A file holding the AES-256 key (64 hex characters).
    #[arg(long, value_name = "PATH")]
    pub(crate) seal_key_file: Option<PathBuf>,
    /// Device types the package may go to (repeat; default: any).
    #[arg(long = "device-type")]
    pub(crate) device_types: Vec<String>,
    /// Hardware profiles the package may go to (repeat; default: the manifest decides).
    #[arg(long = "hardware-profile")]
    pub(crate) hardware_profiles: Vec<String>,
    /// A change summary.
    #[arg(long, default_value = "")]
    pub(crate) release_notes: String,
    /// Sign it as a rollback of this version: a device running it accepts the package
    /// although it is older than what it ran (needs --rollback-expires).
    #[arg(long, requires = "rollback_expires")]
    pub(crate) rollback_from: Option<String>,
    /// When the rollback stops being valid (RFC 3339, `2027-01-31T00:00:00Z`).
    #[arg(long, requires = "rollback_from")]
    pub(crate) rollback_expires: Option<String>,
    /// A health probe to sign into the package (JSON or YAML, `{"kind": "exec", "path": ...}`):
    /// devices run it in preference to the assignment's, if their allowlist lets them.
    #[arg(long)]
    pub(crate) probe: Option<PathBuf>,
    /// The S3-compatible endpoint, for the artifact's URL (as in publish_artifact.py).
    #[arg(long, env = "S3_ENDPOINT")]
    pub(crate) s3_endpoint: Option<String>,
    /// The bucket, for the artifact's URL (as in publish_artifact.py).
    #[arg(long, env = "S3_BUCKET")]
    pub(crate) bucket: Option<String>,
    /// The public CDN base, for the artifact's URL (as in publish_artifact.py).
    #[arg(long, env = "CDN_PUBLIC_BASE_URL")]
    pub(crate) cdn_base: Option<String>,
    /// Also add the package to this TUF repository (`ota tuf create-repo`), as target
    /// `{dev_stage}/{resource_name}-{architecture}-{version}.enc`.
    #[arg(long)]
    pub(crate) tuf_repo: Option<PathBuf>,
    /// Keys for the TUF targets, snapshot and timestamp roles (repeat; default --key).
    #[arg(long = "tuf-key")]
    pub(crate) tuf_keys: Vec<PathBuf>,
}

fn name(value: &str, flag: &str) -> Result<Name, CliError> {
    value
        .parse()
        .map_err(|e| CliError::usage(format!("--{flag}: {e}")))
}

/// The signed rollback of `--rollback-from` and `--rollback-expires`, if given.
fn rollback(a: &PackArgs) -> Result<Option<serde_json::Value>, CliError> {
    let (Some(from), Some(expires)) = (&a.rollback_from, &a.rollback_expires) else {
        return Ok(None);
    };
    let from: ota_core::Version = from
        .parse()
        .map_err(|e| CliError::usage(format!("--rollback-from: {e}")))?;
    let expires: ota_core::time::Timestamp = expires
        .parse()
        .map_err(|e| CliError::usage(format!("--rollback-expires: {e}")))?;
    Ok(Some(json!({"from": from, "expires": expires})))
}

/// The health probe in `path`, checked.
fn probe(path: &Path) -> Result<serde_json::Value, CliError> {
    let d = doc::load(path)?;
    let spec: ota_core::probe::ProbeSpec = serde_json::from_slice(&d.bytes)
        .map_err(|e| CliError::usage(format!("--probe {}: {e}", path.display())))?;
    spec.check_form()
        .map_err(|e| CliError::usage(format!("--probe {}: {e}", path.display())))?;
    Ok(json!(spec))
}

/// What `pack` wrote.
pub struct Packed {
    /// The artifact's path.
    pub artifact: PathBuf,
    /// The envelope's path.
    pub envelope: PathBuf,
    /// The registration's path.
    pub registration: PathBuf,
    /// The verified package (checked against the signer's own key).
    pub package: sign::VerifiedPackage,
    /// The registration record.
    pub record: Registration,
    /// What the publisher should know (a local artifact URI), also printed on stderr.
    pub warnings: Vec<String>,
}

/// Seals, signs and writes the three files.
pub fn pack(a: &PackArgs, json: bool) -> Result<Outcome, CliError> {
    // SIGINT and SIGTERM stop it through its failure path: the temporary files (a model's
    // plaintext tar among them) and the directories it made are removed.
    let stop = Stop::on_signals()?;
    let p = run_until(a, json, Some(&stop))?;
    let pkg = p.package.package();
    let text = format!(
        "packed {} {} as {}\n  artifact      {} ({}, {} chunks, sha256 {})\n  package       {} (signed by {})\n  registration  {}",
        pkg.name,
        pkg.version,
        p.package.id(),
        p.artifact.display(),
        out::bytes(pkg.size_bytes),
        p.package.chunks().len(),
        pkg.sha256,
        p.envelope.display(),
        p.package
            .signed_by()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        p.registration.display(),
    );
    Ok(Outcome::ok(
        text,
        json!({
            "ok": true,
            "package_id": p.package.id(),
            "name": pkg.name,
            "version": pkg.version.to_string(),
            "artifact": p.artifact,
            "object_key": p.record.object_key(),
            "package": p.envelope,
            "registration": p.registration,
            "sha256": pkg.sha256,
            "size_bytes": pkg.size_bytes,
            "chunks": p.package.chunks().len(),
            "cdn_url": p.record.cdn_url,
            "signed_by": p.package.signed_by(),
            "tuf_target": a.tuf_repo.as_ref().map(|_| p.record.object_key()),
            "type": a.kind.as_str(),
            "warnings": p.warnings,
        }),
    ))
}

/// The work of `pack`, for the demo too.
pub fn run(a: &PackArgs, json: bool) -> Result<Packed, CliError> {
    run_until(a, json, None)
}

/// [`run`], given up at its next read once `stop` has heard a signal.
fn run_until(a: &PackArgs, json: bool, stop: Option<&Stop>) -> Result<Packed, CliError> {
    let interrupted = || {
        stop.is_some_and(Stop::stopped)
            .then(|| CliError::usage("interrupted by a signal"))
    };
    let (resource, stage, arch, version) = (
        name(&a.resource_name, "resource-name")?,
        name(&a.dev_stage, "dev-stage")?,
        name(&a.architecture, "architecture")?,
        name(&a.version, "version")?,
    );
    if a.reproducible && !keys::seal_key_given(a.seal_key.as_deref(), a.seal_key_file.as_deref()) {
        return Err(CliError::usage(format!(
            "--reproducible needs the key: --seal-key, --seal-key-file or {}",
            keys::SEAL_KEY_ENV
        )));
    }
    let manifest = match (a.kind, &a.manifest) {
        (Kind::Model, Some(path)) => {
            let d = doc::load(path)?;
            let m = ModelManifest::from_json(&d.bytes).map_err(|e| d.error(path, &e))?;
            let value: serde_json::Value = serde_json::from_slice(&d.bytes)
                .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
            Some((m, value))
        }
        (Kind::Model, None) => {
            return Err(CliError::usage(
                "--manifest: a model package needs its manifest (or give --type fw or --type sw)",
            ));
        }
        (k, Some(_)) => {
            return Err(CliError::usage(format!(
                "--manifest: a {} package has no model manifest (give --package-version)",
                k.as_str()
            )));
        }
        (_, None) => None,
    };
    let (package_name, package_version, channel) = match &manifest {
        Some((m, _)) => (
            m.name.to_string(),
            m.version.to_string(),
            m.channel.to_string(),
        ),
        None => (
            a.name.clone().unwrap_or_else(|| a.resource_name.clone()),
            a.package_version.clone().ok_or_else(|| {
                CliError::usage(format!(
                    "--package-version: a {} package needs its semantic version",
                    a.kind.as_str()
                ))
            })?,
            a.channel.clone().unwrap_or_else(|| "stable".into()),
        ),
    };
    if let Some((m, _)) = &manifest {
        bundle::check(m, &a.file, json)?;
    }
    if a.file.is_dir() && resolved(&a.out).starts_with(resolved(&a.file)) {
        return Err(CliError::usage(format!(
            "--out {}: inside --file {}, whose tar would then hold its own output",
            a.out.display(),
            a.file.display()
        )));
    }
    let signer = keys::signer(&a.key)?;
    let tuf_keys = match &a.tuf_repo {
        None => Vec::new(),
        Some(_) if a.tuf_keys.is_empty() => vec![signer.file().cloned().ok_or_else(|| {
            CliError::usage("--tuf-key: TUF metadata is signed with key files; give --tuf-key")
        })?],
        Some(_) => a
            .tuf_keys
            .iter()
            .map(|k| keys::signing_key(k))
            .collect::<Result<_, _>>()?,
    };
    let key = match keys::seal_key_from(
        a.seal_key.as_deref(),
        a.seal_key_file.as_deref(),
        "--seal-key",
    )? {
        Some(k) => k,
        None => SealKey::from_bytes(keys::random()?),
    };
    let object_key = registration::object_key(&stage, &resource, &arch, &version);
    let artifact = a.out.join(&object_key);
    keeps_another_key(a, &object_key)?;
    let store = Store {
        s3_endpoint: a.s3_endpoint.clone().unwrap_or_default(),
        bucket: a.bucket.clone().unwrap_or_default(),
        cdn_base: a.cdn_base.clone(),
    };
    let local = a.s3_endpoint.is_none() && a.bucket.is_none() && a.cdn_base.is_none();
    let artifact_uri = match (&a.bucket, local) {
        (_, true) => format!("file://{}", absolute(&artifact).display()),
        (Some(b), false) if !b.is_empty() => format!("s3://{b}/{object_key}"),
        _ => store.cdn_url(&object_key),
    };

    // Seal into a temporary file beside the artifact; every output is renamed into place
    // only when all is signed, and a failure leaves no new directory.
    let mut outputs = Outputs::new();
    let tmp = outputs.temp(&artifact)?;
    // A model's plaintext tar has no name: a kill leaves no plaintext in the output.
    let tar = if a.file.is_dir() {
        let t = outputs.scratch(&artifact)?;
        bundle::write_tar(&a.file, t.file(), stop)?;
        Some(t)
    } else {
        None
    };
    // What is sealed: the file, or the tar read again from its start (errors name --file).
    // Opened once for its size, its hashing (--reproducible) and its sealing: a FIFO or a pipe
    // (`--file /dev/stdin`) has its reader from the start, and its writer never sees it
    // closed in between (EPIPE).
    let source = a.file.as_path();
    let mut file = match &tar {
        Some(t) => {
            let mut f = t.file().try_clone().map_err(|e| CliError::io(source, e))?;
            std::io::Seek::rewind(&mut f).map_err(|e| CliError::io(source, e))?;
            f
        }
        None => File::open(source).map_err(|e| CliError::io(source, e))?,
    };
    let meta = file.metadata().map_err(|e| CliError::io(source, e))?;
    let size = meta.len();
    if a.reproducible && !meta.is_file() {
        return Err(CliError::usage(format!(
            "--reproducible: {} is not a regular file, and it is read twice (hashed, then sealed)",
            source.display()
        )));
    }
    let sealer = if a.reproducible {
        let hashed = file.try_clone().map_err(|e| CliError::io(source, e))?;
        let digest = progress::hash_open(hashed, source, size, "hashing", json)?.sha256;
        // The clone shares the file's offset: back to the start, to seal.
        std::io::Seek::rewind(&mut file).map_err(|e| CliError::io(source, e))?;
        Sealer::reproducible(&key, digest, tmp.as_file())
    } else {
        Sealer::new(&key, keys::random()?, tmp.as_file())
    }
    .map_err(|e| CliError::io(tmp.path(), e))?;
    let bar = progress::bytes(size, "sealing", json);
    let file: Box<dyn std::io::Read> = match stop {
        Some(s) => Box::new(s.reader(file)),
        None => Box::new(file),
    };
    let mut reader = progress::Reading {
        inner: BufReader::with_capacity(1 << 20, file),
        bar: bar.clone(),
    };
    // Compression on every core; the bytes do not depend on how many there are. A read that
    // fails is the input's fault, any other I/O failure the output's (a full disk).
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut reading = ReadFailure {
        inner: &mut reader,
        failed: None,
    };
    let sealed = ota_host::seal::seal_parallel(sealer, &mut reading, threads);
    let (sealed, _) = sealed.map_err(|e| match (reading.failed.take(), e) {
        (Some(read), _) => CliError::io(source, read),
        (None, SealError::Io { message }) => CliError::io(&artifact, message),
        (None, e) => CliError::failure(Some(e.status()), format!("{}: {e}", a.file.display())),
    })?;
    bar.finish_and_clear();
    drop(tar);

    let mut statement = json!({
        "type": a.kind.as_str(),
        "name": package_name,
        "version": package_version,
        "artifact_uri": artifact_uri,
        "sha256": sealed.sha256,
        "size_bytes": sealed.size_bytes,
        "compatibility": {"device_types": a.device_types, "hardware_profiles": a.hardware_profiles,
                          "min_version": a.min_version, "max_version": a.max_version},
        "release_notes": a.release_notes,
        "channel": channel,
        "manifest": manifest.map(|(_, v)| v),
        "rollback": rollback(a)?,
        "probe": a.probe.as_deref().map(probe).transpose()?,
    });
    if let Some(obj) = statement.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
        if let Some(c) = obj.get_mut("compatibility").and_then(|c| c.as_object_mut()) {
            c.retain(|_, v| !v.is_null());
        }
    }
    let mut package = Package::from_json(statement.to_string().as_bytes())
        .map_err(|e| CliError::failure(Some(e.status()), format!("the package statement: {e}")))?;
    package.set_sealed(&sealed);
    let envelope = signer.envelope(&package)?;
    let trusted = [signer.public_key()].into_iter().collect();
    let verified = sign::verify_envelope(envelope.clone(), &trusted, 1, &ota_core::Limits::DEFAULT)
        .map_err(|e| CliError::failure(Some(e.status()), e))?;
    let record = Registration::new(resource, stage, arch, version, &sealed, &key, &store);
    let mut warnings = Vec::new();
    if local {
        let w = format!(
            "the artifact URI is a local path ({}) that devices elsewhere cannot fetch; give --cdn-base, --bucket or --s3-endpoint",
            artifact_uri
        );
        eprintln!("ota: warning: {w}");
        warnings.push(w);
    }
    let record = if local {
        Registration {
            cdn_url: artifact_uri,
            ..record
        }
    } else {
        record
    };

    let envelope_path = a.out.join("package.json");
    let registration_path = a.out.join("registration.json");
    // The artifact first: the package and the record (its key) never name an artifact that is
    // not there, and what they replace comes back if a later rename fails.
    outputs.stage(tmp, &artifact, 0o644)?;
    outputs.bytes(&envelope_path, envelope.to_json().as_bytes(), 0o644)?;
    outputs.bytes(&registration_path, record.to_json().as_bytes(), 0o600)?;
    if let Some(e) = interrupted() {
        return Err(e);
    }
    outputs.commit()?;
    if let Some(repo) = &a.tuf_repo {
        let now = crate::tuf::millis(jiff::Timestamp::now());
        crate::tuf::add(repo, &object_key, &artifact, &package, &tuf_keys, now).map_err(|e| {
            CliError {
                message: format!(
                    "packed into {}, but not added to {}: {}",
                    a.out.display(),
                    repo.display(),
                    e.message
                ),
                ..e
            }
        })?;
    }
    Ok(Packed {
        artifact,
        envelope: envelope_path,
        registration: registration_path,
        package: verified,
        record,
        warnings,
    })
}

/// Refuses (without `--force`) to replace a `registration.json` that holds the key of
/// another package whose artifact is still in `--out`: with a random key, that file is the
/// only copy, and the artifact could never be opened again. The same package packed again
/// replaces both together.
fn keeps_another_key(a: &PackArgs, object_key: &str) -> Result<(), CliError> {
    let path = a.out.join("registration.json");
    if a.force {
        return Ok(());
    }
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(());
    };
    let Ok(old) = Registration::from_json(&bytes) else {
        return Ok(());
    };
    let theirs = old.object_key();
    if theirs != object_key && a.out.join(&theirs).exists() {
        return Err(CliError::usage(format!(
            "{}: holds the key of {}, another package still in --out, and would be replaced: \
             publish that one first and pack into another --out, or give --force",
            path.display(),
            a.out.join(&theirs).display()
        )));
    }
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Where `p` really is, through symbolic links: its deepest existing ancestor resolved, and
/// the rest of it (not made yet) after that. `--out link/sub`, `link` a link into `--file`,
/// is inside `--file`.
fn resolved(p: &Path) -> PathBuf {
    let p = absolute(p);
    let mut rest = Vec::new();
    let mut base = p.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(base) {
            return rest.iter().rev().fold(real, |acc, c| acc.join(c));
        }
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                base = parent;
            }
            _ => return p,
        }
    }
}

/// A reader that keeps the error of a failed read, so the failure is blamed on the input.
struct ReadFailure<R> {
    inner: R,
    failed: Option<std::io::Error>,
}

impl<R: std::io::Read> std::io::Read for ReadFailure<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != std::io::ErrorKind::Interrupted {
                self.failed = Some(std::io::Error::new(e.kind(), e.to_string()));
            }
        })
    }
}
