//! The package upload of the OTA API as written: `{type, version, artifact_uri, sha256,
//! signature, size_bytes, compatibility: {device_type, min_version}, release_notes}`, the
//! `signature` by a trusted publisher key over the artifact's SHA-256, base64 or hex:
//! - Ed25519 (64 bytes) over the 32 digest bytes, or over their 64 lowercase hex characters;
//! - ECDSA P-256 in DER (the OTA API's `MEUCIQD...`), see [`crate::publishers`] for the forms.
//!
//! The library's `VerifiedPackage` is a sealed DSSE (or TUF) statement, and the seed's plain
//! artifact has neither a seal nor a chunk table. So the server, after checking the
//! publisher's signature over the declared digest and the artifact against it, seals the
//! artifact itself (a fresh AES-256 key, streamed into the local store), writes the statement
//! (with the chunk table and seal information of what it sealed) and signs it with its own
//! key (`--signing-key`): devices trust that key beside the publishers'. The Trust Center
//! lists both signers.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ota_core::seal::{SealKey, Sealed, Sealer};
use ota_core::sign::{self, SigningKey, TrustedKeys, VerifiedPackage};
use ota_core::{Limits, Name, Package, PackageId, Sha256Digest, Version};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::error::{ApiError, ApiResult, Code};
use crate::state::{AppState, parse_json};

/// The OTA API's upload body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedUpload {
    /// `fw`, `sw` or `model`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: ota_core::PackageType,
    /// The package name (default `DEVICE_TYPE-TYPE`, e.g. `temp-sensor-fw`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Option<Name>,
    /// The build's version.
    #[schema(value_type = String)]
    pub version: Version,
    /// Where the plain artifact is: `file:///...` inside an `--artifact-root`, or
    /// `store://TENANT/KEY` (the caller's own tenant).
    pub artifact_uri: String,
    /// Its declared SHA-256.
    #[schema(value_type = String)]
    pub sha256: Sha256Digest,
    /// The publisher's signature over the SHA-256 (Ed25519 over its 32 bytes or 64 hex
    /// characters, or ECDSA P-256 in DER), base64 or hex.
    pub signature: String,
    /// Its size.
    pub size_bytes: u64,
    /// Which devices it fits.
    #[serde(default)]
    pub compatibility: SeedCompatibility,
    /// The change summary.
    #[serde(default)]
    pub release_notes: String,
    /// A rollback build (the one devices accept although it is older), bound to what it
    /// replaces: `{"from": VERSION, "expires": RFC 3339}`, signed into the statement as is.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::RollbackBinding>)]
    pub rollback: Option<serde_json::Value>,
}

/// The OTA API's compatibility block (the library's field names are accepted too).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedCompatibility {
    /// One device type.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub device_type: Option<Name>,
    /// Device types.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub device_types: Vec<Name>,
    /// Hardware profiles.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub hardware_profiles: Vec<Name>,
    /// The oldest installed version it upgrades from.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub min_version: Option<Version>,
    /// The newest installed version it upgrades from.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub max_version: Option<Version>,
}

/// What a checked seed upload gives: the statement, the server's envelope and the sealed
/// artifact waiting in the store.
pub struct Checked {
    /// The verified statement (signed by the server).
    pub verified: VerifiedPackage,
    /// The key it is sealed with.
    pub key: SealKey,
    /// The publisher key that signed the digest.
    pub publisher: String,
    /// The sealed artifact (a temporary file in the store, to rename).
    pub tmp: PathBuf,
}

/// An upload refused after the artifact was read: the package is kept as rejected.
pub struct Rejected {
    /// The id given to the refused upload.
    pub id: PackageId,
    /// Why.
    pub error: ApiError,
}

/// A decoded signature: Ed25519 (64 bytes) or DER ECDSA P-256.
enum Signature {
    Ed25519(Vec<u8>),
    EcdsaDer(Vec<u8>),
}

