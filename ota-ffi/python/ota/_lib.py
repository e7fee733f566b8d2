"""Finds and loads libota and declares every function's argtypes/restype. Nothing else: the
exceptions are in ``_errors``, the calling helpers in ``_ffi``."""

import ctypes
import os
import sys
from ctypes import POINTER, c_bool, c_char, c_char_p, c_size_t, c_uint32, c_void_p
from typing import Any, FrozenSet, Iterator, List, NoReturn


def _candidates() -> Iterator[str]:
    env = os.environ.get("OTA_LIBRARY")
    if env:
        yield env
    names = {"darwin": "libota.dylib", "win32": "ota.dll"}
    name = names.get(sys.platform, "libota.so")
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, name)
    # A checkout: ota-ffi/python/ota -> the workspace's target directory.
    root = os.path.abspath(os.path.join(here, "..", "..", ".."))
    for profile in ("release", "debug"):
        yield os.path.join(root, "target", profile, name)
        yield os.path.join(root, "target", profile, "deps", name)
    yield name  # the system's library search path


def _load() -> ctypes.CDLL:
    errors: List[str] = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError("cannot load libota; set OTA_LIBRARY to its path (" + "; ".join(errors) + ")")


lib = _load()
path: str = lib._name
"""The path libota was loaded from."""

ota_status = c_uint32
u8p = POINTER(ctypes.c_uint8)
size_p = POINTER(c_size_t)


class Opaque(ctypes.Structure):
    """An opaque handle type (ota_manifest, ota_package, ...)."""


def _declare(name: str, restype: Any, *argtypes: Any) -> Any:
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


# Each optional cargo feature of ota-ffi, and the function whose presence says it was built.
_FEATURE_MARKS = {"probe-runners": "ota_probe_run", "tuf": "ota_tuf_client_new"}

features: FrozenSet[str] = frozenset(f for f, mark in _FEATURE_MARKS.items() if hasattr(lib, mark))
"""The cargo features of ota-ffi this libota was built with: the optional ones whose functions
it exports (a firmware build, ``--no-default-features``, has neither)."""


def _declare_optional(feature: str, name: str, restype: Any, *argtypes: Any) -> None:
    """Declares a function only ota-ffi's cargo ``feature`` exports. A libota built without the
    feature still loads, and calling the function raises ``NotImplementedError`` naming it; one
    built with it must have every function of it, as ``_declare`` requires."""
    if feature in features:
        _declare(name, restype, *argtypes)
        return

    def missing(*_args: Any) -> NoReturn:
        raise NotImplementedError(
            f"{name}: the libota loaded from {path} was built without ota-ffi's `{feature}` "
            f"feature (ota.features() lists what it has)"
        )

    setattr(lib, name, missing)


HANDLE = c_void_p
HANDLE_OUT = POINTER(c_void_p)
BUF = POINTER(c_char)
TEXT = c_char_p  # a text input: const char * (bytes, not NUL-terminated: its length follows)

_declare("ota_version", c_char_p)
_declare("ota_status_message", c_char_p, c_uint32)
_declare("ota_status_name", c_char_p, c_uint32)
_declare("ota_last_error_message", ota_status, BUF, c_size_t, size_p)
for _obj in ("manifest", "package", "profile"):
    _declare(f"ota_{_obj}_parse", ota_status, TEXT, c_size_t, HANDLE_OUT)
    _declare(f"ota_{_obj}_to_json", ota_status, HANDLE, BUF, c_size_t, size_p)
    _declare(f"ota_{_obj}_free", None, HANDLE)
_declare("ota_compat_check", ota_status, HANDLE, HANDLE, BUF, c_size_t, size_p, POINTER(c_bool))
_declare("ota_compat_check_fleet", ota_status, HANDLE, TEXT, c_size_t, BUF, c_size_t, size_p)
_declare("ota_sbom_validate", ota_status, TEXT, c_size_t, TEXT, c_size_t, BUF, c_size_t, size_p)

# A write callback: (ctx, data, len) -> 0 when it took the bytes.
WRITE_FN = ctypes.CFUNCTYPE(ctypes.c_int, c_void_p, POINTER(ctypes.c_uint8), c_size_t)
U8BUF = POINTER(ctypes.c_uint8)

