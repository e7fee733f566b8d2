//! Stable numeric status codes, shared with the C ABI as `ota_status`.
//!
//! Every error type in this crate maps to one of these codes through its `status()` method.
//! The numbers are grouped by domain and never reused: a retired code stays here as a comment.
//! `0` is success.

/// A stable numeric status code. The C ABI returns it as `ota_status`.
#[repr(u32)]
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Success.
    Ok = 0,

    // 1..=99: the calling convention of the C ABI.
    /// A required pointer argument was NULL.
    NullPointer = 1,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 2,
    /// The caller's output buffer is too small; the required length was written to `out_n`.
    InsufficientSize = 3,
    /// The library panicked; the call had no effect that can be relied on.
    Panic = 4,
    /// An argument is out of its documented range.
    InvalidArgument = 5,
    /// Reading or writing a file, process or socket failed.
    Io = 6,

    // 100..=199: parsing and validation of JSON documents.
    /// The input is not well-formed JSON.
    JsonSyntax = 100,
    /// The input has a field that the format does not define.
    UnknownField = 101,
    /// A required field is missing.
    MissingField = 102,
    /// A field has the wrong type or a malformed value.
    InvalidValue = 103,
    /// The input is larger than the configured limit.
    TooLarge = 104,
    /// The document is well formed but breaks a rule of the format (every fault is listed).
    Invalid = 105,

    // 200..=299: compatibility.
    /// The package does not fit the device.
    Incompatible = 200,

    // 300..=399: artifacts, chunks, sealing and opening.
    /// An encryption key is not 64 lowercase hex characters.
    InvalidKey = 300,
    /// The artifact does not match its declared SHA-256.
    DigestMismatch = 301,
    /// A chunk does not match its signed digest.
    ChunkDigestMismatch = 302,
    /// A chunk's index, offset or length does not fit the chunk table.
    ChunkOutOfRange = 303,
    /// The artifact is shorter than declared.
    Truncated = 304,
    /// More bytes than the declared size were offered ("endless data").
    TooLong = 305,
    /// Bytes were offered out of order.
    OutOfOrder = 306,
    /// The artifact does not decrypt and decompress with this key.
    DecryptionFailed = 307,
    /// The plaintext would exceed its bound (a decompression bomb).
    PlaintextTooLarge = 308,
    /// The plaintext's size or digest differs from the declared one.
    PlaintextMismatch = 309,
    /// Bytes follow the gzip stream.
    TrailingData = 310,

    // 400..=499: keys, signatures and envelopes.
    /// A key could not be read.
    InvalidSigningKey = 400,
    /// The envelope is malformed or carries another payload type.
    EnvelopeInvalid = 401,
    /// Too few distinct trusted keys signed validly.
    ThresholdNotMet = 402,
    /// A trusted key's signature does not verify: the payload or signature was altered.
    SignatureInvalid = 403,
    /// The signed statement is not a valid package.
    StatementInvalid = 404,
    /// The package has no chunk table or seal information.
    NotSealed = 405,

    // 500..=599: the catalog.
    /// No package has this id.
    PackageNotFound = 500,
    /// The package is not available (pending or rejected).
    PackageNotAvailable = 501,

    // 600..=699: downloads, the chunk protocol, the device agent and health probes.
    /// A chunk does not start on a 64 KiB boundary.
    ChunkMisaligned = 600,
    /// A stored chunk no longer matches its digest; it must be fetched again.
    StoredChunkCorrupt = 601,
    /// Saved download state belongs to another package or table.
    DownloadStateMismatch = 602,
    /// A device asked for a package it is not assigned.
    PermissionDenied = 603,
    /// The package does not fit this device.
    NotCompatible = 604,
    /// The package is older than what the device has installed, and is not a signed rollback.
    Downgrade = 605,
    /// The package is the version the device runs already.
    AlreadyInstalled = 606,
    /// The agent is busy with another update, or the input does not fit its state.
    WrongState = 607,
    /// A health probe may not run on this device.
    ProbeRefused = 608,
    /// A saved agent record is malformed or inconsistent.
    RecordInvalid = 609,

    // 700..=799: rollouts and the audit trail.
    /// The rollout's plan or target is invalid.
    PlanInvalid = 700,
    /// The input does not fit the rollout's state.
    RolloutState = 701,
    /// No device, wave or package with that id in this rollout.
    RolloutNotFound = 702,
    /// The audit trail was altered, reordered or truncated.
    AuditBroken = 703,
    /// Replaying the audit trail does not give the same rollout.
    ReplayMismatch = 704,

    // 800..=899: TUF repositories.
    /// A TUF role's metadata lacks its threshold of valid signatures.
    TufThresholdNotMet = 800,
    /// TUF metadata is signed only by keys its role does not trust.
    TufUnknownKey = 801,
    /// TUF metadata carries two signatures by one key.
    TufDuplicateSignature = 802,
    /// TUF metadata is older than the version already trusted.
    TufRollback = 803,
    /// TUF metadata has expired.
    TufExpired = 804,
    /// A TUF target's bytes differ from its targets metadata.
    TufTargetMismatch = 805,
    /// A TUF target is longer than its targets metadata says.
    TufTargetTooLong = 806,
    /// TUF metadata exceeds its size limit.
    TufMetadataTooLarge = 807,
    /// TUF metadata does not match the version or hash another role names.
    TufMixAndMatch = 808,
    /// A TUF target name is not a safe relative path.
    TufUnsafeTargetName = 809,
    /// The TUF repository has no such target.
    TufTargetNotFound = 810,
    /// A new TUF root is not signed by the threshold of the trusted root.
    TufRootRotationRefused = 811,
    /// The TUF repository could not be read.
    TufFetch = 812,
    /// TUF metadata is malformed.
    TufMetadataInvalid = 813,
    /// The TUF repository could not be built or signed.
    TufRepository = 814,
    /// A TUF target does not carry a valid package statement for its bytes.
    TufPackageInvalid = 815,
}

