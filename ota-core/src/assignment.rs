//! Both ends of the OTA API's device protocol.
//!
//! The control plane keeps [`Assignments`]: a package per device and per device profile,
//! the device-level one winning. [`Assignments::authorize`] answers a chunk request: a device
//! may fetch only its own assigned, available package (anything else is
//! `PermissionDenied`), the range is clamped to one 64 KiB chunk, and the last chunk says
//! `complete: true`.
//!
//! The device receives an [`Assignment`] (`GET /devices/{id}/ota`): the OTA API's metadata
//! (`package_id`, `type`, `version`, `size_bytes`, `sha256`) plus the [`Proof`] of the package
//! statement, the encryption key, the rollout and the health probe. The proof is the route the
//! package was verified by: a DSSE envelope (`"envelope"`), which the agent verifies against
//! its own trusted keys, or a TUF target (`"tuf_target"`), which the device's TUF client
//! resolves to a [`VerifiedPackage`] that the host hands the agent. The agent trusts none of
//! the metadata until the proof verifies and the metadata matches the verified statement.

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

/// What proves an assignment's package statement: the route it was verified by.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Proof {
    /// A DSSE envelope over the statement; the agent verifies it against its trusted keys.
    Dsse(Envelope),
    /// A target of a TUF repository; the device's TUF client resolves it to a
    /// [`VerifiedPackage`] (`Provenance::Tuf` with this target), which the host hands the
    /// agent with the assignment, and again when it restores the agent mid-download.
    Tuf {
        /// The target's name.
        target: String,
    },
}

/// What a device is told about its assigned package.
///
/// JSON: `{"package_id", "type", "version", "size_bytes", "sha256", "envelope" | "tuf_target",
/// "encryption_key", "rollout_id"?, "attempt"?, "probe"?}`, with exactly one of `envelope` and
/// `tuf_target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AssignmentJson", into = "AssignmentJson")]
pub struct Assignment {
    /// The package.
    pub package_id: PackageId,
    /// Its type.
    pub kind: PackageType,
    /// Its version.
    pub version: Version,
    /// The artifact's size, so the device can plan the download.
    pub size_bytes: u64,
    /// The artifact's SHA-256.
    pub sha256: Sha256Digest,
    /// What proves the statement.
    pub proof: Proof,
    /// The artifact's encryption key (sent over the device's authenticated channel).
    pub encryption_key: SealKey,
    /// The rollout this assignment belongs to.
    pub rollout_id: Option<Name>,
    /// The attempt of the rollout's command (1 is the first; a retry adds one), which the
    /// agent says back in its reports so the rollout can tell a retry's outcome from an
    /// earlier attempt's.
    pub attempt: Option<u32>,
    /// The health probe to run after the swap (else the agent's default).
    pub probe: Option<ProbeSpec>,
}

/// The wire form of [`Assignment`]: the proof as one of two fields.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentJson {
    package_id: PackageId,
    #[serde(rename = "type")]
    kind: PackageType,
    version: Version,
    size_bytes: u64,
    sha256: Sha256Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    envelope: Option<Envelope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tuf_target: Option<String>,
    encryption_key: SealKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rollout_id: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probe: Option<ProbeSpec>,
}

impl TryFrom<AssignmentJson> for Assignment {
    type Error = &'static str;
    fn try_from(j: AssignmentJson) -> Result<Self, Self::Error> {
        if j.attempt == Some(0) {
            return Err("attempt: an attempt counts from 1");
        }
        let proof = match (j.envelope, j.tuf_target) {
            (Some(envelope), None) => Proof::Dsse(envelope),
            (None, Some(target)) => Proof::Tuf { target },
            (None, None) => return Err("an assignment needs `envelope` or `tuf_target`"),
            (Some(_), Some(_)) => {
                return Err("an assignment has `envelope` or `tuf_target`, not both");
            }
        };
        Ok(Assignment {
            package_id: j.package_id,
            kind: j.kind,
            version: j.version,
            size_bytes: j.size_bytes,
            sha256: j.sha256,
            proof,
            encryption_key: j.encryption_key,
            rollout_id: j.rollout_id,
            attempt: j.attempt,
            probe: j.probe,
        })
    }
}

impl From<Assignment> for AssignmentJson {
    fn from(a: Assignment) -> Self {
        let (envelope, tuf_target) = match a.proof {
            Proof::Dsse(envelope) => (Some(envelope), None),
            Proof::Tuf { target } => (None, Some(target)),
        };
        AssignmentJson {
            package_id: a.package_id,
            kind: a.kind,
            version: a.version,
            size_bytes: a.size_bytes,
            sha256: a.sha256,
            envelope,
            tuf_target,
            encryption_key: a.encryption_key,
            rollout_id: a.rollout_id,
            attempt: a.attempt,
            probe: a.probe,
        }
    }
}

