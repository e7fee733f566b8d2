"""The exceptions: one class per ``ota_status`` of the library, in a hierarchy.

- ``OtaError``: every failure of a call into libota; ``status`` is the numeric ota_status,
  ``name`` its snake_case name, ``message`` the library's one-line detail (naming the field).
- ``ValidationError`` (also a ``ValueError``): the input does not parse or breaks a rule of its
  format (``JsonSyntaxError``, ``MissingFieldError``, ``InvalidError``, ...).
- ``VerificationError``: something that was signed, sealed or chained does not verify
  (``SignatureInvalidError``, ``DigestMismatchError``, ``AuditBrokenError``, the TUF attacks...).
- Some also derive from the built-in that fits: ``IoError`` and ``TufFetchError`` from
  ``OSError``, ``WrongHandleError`` from ``TypeError``, the not-found errors from ``LookupError``.

The classes are written out here, each naming its status in its header
(``class TruncatedError(VerificationError, status=304, name="truncated")``, taken by
``OtaError.__init_subclass__``), so type checkers see every one; tests/python/test_errors.py
checks them against the library's status table (``ota_status_name``), so none is missing or
misnamed.
"""

from typing import Any, Dict, List, Optional, Type

__all__ = ["OtaError", "ValidationError", "VerificationError"]

OK = 0
INSUFFICIENT_SIZE = 3
PANIC = 4
INVALID_ARGUMENT = 5


class OtaError(Exception):
    """A call into libota failed. ``status`` is the numeric ota_status (None when the library
    returned a status this module does not know), ``name`` its snake_case name, and
    ``message`` the library's one-line detail."""

    status: Optional[int] = None
    name: str = "unknown"

    def __init_subclass__(cls, *, status: Optional[int] = None, name: Optional[str] = None, **kwargs: Any) -> None:
        """Gives a class of one status its ``status`` and ``name``, from its header."""
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if name is not None:
            cls.name = name

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(OtaError, ValueError):
    """The input does not parse, or breaks a rule of its format: the message names the field."""


class VerificationError(OtaError):
    """A signature, digest, seal, chunk, audit chain or TUF metadata does not verify."""


class NullPointerError(OtaError, status=1, name="null_pointer"):
    """A required pointer argument was null (``null_pointer``, 1)."""


class InvalidUtf8Error(ValidationError, status=2, name="invalid_utf8"):
    """A string argument is not valid utf-8 (``invalid_utf8``, 2)."""


class InsufficientSizeError(OtaError, status=3, name="insufficient_size"):
    """The output buffer is too small (``insufficient_size``, 3)."""


class PanicError(OtaError, status=4, name="panic"):
    """The library panicked (``panic``, 4)."""


class InvalidArgumentError(ValidationError, status=5, name="invalid_argument"):
    """An argument is out of range (``invalid_argument``, 5)."""


class IoError(OtaError, OSError, status=6, name="io"):
    """An i/o operation failed (``io``, 6)."""


class WrongHandleError(OtaError, TypeError, status=7, name="wrong_handle"):
    """A handle argument is of another type (``wrong_handle``, 7)."""


class JsonSyntaxError(ValidationError, status=100, name="json_syntax"):
    """The input is not well-formed json (``json_syntax``, 100)."""


class UnknownFieldError(ValidationError, status=101, name="unknown_field"):
    """The input has an unknown field (``unknown_field``, 101)."""


class MissingFieldError(ValidationError, status=102, name="missing_field"):
    """A required field is missing (``missing_field``, 102)."""


class InvalidValueError(ValidationError, status=103, name="invalid_value"):
    """A field has an invalid value (``invalid_value``, 103)."""


class TooLargeError(ValidationError, status=104, name="too_large"):
    """The input exceeds a configured limit (``too_large``, 104)."""


class InvalidError(ValidationError, status=105, name="invalid"):
    """The document breaks a rule of its format (``invalid``, 105)."""


class InvalidKeyError(ValidationError, status=300, name="invalid_key"):
    """An encryption key is not 64 lowercase hex characters (``invalid_key``, 300)."""


