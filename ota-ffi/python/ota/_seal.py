"""Sealing and opening artifacts (gzip, AES-256-CBC, a chunk table), encryption keys, and seed
002's registration record."""

import ctypes
import hashlib
import json as _json
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from . import _ffi
from ._ffi import as_bytes, as_text, call, lib, text
from ._managed import BYTES, INT, PATH, BytesInput, JsonInput, Managed, PathInput, arg, holding, json_arg
from ._sign import VerifiedPackage

Sink = Callable[[bytes], Any]
"""Where output goes: called with each piece, in order (``file.write``, ``list.append``)."""

SealKey = Union[bytes, bytearray, memoryview, str]
"""A 32-byte encryption key: the raw bytes, or 64 hex characters."""

__all__ = [
    "generate_seal_key", "Sealer", "Opener", "seal", "open_sealed", "open_file", "registration_build",
    "registration_object_key", "registration_open_file",
]


def generate_seal_key() -> bytes:
    """A new random 32-byte encryption key (from the operating system's RNG)."""
    buf = (ctypes.c_uint8 * 32)()
    call(lib.ota_seal_key_generate(buf, 32))
    return bytes(buf)


def _key32(key: SealKey) -> Tuple[Optional[Any], int, bytes]:
    key = arg("key", key, BYTES)
    if isinstance(key, str):
        try:
            key = bytes.fromhex(key)
        except ValueError:
            raise ValueError("key must be 32 bytes or 64 hex characters") from None
    return as_bytes(key)


class _Streaming(Managed):
    """A sealer or opener: bytes in with ``write``, output to ``sink`` as it is ready."""

    _write: Any
    _finish: Any

    def __init__(self, sink: Sink) -> None:
        if not callable(sink):
            raise TypeError(f"sink must be callable, not {type(sink).__name__}")
        self._callback = _ffi.writer(sink)  # kept alive as long as the handle
        super().__init__(None)

    def _start(self, handle: Optional[int]) -> None:
        self._handle = handle

    def write(self, data: Union[BytesInput, str]) -> None:
        """Takes the next input bytes."""
        ptr, n, _keep = as_bytes(arg("data", data, BYTES))
        call(type(self)._write(self.handle, ptr, n))

    def finish(self) -> Dict[str, Any]:
        """Ends the stream and returns what it produced, as a dict. Calling it again returns
        the same."""
        info: Dict[str, Any] = _json.loads(text(type(self)._finish, self.handle))
        return info


class Sealer(_Streaming):
    """Seals plaintext written to it; the sealed artifact goes to ``sink(bytes)`` (for
    example ``file.write``). With ``plaintext_sha256`` (32 raw bytes), the output is
    reproducible."""

    _free = lib.ota_sealer_free
    _write = lib.ota_sealer_write
    _finish = lib.ota_sealer_finish

    def __init__(self, key: SealKey, sink: Sink, plaintext_sha256: Optional[BytesInput] = None) -> None:
        super().__init__(sink)
        kptr, kn, _k = _key32(key)
        h = ctypes.c_void_p()
        if plaintext_sha256 is None:
            call(lib.ota_sealer_new(kptr, kn, self._callback, None, ctypes.byref(h)))
        else:
            dptr, dn, _d = as_bytes(arg("plaintext_sha256", plaintext_sha256, (bytes, bytearray, memoryview)))
            call(lib.ota_sealer_new_reproducible(kptr, kn, dptr, dn, self._callback, None, ctypes.byref(h)))
        self._start(h.value)


class Opener(_Streaming):
    """Opens a verified package's artifact written to it in order, checking every 64 KiB
    chunk before decrypting it; the plaintext goes to ``sink(bytes)``. Only a successful
    ``finish()`` means the plaintext is complete."""

    _free = lib.ota_opener_free
    _write = lib.ota_opener_write
    _finish = lib.ota_opener_finish

    def __init__(self, verified: VerifiedPackage, key: SealKey, sink: Sink) -> None:
        v = arg("verified", verified, VerifiedPackage)
        super().__init__(sink)
        kptr, kn, _k = _key32(key)
        h = ctypes.c_void_p()
        call(lib.ota_opener_new(v, kptr, kn, self._callback, None, ctypes.byref(h)))
        self._start(h.value)