_declare("ota_signing_key_generate", ota_status, HANDLE_OUT)
_declare("ota_signing_key_load", ota_status, u8p, c_size_t, HANDLE_OUT)
_declare("ota_signing_key_to_pem", ota_status, HANDLE, BUF, c_size_t, size_p)
_declare("ota_signing_key_to_der", ota_status, HANDLE, U8BUF, c_size_t, size_p)
_declare("ota_signing_key_public_key", ota_status, HANDLE, BUF, c_size_t, size_p)
_declare("ota_signing_key_id", ota_status, HANDLE, BUF, c_size_t, size_p)
_declare("ota_signing_key_free", None, HANDLE)
_declare("ota_trusted_keys_new", ota_status, HANDLE_OUT)
_declare("ota_trusted_keys_add", ota_status, HANDLE, TEXT, c_size_t)
_declare("ota_trusted_keys_free", None, HANDLE)
_declare("ota_envelope_sign", ota_status, HANDLE, POINTER(c_void_p), c_size_t, BUF, c_size_t, size_p)
_declare("ota_envelope_verify", ota_status, TEXT, c_size_t, HANDLE, c_size_t, HANDLE_OUT)
_declare("ota_envelope_verify_file", ota_status, TEXT, c_size_t, TEXT, c_size_t, HANDLE, c_size_t, HANDLE_OUT)
_declare("ota_verified_package_to_json", ota_status, HANDLE, BUF, c_size_t, size_p)
_declare("ota_verified_package_free", None, HANDLE)
_declare("ota_verified_package_id", ota_status, HANDLE, BUF, c_size_t, size_p)
_declare("ota_verified_package_name", ota_status, HANDLE, BUF, c_size_t, size_p)
_declare("ota_verified_package_version", ota_status, HANDLE, BUF, c_size_t, size_p)
_declare("ota_verified_package_sha256", ota_status, HANDLE, BUF, c_size_t, size_p)
_declare("ota_verified_package_size", ota_status, HANDLE, POINTER(ctypes.c_uint64))
_declare("ota_verified_package_chunk_count", ota_status, HANDLE, POINTER(ctypes.c_uint64))
_declare("ota_report_parse_status", ota_status, TEXT, c_size_t, POINTER(c_uint32))
_declare("ota_seal_key_generate", ota_status, U8BUF, c_size_t)
_declare("ota_sealer_new", ota_status, u8p, c_size_t, WRITE_FN, c_void_p, HANDLE_OUT)
_declare("ota_sealer_new_reproducible", ota_status, u8p, c_size_t, u8p, c_size_t, WRITE_FN, c_void_p, HANDLE_OUT)
_declare("ota_sealer_write", ota_status, HANDLE, u8p, c_size_t)
_declare("ota_sealer_finish", ota_status, HANDLE, BUF, c_size_t, size_p)
_declare("ota_sealer_free", None, HANDLE)
_declare("ota_package_set_sealed", ota_status, HANDLE, HANDLE)
_declare("ota_opener_new", ota_status, HANDLE, u8p, c_size_t, WRITE_FN, c_void_p, HANDLE_OUT)
_declare("ota_opener_write", ota_status, HANDLE, u8p, c_size_t)
_declare("ota_opener_finish", ota_status, HANDLE, BUF, c_size_t, size_p)
_declare("ota_opener_free", None, HANDLE)
_declare("ota_registration_build", ota_status, HANDLE, u8p, c_size_t, TEXT, c_size_t, BUF, c_size_t, size_p)
_declare("ota_registration_object_key", ota_status, TEXT, c_size_t, BUF, c_size_t, size_p)
_declare("ota_registration_open_file", ota_status, TEXT, c_size_t, TEXT, c_size_t, TEXT, c_size_t, ctypes.c_uint64)
_declare("ota_verified_package_open_file", ota_status, HANDLE, u8p, c_size_t, TEXT, c_size_t, TEXT, c_size_t, ctypes.c_uint64)


# --- The device path. ----------------------------------------------------------------------

STAGE_WRITE = ctypes.CFUNCTYPE(ctypes.c_int, c_void_p, ctypes.c_uint64, POINTER(ctypes.c_uint8), c_size_t)
STAGE_READ = ctypes.CFUNCTYPE(ctypes.c_int, c_void_p, ctypes.c_uint64, POINTER(ctypes.c_uint8), c_size_t)
SLOT_OPEN = ctypes.CFUNCTYPE(ctypes.c_int, c_void_p)
SLOT_FLUSH = ctypes.CFUNCTYPE(ctypes.c_int, c_void_p)


class DeviceIoStruct(ctypes.Structure):
    """ota_device_io."""

    _fields_ = [
        ("ctx", c_void_p),
        ("stage_write", STAGE_WRITE),
        ("stage_read", STAGE_READ),
        ("slot_open", SLOT_OPEN),
        ("slot_write", WRITE_FN),
        ("slot_flush", SLOT_FLUSH),
    ]


class CommandStruct(ctypes.Structure):
    """ota_command."""

    _fields_ = [
        ("kind", ctypes.c_uint32),
        ("length", ctypes.c_uint32),
        ("index", ctypes.c_uint64),
        ("offset", ctypes.c_uint64),
        ("swapped_at", ctypes.c_uint64),
    ]


_declare("ota_agent_new", ota_status, TEXT, c_size_t, TEXT, c_size_t, ctypes.c_uint64, POINTER(DeviceIoStruct), HANDLE_OUT)
_declare("ota_agent_restore", ota_status, TEXT, c_size_t, TEXT, c_size_t, HANDLE, ctypes.c_uint64, POINTER(DeviceIoStruct),
         HANDLE_OUT)
