//! Turning tough's errors into [`TufError`]s: one variant per attack, found by looking through
//! the whole chain of sources and at the files the transport recorded.

use super::TufError;
use super::transport::Recording;

/// Which step failed, to tell an oversized target from oversized metadata.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Metadata,
    Target,
}

/// The key ids in a metadata file's `signatures`, and the keys a root file lists.
fn signature_keyids(bytes: &[u8]) -> Vec<String> {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("signatures").and_then(|s| s.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.get("keyid").and_then(|k| k.as_str()).map(str::to_string))
        .collect()
}

fn root_keyids(bytes: &[u8]) -> Vec<String> {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("signed")
                .and_then(|s| s.get("keys"))
                .and_then(|k| k.as_object())
                .cloned()
        })
        .map(|keys| keys.keys().cloned().collect())
        .unwrap_or_default()
}

/// Turns tough's error into ours, looking through its whole chain of sources.
pub(super) fn classify(
    e: &tough::error::Error,
    phase: Phase,
    name: &str,
    trusted_root: &[u8],
    rec: &Recording,
) -> TufError {
    use tough::error::Error as E;
    let mut chain: Vec<&(dyn std::error::Error + 'static)> = vec![e];
    while let Some(next) = chain.last().and_then(|c| c.source()) {
        chain.push(next);
    }
    let tough_errors: Vec<&E> = chain.iter().filter_map(|c| c.downcast_ref::<E>()).collect();
    let schema_errors: Vec<&tough::schema::Error> = chain
        .iter()
        .filter_map(|c| c.downcast_ref::<tough::schema::Error>())
        .collect();
    let detail = e.to_string();
    for t in &tough_errors {
        match t {
            E::MaxSizeExceeded {
                max_size,
                specifier,
                ..
            } => {
                return if phase == Phase::Target {
                    TufError::TargetTooLong {
                        name: name.into(),
                        length: *max_size,
                    }
                } else {
                    TufError::MetadataTooLarge {
                        detail: format!("more than {max_size} bytes ({specifier})"),
                    }
                };
            }
            E::HashMismatch { .. } => {
                return if phase == Phase::Target {
                    TufError::TargetMismatch {
                        name: name.into(),
                        detail: t.to_string(),
                    }
                } else {
                    TufError::MixAndMatch { detail }
                };
            }
            E::VersionMismatch { .. } => return TufError::MixAndMatch { detail },
            E::OlderMetadata { .. }
            | E::OlderSnapshotInTimestamp { .. }
            | E::SnapshotRoleRollback { .. }
            | E::SnapshotRoleMissing { .. } => return TufError::Rollback { detail },
            _ => {}
        }
    }
    if schema_errors
        .iter()
        .any(|s| matches!(s, tough::schema::Error::DuplicateKeyId { .. }))
    {
        let role = tough_errors
            .iter()
            .find_map(|t| match t {
                E::VerifyMetadata { role, .. } => Some(role.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "root".into());
        return TufError::DuplicateSignature { role, detail };
    }
    for t in &tough_errors {
        match t {
            E::VerifyMetadata { role, .. } => {
                let role = role.to_string();
                if role == "root" {
                    return TufError::RootRotationRefused { detail };
                }
                let signers = rec
                    .last(&role)
                    .map(|b| signature_keyids(&b))
                    .unwrap_or_default();
                let mut known = root_keyids(trusted_root);
                for r in rec.roots() {
                    known.extend(root_keyids(&r));
                }
                if !signers.is_empty() && signers.iter().all(|s| !known.contains(s)) {
                    return TufError::UnknownKey {
                        role,
                        keyids: signers.join(", "),
                    };
                }
                return TufError::ThresholdNotMet { role, detail };
            }
            E::VerifyTrustedMetadata { .. } => {
                return TufError::ThresholdNotMet {
                    role: "trusted root".into(),
                    detail,
                };
            }
            E::ExpiredMetadata { role, .. } => {
                return TufError::Expired {
                    role: role.to_string(),
                    expires: "before now".into(),
                };
            }
            E::ParseMetadata { .. }
            | E::ParseTrustedMetadata { .. }
            | E::TimestampMetaLength { .. }
            | E::MissingSnapshotMeta { .. }
            | E::MetaMissing { .. }
            | E::SnapshotTargetsMetaMissing { .. }
            | E::SpecVersion { .. } => return TufError::MetadataInvalid { detail },
            E::UnsafeTargetNameDotDot { .. }
            | E::UnsafeTargetNameEmpty { .. }
            | E::UnsafeTargetNameSlash { .. } => {
                return TufError::UnsafeTargetName {
                    name: name.into(),
                    why: detail,
                };
            }
            _ => {}
        }
    }
    TufError::Fetch { detail }
}

impl TufError {
    pub(super) fn from_target(e: &tough::error::Error, name: &str, length: u64) -> Self {
        match classify(e, Phase::Target, name, &[], &Recording::new(None)) {
            TufError::TargetTooLong { name, .. } => TufError::TargetTooLong { name, length },
            other => other,
        }
    }
}