fn decode_signature(s: &str) -> ApiResult<Signature> {
    let hex_form =
        s.len().is_multiple_of(2) && s.len() >= 128 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let bytes = if hex_form {
        hex::decode(s).ok()
    } else {
        base64::engine::general_purpose::STANDARD.decode(s).ok()
    };
    let bytes = bytes.ok_or_else(|| {
        ApiError::invalid("signature: expected base64 or hex (Ed25519, or ECDSA P-256 in DER)")
    })?;
    if bytes.len() == 64 {
        return Ok(Signature::Ed25519(bytes));
    }
    if crate::publishers::is_der(&bytes) {
        return Ok(Signature::EcdsaDer(bytes));
    }
    Err(ApiError::invalid(format!(
        "signature: neither an Ed25519 signature (64 bytes) nor a DER ECDSA P-256 signature \
         ({} bytes)",
        bytes.len()
    )))
}

/// The trusted publisher key whose signature over the digest verifies: an Ed25519 key of
/// `keys` (still in `trusted`), or one of the ECDSA P-256 keys.
pub fn check_signature(
    trusted: &TrustedKeys,
    keys: &[ota_core::sign::PublicKey],
    ecdsa: &[crate::publishers::EcdsaKey],
    up: &SeedUpload,
) -> ApiResult<String> {
    let found = match decode_signature(&up.signature)? {
        Signature::Ed25519(sig) => {
            let raw = *up.sha256.as_bytes();
            let text = up.sha256.to_hex();
            keys.iter()
                .find(|k| {
                    trusted.get(&k.key_id()).is_some()
                        && (k.verify(&raw, &sig) || k.verify(text.as_bytes(), &sig))
                })
                .map(|k| k.key_id().to_string())
        }
        Signature::EcdsaDer(der) => ecdsa
            .iter()
            .find(|k| k.verify(&up.sha256, &der))
            .map(|k| k.key_id().to_string()),
    };
    found.ok_or_else(|| ApiError::invalid("signature: no trusted publisher key signed this sha256"))
}

/// Parses the body.
pub fn parse(body: &[u8]) -> ApiResult<SeedUpload> {
    parse_json(body)
}

