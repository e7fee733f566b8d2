//! `ota unpack`: open a sealed artifact, verifying before decrypting, with nothing left at
//! `--out` unless everything checked out.
//!
//! The plaintext goes to a file with no name (`O_TMPFILE`, see [`crate::unnamed`]) beside
//! `--out`, linked over `--out` only when complete: an interrupted or killed run leaves no
//! partial plaintext, and a failed one no new directory. `--out` must be a regular file or
//! nothing (not a device, a FIFO or a symbolic link) unless `--force`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ota_core::registration::Registration;
use ota_core::seal::{self, Opened, SealError};
use ota_host::durable::SyncBehind;
use ota_host::pipeline;
use serde_json::json;

use crate::doc;
use crate::input;
use crate::keys;
use crate::out::{self, CliError, Outcome, Watched};
use crate::outputs::Outputs;
use crate::signals::Stop;
use crate::unnamed::Unnamed;

/// `ota unpack`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["registration", "package"])))]
pub struct UnpackArgs {
    /// publish_artifact.py's registration record: its sha256, size_bytes and encryption_key are all that is
    /// needed. The whole file is hashed before anything is decrypted.
    #[arg(long)]
    registration: Option<PathBuf>,
    /// Or the signed package envelope: each 64 KiB chunk is checked before it is decrypted
    /// (needs the AES key: --key, --key-file or OTA_SEAL_KEY; and --trusted-key).
    #[arg(long, requires = "trusted_keys")]
    package: Option<PathBuf>,
    /// The AES-256 key with --package: 64 hex characters, or a file holding them. Prefer
    /// --key-file or OTA_SEAL_KEY: a command line is visible to other users.
    #[arg(long, conflicts_with = "key_file")]
    key: Option<String>,
    /// A file holding the AES-256 key (64 hex characters), with --package.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// A trusted public key with --package (repeat for several).
    #[arg(long = "trusted-key")]
    trusted_keys: Vec<String>,
    /// How many distinct trusted keys must have signed the package.
    #[arg(long, default_value_t = 1)]
    threshold: usize,
    /// The sealed artifact.
    #[arg(long)]
    artifact: PathBuf,
    /// Where the plaintext goes (written only when complete and verified): a regular file, or
    /// nothing yet.
    #[arg(long)]
    out: PathBuf,
    /// Replace --out even when it is not a regular file (a symbolic link, a device, a FIFO).
    #[arg(long)]
    force: bool,
    /// With --registration, the most plaintext accepted (the record does not declare its size):
    /// a decompression bomb stops here.
    #[arg(long, default_value_t = 16 << 30)]
    max_plaintext: u64,
    /// With --package, how many threads open the artifact: 2 verifies and decrypts on one
    /// while the other inflates (a package with segments: while two inflate its segments);
    /// 1 does it all on one (default: 2 on a machine with two cores or more).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    threads: Option<u8>,
}

/// Opens the artifact into a file with no name beside `--out`, linked over it only on
/// success.
pub fn unpack(a: &UnpackArgs) -> Result<Outcome, CliError> {
    out::refuse_special(&a.out, Some(a.force))?;
    if same_file(&a.out, &a.artifact) {
        return Err(CliError::usage(format!(
            "--out {}: is --artifact; the sealed artifact would be replaced by its plaintext",
            a.out.display()
        )));
    }
    let stop = Stop::on_signals()?;
    let mut outputs = Outputs::new();
    let dir = out::parent(&a.out);
    outputs.dir(dir)?;
    let tmp = Unnamed::new_in(dir)?;
    // The disk writes behind the output as it grows, so the fsync before the rename waits
    // only for the tail.
    let (watched, write_failed) = Watched::new(SyncBehind::new(tmp.file()));
    let sink = BufWriter::with_capacity(1 << 20, watched);
    let src = File::open(&a.artifact).map_err(|e| CliError::io(&a.artifact, e))?;
    let src = stop.reader(src);
    let fail = |e: SealError| match e {
        // A write that failed (a full disk) is the output's fault, not the artifact's.
        SealError::Io { message } if write_failed.load(std::sync::atomic::Ordering::SeqCst) => {
            CliError::io(&a.out, message)
        }
        SealError::Io { message } => {
            CliError::usage(format!("{}: {message}", a.artifact.display()))
        }
        e => CliError::failure(Some(e.status()), format!("{}: {e}", a.artifact.display())),
    };
    let (opened, how): (Opened, String) = if let Some(reg) = &a.registration {
        let record = doc::parse(reg, Registration::from_json)?;
        let (o, mut w) = seal::open_checked(
            src,
            &record.encryption_key,
            record.expected(a.max_plaintext),
            sink,
        )
        .map_err(fail)?;
        w.flush().map_err(|e| CliError::io(&a.out, e))?;
        (o, format!("registration {}", reg.display()))
    } else {
        let path = a
            .package
            .as_ref()
            .ok_or_else(|| CliError::usage("give --registration or --package"))?;
        // Streamed, its chunk table in a file with no name beside the output: memory stays
        // the same whatever the artifact's size.
        let v = input::verified_streamed(path, &a.trusted_keys, a.threshold, dir)?;
        let key = keys::seal_key_from(a.key.as_deref(), a.key_file.as_deref(), "--key")?
            .ok_or_else(|| {
                CliError::usage(format!(
                    "--package needs the AES key: --key, --key-file or {}",
                    keys::SEAL_KEY_ENV
                ))
            })?;
        if v.seal().is_none() {
            return Err(CliError::failure(
                None,
                format!("{}: not sealed", path.display()),
            ));
        }
        let expected = v.expected();
        let threads = a
            .threads
            .map_or_else(pipeline::default_threads, usize::from);
        let (o, mut w) =
            pipeline::open_chunked(src, &key, v.chunks(), expected, sink, threads).map_err(fail)?;
        w.flush().map_err(|e| CliError::io(&a.out, e))?;
        (o, format!("package {} ({})", path.display(), v.id()))
    };
    if stop.stopped() {
        return Err(CliError::usage("interrupted by a signal"));
    }
    // Checked again: the target may have changed while the artifact was read.
    out::refuse_special(&a.out, Some(a.force))?;
    // The plaintext is made like any new file: 0666 less the umask (a umask of 077 keeps it
    // the caller's alone).
    tmp.persist(&a.out, 0o666 & !crate::unnamed::umask())?;
    outputs.keep();
    Ok(Outcome::ok(
        format!(
            "{}: {} bytes, sha256 {}, verified against the {how}",
            a.out.display(),
            opened.plaintext_size,
            opened.plaintext_sha256
        ),
        json!({"ok": true, "out": a.out, "plaintext_size": opened.plaintext_size,
               "plaintext_sha256": opened.plaintext_sha256}),
    ))
}

/// Whether `a` and `b` name one file (through links, or two spellings of a path).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
