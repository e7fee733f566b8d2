//! The ECDSA P-256 publisher keys of the OTA API's upload form (the seed's `signature:
//! "MEUCIQD..."` is a DER ECDSA signature), beside the Ed25519 keys the library knows.
//!
//! A key is given to `--trusted-key` as a PEM `PUBLIC KEY` (SPKI, `id-ecPublicKey` on
//! `prime256v1`), e.g. `openssl ec -pubout`. Its id is the lowercase hex SHA-256 of that DER
//! SPKI. A signature is DER (`openssl dgst -sha256 -sign`'s form) and is accepted over the
//! artifact's SHA-256 in any of the ways a publisher produces one:
//! - ECDSA whose hash is the artifact's SHA-256 itself (`openssl dgst -sha256 -sign key.pem
//!   ARTIFACT`: the prehash is the digest);
//! - ECDSA-SHA256 of the 32 digest bytes;
//! - ECDSA-SHA256 of the digest's 64 lowercase hex characters.
//!
//! These keys only ever verify the seed form: DSSE envelopes (the form `ota pack` writes,
//! and the statements the server signs) are Ed25519.

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use sha2::{Digest as _, Sha256};

use ota_core::Sha256Digest;

/// A trusted ECDSA P-256 publisher key.
#[derive(Debug, Clone)]
pub struct EcdsaKey {
    key: VerifyingKey,
    id: String,
    pem: String,
}

impl EcdsaKey {
    /// Reads a PEM `PUBLIC KEY` (SPKI) of a P-256 key.
    pub fn parse(text: &str) -> Option<EcdsaKey> {
        let key = VerifyingKey::from_public_key_pem(text.trim()).ok()?;
        let der = key.to_public_key_der().ok()?;
        let pem = key.to_public_key_pem(p256::pkcs8::LineEnding::LF).ok()?;
        Some(EcdsaKey {
            key,
            id: hex::encode(Sha256::digest(der.as_bytes())),
            pem,
        })
    }

    /// The key id: the hex SHA-256 of the DER SPKI.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The key as a PEM `PUBLIC KEY`.
    pub fn to_pem(&self) -> &str {
        &self.pem
    }

    /// Whether `der` is this key's DER ECDSA signature over `digest` (see the module).
    pub fn verify(&self, digest: &Sha256Digest, der: &[u8]) -> bool {
        let Ok(sig) = DerSignature::from_bytes(der) else {
            return false;
        };
        self.key.verify_prehash(digest.as_bytes(), &sig).is_ok()
            || self.key.verify(digest.as_bytes(), &sig).is_ok()
            || self.key.verify(digest.to_hex().as_bytes(), &sig).is_ok()
    }
}

/// Whether `bytes` looks like a DER ECDSA signature: a SEQUENCE of two INTEGERs.
pub fn is_der(bytes: &[u8]) -> bool {
    DerSignature::from_bytes(bytes).is_ok()
}
