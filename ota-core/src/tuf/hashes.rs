//! Lengths and hashes of metadata files and targets, checked in one pass as bytes arrive.
//!
//! Every algorithm the metadata lists that this client knows (`sha224`, `sha256`, `sha384`,
//! `sha512`) is checked, and all of them must match; unknown ones are skipped, and a list
//! with no known algorithm at all is refused.

use sha2::Digest;

/// The hashes a role lists for a file: (algorithm, lowercase hex), sorted by algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hashes(pub Vec<(String, String)>);

impl Hashes {
    /// The hex digest for `algorithm`, if listed.
    pub fn get(&self, algorithm: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(a, _)| a == algorithm)
            .map(|(_, h)| h.as_str())
    }

    /// Whether no hash is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The hash a consistent snapshot names a target by: SHA-256 when listed, else the first.
    pub fn for_url(&self) -> Option<&str> {
        self.get("sha256")
            .or_else(|| self.0.first().map(|(_, h)| h.as_str()))
    }
}

enum Hasher {
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(algorithm: &str) -> Option<Hasher> {
        Some(match algorithm {
            "sha224" => Hasher::Sha224(sha2::Sha224::new()),
            "sha256" => Hasher::Sha256(sha2::Sha256::new()),
            "sha384" => Hasher::Sha384(sha2::Sha384::new()),
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => return None,
        })
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha224(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha384(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Sha224(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha384(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// Why bytes are not the file a role describes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// More bytes than the length allows.
    #[error("longer than its {length} bytes")]
    TooLong {
        /// The length the role gives.
        length: u64,
    },
    /// Fewer bytes than the length.
    #[error("{got} bytes, {length} expected")]
    TooShort {
        /// The length the role gives.
        length: u64,
        /// What arrived.
        got: u64,
    },
    /// A hash differs.
    #[error("{algorithm} is {got}, {expected} expected")]
    Hash {
        /// The algorithm.
        algorithm: String,
        /// The digest the role gives.
        expected: String,
        /// The digest of the bytes.
        got: String,
    },
    /// Hashes are listed but none in an algorithm this client knows.
    #[error("no hash in a known algorithm (sha224, sha256, sha384, sha512)")]
    NoKnownHash,
}

/// Checks bytes against a length and hashes as they arrive.
pub struct Verifier {
    length: Option<u64>,
    seen: u64,
    hashers: Vec<(String, String, Hasher)>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({} of {:?} bytes)", self.seen, self.length)
    }
}

impl Verifier {
    /// A verifier for `length` (when given) and `hashes` (when listed).
    pub fn new(length: Option<u64>, hashes: &Hashes) -> Result<Verifier, Mismatch> {
        let hashers: Vec<_> = hashes
            .0
            .iter()
            .filter_map(|(a, h)| Hasher::new(a).map(|hasher| (a.clone(), h.clone(), hasher)))
            .collect();
        if hashers.is_empty() && !hashes.is_empty() {
            return Err(Mismatch::NoKnownHash);
        }
        Ok(Verifier {
            length,
            seen: 0,
            hashers,
        })
    }

    /// Takes the next bytes; refuses them once the total passes the length.
    pub fn update(&mut self, bytes: &[u8]) -> Result<(), Mismatch> {
        self.seen += bytes.len() as u64;
        if let Some(length) = self.length.filter(|l| self.seen > *l) {
            return Err(Mismatch::TooLong { length });
        }
        for (_, _, h) in &mut self.hashers {
            h.update(bytes);
        }
        Ok(())
    }

    /// The bytes seen so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Checks the whole: the length, then every hash.
    pub fn finish(self) -> Result<(), Mismatch> {
        if let Some(length) = self.length.filter(|l| self.seen != *l) {
            return Err(Mismatch::TooShort {
                length,
                got: self.seen,
            });
        }
        for (algorithm, expected, h) in self.hashers {
            let got = h.finish();
            if !got.eq_ignore_ascii_case(&expected) {
                return Err(Mismatch::Hash {
                    algorithm,
                    expected,
                    got,
                });
            }
        }
        Ok(())
    }
}

/// Checks whole bytes against a length and hashes.
pub fn check(bytes: &[u8], length: Option<u64>, hashes: &Hashes) -> Result<(), Mismatch> {
    let mut v = Verifier::new(length, hashes)?;
    v.update(bytes)?;
    v.finish()
}
