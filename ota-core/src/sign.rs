//! Signing and verifying a package statement: [`sign`] wraps a sealed statement in a DSSE
//! envelope, and threshold verification ([`verify`]) yields a [`VerifiedPackage`] — the only
//! way to get one.
//!
//! [`verify`] counts distinct trusted keys with a valid signature: a key that signs twice
//! counts once, and signatures by unknown keys are ignored. Only then is the payload parsed.
//!
//! The keys are [`crate::keys`], the envelope [`crate::dsse`], the result
//! [`crate::verified`]; their names are re-exported here.

use std::collections::BTreeSet;

use crate::json::{self, ParseError};
use crate::limits::Limits;
use crate::package::Package;
use crate::status::Status;
use crate::verified::require_sealed;

mod stream;

pub use stream::verify_reader;

pub use crate::dsse::{Envelope, Pae, Signature, pae};
pub use crate::keys::{KeyError, KeyId, MessageVerifier, PublicKey, SigningKey, TrustedKeys};
pub use crate::verified::{PackageId, PackageIdError, Provenance, VerifiedPackage};

/// The DSSE payload type of a package statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.ota.package+json";

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
    /// The envelope or the chunk table's store could not be read or written
    /// ([`verify_reader`]).
    #[error("{message}")]
    Read {
        /// What failed.
        message: String,
    },
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
            SignError::Read { .. } => Status::Io,
        }
    }
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
    // The signed message is hashed where its pieces lie: the payload is not copied into it.
    let pae = Pae::new(&env.payload_type, &env.payload);
    let [head, payload] = pae.parts();
    let mut checks = Checks::start(&env.signatures, trusted, head);
    checks.update(payload);
    let good = checks.finish(threshold)?;
    let package =
        Package::from_json_with_limits(&env.payload, limits).map_err(SignError::Statement)?;
    let id = PackageId::of(&env.payload);
    VerifiedPackage::new(package, id, good, Provenance::Dsse { envelope: env })
}

/// The signature checks of one envelope, fed its payload as it comes: whole
/// ([`verify_envelope`]) or streamed from storage ([`verify_reader`]).
pub(crate) struct Checks {
    pending: Vec<(KeyId, MessageVerifier)>,
    bad: BTreeSet<KeyId>,
}

impl Checks {
    /// One check per trusted key, on its first signature, each fed the pre-authentication
    /// encoding's `head`. Each trusted key is tried once: more signatures naming it cost no
    /// more hashing of the payload (an envelope of thousands of bad signatures by one trusted
    /// key id would otherwise hash the whole payload thousands of times). Signatures by
    /// unknown keys are ignored.
    pub(crate) fn start(signatures: &[Signature], trusted: &TrustedKeys, head: &[u8]) -> Self {
        let mut checks = Checks {
            pending: Vec::new(),
            bad: BTreeSet::new(),
        };
        for s in signatures {
            let Ok(id) = s.keyid.parse::<KeyId>() else {
                continue;
            };
            let Some(key) = trusted.get(&id) else {
                continue;
            };
            if checks.bad.contains(&id) || checks.pending.iter().any(|(k, _)| *k == id) {
                continue;
            }
            match key.verifier(&s.sig) {
                Some(mut v) => {
                    v.update(head);
                    checks.pending.push((id, v));
                }
                None => {
                    checks.bad.insert(id);
                }
            }
        }
        checks
    }

    /// Hashes the next piece of the payload into every check.
    pub(crate) fn update(&mut self, piece: &[u8]) {
        for (_, v) in &mut self.pending {
            v.update(piece);
        }
    }

    /// The distinct trusted keys whose signatures hold, sorted, if at least `threshold`.
    pub(crate) fn finish(self, threshold: usize) -> Result<Vec<KeyId>, SignError> {
        let mut bad = self.bad;
        let mut good = BTreeSet::new();
        for (id, v) in self.pending {
            if v.finish() {
                good.insert(id);
            } else {
                bad.insert(id);
            }
        }
        if good.len() >= threshold {
            return Ok(good.into_iter().collect());
        }
        let bad: Vec<KeyId> = bad.into_iter().collect();
        Err(if bad.is_empty() {
            SignError::ThresholdNotMet {
                needed: threshold,
                found: good.len(),
            }
        } else {
            SignError::SignatureInvalid { keyids: bad }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{CHUNK_SIZE, ChunkTable};
    use crate::digest::Sha256Digest;
    use crate::seal::{Cipher, Compression, SealInfo};

    pub(super) fn key(n: u8) -> SigningKey {
        SigningKey::from_secret([n; 32])
    }

    fn package() -> Package {
        sealed(48, vec![Sha256Digest::of(b"x")])
    }

    /// A sealed package statement of `size_bytes` with these chunk digests (the streamed
    /// verifier's tests use it too).
    pub(super) fn sealed(size_bytes: u64, chunks: Vec<Sha256Digest>) -> Package {
        let mut p: Package = serde_json::from_value(serde_json::json!({
            "type": "fw", "name": "temp-sensor-fw", "version": "2.0.0",
            "artifact_uri": "s3://ota-artifacts/temp-sensor/fw-2.0.0.enc",
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "size_bytes": size_bytes,
        }))
        .unwrap();
        p.chunks = Some(ChunkTable {
            chunk_size: CHUNK_SIZE,
            sha256: chunks.into(),
        });
        p.seal = Some(SealInfo {
            cipher: Cipher::Aes256Cbc,
            compression: Compression::Gzip,
            plaintext_size: 5,
            plaintext_sha256: Sha256Digest::of(b"hello"),
            segments: None,
        });
        p
    }

    pub(super) fn trusted(keys: &[u8]) -> TrustedKeys {
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
    fn a_trusted_key_is_tried_once_on_its_first_signature() {
        let p = package();
        let good = sign(&p, &[&key(1)]).unwrap();
        // Thousands of bad signatures naming one trusted key cost one check, not thousands
        // of hashings of the payload: the key is judged on its first, and fails.
        let mut flood = good.clone();
        let mut forged = flood.signatures[0].clone();
        forged.sig[0] ^= 1;
        flood.signatures = vec![forged; 5000];
        flood.signatures.push(good.signatures[0].clone());
        let err = verify_env(&flood, &trusted(&[1]), 1).unwrap_err();
        assert!(
            matches!(&err, SignError::SignatureInvalid { keyids } if keyids.len() == 1),
            "{err:?}"
        );
        // Its first signature good, the bad ones after it change nothing.
        let mut first_good = good.clone();
        first_good
            .signatures
            .extend(flood.signatures[..100].iter().cloned());
        assert!(verify_env(&first_good, &trusted(&[1]), 1).is_ok());
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
}