/// Reads the plain artifact at `src`, checks its size and SHA-256 against the declared ones,
/// and seals it into a temporary file of `dir` (blocking: run it on a blocking thread).
fn seal_plain(
    src: &Path,
    dir: &Path,
    up_size: u64,
    up_sha: Sha256Digest,
    key: &SealKey,
) -> Result<(Sealed, PathBuf), ApiError> {
    let io = |e: std::io::Error| {
        ApiError::invalid(format!("artifact_uri: cannot read {}: {e}", src.display()))
    };
    let mut input = std::fs::File::open(src).map_err(io)?;
    let tmp = dir.join(format!("seal-{}.part", crate::auth::random_hex(6)));
    let store = |e: std::io::Error| ApiError::internal(format!("store: {e}"));
    let out = BufWriter::new(std::fs::File::create(&tmp).map_err(store)?);
    let mut iv = [0u8; 16];
    getrandom::fill(&mut iv).map_err(|e| ApiError::internal(format!("random: {e}")))?;
    let result = (|| {
        let mut sealer =
            Sealer::new(key, iv, out).map_err(|e| ApiError::internal(format!("seal: {e}")))?;
        let mut h = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = input.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > up_size {
                return Err(ApiError::invalid(format!(
                    "size_bytes: the artifact is larger than the declared {up_size} bytes"
                )));
            }
            h.update(&buf[..n]);
            sealer.write_all(&buf[..n]).map_err(store)?;
        }
        if size != up_size {
            return Err(ApiError::invalid(format!(
                "size_bytes: the artifact has {size} bytes, the package declares {up_size}"
            )));
        }
        let got = Sha256Digest::from_bytes(h.finalize().into());
        if got != up_sha {
            return Err(ApiError::invalid(format!(
                "sha256: the artifact's checksum is {}, the package declares {}",
                got.to_hex(),
                up_sha.to_hex()
            )));
        }
        let (sealed, out) = sealer
            .finish()
            .map_err(|e| ApiError::internal(format!("seal: {e}")))?;
        let file = out.into_inner().map_err(|e| store(e.into_error()))?;
        file.sync_all().map_err(store)?;
        Ok(sealed)
    })();
    match result {
        Ok(sealed) => Ok((sealed, tmp)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Checks and seals a seed upload. `Err(Ok(e))` is a refusal before the artifact was read
/// (nothing kept); `Err(Err(r))` a refusal after (kept as rejected).
pub async fn check(
    st: &AppState,
    tenant: &str,
    up: SeedUpload,
    src: PathBuf,
    body: &[u8],
) -> Result<Checked, Result<ApiError, Rejected>> {
    let publisher =
        check_signature(&st.trusted, &st.publisher_keys, &st.ecdsa_keys, &up).map_err(Ok)?;
    let dir = st.store_dir.join(tenant);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| Ok(ApiError::internal(format!("store: {e}"))))?;
    let key = SealKey::from_bytes({
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| Ok(ApiError::internal(format!("random: {e}"))))?;
        k
    });
    let (size, sha) = (up.size_bytes, up.sha256);
    let k2 = key.clone();
    let d2 = dir.clone();
    let sealed = tokio::task::spawn_blocking(move || seal_plain(&src, &d2, size, sha, &k2))
        .await
        .map_err(|e| Ok(ApiError::internal(format!("seal task: {e}"))))?;
    let (sealed, tmp) = match sealed {
        Ok(x) => x,
        Err(e) if e.code == Code::InvalidArgument && !e.message.starts_with("artifact_uri") => {
            return Err(Err(Rejected {
                id: PackageId::of(body),
                error: e,
            }));
        }
        Err(e) => return Err(Ok(e)),
    };
    let name = match &up.name {
        Some(n) => n.to_string(),
        None => {
            let ty = up
                .compatibility
                .device_type
                .as_ref()
                .or(up.compatibility.device_types.first())
                .map_or("package".to_string(), ToString::to_string);
            format!("{ty}-{}", up.kind.as_str())
        }
    };
    let mut device_types = up.compatibility.device_types.clone();
    if let Some(t) = &up.compatibility.device_type {
        device_types.insert(0, t.clone());
    }
    let statement = json!({
        "type": up.kind, "name": name, "version": up.version,
        "artifact_uri": format!("store://{tenant}/{}.enc", sealed.sha256.to_hex()),
        "sha256": sealed.sha256, "size_bytes": sealed.size_bytes,
        "compatibility": {
            "device_types": device_types,
            "hardware_profiles": up.compatibility.hardware_profiles,
            "min_version": up.compatibility.min_version,
            "max_version": up.compatibility.max_version,
        },
        "release_notes": up.release_notes,
        "rollback": up.rollback,
    });
    let fail = |e: String| {
        let _ = std::fs::remove_file(&tmp);
        Ok(ApiError::invalid(e))
    };
    let mut p =
        match Package::from_json_with_limits(statement.to_string().as_bytes(), &Limits::DEFAULT) {
            Ok(p) => p,
            Err(e) => return Err(fail(e.to_string())),
        };
    p.set_sealed(&sealed);
    let server: &SigningKey = &st.signing_key;
    let verified = sign::sign(&p, &[server]).and_then(|env| {
        let only: TrustedKeys = [server.public_key()].into_iter().collect();
        sign::verify_envelope(env, &only, 1, &Limits::DEFAULT)
    });
    match verified {
        Ok(verified) => Ok(Checked {
            verified,
            key,
            publisher,
            tmp,
        }),
        Err(e) => Err(fail(format!("statement: {e}"))),
    }
}