class DigestMismatchError(VerificationError, status=301, name="digest_mismatch"):
    """The artifact does not match its declared sha256 (``digest_mismatch``, 301)."""


class ChunkDigestMismatchError(VerificationError, status=302, name="chunk_digest_mismatch"):
    """A chunk does not match its signed digest (``chunk_digest_mismatch``, 302)."""


class ChunkOutOfRangeError(VerificationError, status=303, name="chunk_out_of_range"):
    """A chunk does not fit the chunk table (``chunk_out_of_range``, 303)."""


class TruncatedError(VerificationError, status=304, name="truncated"):
    """The artifact is shorter than declared (``truncated``, 304)."""


class TooLongError(VerificationError, status=305, name="too_long"):
    """More bytes than the declared size were offered (``too_long``, 305)."""


class OutOfOrderError(OtaError, status=306, name="out_of_order"):
    """Bytes were offered out of order (``out_of_order``, 306)."""


class DecryptionFailedError(VerificationError, status=307, name="decryption_failed"):
    """The artifact does not open with this key (``decryption_failed``, 307)."""


class PlaintextTooLargeError(VerificationError, status=308, name="plaintext_too_large"):
    """The plaintext exceeds its bound (``plaintext_too_large``, 308)."""


class PlaintextMismatchError(VerificationError, status=309, name="plaintext_mismatch"):
    """The plaintext differs from what was declared (``plaintext_mismatch``, 309)."""


class TrailingDataError(VerificationError, status=310, name="trailing_data"):
    """The artifact has data after its gzip stream (``trailing_data``, 310)."""


class InvalidSigningKeyError(ValidationError, status=400, name="invalid_signing_key"):
    """A key could not be read (``invalid_signing_key``, 400)."""


class EnvelopeInvalidError(VerificationError, status=401, name="envelope_invalid"):
    """The envelope is malformed (``envelope_invalid``, 401)."""


class ThresholdNotMetError(VerificationError, status=402, name="threshold_not_met"):
    """Too few trusted keys signed validly (``threshold_not_met``, 402)."""


class SignatureInvalidError(VerificationError, status=403, name="signature_invalid"):
    """A trusted key's signature does not verify (``signature_invalid``, 403)."""


class StatementInvalidError(VerificationError, status=404, name="statement_invalid"):
    """The signed statement is not a valid package (``statement_invalid``, 404)."""


class NotSealedError(OtaError, status=405, name="not_sealed"):
    """The package has no chunk table or seal information (``not_sealed``, 405)."""


class PackageNotFoundError(OtaError, LookupError, status=500, name="package_not_found"):
    """No package has this id (``package_not_found``, 500)."""


class PackageNotAvailableError(OtaError, status=501, name="package_not_available"):
    """The package is not available (``package_not_available``, 501)."""


class ChunkMisalignedError(OtaError, status=600, name="chunk_misaligned"):
    """A chunk does not start on a 64 kib boundary (``chunk_misaligned``, 600)."""


class StoredChunkCorruptError(VerificationError, status=601, name="stored_chunk_corrupt"):
    """A stored chunk no longer matches its digest (``stored_chunk_corrupt``, 601)."""


class DownloadStateMismatchError(OtaError, status=602, name="download_state_mismatch"):
    """Saved download state belongs to another package (``download_state_mismatch``, 602)."""


class PermissionDeniedError(OtaError, status=603, name="permission_denied"):
    """The device is not assigned this package (``permission_denied``, 603)."""


class NotCompatibleError(OtaError, status=604, name="not_compatible"):
    """The package does not fit this device (``not_compatible``, 604)."""


class DowngradeError(OtaError, status=605, name="downgrade"):
    """The package is older than the installed version (``downgrade``, 605)."""


class AlreadyInstalledError(OtaError, status=606, name="already_installed"):
    """The package is already installed (``already_installed``, 606)."""


class WrongStateError(OtaError, status=607, name="wrong_state"):
    """The input does not fit the agent's state (``wrong_state``, 607)."""


