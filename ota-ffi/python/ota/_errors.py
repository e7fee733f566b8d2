"""The exceptions: one class per ``ota_status`` of the library, in a hierarchy.

- ``OtaError``: every failure of a call into libota; ``status`` is the numeric ota_status,
  ``name`` its snake_case name, ``message`` the library's one-line detail (naming the field).
- ``ValidationError`` (also a ``ValueError``): the input does not parse or breaks a rule of its
  format (``JsonSyntaxError``, ``MissingFieldError``, ``InvalidError``, ...).
- ``VerificationError``: something that was signed, sealed or chained does not verify
  (``SignatureInvalidError``, ``DigestMismatchError``, ``AuditBrokenError``, the TUF attacks...).
- Some also derive from the built-in that fits: ``IoError`` and ``TufFetchError`` from
  ``OSError``, ``WrongHandleError`` from ``TypeError``, the not-found errors from ``LookupError``.

The classes are written out here; tests/python/test_errors.py checks them against the
library's status table (``ota_status_name``), so none is missing or misnamed.
"""

from typing import Dict, List, Optional, Type

__all__ = ["OtaError", "ValidationError", "VerificationError"]

OK = 0
INSUFFICIENT_SIZE = 3


class OtaError(Exception):
    """A call into libota failed. ``status`` is the numeric ota_status (None when the library
    returned a status this module does not know), ``name`` its snake_case name, and
    ``message`` the library's one-line detail."""

    status: Optional[int] = None
    name: str = "unknown"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(OtaError, ValueError):
    """The input does not parse, or breaks a rule of its format: the message names the field."""


class VerificationError(OtaError):
    """A signature, digest, seal, chunk, audit chain or TUF metadata does not verify."""


class NullPointerError(OtaError):
    """A required pointer argument was null (``null_pointer``, 1)."""

    status = 1
    name = "null_pointer"


class InvalidUtf8Error(ValidationError):
    """A string argument is not valid utf-8 (``invalid_utf8``, 2)."""

    status = 2
    name = "invalid_utf8"


class InsufficientSizeError(OtaError):
    """The output buffer is too small (``insufficient_size``, 3)."""

    status = 3
    name = "insufficient_size"


class PanicError(OtaError):
    """The library panicked (``panic``, 4)."""

    status = 4
    name = "panic"


class InvalidArgumentError(ValidationError):
    """An argument is out of range (``invalid_argument``, 5)."""

    status = 5
    name = "invalid_argument"


class IoError(OtaError, OSError):
    """An i/o operation failed (``io``, 6)."""

    status = 6
    name = "io"


class WrongHandleError(OtaError, TypeError):
    """A handle argument is of another type (``wrong_handle``, 7)."""

    status = 7
    name = "wrong_handle"


class JsonSyntaxError(ValidationError):
    """The input is not well-formed json (``json_syntax``, 100)."""

    status = 100
    name = "json_syntax"


class UnknownFieldError(ValidationError):
    """The input has an unknown field (``unknown_field``, 101)."""

    status = 101
    name = "unknown_field"


class MissingFieldError(ValidationError):
    """A required field is missing (``missing_field``, 102)."""

    status = 102
    name = "missing_field"


class InvalidValueError(ValidationError):
    """A field has an invalid value (``invalid_value``, 103)."""

    status = 103
    name = "invalid_value"


class TooLargeError(ValidationError):
    """The input exceeds a configured limit (``too_large``, 104)."""

    status = 104
    name = "too_large"


class InvalidError(ValidationError):
    """The document breaks a rule of its format (``invalid``, 105)."""

    status = 105
    name = "invalid"


class InvalidKeyError(ValidationError):
    """An encryption key is not 64 lowercase hex characters (``invalid_key``, 300)."""

    status = 300
    name = "invalid_key"


class DigestMismatchError(VerificationError):
    """The artifact does not match its declared sha256 (``digest_mismatch``, 301)."""

    status = 301
    name = "digest_mismatch"


class ChunkDigestMismatchError(VerificationError):
    """A chunk does not match its signed digest (``chunk_digest_mismatch``, 302)."""

    status = 302
    name = "chunk_digest_mismatch"


class ChunkOutOfRangeError(VerificationError):
    """A chunk does not fit the chunk table (``chunk_out_of_range``, 303)."""

    status = 303
    name = "chunk_out_of_range"


class TruncatedError(VerificationError):
    """The artifact is shorter than declared (``truncated``, 304)."""

    status = 304
    name = "truncated"


class TooLongError(VerificationError):
    """More bytes than the declared size were offered (``too_long``, 305)."""

    status = 305
    name = "too_long"


class OutOfOrderError(OtaError):
    """Bytes were offered out of order (``out_of_order``, 306)."""

    status = 306
    name = "out_of_order"


class DecryptionFailedError(VerificationError):
    """The artifact does not open with this key (``decryption_failed``, 307)."""

    status = 307
    name = "decryption_failed"


