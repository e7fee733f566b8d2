//! Why a refresh or a target search stopped: one variant per check of the client workflow.

use crate::status::Status;

/// Why the updater refused metadata or a target, or could not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// Malformed metadata (the field is named).
    #[error("{role} metadata: {field}: {detail}")]
    Invalid {
        /// The role.
        role: String,
        /// The JSON path of the offending field.
        field: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Metadata of another type than the role's (`signed._type`).
    #[error("{role} metadata: signed._type is {found:?}, {expected:?} expected")]
    WrongType {
        /// The role.
        role: String,
        /// The type the role has.
        expected: &'static str,
        /// The type the file says.
        found: String,
    },
    /// Fewer valid signatures by distinct keys of the role than its threshold.
    #[error("{role} metadata: {valid} valid signatures by trusted keys, threshold {threshold}")]
    ThresholdNotMet {
        /// The role.
        role: String,
        /// Valid signatures counted.
        valid: usize,
        /// The role's threshold.
        threshold: u64,
    },
    /// Metadata signed only by keys the role does not trust.
    #[error("{role} metadata is signed only by keys {role} does not trust ({keyids})")]
    UnknownKey {
        /// The role.
        role: String,
        /// The key ids that signed.
        keyids: String,
    },
    /// Two signatures by one key.
    #[error("{role} metadata carries two signatures by key {keyid}")]
    DuplicateSignature {
        /// The role.
        role: String,
        /// The key id.
        keyid: String,
    },
    /// A new root not signed by the threshold of the trusted root and of its own.
    #[error("root rotation refused: root v{version}: {detail}")]
    RootRotation {
        /// The new root's version.
        version: u64,
        /// What failed.
        detail: String,
    },
    /// Metadata older than what is trusted, or a trusted role missing from a new snapshot.
    #[error("rollback refused: {detail}")]
    Rollback {
        /// What went back.
        detail: String,
    },
    /// Metadata expired at the time given.
    #[error("{role} metadata expired at {expires}")]
    Expired {
        /// The role.
        role: String,
        /// When (as the metadata writes it).
        expires: String,
    },
    /// A version that is not the one the URL or another role names (mix and match).
    #[error("{role} metadata: version {got}, but {expected} expected from {named_by}")]
    VersionMismatch {
        /// The role.
        role: String,
        /// The version named.
        expected: u64,
        /// The version the file has.
        got: u64,
        /// Who named it (`the URL`, `the timestamp`, `the snapshot`).
        named_by: &'static str,
    },
    /// Metadata whose length or hashes differ from what another role lists (mix and match).
    #[error("{role} metadata does not match what {named_by} lists: {detail}")]
    MetaMismatch {
        /// The role.
        role: String,
        /// Who lists it.
        named_by: &'static str,
        /// What differs.
        detail: String,
    },
    /// Metadata longer than its limit (or than the length another role gives).
    #[error("{role} metadata is larger than its limit of {max} bytes")]
    TooLarge {
        /// The role.
        role: String,
        /// The limit.
        max: u64,
    },
    /// A delegated role the snapshot does not list.
    #[error("role {role} is delegated but not in the snapshot")]
    NotInSnapshot {
        /// The role.
        role: String,
    },
    /// The repository could not be read.
    #[error("fetching {url_path}: {detail}")]
    Fetch {
        /// What was asked for.
        url_path: String,
        /// What failed.
        detail: String,
    },
    /// A target name that is not a safe relative path.
    #[error("unsafe target name {name:?}: {why}")]
    UnsafeTargetName {
        /// The name.
        name: String,
        /// Why.
        why: &'static str,
    },
    /// No role the search visited lists the target.
    #[error("no target named {name:?}")]
    TargetNotFound {
        /// The name.
        name: String,
    },
    /// An input the updater did not ask for, or a second refresh.
    #[error("updater: {detail}")]
    Misuse {
        /// What was wrong.
        detail: String,
    },
}

impl UpdateError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            UpdateError::Invalid { .. }
            | UpdateError::WrongType { .. }
            | UpdateError::NotInSnapshot { .. }
            | UpdateError::Misuse { .. } => Status::TufMetadataInvalid,
            UpdateError::ThresholdNotMet { .. } => Status::TufThresholdNotMet,
            UpdateError::UnknownKey { .. } => Status::TufUnknownKey,
            UpdateError::DuplicateSignature { .. } => Status::TufDuplicateSignature,
            UpdateError::RootRotation { .. } => Status::TufRootRotationRefused,
            UpdateError::Rollback { .. } => Status::TufRollback,
            UpdateError::Expired { .. } => Status::TufExpired,
            UpdateError::VersionMismatch { .. } | UpdateError::MetaMismatch { .. } => {
                Status::TufMixAndMatch
            }
            UpdateError::TooLarge { .. } => Status::TufMetadataTooLarge,
            UpdateError::Fetch { .. } => Status::TufFetch,
            UpdateError::UnsafeTargetName { .. } => Status::TufUnsafeTargetName,
            UpdateError::TargetNotFound { .. } => Status::TufTargetNotFound,
        }
    }
}
