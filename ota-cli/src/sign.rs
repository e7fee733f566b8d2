//! `ota sign`: sign a sealed package statement into a DSSE envelope, or, with `--add`, add a
//! signature to an envelope (co-signing, for a threshold of several signers).

use std::path::PathBuf;

use ota_core::sign::{self, PackageId};
use serde_json::json;

use crate::input;
use crate::keys;
use crate::out::{self, CliError, Outcome};

const EXAMPLES: &str = "Examples:
  ota sign --add out/package.json --key release-2/private.pem
  ota verify --package out/package.json --artifact out/prod/m-arm64-1.enc \\
    --trusted-key release-1/public.pem --trusted-key release-2/public.pem --threshold 2
  ota sign statement.json --key release-1/private.pem --out package.json";

/// `ota sign`.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct SignArgs {
    /// The envelope to co-sign (with --add), or a sealed package statement (JSON or YAML).
    file: PathBuf,
    /// The signing key: a PKCS#8 file (PEM or DER, as `ota keygen` writes), or a PKCS#11 URI
    /// (`pkcs11:token=T;object=LABEL?module-path=...&pin-value=...`).
    #[arg(long)]
    key: PathBuf,
    /// Add this key's signature to the envelope in FILE, keeping the others.
    #[arg(long)]
    add: bool,
    /// Where to write the envelope (default: FILE itself with --add; required otherwise).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Signs or co-signs.
pub fn sign(a: &SignArgs) -> Result<Outcome, CliError> {
    let f = input::package_file(&a.file)?;
    let signer = keys::signer(&a.key)?;
    let shown = a.file.display();
    let (envelope, out_path) = match (f.envelope, a.add) {
        (Some(mut env), true) => {
            let id = signer.key_id().to_string();
            if env.claimed_keyids().contains(&id.as_str()) {
                return Err(CliError::usage(format!(
                    "{shown}: key {id} has already signed this envelope"
                )));
            }
            signer.cosign(&mut env)?;
            (env, a.out.clone().unwrap_or_else(|| a.file.clone()))
        }
        (None, true) => {
            return Err(CliError::usage(format!(
                "{shown}: a package statement, not an envelope: --add co-signs an envelope (sign a statement without --add)"
            )));
        }
        (Some(_), false) => {
            return Err(CliError::usage(format!(
                "{shown}: already an envelope: give --add to add a signature"
            )));
        }
        (None, false) => {
            let out = a.out.clone().ok_or_else(|| {
                CliError::usage("--out: where to write the envelope of a statement")
            })?;
            let env = signer.envelope(&f.package).map_err(|e| CliError {
                message: format!("{shown}: {}", e.message),
                ..e
            })?;
            (env, out)
        }
    };
    // What is written must still be a well-formed envelope of a valid statement.
    let trusted = [signer.public_key()].into_iter().collect();
    sign::verify_envelope(envelope.clone(), &trusted, 1, &ota_core::Limits::DEFAULT)
        .map_err(|e| CliError::failure(Some(e.status()), format!("{shown}: {e}")))?;
    out::refuse_special(&out_path, None)?;
    out::write_atomic(&out_path, envelope.to_json().as_bytes(), false)?;
    let keyids: Vec<String> = envelope
        .claimed_keyids()
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(Outcome::ok(
        format!(
            "{} {}: signed by {} ({} signature(s)); written to {}",
            f.package.name,
            f.package.version,
            signer.key_id(),
            keyids.len(),
            out_path.display()
        ),
        json!({
            "package_id": PackageId::of(&envelope.payload),
            "file": out_path,
            "key_id": signer.key_id().to_string(),
            "signatures": keyids,
        }),
    ))
}