class PlaintextTooLargeError(VerificationError):
    """The plaintext exceeds its bound (``plaintext_too_large``, 308)."""

    status = 308
    name = "plaintext_too_large"


class PlaintextMismatchError(VerificationError):
    """The plaintext differs from what was declared (``plaintext_mismatch``, 309)."""

    status = 309
    name = "plaintext_mismatch"


class TrailingDataError(VerificationError):
    """The artifact has data after its gzip stream (``trailing_data``, 310)."""

    status = 310
    name = "trailing_data"


class InvalidSigningKeyError(ValidationError):
    """A key could not be read (``invalid_signing_key``, 400)."""

    status = 400
    name = "invalid_signing_key"


class EnvelopeInvalidError(VerificationError):
    """The envelope is malformed (``envelope_invalid``, 401)."""

    status = 401
    name = "envelope_invalid"


class ThresholdNotMetError(VerificationError):
    """Too few trusted keys signed validly (``threshold_not_met``, 402)."""

    status = 402
    name = "threshold_not_met"


class SignatureInvalidError(VerificationError):
    """A trusted key's signature does not verify (``signature_invalid``, 403)."""

    status = 403
    name = "signature_invalid"


class StatementInvalidError(VerificationError):
    """The signed statement is not a valid package (``statement_invalid``, 404)."""

    status = 404
    name = "statement_invalid"


class NotSealedError(OtaError):
    """The package has no chunk table or seal information (``not_sealed``, 405)."""

    status = 405
    name = "not_sealed"


class PackageNotFoundError(OtaError, LookupError):
    """No package has this id (``package_not_found``, 500)."""

    status = 500
    name = "package_not_found"


class PackageNotAvailableError(OtaError):
    """The package is not available (``package_not_available``, 501)."""

    status = 501
    name = "package_not_available"


class ChunkMisalignedError(OtaError):
    """A chunk does not start on a 64 kib boundary (``chunk_misaligned``, 600)."""

    status = 600
    name = "chunk_misaligned"


class StoredChunkCorruptError(VerificationError):
    """A stored chunk no longer matches its digest (``stored_chunk_corrupt``, 601)."""

    status = 601
    name = "stored_chunk_corrupt"


class DownloadStateMismatchError(OtaError):
    """Saved download state belongs to another package (``download_state_mismatch``, 602)."""

    status = 602
    name = "download_state_mismatch"


class PermissionDeniedError(OtaError):
    """The device is not assigned this package (``permission_denied``, 603)."""

    status = 603
    name = "permission_denied"


class NotCompatibleError(OtaError):
    """The package does not fit this device (``not_compatible``, 604)."""

    status = 604
    name = "not_compatible"


class DowngradeError(OtaError):
    """The package is older than the installed version (``downgrade``, 605)."""

    status = 605
    name = "downgrade"


class AlreadyInstalledError(OtaError):
    """The package is already installed (``already_installed``, 606)."""

    status = 606
    name = "already_installed"


class WrongStateError(OtaError):
    """The input does not fit the agent's state (``wrong_state``, 607)."""

    status = 607
    name = "wrong_state"


class ProbeRefusedError(OtaError):
    """The health probe may not run on this device (``probe_refused``, 608)."""

    status = 608
    name = "probe_refused"


class RecordInvalidError(ValidationError):
    """The saved agent record is invalid (``record_invalid``, 609)."""

    status = 609
    name = "record_invalid"


class PlanInvalidError(ValidationError):
    """The rollout's plan or target is invalid (``plan_invalid``, 700)."""

    status = 700
    name = "plan_invalid"


class RolloutStateError(OtaError):
    """The input does not fit the rollout's state (``rollout_state``, 701)."""

    status = 701
    name = "rollout_state"


class RolloutNotFoundError(OtaError, LookupError):
    """No such device, wave or package in the rollout (``rollout_not_found``, 702)."""

    status = 702
    name = "rollout_not_found"


class AuditBrokenError(VerificationError):
    """The audit trail was altered or truncated (``audit_broken``, 703)."""

    status = 703
    name = "audit_broken"


class ReplayMismatchError(VerificationError):
    """Replaying the audit trail gives another rollout (``replay_mismatch``, 704)."""

    status = 704
    name = "replay_mismatch"


class TufThresholdNotMetError(VerificationError):
    """A TUF role's metadata lacks its threshold of valid signatures (``tuf_threshold_not_met``, 800)."""

    status = 800
    name = "tuf_threshold_not_met"


class TufUnknownKeyError(VerificationError):
    """TUF metadata is signed only by keys its role does not trust (``tuf_unknown_key``, 801)."""

    status = 801
    name = "tuf_unknown_key"


class TufDuplicateSignatureError(VerificationError):
    """TUF metadata carries two signatures by one key (``tuf_duplicate_signature``, 802)."""

    status = 802
    name = "tuf_duplicate_signature"


class TufRollbackError(VerificationError):
    """TUF metadata is older than the version already trusted (``tuf_rollback``, 803)."""

    status = 803
    name = "tuf_rollback"


