//! `ota keygen`, and reading signing keys, trusted keys and sealing keys.

use std::path::{Path, PathBuf};

use ota_core::Package;
use ota_core::dsse::{Envelope, Signature, pae};
use ota_core::seal::SealKey;
use ota_core::sign::{self, KeyId, PublicKey, SigningKey, TrustedKeys};
use serde_json::json;

use crate::out::{self, CliError, Outcome};
use crate::outputs::Outputs;
use crate::pkcs11::{self, TokenKey};

/// `ota keygen`.
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Where to write `private.pem` (PKCS#8, 0600), `public.pem` and `keyid`; a directory
    /// it creates is owner-only (0700), whatever the umask.
    #[arg(long)]
    out: PathBuf,
    /// Replace keys already in the directory.
    #[arg(long)]
    force: bool,
    /// Generate the pair on a PKCS#11 token instead (`pkcs11:token=T;object=LABEL?module-path=
    /// ...&pin-value=...`); only `public.pem` and `keyid` are written.
    #[arg(long, value_name = "URI")]
    pkcs11: Option<String>,
}

/// Refuses to replace the key file `name` in `--out` without `--force`.
fn not_there(a: &KeygenArgs, name: &str) -> Result<(), CliError> {
    let path = a.out.join(name);
    if path.exists() && !a.force {
        return Err(CliError::usage(format!(
            "{}: a key is already there (use --force to replace it)",
            path.display()
        )));
    }
    Ok(())
}

/// Writes a new Ed25519 key pair.
pub fn keygen(a: &KeygenArgs) -> Result<Outcome, CliError> {
    if let Some(uri) = &a.pkcs11 {
        not_there(a, "public.pem")?;
        not_there(a, "keyid")?;
        let public = pkcs11::generate(uri)?;
        let id = public.key_id();
        let mut outputs = Outputs::new();
        outputs.bytes(&a.out.join("public.pem"), public.to_pem().as_bytes(), 0o644)?;
        outputs.bytes(&a.out.join("keyid"), format!("{id}\n").as_bytes(), 0o644)?;
        outputs.commit()?;
        return Ok(Outcome::ok(
            format!(
                "key id      {id}\npublic key  {}\non token    {}\nwritten to  {}/{{public.pem,keyid}}",
                public.to_hex(),
                pkcs11::redact(uri),
                a.out.display()
            ),
            json!({
                "key_id": id.to_string(),
                "public_key": public.to_hex(),
                "private_key_file": null,
                "public_key_file": a.out.join("public.pem"),
            }),
        ));
    }
    not_there(a, "private.pem")?;
    let private = a.out.join("private.pem");
    let key = SigningKey::from_secret(random()?);
    let public = key.public_key();
    // The directory is owner-only (0700) and the private key 0600, whatever the umask; the
    // three files appear together or not at all.
    let mut outputs = Outputs::new();
    outputs.bytes(&private, key.to_pkcs8_pem().as_bytes(), 0o600)?;
    outputs.bytes(&a.out.join("public.pem"), public.to_pem().as_bytes(), 0o644)?;
    outputs.bytes(
        &a.out.join("keyid"),
        format!("{}\n", key.key_id()).as_bytes(),
        0o644,
    )?;
    outputs.commit()?;
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

/// A key that signs: a PKCS#8 file, or a key on a PKCS#11 token.
// One signer per command: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Signer {
    /// A private key read from a file.
    File(SigningKey),
    /// A key on a token; the private key stays there.
    Token(TokenKey),
}

impl Signer {
    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Signer::File(k) => k.public_key(),
            Signer::Token(t) => t.public_key(),
        }
    }

    /// The key id.
    pub fn key_id(&self) -> KeyId {
        self.public_key().key_id()
    }

    /// The file key, when it is one (TUF metadata is signed only with file keys).
    pub fn file(&self) -> Option<&SigningKey> {
        match self {
            Signer::File(k) => Some(k),
            Signer::Token(_) => None,
        }
    }

    /// Signs a package statement: a DSSE envelope with this one signature.
    pub fn envelope(&self, package: &Package) -> Result<Envelope, CliError> {
        match self {
            Signer::File(k) => {
                sign::sign(package, &[k]).map_err(|e| CliError::failure(Some(e.status()), e))
            }
            Signer::Token(_) => {
                let payload = package.to_json().into_bytes();
                let mut env = Envelope {
                    payload_type: sign::PAYLOAD_TYPE.to_string(),
                    payload,
                    signatures: Vec::new(),
                };
                self.cosign(&mut env)?;
                Ok(env)
            }
        }
    }

    /// Adds this key's signature to an envelope.
    pub fn cosign(&self, env: &mut Envelope) -> Result<(), CliError> {
        match self {
            Signer::File(k) => {
                sign::cosign(env, &[k]);
                Ok(())
            }
            Signer::Token(t) => {
                let sig = t.sign(&pae(&env.payload_type, &env.payload))?;
                env.signatures.push(Signature {
                    keyid: self.key_id().to_string(),
                    sig: sig.to_vec(),
                });
                Ok(())
            }
        }
    }
}

