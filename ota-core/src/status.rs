//! Stable numeric status codes, shared with the C ABI as `ota_status`.
//!
//! Every error type in this crate maps to one of these codes through its `status()` method.
//! The numbers are grouped by domain and never reused: a retired code stays here as a comment.
//! `0` is success.
//!
//! The whole table is the one list given to `statuses!` below: each line is a variant with
//! its documentation, its number, its `snake_case` name and its one-line message. Adding a
//! status is adding one line at the end of its group; the enum, [`Status::ALL`],
//! [`Status::name`], [`Status::message`] and [`Status::doc`] (and, through them, `ota_status`
//! in `include/ota.h` and the Python exception classes) follow from it.

/// Declares [`Status`] and its tables from one list of
/// `/// doc  Variant = code, "name", "message";` lines.
macro_rules! statuses {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident = $code:literal, $name:literal, $message:literal;
    )+) => {
        /// A stable numeric status code. The C ABI returns it as `ota_status`.
        #[repr(u32)]
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Status {
            $($(#[doc = $doc])+ $variant = $code,)+
        }

        impl Status {
            /// Every status, in numeric order.
            pub const ALL: &'static [Status] = &[$(Status::$variant),+];

            /// A short, static description of the status, one line, lower case.
            pub fn message(self) -> &'static str {
                match self {
                    $(Status::$variant => $message,)+
                }
            }

            /// The name of the status in `snake_case` (`"chunk_digest_mismatch"`), as used in
            /// JSON reports and by the Python exception classes. The C name is
            /// `OTA_STATUS_` and this name in upper case.
            pub fn name(self) -> &'static str {
                match self {
                    $(Status::$variant => $name,)+
                }
            }

            /// The status's documentation, as written on its variant (one line per line of
            /// documentation); the generated C header carries it.
            pub fn doc(self) -> &'static str {
                match self {
                    $(Status::$variant => concat!($($doc, "\n"),+),)+
                }
            }
        }
    };
}