def seal(plaintext: BytesInput, key: SealKey, reproducible: bool = False) -> Tuple[bytes, Dict[str, Any]]:
    """Seals bytes in memory: ``(sealed bytes, info dict)``. The info has ``sha256``,
    ``size_bytes``, ``plaintext_size``, ``plaintext_sha256``, ``iv`` and ``chunks``, and
    ``segments`` when the plaintext is longer than one 1 MiB segment."""
    arg("plaintext", plaintext, (bytes, bytearray, memoryview))
    arg("reproducible", reproducible, bool)
    out: List[bytes] = []
    digest = hashlib.sha256(plaintext).digest() if reproducible else None
    with Sealer(key, out.append, digest) as s:
        s.write(plaintext)
        info = s.finish()
    return b"".join(out), info


@holding
def open_sealed(verified: VerifiedPackage, key: SealKey, artifact: BytesInput) -> bytes:
    """Opens a verified package's artifact held in memory: the plaintext."""
    arg("artifact", artifact, (bytes, bytearray, memoryview))
    out: List[bytes] = []
    with Opener(verified, key, out.append) as o:
        o.write(artifact)
        o.finish()
    return b"".join(out)


@holding
def open_file(verified: VerifiedPackage, key: SealKey, artifact_path: PathInput, out_path: PathInput, threads: int = 0) -> None:
    """Opens a verified package's sealed artifact file into ``out_path``, as ``ota unpack`` does:
    every chunk checked before it is decrypted, ``out_path`` written only on success. ``threads``
    inflate the package's segments beside the verifying thread (1: all on one thread; 0: chosen
    for this machine; at most 16); the bytes are the same whatever the count. The GIL is
    released for the whole call."""
    v = arg("verified", verified, VerifiedPackage)
    kptr, kn, _k = _key32(key)
    a, an = as_text(arg("artifact_path", artifact_path, PATH))
    o, on = as_text(arg("out_path", out_path, PATH))
    call(lib.ota_verified_package_open_file(v, kptr, kn, a, an, o, on, arg("threads", threads, INT)))


@holding
def registration_build(
    sealer: Sealer,
    key: SealKey,
    resource_name: str,
    dev_stage: str,
    architecture: str,
    version: str,
    s3_endpoint: str,
    bucket: str,
    cdn_base: Optional[str] = None,
) -> Dict[str, Any]:
    """publish_artifact.py's registration record for a finished ``Sealer``'s artifact, as a dict."""
    s = arg("sealer", sealer, Sealer)
    params = {
        "resource_name": resource_name, "dev_stage": dev_stage, "architecture": architecture,
        "version": version, "s3_endpoint": s3_endpoint, "bucket": bucket,
    }
    for name, value in params.items():
        arg(name, value, str)
    if cdn_base is not None:
        params["cdn_base"] = arg("cdn_base", cdn_base, str)
    kptr, kn, _k = _key32(key)
    p, pn = as_text(_json.dumps(params))
    record: Dict[str, Any] = _json.loads(text(lib.ota_registration_build, s, kptr, kn, p, pn))
    return record


def registration_object_key(registration: JsonInput) -> str:
    """The object key ``{dev_stage}/{resource_name}-{architecture}-{version}.enc``."""
    r, n = json_arg("registration", registration)
    return text(lib.ota_registration_object_key, r, n)


def registration_open_file(registration: JsonInput, artifact_path: PathInput, out_path: PathInput, max_plaintext: int) -> None:
    """Opens a sealed file known only by its registration record: checks its size and SHA-256
    before decrypting, and writes ``out_path`` only on success."""
    r, rn = json_arg("registration", registration)
    a, an = as_text(arg("artifact_path", artifact_path, PATH))
    o, on = as_text(arg("out_path", out_path, PATH))
    call(lib.ota_registration_open_file(r, rn, a, an, o, on, arg("max_plaintext", max_plaintext, INT)))
