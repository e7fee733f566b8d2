//! TUF public keys and signature checks: Ed25519, ECDSA over P-256 with SHA-256, and RSA with
//! SHA-256 (PSS, and PKCS#1 v1.5), as the specification and securesystemslib name them. All
//! pure Rust.
//!
//! A key is read from its metadata form (`keytype`, `scheme`, `keyval.public`): Ed25519 as 64
//! hex characters, ECDSA and RSA as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo). A signature is
//! the hex of the scheme's bytes: 64 bytes for Ed25519, DER (or 64 raw bytes) for ECDSA, the
//! modulus' length for RSA.

use serde_json::Value;

/// A public key a role may trust.
#[derive(Debug, Clone)]
pub enum Key {
    /// `ed25519` / `ed25519`.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// `ecdsa` (or `ecdsa-sha2-nistp256`) / `ecdsa-sha2-nistp256`.
    EcdsaP256(Box<p256::ecdsa::VerifyingKey>),
    /// `rsa` / `rsassa-pss-sha256`.
    RsaPss(Box<rsa::pss::VerifyingKey<sha2::Sha256>>),
    /// `rsa` / `rsa-pkcs1v15-sha256`.
    RsaPkcs1(Box<rsa::pkcs1v15::VerifyingKey<sha2::Sha256>>),
}

/// Why a key could not be read (the key is then trusted by no one: its signatures never count).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key: {0}")]
pub struct KeyError(pub String);

impl Key {
    /// Whether `other` is this key: the same public key, whatever id or RSA scheme names it.
    /// A threshold counts keys, not the ids that name them (one key listed under two ids
    /// signs once).
    pub fn is(&self, other: &Key) -> bool {
        match (self, other) {
            (Key::Ed25519(a), Key::Ed25519(b)) => a == b,
            (Key::EcdsaP256(a), Key::EcdsaP256(b)) => a == b,
            _ => match (self.rsa(), other.rsa()) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }

    /// The RSA public key of either RSA scheme.
    fn rsa(&self) -> Option<&rsa::PublicKey> {
        match self {
            Key::RsaPss(k) => Some(k.as_ref().as_ref()),
            Key::RsaPkcs1(k) => Some(k.as_ref().as_ref()),
            _ => None,
        }
    }

    /// Reads a key from its metadata form.
    pub fn from_json(key: &Value) -> Result<Key, KeyError> {
        let text = |f: &str| key.get(f).and_then(Value::as_str);
        let keytype =
            text("keytype").ok_or_else(|| KeyError("keytype: must be a string".into()))?;
        let scheme = text("scheme").ok_or_else(|| KeyError("scheme: must be a string".into()))?;
        let public = key
            .get("keyval")
            .and_then(|v| v.get("public"))
            .and_then(Value::as_str)
            .ok_or_else(|| KeyError("keyval.public: must be a string".into()))?;
        let bad = |e: &dyn std::fmt::Display| KeyError(format!("keyval.public: {e}"));
        match (keytype, scheme) {
            ("ed25519", "ed25519") => {
                let bytes: [u8; 32] = hex::decode(public)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bad(&"must be 64 hex characters"))?;
                ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map(Key::Ed25519)
                    .map_err(|e| bad(&e))
            }
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
                use p256::pkcs8::DecodePublicKey;
                p256::ecdsa::VerifyingKey::from_public_key_pem(public.trim())
                    .map(|k| Key::EcdsaP256(Box::new(k)))
                    .map_err(|e| bad(&e))
            }
            ("rsa", "rsassa-pss-sha256" | "rsa-pkcs1v15-sha256") => {
                use rsa::pkcs8::DecodePublicKey;
                let key =
                    rsa::PublicKey::from_public_key_pem(public.trim()).map_err(|e| bad(&e))?;
                Ok(if scheme == "rsassa-pss-sha256" {
                    Key::RsaPss(Box::new(rsa::pss::VerifyingKey::new_with_auto_salt_len(
                        key,
                    )))
                } else {
                    Key::RsaPkcs1(Box::new(rsa::pkcs1v15::VerifyingKey::new(key)))
                })
            }
            (t, s) => Err(KeyError(format!(
                "keytype {t:?} with scheme {s:?} is not supported"
            ))),
        }
    }

    /// Whether `sig_hex` is this key's valid signature over `message`.
    pub fn verify(&self, message: &[u8], sig_hex: &str) -> bool {
        let Ok(sig) = hex::decode(sig_hex) else {
            return false;
        };
        match self {
            Key::Ed25519(k) => <[u8; 64]>::try_from(sig.as_slice()).is_ok_and(|s| {
                k.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&s))
                    .is_ok()
            }),
            Key::EcdsaP256(k) => {
                use p256::ecdsa::signature::Verifier;
                let sig = p256::ecdsa::Signature::from_der(&sig)
                    .or_else(|_| p256::ecdsa::Signature::from_slice(&sig));
                sig.is_ok_and(|s| k.verify(message, &s).is_ok())
            }
            Key::RsaPss(k) => {
                use rsa::signature::Verifier;
                rsa::pss::Signature::try_from(sig.as_slice())
                    .is_ok_and(|s| k.verify(message, &s).is_ok())
            }
            Key::RsaPkcs1(k) => {
                use rsa::signature::Verifier;
                rsa::pkcs1v15::Signature::try_from(sig.as_slice())
                    .is_ok_and(|s| k.verify(message, &s).is_ok())
            }
        }
    }

    /// The raw Ed25519 public key, for a package's `signed_by`.
    pub fn ed25519(&self) -> Option<[u8; 32]> {
        match self {
            Key::Ed25519(k) => Some(k.to_bytes()),
            _ => None,
        }
    }
}
