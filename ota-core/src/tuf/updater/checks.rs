//! What makes a role's new metadata trusted (sections 5.3 to 5.6 of the TUF specification):
//! its size, its listed length and hashes, its signatures by its delegator's threshold, its
//! type, version and expiry, and no rollback. The state machine in the parent module decides
//! when each is read; these decide whether it is trusted, and keep it when it is.

use super::{Held, TimestampUpdate, Updater};
use crate::tuf::error::UpdateError;
use crate::tuf::hashes;
use crate::tuf::metadata::{self, KeyRing, RoleKeys, Root, Snapshot, Targets, Timestamp};

impl Updater {
    /// 5.3: `N.root.json`, signed by the trusted root's threshold and by its own, version N,
    /// becomes the trusted root.
    pub(super) fn update_root(&mut self, bytes: &[u8], version: u64) -> Result<(), UpdateError> {
        too_large("root", bytes, self.config.root_max_length)?;
        let env = metadata::open("root", "root", bytes)?;
        let refused = |e: UpdateError| UpdateError::RootRotation {
            version,
            detail: e.to_string(),
        };
        let old = &self.root.meta;
        metadata::verify("root", &env, &old.keys, old.role("root")).map_err(refused)?;
        let meta = Root::read(&env.signed)?;
        if meta.common.version != version {
            return Err(UpdateError::VersionMismatch {
                role: "root".into(),
                expected: version,
                got: meta.common.version,
                named_by: "the URL",
            });
        }
        let signers =
            metadata::verify("root", &env, &meta.keys, meta.role("root")).map_err(refused)?;
        let signer_keys = metadata::ed25519_of(&meta.keys, &signers);
        self.root = Held {
            meta,
            bytes: bytes.to_vec(),
            signers,
            signer_keys,
        };
        Ok(())
    }

    /// 5.4: a timestamp signed by the root's timestamp threshold, neither it nor the snapshot
    /// it names older than the trusted ones, becomes trusted (one of the trusted version is
    /// not used).
    pub(super) fn update_timestamp(
        &mut self,
        bytes: &[u8],
        remote: bool,
    ) -> Result<TimestampUpdate, UpdateError> {
        if remote {
            too_large("timestamp", bytes, self.config.timestamp_max_length)?;
        }
        let env = metadata::open("timestamp", "timestamp", bytes)?;
        let root = &self.root.meta;
        let signers = metadata::verify("timestamp", &env, &root.keys, root.role("timestamp"))?;
        let signer_keys = metadata::ed25519_of(&root.keys, &signers);
        let meta = Timestamp::read(&env.signed)?;
        if let Some(old) = &self.timestamp {
            let (new_v, old_v) = (meta.common.version, old.meta.common.version);
            if new_v < old_v {
                return Err(UpdateError::Rollback {
                    detail: format!("timestamp v{new_v} is older than the trusted v{old_v}"),
                });
            }
            if new_v == old_v {
                return Ok(TimestampUpdate::SameVersion);
            }
            let (new_s, old_s) = (meta.snapshot.version, old.meta.snapshot.version);
            if new_s < old_s {
                return Err(UpdateError::Rollback {
                    detail: format!(
                        "timestamp v{new_v} names snapshot v{new_s}, older than the trusted v{old_s}"
                    ),
                });
            }
        }
        self.timestamp = Some(Held {
            meta,
            bytes: bytes.to_vec(),
            signers,
            signer_keys,
        });
        Ok(TimestampUpdate::New)
    }

    /// The trusted timestamp has not expired.
    pub(super) fn check_expired_timestamp(&self) -> Result<(), UpdateError> {
        match &self.timestamp {
            Some(t) if t.meta.common.expired(self.now) => Err(expired("timestamp", &t.meta.common)),
            Some(_) => Ok(()),
            None => Err(UpdateError::Misuse {
                detail: "no trusted timestamp".into(),
            }),
        }
    }

