//! `ota unpack`: open a sealed artifact, verifying before decrypting, with nothing left at
//! `--out` unless everything checked out.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use ota_core::registration::Registration;
use ota_core::seal::{self, Opened, SealError};
use ota_host::pipeline;
use serde_json::json;

use crate::doc;
use crate::input;
use crate::keys;
use crate::out::{self, CliError, Outcome};

/// `ota unpack`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["registration", "package"])))]
pub struct UnpackArgs {
    /// Seed 002's registration record: its sha256, size_bytes and encryption_key are all that is
    /// needed. The whole file is hashed before anything is decrypted.
    #[arg(long)]
    registration: Option<PathBuf>,
    /// Or the signed package envelope: each 64 KiB chunk is checked before it is decrypted
    /// (needs --key and --trusted-key).
    #[arg(long, requires_all = ["key", "trusted_keys"])]
    package: Option<PathBuf>,
    /// The AES-256 key with --package: 64 hex characters, or a file holding them.
    #[arg(long)]
    key: Option<String>,
    /// A trusted public key with --package (repeat for several).
    #[arg(long = "trusted-key")]
    trusted_keys: Vec<String>,
    /// How many distinct trusted keys must have signed the package.
    #[arg(long, default_value_t = 1)]
    threshold: usize,
    /// The sealed artifact.
    #[arg(long)]
    artifact: PathBuf,
    /// Where the plaintext goes (written only when complete and verified).
    #[arg(long)]
    out: PathBuf,
    /// With --registration, the most plaintext accepted (the record does not declare its size):
    /// a decompression bomb stops here.
    #[arg(long, default_value_t = 16 << 30)]
    max_plaintext: u64,
    /// With --package, how many threads open the artifact: 2 verifies and decrypts on one
    /// while the other inflates; 1 does it all on one (default: 2 on a machine with two
    /// cores or more).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    threads: Option<u8>,
}

/// Opens the artifact into a temporary file beside `--out`, renamed over it only on success.
pub fn unpack(a: &UnpackArgs) -> Result<Outcome, CliError> {
    let dir = out::parent(&a.out);
    std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| CliError::io(dir, e))?;
    let sink = BufWriter::with_capacity(1 << 20, tmp.as_file());
    let src = File::open(&a.artifact).map_err(|e| CliError::io(&a.artifact, e))?;
    let fail = |e: SealError| match e {
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
        w.flush().map_err(|e| CliError::io(tmp.path(), e))?;
        (o, format!("registration {}", reg.display()))
    } else {
        let path = a
            .package
            .as_ref()
            .ok_or_else(|| CliError::usage("give --registration or --package"))?;
        let v = input::verified(path, &a.trusted_keys, a.threshold)?;
        let key = keys::seal_key(a.key.as_deref().unwrap_or_default())?;
        let pkg = v.package();
        let seal_info = v
            .seal()
            .ok_or_else(|| CliError::failure(None, format!("{}: not sealed", path.display())))?;
        let expected = seal::Expected {
            size_bytes: pkg.size_bytes,
            sha256: pkg.sha256,
            plaintext_size: Some(seal_info.plaintext_size),
            plaintext_sha256: Some(seal_info.plaintext_sha256),
            max_plaintext: seal_info.plaintext_size,
        };
        let threads = a
            .threads
            .map_or_else(pipeline::default_threads, usize::from);
        let (o, mut w) =
            pipeline::open_chunked(src, &key, v.chunks(), expected, sink, threads).map_err(fail)?;
        w.flush().map_err(|e| CliError::io(tmp.path(), e))?;
        (o, format!("package {} ({})", path.display(), v.id()))
    };
    tmp.as_file()
        .sync_all()
        .map_err(|e| CliError::io(tmp.path(), e))?;
    out::set_mode(tmp.path(), 0o644)?;
    tmp.persist(&a.out)
        .map_err(|e| CliError::io(&a.out, e.error))?;
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
