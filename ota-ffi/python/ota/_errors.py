"""One exception class per ota_status, named after it."""

OK = 0
INSUFFICIENT_SIZE = 3


class OtaError(Exception):
    """A call into libota failed. ``status`` is the numeric ota_status, ``name`` its
    snake_case name, and the message the library's one-line detail."""

    status = -1
    name = "unknown"

    def __init__(self, message):
        super().__init__(message)
        self.message = message


_BY_CODE = {}


def _define(code, name):
    cls_name = "".join(part.capitalize() for part in name.split("_")) + "Error"
    cls = type(cls_name, (OtaError,), {"status": code, "name": name, "__doc__": f"ota_status {name} ({code})."})
    _BY_CODE[code] = cls
    globals()[cls_name] = cls
    return cls


# The statuses of include/ota.h; the tests check this table against the library.
STATUSES = {
    1: "null_pointer",
    2: "invalid_utf8",
    3: "insufficient_size",
    4: "panic",
    5: "invalid_argument",
    6: "io",
    100: "json_syntax",
    101: "unknown_field",
    102: "missing_field",
    103: "invalid_value",
    104: "too_large",
    105: "invalid",
    200: "incompatible",
    300: "invalid_key",
    301: "digest_mismatch",
    302: "chunk_digest_mismatch",
    303: "chunk_out_of_range",
    304: "truncated",
    305: "too_long",
    306: "out_of_order",
    307: "decryption_failed",
    308: "plaintext_too_large",
    309: "plaintext_mismatch",
    310: "trailing_data",
    400: "invalid_signing_key",
    401: "envelope_invalid",
    402: "threshold_not_met",
    403: "signature_invalid",
    404: "statement_invalid",
    405: "not_sealed",
    500: "package_not_found",
    501: "package_not_available",
    600: "chunk_misaligned",
    601: "stored_chunk_corrupt",
    602: "download_state_mismatch",
    603: "permission_denied",
    604: "not_compatible",
    605: "downgrade",
    606: "already_installed",
    607: "wrong_state",
    608: "probe_refused",
    609: "record_invalid",
    700: "plan_invalid",
    701: "rollout_state",
    702: "rollout_not_found",
    703: "audit_broken",
    704: "replay_mismatch",
    800: "tuf_threshold_not_met",
    801: "tuf_unknown_key",
    802: "tuf_duplicate_signature",
    803: "tuf_rollback",
    804: "tuf_expired",
    805: "tuf_target_mismatch",
    806: "tuf_target_too_long",
    807: "tuf_metadata_too_large",
    808: "tuf_mix_and_match",
    809: "tuf_unsafe_target_name",
    810: "tuf_target_not_found",
    811: "tuf_root_rotation_refused",
    812: "tuf_fetch",
    813: "tuf_metadata_invalid",
    814: "tuf_repository",
    815: "tuf_package_invalid",
}

for _code, _name in STATUSES.items():
    _define(_code, _name)


def error_for(status, message):
    """The exception for ``status`` with ``message``."""
    cls = _BY_CODE.get(status)
    if cls is None:
        err = OtaError(f"status {status}: {message}")
        err.status = status
        return err
    return cls(message)
