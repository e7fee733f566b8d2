//! The control plane's package catalog.
//!
//! A package enters as a [`VerifiedPackage`] and is `pending`. The control plane then streams
//! the artifact's bytes through an [`ArtifactCheck`]; only if their size, SHA-256 and chunk
//! table all match what was signed does the package become `available`. A mismatch makes it
//! `rejected` for good, with an invalid-argument error (the OTA API): it can never be assigned.
//!
//! The catalog answers "the latest available version of X on channel Y", and records which
//! keys signed each package, for the Trust Center view (the push-a-model-bundle guide). Time is an argument.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::chunk::{ChunkHasher, Digests};
use crate::digest::Sha256Digest;
use crate::name::Name;
use crate::package::{Channel, PackageType};
use crate::sign::{KeyId, PackageId, VerifiedPackage};
use crate::status::Status;
use crate::time::UnixMs;
use crate::version::Version;

/// Where a package stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum State {
    /// Registered; its bytes have not been checked yet.
    Pending,
    /// Its bytes match what was signed; it may be assigned.
    Available {
        /// When the bytes were checked.
        checked_at: UnixMs,
    },
    /// Its bytes do not match; it can never be assigned.
    Rejected {
        /// When the bytes were checked.
        checked_at: UnixMs,
        /// What did not match.
        reason: String,
    },
}

/// A package in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The verified package.
    pub package: VerifiedPackage,
    /// Where it stands.
    pub state: State,
    /// When it was registered.
    pub registered_at: UnixMs,
}

/// The Trust Center's line for one package: what was signed and by which keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustRecord {
    /// The package id.
    pub id: PackageId,
    /// The package's type.
    #[serde(rename = "type")]
    pub kind: PackageType,
    /// Its name.
    pub name: Name,
    /// Its version.
    pub version: Version,
    /// Its channel.
    pub channel: Channel,
    /// The signed artifact digest.
    pub sha256: Sha256Digest,
    /// The signed artifact size.
    pub size_bytes: u64,
    /// The keys whose signatures were verified.
    pub signed_by: Vec<KeyId>,
    /// `pending`, `available` or `rejected`.
    pub state: &'static str,
}

/// A catalog operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// No package has this id.
    #[error("no package {id}")]
    NotFound {
        /// The id.
        id: PackageId,
    },
    /// The package cannot be assigned in its state.
    #[error("package {id} is {state}, not available")]
    NotAvailable {
        /// The id.
        id: PackageId,
        /// `pending` or `rejected`.
        state: &'static str,
    },
    /// The artifact's bytes differ from what was signed; the package is now rejected.
    #[error("package {id} rejected: the artifact's {what} does not match what was signed")]
    ArtifactMismatch {
        /// The id.
        id: PackageId,
        /// `size`, `sha256` or `chunk table`.
        what: &'static str,
    },
    /// The package was checked already.
    #[error("package {id} was already checked: it is {state}")]
    AlreadyChecked {
        /// The id.
        id: PackageId,
        /// Its state.
        state: &'static str,
    },
}

impl CatalogError {
    /// The stable status code of this error: a mismatch is of the invalid-argument class,
    /// as in the OTA API.
    pub fn status(&self) -> Status {
        match self {
            CatalogError::NotFound { .. } => Status::PackageNotFound,
            CatalogError::NotAvailable { .. } => Status::PackageNotAvailable,
            CatalogError::ArtifactMismatch { .. } => Status::InvalidArgument,
            CatalogError::AlreadyChecked { .. } => Status::InvalidArgument,
        }
    }
}

impl State {
    /// The state's name.
    pub fn name(&self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Available { .. } => "available",
            State::Rejected { .. } => "rejected",
        }
    }
}

/// Checks an artifact's bytes as they stream through: size, SHA-256 and chunk table.
#[derive(Clone)]
pub struct ArtifactCheck {
    id: PackageId,
    hasher: ChunkHasher,
}

impl ArtifactCheck {
    /// Hashes the next bytes of the artifact.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// The package this check is for.
    pub fn id(&self) -> &PackageId {
        &self.id
    }
}