impl Assignment {
    /// The assignment of a verified package, by the route it was verified by: its DSSE
    /// envelope, or its TUF target. `None` for a package verified as its envelope streamed
    /// by ([`crate::sign::verify_reader`], a device's way): the envelope was not kept.
    pub fn new(
        package: &VerifiedPackage,
        encryption_key: SealKey,
        rollout_id: Option<Name>,
        probe: Option<ProbeSpec>,
    ) -> Option<Self> {
        let proof = match package.provenance() {
            Provenance::Dsse { envelope } => Proof::Dsse(envelope.clone()),
            Provenance::Tuf { target, .. } => Proof::Tuf {
                target: target.clone(),
            },
            Provenance::DsseStreamed { .. } => return None,
        };
        let p = package.package();
        Some(Assignment {
            package_id: package.id().clone(),
            kind: p.kind,
            version: p.version.clone(),
            size_bytes: p.size_bytes,
            sha256: p.sha256,
            proof,
            encryption_key,
            rollout_id,
            attempt: None,
            probe,
        })
    }

    /// The assignment naming the attempt of the rollout's command ([`Assignment::attempt`]).
    #[must_use]
    pub fn with_attempt(mut self, attempt: Option<u32>) -> Self {
        self.attempt = attempt;
        self
    }

    /// The largest assignment accepted: an envelope and a few fields.
    pub fn max_bytes(limits: &Limits) -> usize {
        limits.max_envelope_bytes() + limits.max_document_bytes
    }

    /// Parses an assignment, bounded by [`Assignment::max_bytes`].
    pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        json::parse("assignment", bytes, Self::max_bytes(limits))
    }

    /// The assignment as JSON (it holds the key: send it only to its device).
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }

    /// The first field of the unsigned metadata that disagrees with the verified statement
    /// (`package_id`, `type`, `version`, `size_bytes`, `sha256`, `tuf_target`), if any.
    pub fn mismatch(&self, package: &VerifiedPackage) -> Option<&'static str> {
        let p = package.package();
        if &self.package_id != package.id() {
            Some("package_id")
        } else if self.kind != p.kind {
            Some("type")
        } else if self.version != p.version {
            Some("version")
        } else if self.size_bytes != p.size_bytes {
            Some("size_bytes")
        } else if self.sha256 != p.sha256 {
            Some("sha256")
        } else {
            match (&self.proof, package.provenance()) {
                (Proof::Tuf { target }, Provenance::Tuf { target: t, .. }) if target != t => {
                    Some("tuf_target")
                }
                _ => None,
            }
        }
    }

    /// Whether the unsigned metadata agrees with the verified statement.
    pub fn matches(&self, package: &VerifiedPackage) -> bool {
        self.mismatch(package).is_none()
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
        assert_eq!(
            clamp(200_000, 1, size),
            Err(ProtocolError::OutOfRange {
                offset: 200_000,
                size
            })
        );
    }

    #[test]
    fn an_assignment_has_exactly_one_proof() {
        let limits = Limits::default();
        let with = |proof: &str| {
            format!(
                r#"{{"package_id":"pkg_2a0f","type":"fw","version":"2.0.0","size_bytes":1,
                    "sha256":"{}",{proof}"encryption_key":"{}"}}"#,
                "ab".repeat(32),
                "5e".repeat(32)
            )
        };
        let envelope = r#""envelope":{"payloadType":"t","payload":"","signatures":[]},"#;
        let tuf = r#""tuf_target":"fw/2.0.0/fw.enc","#;
        let a = Assignment::from_json(with(envelope).as_bytes(), &limits).unwrap();
        assert!(matches!(a.proof, Proof::Dsse(_)));
        let a = Assignment::from_json(with(tuf).as_bytes(), &limits).unwrap();
        assert_eq!(
            a.proof,
            Proof::Tuf {
                target: "fw/2.0.0/fw.enc".into()
            }
        );
        assert_eq!(
            Assignment::from_json(a.to_json().as_bytes(), &limits).unwrap(),
            a
        );
        for (proof, why) in [
            ("", "needs `envelope` or `tuf_target`"),
            (&*format!("{envelope}{tuf}"), "not both"),
        ] {
            let e = Assignment::from_json(with(proof).as_bytes(), &limits).unwrap_err();
            assert_eq!(e.status(), Status::InvalidValue, "{e}");
            assert!(e.to_string().contains(why), "{e}");
        }
    }
}