class TufExpiredError(VerificationError):
    """TUF metadata has expired (``tuf_expired``, 804)."""

    status = 804
    name = "tuf_expired"


class TufTargetMismatchError(VerificationError):
    """A TUF target's bytes differ from its targets metadata (``tuf_target_mismatch``, 805)."""

    status = 805
    name = "tuf_target_mismatch"


class TufTargetTooLongError(VerificationError):
    """A TUF target is longer than its targets metadata says (``tuf_target_too_long``, 806)."""

    status = 806
    name = "tuf_target_too_long"


class TufMetadataTooLargeError(VerificationError):
    """TUF metadata exceeds its size limit (``tuf_metadata_too_large``, 807)."""

    status = 807
    name = "tuf_metadata_too_large"


class TufMixAndMatchError(VerificationError):
    """TUF metadata does not match the version or hash another role names (``tuf_mix_and_match``, 808)."""

    status = 808
    name = "tuf_mix_and_match"


class TufUnsafeTargetNameError(ValidationError):
    """A TUF target name is not a safe relative path (``tuf_unsafe_target_name``, 809)."""

    status = 809
    name = "tuf_unsafe_target_name"


class TufTargetNotFoundError(OtaError, LookupError):
    """The TUF repository has no such target (``tuf_target_not_found``, 810)."""

    status = 810
    name = "tuf_target_not_found"


class TufRootRotationRefusedError(VerificationError):
    """A new TUF root is not signed by the threshold of the trusted root (``tuf_root_rotation_refused``, 811)."""

    status = 811
    name = "tuf_root_rotation_refused"


class TufFetchError(OtaError, OSError):
    """The TUF repository could not be read (``tuf_fetch``, 812)."""

    status = 812
    name = "tuf_fetch"


class TufMetadataInvalidError(VerificationError):
    """TUF metadata is malformed (``tuf_metadata_invalid``, 813)."""

    status = 813
    name = "tuf_metadata_invalid"


class TufRepositoryError(OtaError):
    """The TUF repository could not be built or signed (``tuf_repository``, 814)."""

    status = 814
    name = "tuf_repository"


class TufPackageInvalidError(VerificationError):
    """A TUF target does not carry a valid package statement for its bytes (``tuf_package_invalid``, 815)."""

    status = 815
    name = "tuf_package_invalid"


__all__ += [
    "NullPointerError",
    "InvalidUtf8Error",
    "InsufficientSizeError",
    "PanicError",
    "InvalidArgumentError",
    "IoError",
    "WrongHandleError",
    "JsonSyntaxError",
    "UnknownFieldError",
    "MissingFieldError",
    "InvalidValueError",
    "TooLargeError",
    "InvalidError",
    "InvalidKeyError",
    "DigestMismatchError",
    "ChunkDigestMismatchError",
    "ChunkOutOfRangeError",
    "TruncatedError",
    "TooLongError",
    "OutOfOrderError",
    "DecryptionFailedError",
    "PlaintextTooLargeError",
    "PlaintextMismatchError",
    "TrailingDataError",
    "InvalidSigningKeyError",
    "EnvelopeInvalidError",
    "ThresholdNotMetError",
    "SignatureInvalidError",
    "StatementInvalidError",
    "NotSealedError",
    "PackageNotFoundError",
    "PackageNotAvailableError",
    "ChunkMisalignedError",
    "StoredChunkCorruptError",
    "DownloadStateMismatchError",
    "PermissionDeniedError",
    "NotCompatibleError",
    "DowngradeError",
    "AlreadyInstalledError",
    "WrongStateError",
    "ProbeRefusedError",
    "RecordInvalidError",
    "PlanInvalidError",
    "RolloutStateError",
    "RolloutNotFoundError",
    "AuditBrokenError",
    "ReplayMismatchError",
    "TufThresholdNotMetError",
    "TufUnknownKeyError",
    "TufDuplicateSignatureError",
    "TufRollbackError",
    "TufExpiredError",
    "TufTargetMismatchError",
    "TufTargetTooLongError",
    "TufMetadataTooLargeError",
    "TufMixAndMatchError",
    "TufUnsafeTargetNameError",
    "TufTargetNotFoundError",
    "TufRootRotationRefusedError",
    "TufFetchError",
    "TufMetadataInvalidError",
    "TufRepositoryError",
    "TufPackageInvalidError",
]


def _classes() -> Dict[int, Type[OtaError]]:
    found: Dict[int, Type[OtaError]] = {}
    pending: List[Type[OtaError]] = [OtaError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.status is not None and cls.__module__ == __name__:
            found[cls.status] = cls
    return found


_BY_CODE = _classes()


def status_class(status: int) -> Optional[Type[OtaError]]:
    """The exception class of ``status``, or None for a status this module does not know."""
    return _BY_CODE.get(status)


def error_for(status: int, message: str) -> OtaError:
    """The exception for ``status`` with ``message``."""
    cls = _BY_CODE.get(status)
    if cls is None:
        err = OtaError(f"status {status}: {message}")
        err.status = status
        return err
    return cls(message)