impl Status {
    /// Every status, in numeric order.
    pub const ALL: &'static [Status] = &[
        Status::Ok,
        Status::NullPointer,
        Status::InvalidUtf8,
        Status::InsufficientSize,
        Status::Panic,
        Status::InvalidArgument,
        Status::Io,
        Status::JsonSyntax,
        Status::UnknownField,
        Status::MissingField,
        Status::InvalidValue,
        Status::TooLarge,
        Status::Invalid,
        Status::Incompatible,
        Status::InvalidKey,
        Status::DigestMismatch,
        Status::ChunkDigestMismatch,
        Status::ChunkOutOfRange,
        Status::Truncated,
        Status::TooLong,
        Status::OutOfOrder,
        Status::DecryptionFailed,
        Status::PlaintextTooLarge,
        Status::PlaintextMismatch,
        Status::TrailingData,
        Status::InvalidSigningKey,
        Status::EnvelopeInvalid,
        Status::ThresholdNotMet,
        Status::SignatureInvalid,
        Status::StatementInvalid,
        Status::NotSealed,
        Status::PackageNotFound,
        Status::PackageNotAvailable,
        Status::ChunkMisaligned,
        Status::StoredChunkCorrupt,
        Status::DownloadStateMismatch,
        Status::PermissionDenied,
        Status::NotCompatible,
        Status::Downgrade,
        Status::AlreadyInstalled,
        Status::WrongState,
        Status::ProbeRefused,
        Status::RecordInvalid,
        Status::PlanInvalid,
        Status::RolloutState,
        Status::RolloutNotFound,
        Status::AuditBroken,
        Status::ReplayMismatch,
        Status::TufThresholdNotMet,
        Status::TufUnknownKey,
        Status::TufDuplicateSignature,
        Status::TufRollback,
        Status::TufExpired,
        Status::TufTargetMismatch,
        Status::TufTargetTooLong,
        Status::TufMetadataTooLarge,
        Status::TufMixAndMatch,
        Status::TufUnsafeTargetName,
        Status::TufTargetNotFound,
        Status::TufRootRotationRefused,
        Status::TufFetch,
        Status::TufMetadataInvalid,
        Status::TufRepository,
        Status::TufPackageInvalid,
    ];

    /// The numeric code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The status with this numeric code, if there is one.
    pub fn from_code(code: u32) -> Option<Status> {
        Status::ALL.iter().copied().find(|s| s.code() == code)
    }

    /// A short, static description of the status, one line, lower case.
    pub fn message(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::NullPointer => "a required pointer argument was null",
            Status::InvalidUtf8 => "a string argument is not valid utf-8",
            Status::InsufficientSize => "the output buffer is too small",
            Status::Panic => "the library panicked",
            Status::InvalidArgument => "an argument is out of range",
            Status::Io => "an i/o operation failed",
            Status::JsonSyntax => "the input is not well-formed json",
            Status::UnknownField => "the input has an unknown field",
            Status::MissingField => "a required field is missing",
            Status::InvalidValue => "a field has an invalid value",
            Status::TooLarge => "the input exceeds a configured limit",
            Status::Invalid => "the document breaks a rule of its format",
            Status::Incompatible => "the package does not fit the device",
            Status::InvalidKey => "an encryption key is not 64 lowercase hex characters",
            Status::DigestMismatch => "the artifact does not match its declared sha256",
            Status::ChunkDigestMismatch => "a chunk does not match its signed digest",
            Status::ChunkOutOfRange => "a chunk does not fit the chunk table",
            Status::Truncated => "the artifact is shorter than declared",
            Status::TooLong => "more bytes than the declared size were offered",
            Status::OutOfOrder => "bytes were offered out of order",
            Status::DecryptionFailed => "the artifact does not open with this key",
            Status::PlaintextTooLarge => "the plaintext exceeds its bound",
            Status::PlaintextMismatch => "the plaintext differs from what was declared",
            Status::TrailingData => "the artifact has data after its gzip stream",
            Status::InvalidSigningKey => "a key could not be read",
            Status::EnvelopeInvalid => "the envelope is malformed",
            Status::ThresholdNotMet => "too few trusted keys signed validly",
            Status::SignatureInvalid => "a trusted key's signature does not verify",
            Status::StatementInvalid => "the signed statement is not a valid package",
            Status::NotSealed => "the package has no chunk table or seal information",
            Status::PackageNotFound => "no package has this id",
            Status::PackageNotAvailable => "the package is not available",
            Status::ChunkMisaligned => "a chunk does not start on a 64 kib boundary",
            Status::StoredChunkCorrupt => "a stored chunk no longer matches its digest",
            Status::DownloadStateMismatch => "saved download state belongs to another package",
            Status::PermissionDenied => "the device is not assigned this package",
            Status::NotCompatible => "the package does not fit this device",
            Status::Downgrade => "the package is older than the installed version",
            Status::AlreadyInstalled => "the package is already installed",
            Status::WrongState => "the input does not fit the agent's state",
            Status::ProbeRefused => "the health probe may not run on this device",
            Status::RecordInvalid => "the saved agent record is invalid",
            Status::PlanInvalid => "the rollout's plan or target is invalid",
            Status::RolloutState => "the input does not fit the rollout's state",
            Status::RolloutNotFound => "no such device, wave or package in the rollout",
            Status::AuditBroken => "the audit trail was altered or truncated",
            Status::ReplayMismatch => "replaying the audit trail gives another rollout",
            Status::TufThresholdNotMet => {
                "a TUF role's metadata lacks its threshold of valid signatures"
            }
            Status::TufUnknownKey => "TUF metadata is signed only by keys its role does not trust",
            Status::TufDuplicateSignature => "TUF metadata carries two signatures by one key",
            Status::TufRollback => "TUF metadata is older than the version already trusted",
            Status::TufExpired => "TUF metadata has expired",
            Status::TufTargetMismatch => "a TUF target's bytes differ from its targets metadata",
            Status::TufTargetTooLong => "a TUF target is longer than its targets metadata says",
            Status::TufMetadataTooLarge => "TUF metadata exceeds its size limit",
            Status::TufMixAndMatch => {
                "TUF metadata does not match the version or hash another role names"
            }
            Status::TufUnsafeTargetName => "a TUF target name is not a safe relative path",
            Status::TufTargetNotFound => "the TUF repository has no such target",
            Status::TufRootRotationRefused => {
                "a new TUF root is not signed by the threshold of the trusted root"
            }
            Status::TufFetch => "the TUF repository could not be read",
            Status::TufMetadataInvalid => "TUF metadata is malformed",
            Status::TufRepository => "the TUF repository could not be built or signed",
            Status::TufPackageInvalid => {
                "a TUF target does not carry a valid package statement for its bytes"
            }
        }
    }

    /// The name of the status in `snake_case` (`"chunk_digest_mismatch"`), as used in JSON
    /// reports and by the Python exception classes.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::NullPointer => "null_pointer",
            Status::InvalidUtf8 => "invalid_utf8",
            Status::InsufficientSize => "insufficient_size",
            Status::Panic => "panic",
            Status::InvalidArgument => "invalid_argument",
            Status::Io => "io",
            Status::JsonSyntax => "json_syntax",
            Status::UnknownField => "unknown_field",
            Status::MissingField => "missing_field",
            Status::InvalidValue => "invalid_value",
            Status::TooLarge => "too_large",
            Status::Invalid => "invalid",
            Status::Incompatible => "incompatible",
            Status::InvalidKey => "invalid_key",
            Status::DigestMismatch => "digest_mismatch",
            Status::ChunkDigestMismatch => "chunk_digest_mismatch",
            Status::ChunkOutOfRange => "chunk_out_of_range",
            Status::Truncated => "truncated",
            Status::TooLong => "too_long",
            Status::OutOfOrder => "out_of_order",
            Status::DecryptionFailed => "decryption_failed",
            Status::PlaintextTooLarge => "plaintext_too_large",
            Status::PlaintextMismatch => "plaintext_mismatch",
            Status::TrailingData => "trailing_data",
            Status::InvalidSigningKey => "invalid_signing_key",
            Status::EnvelopeInvalid => "envelope_invalid",
            Status::ThresholdNotMet => "threshold_not_met",
            Status::SignatureInvalid => "signature_invalid",
            Status::StatementInvalid => "statement_invalid",
            Status::NotSealed => "not_sealed",
            Status::PackageNotFound => "package_not_found",
            Status::PackageNotAvailable => "package_not_available",
            Status::ChunkMisaligned => "chunk_misaligned",
            Status::StoredChunkCorrupt => "stored_chunk_corrupt",
            Status::DownloadStateMismatch => "download_state_mismatch",
            Status::PermissionDenied => "permission_denied",
            Status::NotCompatible => "not_compatible",
            Status::Downgrade => "downgrade",
            Status::AlreadyInstalled => "already_installed",
            Status::WrongState => "wrong_state",
            Status::ProbeRefused => "probe_refused",
            Status::RecordInvalid => "record_invalid",
            Status::PlanInvalid => "plan_invalid",
            Status::RolloutState => "rollout_state",
            Status::RolloutNotFound => "rollout_not_found",
            Status::AuditBroken => "audit_broken",
            Status::ReplayMismatch => "replay_mismatch",
            Status::TufThresholdNotMet => "tuf_threshold_not_met",
            Status::TufUnknownKey => "tuf_unknown_key",
            Status::TufDuplicateSignature => "tuf_duplicate_signature",
            Status::TufRollback => "tuf_rollback",
            Status::TufExpired => "tuf_expired",
            Status::TufTargetMismatch => "tuf_target_mismatch",
            Status::TufTargetTooLong => "tuf_target_too_long",
            Status::TufMetadataTooLarge => "tuf_metadata_too_large",
            Status::TufMixAndMatch => "tuf_mix_and_match",
            Status::TufUnsafeTargetName => "tuf_unsafe_target_name",
            Status::TufTargetNotFound => "tuf_target_not_found",
            Status::TufRootRotationRefused => "tuf_root_rotation_refused",
            Status::TufFetch => "tuf_fetch",
            Status::TufMetadataInvalid => "tuf_metadata_invalid",
            Status::TufRepository => "tuf_repository",
            Status::TufPackageInvalid => "tuf_package_invalid",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for s in Status::ALL {
            assert!(seen.insert(s.code()), "duplicate code {}", s.code());
            assert_eq!(Status::from_code(s.code()), Some(*s));
            assert!(!s.message().is_empty());
            assert!(!s.message().ends_with('.'));
        }
        assert_eq!(Status::from_code(99_999), None);
    }

    #[test]
    fn numbers_are_stable() {
        // These numbers are part of the C ABI: changing one is a breaking change.
        assert_eq!(Status::Ok.code(), 0);
        assert_eq!(Status::NullPointer.code(), 1);
        assert_eq!(Status::InsufficientSize.code(), 3);
        assert_eq!(Status::Panic.code(), 4);
        assert_eq!(Status::JsonSyntax.code(), 100);
        assert_eq!(Status::Invalid.code(), 105);
        assert_eq!(Status::Incompatible.code(), 200);
    }
}
