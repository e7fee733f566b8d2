"""Keys and signatures: Ed25519 signing keys, trusted key sets, DSSE envelopes and the
packages verified from them."""

import ctypes
import json as _json
from typing import AbstractSet, Any, Dict, Sequence, Type, TypeVar, Union

from . import _ffi
from ._documents import Package
from ._ffi import as_bytes, as_text, call, lib, text
from ._managed import BYTES, INT, PATH, TEXT, JsonInput, Managed, PathInput, TextInput, arg, holding, json_arg

_K = TypeVar("_K", bound="SigningKey")

__all__ = ["SigningKey", "TrustedKeys", "sign", "verify", "verify_file", "VerifiedPackage"]


class SigningKey(Managed):
    """An Ed25519 signing key."""

    _free = lib.ota_signing_key_free

    @classmethod
    def generate(cls: Type[_K]) -> _K:
        """A new key from the operating system's RNG."""
        h = ctypes.c_void_p()
        call(lib.ota_signing_key_generate(ctypes.byref(h)))
        return cls(h.value)

    @classmethod
    def load(cls: Type[_K], pkcs8: Union[TextInput, bytes]) -> _K:
        """Loads a PKCS#8 private key, PEM (text or bytes) or DER."""
        ptr, n, _keep = as_bytes(arg("pkcs8", pkcs8, BYTES))
        h = ctypes.c_void_p()
        call(lib.ota_signing_key_load(ptr, n, ctypes.byref(h)))
        return cls(h.value)

    def to_pem(self) -> str:
        """The key as PKCS#8 PEM text."""
        return text(lib.ota_signing_key_to_pem, self.handle)

    def to_der(self) -> bytes:
        """The key as PKCS#8 DER bytes."""
        return _ffi.binary(lib.ota_signing_key_to_der, self.handle)

    @property
    def public_key(self) -> str:
        """The raw public key as 64 hex characters."""
        return text(lib.ota_signing_key_public_key, self.handle)

    @property
    def key_id(self) -> str:
        """The key id: the hex SHA-256 of the raw public key."""
        return text(lib.ota_signing_key_id, self.handle)


class TrustedKeys(Managed):
    """A set of trusted public keys (64 hex characters or PEM each)."""

    _free = lib.ota_trusted_keys_free

    def __init__(
        self, keys: Union[Sequence[Union[TextInput, "SigningKey"]], AbstractSet[Union[str, bytes, "SigningKey"]]] = ()
    ) -> None:
        arg("keys", keys, (list, tuple, set, frozenset))
        h = ctypes.c_void_p()
        call(lib.ota_trusted_keys_new(ctypes.byref(h)))
        super().__init__(h.value)
        for k in keys:
            self.add(k)

    def add(self, public_key: Union[TextInput, "SigningKey"]) -> None:
        """Trusts a public key, or the public key of a ``SigningKey``."""
        if isinstance(public_key, SigningKey):
            public_key = public_key.public_key
        key, n = as_text(arg("public_key", public_key, TEXT + (SigningKey,)))
        call(lib.ota_trusted_keys_add(self.handle, key, n))


@holding
def sign(package: Package, keys: Sequence[SigningKey]) -> str:
    """Signs a sealed ``Package`` with every key: the DSSE envelope as JSON text."""
    p = arg("package", package, Package)
    arg("keys", keys, (list, tuple))
    handles = [arg(f"keys[{i}]", k, SigningKey) for i, k in enumerate(keys)]
    arr = (ctypes.c_void_p * len(handles))(*handles)
    return text(lib.ota_envelope_sign, p, arr, len(handles))


class VerifiedPackage(Managed):
    """A package whose envelope was verified against trusted keys, or that was resolved
    through TUF."""

    _free = lib.ota_verified_package_free

    def to_dict(self) -> Dict[str, Any]:
        """``{"id", "signed_by", "package"}``."""
        value: Dict[str, Any] = _json.loads(text(lib.ota_verified_package_to_json, self.handle))
        return value

    @property
    def id(self) -> str:
        """The package's id: ``pkg_`` and hex digits."""
        return text(lib.ota_verified_package_id, self.handle)

    @property
    def name(self) -> str:
        """The package's name."""
        return text(lib.ota_verified_package_name, self.handle)

    @property
    def version(self) -> str:
        """The package's version (semver)."""
        return text(lib.ota_verified_package_version, self.handle)

    @property
    def sha256(self) -> str:
        """The signed SHA-256 of the artifact: 64 lowercase hex digits."""
        return text(lib.ota_verified_package_sha256, self.handle)

    @property
    def size(self) -> int:
        """The signed size of the artifact in bytes."""
        out = ctypes.c_uint64(0)
        call(lib.ota_verified_package_size(self.handle, ctypes.byref(out)))
        return out.value

    @property
    def chunk_count(self) -> int:
        """The number of 64 KiB chunks in the artifact's signed chunk table."""
        out = ctypes.c_uint64(0)
        call(lib.ota_verified_package_chunk_count(self.handle, ctypes.byref(out)))
        return out.value


@holding
def verify(envelope: JsonInput, trusted: TrustedKeys, threshold: int = 1) -> VerifiedPackage:
    """Verifies a DSSE envelope (a dict, its JSON text, or a path): at least ``threshold``
    distinct trusted keys must have signed it. Raises a ``VerificationError``
    (``ThresholdNotMetError``, ``SignatureInvalidError``, ...) otherwise."""
    env, n = json_arg("envelope", envelope)
    keys = arg("trusted", trusted, TrustedKeys)
    threshold = arg("threshold", threshold, INT)
    h = ctypes.c_void_p()
    call(lib.ota_envelope_verify(env, n, keys, threshold, ctypes.byref(h)))
    return VerifiedPackage(h.value)


@holding
def verify_file(envelope_path: PathInput, table_path: PathInput, trusted: TrustedKeys, threshold: int = 1) -> VerifiedPackage:
    """Verifies the DSSE envelope in the file ``envelope_path`` as ``verify`` does, without
    holding it: it is streamed past the signature checks, and its chunk table is written to
    ``table_path`` (created, or emptied) and read back from there, checked, as chunks are
    verified, so memory does not grow with the artifact. Keep ``table_path`` while the package
    is in use. Raises what ``verify`` raises, or an ``IoError``."""
    e, en = as_text(arg("envelope_path", envelope_path, PATH))
    t, tn = as_text(arg("table_path", table_path, PATH))
    keys = arg("trusted", trusted, TrustedKeys)
    threshold = arg("threshold", threshold, INT)
    h = ctypes.c_void_p()
    call(lib.ota_envelope_verify_file(e, en, t, tn, keys, threshold, ctypes.byref(h)))
    return VerifiedPackage(h.value)