_declare("ota_agent_handle_assignment", ota_status, HANDLE, TEXT, c_size_t, ctypes.c_uint64)
_declare("ota_agent_handle_verified_assignment", ota_status, HANDLE, TEXT, c_size_t, HANDLE, ctypes.c_uint64)
_declare("ota_agent_handle_chunk", ota_status, HANDLE, ctypes.c_uint64, u8p, c_size_t, ctypes.c_uint64, POINTER(c_bool))
_declare("ota_agent_handle_swapped", ota_status, HANDLE, ctypes.c_uint64)
_declare("ota_agent_handle_probe_result", ota_status, HANDLE, c_bool, TEXT, c_size_t, ctypes.c_uint64)
_declare("ota_agent_handle_restored", ota_status, HANDLE, ctypes.c_uint64)
_declare("ota_agent_handle_tick", ota_status, HANDLE, ctypes.c_uint64)
_declare("ota_agent_handle_cancel", ota_status, HANDLE, ctypes.c_uint64)
_declare("ota_agent_poll", ota_status, HANDLE, POINTER(CommandStruct), BUF, c_size_t, size_p)
_declare("ota_agent_timeout", ota_status, HANDLE, POINTER(ctypes.c_uint64))
_declare("ota_agent_state", c_char_p, HANDLE)
_declare("ota_agent_installed_version", ota_status, HANDLE, TEXT, c_size_t, BUF, c_size_t, size_p)
_declare("ota_agent_free", None, HANDLE)
_declare_optional("probe-runners", "ota_probe_run", ota_status, TEXT, c_size_t, TEXT, c_size_t, ctypes.c_uint64, POINTER(c_bool), BUF, c_size_t, size_p)


# --- The control plane. --------------------------------------------------------------------

u64 = ctypes.c_uint64
_declare("ota_rollout_create", ota_status, TEXT, c_size_t, HANDLE, HANDLE, TEXT, c_size_t, u64, HANDLE_OUT)
_declare("ota_rollout_replay", ota_status, TEXT, c_size_t, HANDLE, HANDLE, TEXT, c_size_t, u64, TEXT, c_size_t, HANDLE_OUT)
_declare("ota_rollout_handle_report", ota_status, HANDLE, TEXT, c_size_t, u64)
_declare("ota_rollout_handle_report_attempt", ota_status, HANDLE, TEXT, c_size_t, c_uint32, u64)
_declare("ota_rollout_attempt", ota_status, HANDLE, TEXT, c_size_t, POINTER(c_uint32))
_declare("ota_rollout_handle_tick", ota_status, HANDLE, u64)
_declare("ota_rollout_command", ota_status, HANDLE, TEXT, c_size_t, c_size_t, TEXT, c_size_t, u64)
_declare("ota_rollout_join", ota_status, HANDLE, TEXT, c_size_t, u64)
_declare("ota_rollout_leave", ota_status, HANDLE, TEXT, c_size_t, u64)
_declare("ota_rollout_poll", ota_status, HANDLE, POINTER(ctypes.c_uint32), BUF, c_size_t, size_p)
_declare("ota_rollout_timeout", ota_status, HANDLE, POINTER(u64))
_declare("ota_rollout_status", ota_status, HANDLE, BUF, c_size_t, size_p)
_declare("ota_rollout_snapshot", ota_status, HANDLE, BUF, c_size_t, size_p)
_declare("ota_rollout_restore", ota_status, TEXT, c_size_t, HANDLE, HANDLE, HANDLE_OUT)
_declare("ota_rollout_free", None, HANDLE)
_declare("ota_audit_verify", ota_status, TEXT, c_size_t, POINTER(u64))
_declare("ota_audit_verify_head", ota_status, TEXT, c_size_t, TEXT, c_size_t, POINTER(u64))


# --- TUF. ----------------------------------------------------------------------------------

_declare_optional("tuf", "ota_tuf_client_new", ota_status, TEXT, c_size_t, TEXT, c_size_t, TEXT, c_size_t, TEXT, c_size_t, HANDLE_OUT)
_declare_optional("tuf", "ota_tuf_client_set_progress_timeout", ota_status, HANDLE, u64)
_declare_optional("tuf", "ota_tuf_refresh", ota_status, HANDLE, u64, HANDLE_OUT)
_declare_optional("tuf", "ota_tuf_resolve", ota_status, HANDLE, TEXT, c_size_t, HANDLE_OUT, POINTER(u64))
_declare_optional("tuf", "ota_tuf_download", ota_status, HANDLE, TEXT, c_size_t, WRITE_FN, c_void_p, POINTER(u64))
_declare_optional("tuf", "ota_tuf_download_file", ota_status, HANDLE, TEXT, c_size_t, TEXT, c_size_t)
_declare_optional("tuf", "ota_tuf_trust_center", ota_status, HANDLE, BUF, c_size_t, size_p)
_declare_optional("tuf", "ota_tuf_client_free", None, HANDLE)
_declare_optional("tuf", "ota_tuf_repo_free", None, HANDLE)