statuses! {
    /// Success.
    Ok = 0, "ok", "ok";

    // 1..=99: the calling convention of the C ABI.
    /// A required pointer argument was NULL.
    NullPointer = 1, "null_pointer", "a required pointer argument was null";
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 2, "invalid_utf8", "a string argument is not valid utf-8";
    /// The caller's output buffer is too small; the required length was written to `out_n`.
    InsufficientSize = 3, "insufficient_size", "the output buffer is too small";
    /// The library panicked; the call had no effect that can be relied on.
    Panic = 4, "panic", "the library panicked";
    /// An argument is out of its documented range.
    InvalidArgument = 5, "invalid_argument", "an argument is out of range";
    /// Reading or writing a file, process or socket failed.
    Io = 6, "io", "an i/o operation failed";
    /// A handle argument is not a live handle of the type the function takes (an
    /// `ota_package` where an `ota_verified_package` was expected, say).
    WrongHandle = 7, "wrong_handle", "a handle argument is of another type";

    // 100..=199: parsing and validation of JSON documents.
    /// The input is not well-formed JSON.
    JsonSyntax = 100, "json_syntax", "the input is not well-formed json";
    /// The input has a field that the format does not define.
    UnknownField = 101, "unknown_field", "the input has an unknown field";
    /// A required field is missing.
    MissingField = 102, "missing_field", "a required field is missing";
    /// A field has the wrong type or a malformed value.
    InvalidValue = 103, "invalid_value", "a field has an invalid value";
    /// The input is larger than the configured limit.
    TooLarge = 104, "too_large", "the input exceeds a configured limit";
    /// The document is well formed but breaks a rule of the format (every fault is listed).
    Invalid = 105, "invalid", "the document breaks a rule of its format";

    // 200..=299: compatibility.
    // 200 was `Incompatible` ("the package does not fit the device"), never returned: an
    // incompatible package is a successful check with `compatible: false`. Retired; the number
    // is not reused.

    // 300..=399: artifacts, chunks, sealing and opening.
    /// An encryption key is not 64 lowercase hex characters.
    InvalidKey = 300, "invalid_key", "an encryption key is not 64 lowercase hex characters";
    /// The artifact does not match its declared SHA-256.
    DigestMismatch = 301, "digest_mismatch", "the artifact does not match its declared sha256";
    /// A chunk does not match its signed digest.
    ChunkDigestMismatch = 302, "chunk_digest_mismatch", "a chunk does not match its signed digest";
    /// A chunk's index, offset or length does not fit the chunk table.
    ChunkOutOfRange = 303, "chunk_out_of_range", "a chunk does not fit the chunk table";
    /// The artifact is shorter than declared.
    Truncated = 304, "truncated", "the artifact is shorter than declared";
    /// More bytes than the declared size were offered ("endless data").
    TooLong = 305, "too_long", "more bytes than the declared size were offered";
    /// Bytes were offered out of order.
    OutOfOrder = 306, "out_of_order", "bytes were offered out of order";
    /// The artifact does not decrypt and decompress with this key.
    DecryptionFailed = 307, "decryption_failed", "the artifact does not open with this key";
    /// The plaintext would exceed its bound (a decompression bomb).
    PlaintextTooLarge = 308, "plaintext_too_large", "the plaintext exceeds its bound";
    /// The plaintext's size or digest differs from the declared one.
    PlaintextMismatch = 309, "plaintext_mismatch", "the plaintext differs from what was declared";
    /// Bytes follow the gzip stream.
    TrailingData = 310, "trailing_data", "the artifact has data after its gzip stream";

    // 400..=499: keys, signatures and envelopes.
    /// A key could not be read.
    InvalidSigningKey = 400, "invalid_signing_key", "a key could not be read";
    /// The envelope is malformed or carries another payload type.
    EnvelopeInvalid = 401, "envelope_invalid", "the envelope is malformed";
    /// Too few distinct trusted keys signed validly.
    ThresholdNotMet = 402, "threshold_not_met", "too few trusted keys signed validly";
    /// A trusted key's signature does not verify: the payload or signature was altered.
    SignatureInvalid = 403, "signature_invalid", "a trusted key's signature does not verify";
    /// The signed statement is not a valid package.
    StatementInvalid = 404, "statement_invalid", "the signed statement is not a valid package";
    /// The package has no chunk table or seal information.
    NotSealed = 405, "not_sealed", "the package has no chunk table or seal information";

    // 500..=599: the catalog.
    /// No package has this id.
    PackageNotFound = 500, "package_not_found", "no package has this id";
    /// The package is not available (pending or rejected).
    PackageNotAvailable = 501, "package_not_available", "the package is not available";

    // 600..=699: downloads, the chunk protocol, the device agent and health probes.
    /// A chunk does not start on a 64 KiB boundary.
    ChunkMisaligned = 600, "chunk_misaligned", "a chunk does not start on a 64 kib boundary";
    /// A stored chunk no longer matches its digest; it must be fetched again.
    StoredChunkCorrupt = 601, "stored_chunk_corrupt", "a stored chunk no longer matches its digest";
    /// Saved download state belongs to another package or table.
    DownloadStateMismatch = 602, "download_state_mismatch", "saved download state belongs to another package";
    /// A device asked for a package it is not assigned.
    PermissionDenied = 603, "permission_denied", "the device is not assigned this package";
    /// The package does not fit this device.
    NotCompatible = 604, "not_compatible", "the package does not fit this device";
    /// The package is older than what the device has installed, and is not a signed rollback.
    Downgrade = 605, "downgrade", "the package is older than the installed version";
    /// The package is the version the device runs already.
    AlreadyInstalled = 606, "already_installed", "the package is already installed";
    /// The agent is busy with another update, or the input does not fit its state.
    WrongState = 607, "wrong_state", "the input does not fit the agent's state";
    /// A health probe may not run on this device.
    ProbeRefused = 608, "probe_refused", "the health probe may not run on this device";
    /// A saved agent record is malformed or inconsistent.
    RecordInvalid = 609, "record_invalid", "the saved agent record is invalid";

    // 700..=799: rollouts and the audit trail.
    /// The rollout's plan or target is invalid.
    PlanInvalid = 700, "plan_invalid", "the rollout's plan or target is invalid";
    /// The input does not fit the rollout's state.
    RolloutState = 701, "rollout_state", "the input does not fit the rollout's state";
    /// No device, wave or package with that id in this rollout.
    RolloutNotFound = 702, "rollout_not_found", "no such device, wave or package in the rollout";
    /// The audit trail was altered, reordered or truncated.
    AuditBroken = 703, "audit_broken", "the audit trail was altered or truncated";
    /// Replaying the audit trail does not give the same rollout.
    ReplayMismatch = 704, "replay_mismatch", "replaying the audit trail gives another rollout";

    // 800..=899: TUF repositories.
    /// A TUF role's metadata lacks its threshold of valid signatures.
    TufThresholdNotMet = 800, "tuf_threshold_not_met", "a TUF role's metadata lacks its threshold of valid signatures";
    /// TUF metadata is signed only by keys its role does not trust.
    TufUnknownKey = 801, "tuf_unknown_key", "TUF metadata is signed only by keys its role does not trust";
    /// TUF metadata carries two signatures by one key.
    TufDuplicateSignature = 802, "tuf_duplicate_signature", "TUF metadata carries two signatures by one key";
    /// TUF metadata is older than the version already trusted.
    TufRollback = 803, "tuf_rollback", "TUF metadata is older than the version already trusted";
    /// TUF metadata has expired.
    TufExpired = 804, "tuf_expired", "TUF metadata has expired";
    /// A TUF target's bytes differ from its targets metadata.
    TufTargetMismatch = 805, "tuf_target_mismatch", "a TUF target's bytes differ from its targets metadata";
    /// A TUF target is longer than its targets metadata says.
    TufTargetTooLong = 806, "tuf_target_too_long", "a TUF target is longer than its targets metadata says";
    /// TUF metadata exceeds its size limit.
    TufMetadataTooLarge = 807, "tuf_metadata_too_large", "TUF metadata exceeds its size limit";
    /// TUF metadata does not match the version or hash another role names.
    TufMixAndMatch = 808, "tuf_mix_and_match", "TUF metadata does not match the version or hash another role names";
    /// A TUF target name is not a safe relative path.
    TufUnsafeTargetName = 809, "tuf_unsafe_target_name", "a TUF target name is not a safe relative path";
    /// The TUF repository has no such target.
    TufTargetNotFound = 810, "tuf_target_not_found", "the TUF repository has no such target";
    /// A new TUF root is not signed by the threshold of the trusted root.
    TufRootRotationRefused = 811, "tuf_root_rotation_refused", "a new TUF root is not signed by the threshold of the trusted root";
    /// The TUF repository could not be read.
    TufFetch = 812, "tuf_fetch", "the TUF repository could not be read";
    /// TUF metadata is malformed.
    TufMetadataInvalid = 813, "tuf_metadata_invalid", "TUF metadata is malformed";
    /// The TUF repository could not be built or signed.
    TufRepository = 814, "tuf_repository", "the TUF repository could not be built or signed";
    /// A TUF target does not carry a valid package statement for its bytes.
    TufPackageInvalid = 815, "tuf_package_invalid", "a TUF target does not carry a valid package statement for its bytes";
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The status with this numeric code, if there is one.
    pub fn from_code(code: u32) -> Option<Status> {
        Status::ALL
            .binary_search_by_key(&code, |s| s.code())
            .ok()
            .map(|i| Status::ALL[i])
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
    fn codes_are_unique_in_order_and_round_trip() {
        for pair in Status::ALL.windows(2) {
            assert!(
                pair[0].code() < pair[1].code(),
                "{} is listed after {}",
                pair[1].code(),
                pair[0].code()
            );
        }
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(*s));
            assert!(!s.message().is_empty());
            assert!(!s.message().ends_with('.'));
            assert!(!s.doc().trim().is_empty());
        }
        assert_eq!(Status::from_code(99_999), None);
    }

    #[test]
    fn names_are_unique_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for s in Status::ALL {
            assert!(seen.insert(s.name()), "duplicate name {}", s.name());
            assert!(
                s.name()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                s.name()
            );
        }
    }

    #[test]
    fn numbers_are_stable() {
        // These numbers are part of the C ABI: changing one is a breaking change.
        assert_eq!(Status::Ok.code(), 0);
        assert_eq!(Status::NullPointer.code(), 1);
        assert_eq!(Status::InsufficientSize.code(), 3);
        assert_eq!(Status::Panic.code(), 4);
        assert_eq!(Status::WrongHandle.code(), 7);
        assert_eq!(Status::JsonSyntax.code(), 100);
        assert_eq!(Status::Invalid.code(), 105);
        assert_eq!(Status::InvalidKey.code(), 300);
        assert_eq!(Status::TufPackageInvalid.code(), 815);
    }

    #[test]
    fn the_retired_incompatible_code_is_not_reused() {
        assert_eq!(Status::from_code(200), None);
    }
}