class ProbeRefusedError(OtaError, status=608, name="probe_refused"):
    """The health probe may not run on this device (``probe_refused``, 608)."""


class RecordInvalidError(ValidationError, status=609, name="record_invalid"):
    """The saved agent record is invalid (``record_invalid``, 609)."""


class PlanInvalidError(ValidationError, status=700, name="plan_invalid"):
    """The rollout's plan or target is invalid (``plan_invalid``, 700)."""


class RolloutStateError(OtaError, status=701, name="rollout_state"):
    """The input does not fit the rollout's state (``rollout_state``, 701)."""


class RolloutNotFoundError(OtaError, LookupError, status=702, name="rollout_not_found"):
    """No such device, wave or package in the rollout (``rollout_not_found``, 702)."""


class AuditBrokenError(VerificationError, status=703, name="audit_broken"):
    """The audit trail was altered or truncated (``audit_broken``, 703)."""


class ReplayMismatchError(VerificationError, status=704, name="replay_mismatch"):
    """Replaying the audit trail gives another rollout (``replay_mismatch``, 704)."""


class TufThresholdNotMetError(VerificationError, status=800, name="tuf_threshold_not_met"):
    """A TUF role's metadata lacks its threshold of valid signatures (``tuf_threshold_not_met``, 800)."""


class TufUnknownKeyError(VerificationError, status=801, name="tuf_unknown_key"):
    """TUF metadata is signed only by keys its role does not trust (``tuf_unknown_key``, 801)."""


class TufDuplicateSignatureError(VerificationError, status=802, name="tuf_duplicate_signature"):
    """TUF metadata carries two signatures by one key (``tuf_duplicate_signature``, 802)."""


class TufRollbackError(VerificationError, status=803, name="tuf_rollback"):
    """TUF metadata is older than the version already trusted (``tuf_rollback``, 803)."""


class TufExpiredError(VerificationError, status=804, name="tuf_expired"):
    """TUF metadata has expired (``tuf_expired``, 804)."""


class TufTargetMismatchError(VerificationError, status=805, name="tuf_target_mismatch"):
    """A TUF target's bytes differ from its targets metadata (``tuf_target_mismatch``, 805)."""


class TufTargetTooLongError(VerificationError, status=806, name="tuf_target_too_long"):
    """A TUF target is longer than its targets metadata says (``tuf_target_too_long``, 806)."""


class TufMetadataTooLargeError(VerificationError, status=807, name="tuf_metadata_too_large"):
    """TUF metadata exceeds its size limit (``tuf_metadata_too_large``, 807)."""


class TufMixAndMatchError(VerificationError, status=808, name="tuf_mix_and_match"):
    """TUF metadata does not match the version or hash another role names (``tuf_mix_and_match``, 808)."""


class TufUnsafeTargetNameError(ValidationError, status=809, name="tuf_unsafe_target_name"):
    """A TUF target name is not a safe relative path (``tuf_unsafe_target_name``, 809)."""


class TufTargetNotFoundError(OtaError, LookupError, status=810, name="tuf_target_not_found"):
    """The TUF repository has no such target (``tuf_target_not_found``, 810)."""


class TufRootRotationRefusedError(VerificationError, status=811, name="tuf_root_rotation_refused"):
    """A new TUF root is not signed by the threshold of the trusted root (``tuf_root_rotation_refused``, 811)."""


class TufFetchError(OtaError, OSError, status=812, name="tuf_fetch"):
    """The TUF repository could not be read (``tuf_fetch``, 812)."""


class TufMetadataInvalidError(VerificationError, status=813, name="tuf_metadata_invalid"):
    """TUF metadata is malformed (``tuf_metadata_invalid``, 813)."""


class TufRepositoryError(OtaError, status=814, name="tuf_repository"):
    """The TUF repository could not be built or signed (``tuf_repository``, 814)."""


class TufPackageInvalidError(VerificationError, status=815, name="tuf_package_invalid"):
    """A TUF target does not carry a valid package statement for its bytes (``tuf_package_invalid``, 815)."""


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
