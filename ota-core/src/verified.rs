//! The verified package: a sealed package statement whose signatures were counted, with its
//! id and how it was verified. Only [`crate::sign::verify`] and [`crate::tuf::verify_target`] make one;
//! catalog, rollout and device take nothing else.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::chunk::ChunkTable;
use crate::digest::Sha256Digest;
use crate::dsse::Envelope;
use crate::json;
use crate::keys::KeyId;
use crate::package::Package;
use crate::seal::{Expected, SealInfo};
use crate::sign::SignError;

/// The chunk table and seal information a signed statement must carry.
pub(crate) fn require_sealed(package: &Package) -> Result<(&ChunkTable, &SealInfo), SignError> {
    let chunks = package.chunks.as_ref().ok_or(SignError::NotSealed {
        missing: "chunk table",
    })?;
    let seal = package.seal.as_ref().ok_or(SignError::NotSealed {
        missing: "seal information",
    })?;
    Ok((chunks, seal))
}

/// A package id: `pkg_` and hex characters. Ids made here are the first 16 hex characters of
/// the SHA-256 of the signed statement, so the same statement always has the same id; ids of
/// 4 to 64 hex characters (the OTA API's `pkg_2a0f`) are accepted as references. Immutable
/// text shared by its clones, like [`crate::Name`]: every command a rollout sends names it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageId(std::sync::Arc<str>);

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
        Self::of_digest(&Sha256Digest::of(statement))
    }

    /// The id of a signed statement whose SHA-256 is `digest`.
    pub fn of_digest(digest: &Sha256Digest) -> Self {
        PackageId(format!("pkg_{}", &digest.to_hex()[..16]).into())
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
            Ok(PackageId(s.into()))
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

crate::version::serde_via_str!(PackageId, as_str);

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
    /// A DSSE envelope verified as it was read from storage
    /// ([`verify_reader`](crate::sign::verify_reader)), not kept: the host has it.
    DsseStreamed {
        /// The envelope's payload type.
        payload_type: String,
        /// Its signatures.
        signatures: Vec<crate::dsse::Signature>,
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
/// table. Only [`verify`](crate::sign::verify) (and the TUF client) make one; catalog,
/// rollout and device take nothing else.
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
        self.package.chunks.as_ref().unwrap_or(&*EMPTY_TABLE)
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
            segments: seal.and_then(|s| s.segments.clone()),
        }
    }

    /// The envelope as JSON (for persisting; [`verify`](crate::sign::verify) restores it).
    pub fn envelope_json(&self) -> Option<String> {
        match &self.provenance {
            Provenance::Dsse { envelope } => Some(envelope.to_json()),
            Provenance::DsseStreamed { .. } | Provenance::Tuf { .. } => None,
        }
    }

    /// A package verified through TUF: [`crate::tuf::verify_target`] has counted the targets
    /// role's signatures; here the statement must be valid and sealed.
    pub(crate) fn from_tuf(
        package: Package,
        signed_by: Vec<KeyId>,
        provenance: Provenance,
    ) -> Result<Self, SignError> {
        let package = json::check("package", package).map_err(SignError::Statement)?;
        let id = PackageId::of(package.to_json().as_bytes());
        Self::new(package, id, signed_by, provenance)
    }

    /// A package whose signatures the caller has counted: it must be sealed. `signed_by` is
    /// sorted and deduplicated here.
    pub(crate) fn new(
        package: Package,
        id: PackageId,
        mut signed_by: Vec<KeyId>,
        provenance: Provenance,
    ) -> Result<Self, SignError> {
        require_sealed(&package)?;
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

static EMPTY_TABLE: std::sync::LazyLock<ChunkTable> = std::sync::LazyLock::new(|| ChunkTable {
    chunk_size: crate::chunk::CHUNK_SIZE,
    sha256: Vec::new().into(),
});

#[cfg(test)]
mod tests {
    use super::*;

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
