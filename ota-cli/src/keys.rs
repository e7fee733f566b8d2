//! `ota keygen`, and reading signing keys, trusted keys and sealing keys.

use std::path::{Path, PathBuf};

use ota_core::seal::SealKey;
use ota_core::sign::{PublicKey, SigningKey, TrustedKeys};
use serde_json::json;

use crate::out::{self, CliError, Outcome};

/// `ota keygen`.
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Where to write `private.pem` (PKCS#8, owner-only), `public.pem` and `keyid`.
    #[arg(long)]
    out: PathBuf,
    /// Replace keys already in the directory.
    #[arg(long)]
    force: bool,
}

/// Writes a new Ed25519 key pair.
pub fn keygen(a: &KeygenArgs) -> Result<Outcome, CliError> {
    let private = a.out.join("private.pem");
    if private.exists() && !a.force {
        return Err(CliError::usage(format!(
            "{}: a key is already there (use --force to replace it)",
            private.display()
        )));
    }
    let key = SigningKey::from_secret(random()?);
    let public = key.public_key();
    out::write_atomic(&private, key.to_pkcs8_pem().as_bytes(), true)?;
    out::write_atomic(&a.out.join("public.pem"), public.to_pem().as_bytes(), false)?;
    out::write_atomic(
        &a.out.join("keyid"),
        format!("{}\n", key.key_id()).as_bytes(),
        false,
    )?;
    Ok(Outcome::ok(
        format!(
            "key id      {}\npublic key  {}\nwritten to  {}/{{private.pem,public.pem,keyid}}",
            key.key_id(),
            public.to_hex(),
            a.out.display()
        ),
        json!({
            "ok": true,
            "key_id": key.key_id().to_string(),
            "public_key": public.to_hex(),
            "private_key_file": private,
            "public_key_file": a.out.join("public.pem"),
        }),
    ))
}

/// Random bytes from the operating system.
pub fn random<const N: usize>() -> Result<[u8; N], CliError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| CliError::usage(format!("the system random generator failed: {e}")))?;
    Ok(b)
}

/// Reads a PKCS#8 private key (PEM or DER) from a file.
pub fn signing_key(path: &Path) -> Result<SigningKey, CliError> {
    SigningKey::from_pkcs8(&out::read(path)?)
        .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

/// Trusted public keys: each argument is a file (PEM, or hex) or 64 hex characters.
pub fn trusted(args: &[String]) -> Result<TrustedKeys, CliError> {
    let mut keys = TrustedKeys::new();
    for a in args {
        let path = Path::new(a);
        let (text, origin) = if path.is_file() {
            (out::read_text(path)?, path.display().to_string())
        } else {
            (a.clone(), "--trusted-key".to_string())
        };
        let key = PublicKey::parse(&text).map_err(|e| {
            CliError::usage(format!(
                "{origin}: {e} (give a PEM public key file, or 64 hex characters)"
            ))
        })?;
        keys.add(key);
    }
    Ok(keys)
}

/// A sealing key: 64 hex characters, or a file holding them.
pub fn seal_key(arg: &str) -> Result<SealKey, CliError> {
    let path = Path::new(arg);
    let text = if path.is_file() {
        out::read_text(path)?
    } else {
        arg.to_string()
    };
    text.trim()
        .parse()
        .map_err(|e| CliError::usage(format!("--key: {e}")))
}
