//! Both ends of seed 004's device protocol.
//!
//! The control plane keeps [`Assignments`]: a package per device and per device profile,
//! the device-level one winning. [`Assignments::authorize`] answers a chunk request: a device
//! may fetch only its own assigned, available package (anything else is
//! `PermissionDenied`), the range is clamped to one 64 KiB chunk, and the last chunk says
//! `complete: true`.
//!
//! The device receives an [`Assignment`] (`GET /devices/{id}/ota`): seed 004's metadata
//! (`package_id`, `type`, `version`, `size_bytes`, `sha256`) plus the signed envelope, the
//! encryption key, the rollout and the health probe. The agent trusts none of the metadata
//! until the envelope verifies and the metadata matches the signed statement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, CatalogError};
use crate::chunk::CHUNK_SIZE;
use crate::digest::Sha256Digest;
use crate::json::{self, Fault, ParseError, Validate};
use crate::limits::Limits;
use crate::name::Name;
use crate::package::PackageType;
use crate::probe::ProbeSpec;
use crate::seal::SealKey;
use crate::sign::{Envelope, PackageId, Provenance, VerifiedPackage};
use crate::status::Status;
use crate::version::Version;

/// What a device is told about its assigned package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// The package.
    pub package_id: PackageId,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: PackageType,
    /// Its version.
    pub version: Version,
    /// The artifact's size, so the device can plan the download.
    pub size_bytes: u64,
    /// The artifact's SHA-256.
    pub sha256: Sha256Digest,
    /// The signed statement.
    pub envelope: Envelope,
    /// The artifact's encryption key (sent over the device's authenticated channel).
    pub encryption_key: SealKey,
    /// The rollout this assignment belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_id: Option<Name>,
    /// The health probe to run after the swap (else the agent's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeSpec>,
}

impl Assignment {
    /// The assignment of a DSSE-verified package (None for one verified through TUF).
    pub fn new(
        package: &VerifiedPackage,
        encryption_key: SealKey,
        rollout_id: Option<Name>,
        probe: Option<ProbeSpec>,
    ) -> Option<Self> {
        // A package verified through TUF has no envelope to carry: a device reaches it through
        // its own TUF client instead.
        let Provenance::Dsse { envelope } = package.provenance() else {
            return None;
        };
        let p = package.package();
        Some(Assignment {
            package_id: package.id().clone(),
            kind: p.kind,
            version: p.version.clone(),
            size_bytes: p.size_bytes,
            sha256: p.sha256,
            envelope: envelope.clone(),
            encryption_key,
            rollout_id,
            probe,
        })
    }

    /// Parses an assignment (bounded like an envelope).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        json::parse(
            "assignment",
            bytes,
            Limits::DEFAULT.max_envelope_bytes() + 4096,
        )
    }

    /// The assignment as JSON (it holds the key: send it only to its device).
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }

    /// Whether the unsigned metadata agrees with the verified statement.
    pub fn matches(&self, package: &VerifiedPackage) -> bool {
        let p = package.package();
        &self.package_id == package.id()
            && self.kind == p.kind
            && self.version == p.version
            && self.size_bytes == p.size_bytes
            && self.sha256 == p.sha256
    }
}

impl Validate for Assignment {
    fn validate_at(&self, _: &str, _: &mut Vec<Fault>) {}
}

/// A device's request for part of its package (`GET /devices/{id}/ota/chunk`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkFetch {
    /// The authenticated device.
    pub device_id: Name,
    /// The device's profile, for profile-level assignments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<Name>,
    /// The package it asks for.
    pub package_id: PackageId,
    /// Where the range starts.
    pub offset: u64,
    /// How much it asks for (clamped to one chunk).
    pub length: u64,
}

/// The range a device may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkGrant {
    /// Where the range starts.
    pub offset: u64,
    /// Its length: at most 64 KiB, never crossing a chunk boundary.
    pub length: u32,
    /// Whether this range ends the artifact.
    pub complete: bool,
}

/// A device's request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The device is not assigned this package.
    #[error("device {device_id} may not fetch {package_id}")]
    PermissionDenied {
        /// The device.
        device_id: Name,
        /// The package it asked for.
        package_id: PackageId,
    },
    /// The assigned package is not available.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The range starts at or past the end of the artifact.
    #[error("offset {offset} is past the end of the {size}-byte artifact")]
    OutOfRange {
        /// The offset.
        offset: u64,
        /// The artifact's size.
        size: u64,
    },
}

impl ProtocolError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            ProtocolError::PermissionDenied { .. } => Status::PermissionDenied,
            ProtocolError::Catalog(e) => e.status(),
            ProtocolError::OutOfRange { .. } => Status::ChunkOutOfRange,
        }
    }
}

/// The control plane's assignments: a package per device and per device profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignments {
    /// Device-level assignments.
    pub devices: BTreeMap<Name, PackageId>,
    /// Profile-level assignments.
    pub profiles: BTreeMap<Name, PackageId>,
}

impl Assignments {
    /// No assignments.
    pub fn new() -> Self {
        Self::default()
    }

    /// The package assigned to a device: its own assignment beats its profile's.
    pub fn resolve(&self, device_id: &Name, profile_id: Option<&Name>) -> Option<&PackageId> {
        self.devices
            .get(device_id)
            .or_else(|| profile_id.and_then(|p| self.profiles.get(p)))
    }

    /// Answers a chunk request: the device's own available package only, one chunk at most.
    pub fn authorize(
        &self,
        catalog: &Catalog,
        fetch: &ChunkFetch,
    ) -> Result<ChunkGrant, ProtocolError> {
        if self.resolve(&fetch.device_id, fetch.profile_id.as_ref()) != Some(&fetch.package_id) {
            return Err(ProtocolError::PermissionDenied {
                device_id: fetch.device_id.clone(),
                package_id: fetch.package_id.clone(),
            });
        }
        let size = catalog.assignable(&fetch.package_id)?.package().size_bytes;
        clamp(fetch.offset, fetch.length, size)
    }
}

/// Clamps a requested range to one chunk: at most 64 KiB, never past the chunk's end or the
/// artifact's; `complete` on the range that ends the artifact.
pub fn clamp(offset: u64, length: u64, size: u64) -> Result<ChunkGrant, ProtocolError> {
    if offset >= size {
        return Err(ProtocolError::OutOfRange { offset, size });
    }
    let chunk_end = (offset / u64::from(CHUNK_SIZE) + 1) * u64::from(CHUNK_SIZE);
    let end = offset
        .saturating_add(length.max(1))
        .min(chunk_end)
        .min(size);
    Ok(ChunkGrant {
        offset,
        length: u32::try_from(end - offset).unwrap_or(CHUNK_SIZE),
        complete: end == size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_clamped_to_one_chunk() {
        let size = 200_000;
        assert_eq!(
            clamp(0, 1 << 20, size).unwrap(),
            ChunkGrant {
                offset: 0,
                length: 65536,
                complete: false
            }
        );
        assert_eq!(
            clamp(65536, 10, size).unwrap(),
            ChunkGrant {
                offset: 65536,
                length: 10,
                complete: false
            }
        );
        assert_eq!(clamp(100, 1 << 20, size).unwrap().length, 65436);
        assert_eq!(
            clamp(196_608, 65536, size).unwrap(),
            ChunkGrant {
                offset: 196_608,
                length: 3392,
                complete: true
            }
        );
        assert!(clamp(200_000, 1, size).is_err());
    }
}