/// The catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: BTreeMap<PackageId, Entry>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a verified package as pending and returns its id. Registering the same
    /// statement again returns the same id and changes nothing.
    pub fn register(&mut self, package: VerifiedPackage, now: UnixMs) -> PackageId {
        let id = package.id().clone();
        self.entries.entry(id.clone()).or_insert(Entry {
            package,
            state: State::Pending,
            registered_at: now,
        });
        id
    }

    /// The entry with this id.
    pub fn get(&self, id: &PackageId) -> Result<&Entry, CatalogError> {
        self.entries
            .get(id)
            .ok_or_else(|| CatalogError::NotFound { id: id.clone() })
    }

    /// Starts checking a pending package's artifact.
    pub fn begin_check(&self, id: &PackageId) -> Result<ArtifactCheck, CatalogError> {
        let entry = self.get(id)?;
        if entry.state != State::Pending {
            return Err(CatalogError::AlreadyChecked {
                id: id.clone(),
                state: entry.state.name(),
            });
        }
        Ok(ArtifactCheck {
            id: id.clone(),
            hasher: ChunkHasher::new(),
        })
    }

    /// Ends a check: the package becomes available if everything matched, rejected
    /// otherwise (and the mismatch is returned).
    pub fn finish_check(&mut self, check: ArtifactCheck, now: UnixMs) -> Result<(), CatalogError> {
        let id = check.id;
        let entry = self
            .entries
            .get_mut(&id)
            .ok_or_else(|| CatalogError::NotFound { id: id.clone() })?;
        if entry.state != State::Pending {
            return Err(CatalogError::AlreadyChecked {
                id,
                state: entry.state.name(),
            });
        }
        let Digests {
            sha256,
            size_bytes,
            chunks,
        } = check.hasher.finish();
        let signed = entry.package.package();
        let mismatch = if size_bytes != signed.size_bytes {
            Some("size")
        } else if sha256 != signed.sha256 {
            Some("sha256")
        } else if &chunks != entry.package.chunks() {
            Some("chunk table")
        } else {
            None
        };
        match mismatch {
            None => {
                entry.state = State::Available { checked_at: now };
                Ok(())
            }
            Some(what) => {
                let err = CatalogError::ArtifactMismatch { id, what };
                entry.state = State::Rejected {
                    checked_at: now,
                    reason: err.to_string(),
                };
                Err(err)
            }
        }
    }

    /// Checks a pending package's artifact from a reader in one call.
    pub fn check_artifact(
        &mut self,
        id: &PackageId,
        mut artifact: impl std::io::Read,
        now: UnixMs,
    ) -> Result<(), CatalogError> {
        let mut check = self.begin_check(id)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match artifact.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => check.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // An unreadable artifact cannot be shown to match: it stays pending.
                    return Err(CatalogError::NotAvailable {
                        id: id.clone(),
                        state: "pending",
                    });
                }
            }
        }
        self.finish_check(check, now)
    }

    /// The package if it may be assigned: only an available one.
    pub fn assignable(&self, id: &PackageId) -> Result<&VerifiedPackage, CatalogError> {
        let entry = self.get(id)?;
        match entry.state {
            State::Available { .. } => Ok(&entry.package),
            _ => Err(CatalogError::NotAvailable {
                id: id.clone(),
                state: entry.state.name(),
            }),
        }
    }

    /// The highest available version of `name` on `channel`.
    pub fn latest(&self, name: &str, channel: Channel) -> Option<&Entry> {
        self.entries
            .values()
            .filter(|e| matches!(e.state, State::Available { .. }))
            .filter(|e| {
                e.package.package().name.as_str() == name && e.package.package().channel == channel
            })
            .max_by(|a, b| {
                a.package
                    .package()
                    .version
                    .cmp(&b.package.package().version)
            })
    }

    /// Every entry, by id.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// What was signed, and by which keys: one record per package, by id.
    pub fn trust_center(&self) -> Vec<TrustRecord> {
        self.entries
            .values()
            .map(|e| {
                let p = e.package.package();
                TrustRecord {
                    id: e.package.id().clone(),
                    kind: p.kind,
                    name: p.name.clone(),
                    version: p.version.clone(),
                    channel: p.channel,
                    sha256: p.sha256,
                    size_bytes: p.size_bytes,
                    signed_by: e.package.signed_by().to_vec(),
                    state: e.state.name(),
                }
            })
            .collect()
    }
}