    /// 5.5: a snapshot of the length, hashes and version the timestamp names, signed by the
    /// root's snapshot threshold, with no targets role missing or older, becomes trusted.
    pub(super) fn update_snapshot(&mut self, bytes: &[u8], local: bool) -> Result<(), UpdateError> {
        self.check_expired_timestamp()?;
        let Some(ts) = &self.timestamp else {
            return Err(UpdateError::Misuse {
                detail: "no trusted timestamp".into(),
            });
        };
        let listed = ts.meta.snapshot.clone();
        if !local {
            if listed.length.is_none() {
                too_large("snapshot", bytes, self.config.snapshot_max_length)?;
            }
            check_listed(
                "snapshot",
                "the timestamp",
                bytes,
                listed.length,
                &listed.hashes,
            )?;
        }
        let env = metadata::open("snapshot", "snapshot", bytes)?;
        let root = &self.root.meta;
        let signers = metadata::verify("snapshot", &env, &root.keys, root.role("snapshot"))?;
        let signer_keys = metadata::ed25519_of(&root.keys, &signers);
        let meta = Snapshot::read(&env.signed)?;
        if let Some(old) = &self.snapshot {
            for (file, info) in &old.meta.meta {
                match meta.meta.get(file) {
                    None => {
                        return Err(UpdateError::Rollback {
                            detail: format!("{file} is missing from the new snapshot"),
                        });
                    }
                    Some(new) if new.version < info.version => {
                        return Err(UpdateError::Rollback {
                            detail: format!(
                                "the new snapshot names {file} v{}, older than the trusted v{}",
                                new.version, info.version
                            ),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        let (common, got) = (meta.common.clone(), meta.common.version);
        self.snapshot = Some(Held {
            meta,
            bytes: bytes.to_vec(),
            signers,
            signer_keys,
        });
        if common.expired(self.now) {
            return Err(expired("snapshot", &common));
        }
        if got != listed.version {
            return Err(UpdateError::VersionMismatch {
                role: "snapshot".into(),
                expected: listed.version,
                got,
                named_by: "the timestamp",
            });
        }
        Ok(())
    }

    /// 5.6: a targets role (top-level or delegated) as the snapshot lists it, signed by its
    /// delegator's threshold, not expired, becomes trusted.
    pub(super) fn update_targets(
        &mut self,
        role: &str,
        parent: &str,
        bytes: &[u8],
    ) -> Result<(), UpdateError> {
        let Some(snapshot) = &self.snapshot else {
            return Err(UpdateError::Misuse {
                detail: "no trusted snapshot".into(),
            });
        };
        if snapshot.meta.common.expired(self.now) {
            return Err(expired("snapshot", &snapshot.meta.common));
        }
        let listed = snapshot
            .meta
            .role(role)
            .cloned()
            .ok_or_else(|| UpdateError::NotInSnapshot { role: role.into() })?;
        if listed.length.is_none() {
            too_large(role, bytes, self.config.targets_max_length)?;
        }
        check_listed(role, "the snapshot", bytes, listed.length, &listed.hashes)?;
        let env = metadata::open(role, "targets", bytes)?;
        let (signers, signer_keys) = {
            let (ring, keys) = self.delegator_keys(role, parent)?;
            let signers = metadata::verify(role, &env, ring, keys)?;
            let signer_keys = metadata::ed25519_of(ring, &signers);
            (signers, signer_keys)
        };
        let meta = Targets::read(role, &env.signed)?;
        if meta.common.version != listed.version {
            return Err(UpdateError::VersionMismatch {
                role: role.into(),
                expected: listed.version,
                got: meta.common.version,
                named_by: "the snapshot",
            });
        }
        if meta.common.expired(self.now) {
            return Err(expired(role, &meta.common));
        }
        self.targets.insert(
            role.into(),
            Held {
                meta,
                bytes: bytes.to_vec(),
                signers,
                signer_keys,
            },
        );
        Ok(())
    }

    /// The keys and threshold `parent` gives `role`.
    fn delegator_keys(
        &self,
        role: &str,
        parent: &str,
    ) -> Result<(&KeyRing, &RoleKeys), UpdateError> {
        if parent == "root" {
            let root = &self.root.meta;
            return Ok((&root.keys, root.role("targets")));
        }
        self.targets
            .get(parent)
            .and_then(|p| p.meta.delegations.as_ref())
            .and_then(|d| d.role_keys(role).map(|k| (&d.keys, k)))
            .ok_or_else(|| UpdateError::Invalid {
                role: role.into(),
                field: "delegations".into(),
                detail: format!("{parent} does not delegate to it"),
            })
    }
}

/// A role that expired.
pub(super) fn expired(role: &str, c: &metadata::Common) -> UpdateError {
    UpdateError::Expired {
        role: role.into(),
        expires: c.expires_text.clone(),
    }
}

/// Metadata longer than its role may be.
fn too_large(role: &str, bytes: &[u8], max: u64) -> Result<(), UpdateError> {
    if bytes.len() as u64 > max {
        return Err(UpdateError::TooLarge {
            role: role.into(),
            max,
        });
    }
    Ok(())
}

/// Metadata of the length and hashes its listing (`named_by`) gives.
fn check_listed(
    role: &str,
    named_by: &'static str,
    bytes: &[u8],
    length: Option<u64>,
    hashes: &hashes::Hashes,
) -> Result<(), UpdateError> {
    hashes::check(bytes, length, hashes).map_err(|e| UpdateError::MetaMismatch {
        role: role.into(),
        named_by,
        detail: e.to_string(),
    })
}