/// Reads a signing key: a PKCS#11 URI (`pkcs11:...`), or a PKCS#8 file.
pub fn signer(arg: &Path) -> Result<Signer, CliError> {
    match arg.to_str() {
        Some(uri) if pkcs11::is_uri(uri) => Ok(Signer::Token(TokenKey::open(uri)?)),
        _ => signing_key(arg).map(Signer::File),
    }
}

/// Reads a PKCS#8 private key (PEM or DER) from a file.
pub fn signing_key(path: &Path) -> Result<SigningKey, CliError> {
    SigningKey::from_pkcs8(&out::read(path, out::MAX_KEY_FILE_BYTES)?)
        .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

/// Trusted public keys: each argument is a file (PEM, or hex) or 64 hex characters.
pub fn trusted(args: &[String]) -> Result<TrustedKeys, CliError> {
    let mut keys = TrustedKeys::new();
    for a in args {
        let path = Path::new(a);
        let (text, origin) = if path.is_file() {
            (
                out::read_text(path, out::MAX_KEY_FILE_BYTES)?,
                path.display().to_string(),
            )
        } else if !looks_hex(a) {
            return Err(not_a_key("--trusted-key", a));
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

/// The environment variable that may hold the AES-256 sealing key (64 hex characters), so
/// that it is not on the command line, where other users see it in `/proc/PID/cmdline`.
pub const SEAL_KEY_ENV: &str = "OTA_SEAL_KEY";

/// The sealing key, from the first that is given: `value` (the `flag`'s argument: 64 hex
/// characters, or a file holding them), `file` (a file holding them), or the environment
/// variable [`SEAL_KEY_ENV`]. `None` when none is.
pub fn seal_key_from(
    value: Option<&str>,
    file: Option<&Path>,
    flag: &str,
) -> Result<Option<SealKey>, CliError> {
    if let Some(v) = value {
        return seal_key(v, flag).map(Some);
    }
    if let Some(path) = file {
        let text = out::read_text(path, out::MAX_KEY_FILE_BYTES)?;
        return parse_seal_key(&text, &format!("{flag}-file {}", path.display())).map(Some);
    }
    match std::env::var(SEAL_KEY_ENV) {
        Ok(v) if !v.trim().is_empty() => parse_seal_key(&v, SEAL_KEY_ENV).map(Some),
        _ => Ok(None),
    }
}

/// Whether [`seal_key_from`] has a key to read (`value`, `file`, or the environment).
pub fn seal_key_given(value: Option<&str>, file: Option<&Path>) -> bool {
    value.is_some()
        || file.is_some()
        || std::env::var_os(SEAL_KEY_ENV).is_some_and(|v| !v.is_empty())
}

/// A sealing key given as `flag`'s argument: 64 hex characters, or a file holding them.
pub fn seal_key(arg: &str, flag: &str) -> Result<SealKey, CliError> {
    let path = Path::new(arg);
    if path.is_file() {
        let text = out::read_text(path, out::MAX_KEY_FILE_BYTES)?;
        parse_seal_key(&text, &format!("{flag} {}", path.display()))
    } else if looks_hex(arg) {
        parse_seal_key(arg, flag)
    } else {
        Err(not_a_key(flag, arg))
    }
}

fn parse_seal_key(text: &str, origin: &str) -> Result<SealKey, CliError> {
    text.trim()
        .parse()
        .map_err(|e| CliError::usage(format!("{origin}: {e}")))
}

/// Whether `arg` is meant as a key written inline (hex digits only) rather than a file name.
fn looks_hex(arg: &str) -> bool {
    let t = arg.trim();
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `arg` is neither a key file nor an inline key: say which file was not found.
fn not_a_key(flag: &str, arg: &str) -> CliError {
    let why = match std::fs::metadata(arg) {
        Ok(m) if m.is_dir() => "a directory, not a key file".to_string(),
        Ok(_) => "not a regular file".to_string(),
        Err(e) => e.to_string(),
    };
    CliError::usage(format!(
        "{flag} {arg}: {why} (give a key file, or the key as 64 hex characters)"
    ))
}
