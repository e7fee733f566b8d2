"""Python bindings for ota, through ctypes over libota (include/ota.h).

>>> import ota
>>> package = ota.Package.from_json(open("package.json").read())
>>> device = ota.Profile.from_json(open("device.json").read())
>>> report = ota.check(package, device)
>>> report["compatible"], [r["reason"] for r in report["rejections"]]
"""

import ctypes
import json as _json

from . import _errors
from ._errors import *  # noqa: F401,F403  (the exception classes)
from ._errors import OtaError
from . import _ffi
from ._ffi import as_bytes, call, lib, text
from ._managed import Managed

__all__ = ["version", "Manifest", "Package", "Profile", "check", "check_fleet", "validate_sbom", "OtaError"]
__all__ += [cls.__name__ for cls in _errors._BY_CODE.values()]


def version():
    """The library's version string."""
    return lib.ota_version().decode()


class _Document(Managed):
    _kind = None

    @classmethod
    def from_json(cls, data):
        """Parses and validates a document from JSON text or bytes. Raises the exception of
        the failure's status, whose message names the offending field."""
        ptr, n, _keep = as_bytes(data)
        handle = ctypes.c_void_p()
        call(getattr(lib, f"ota_{cls._kind}_parse")(ptr, n, ctypes.byref(handle)))
        return cls(handle.value)

    def to_json(self):
        """The document as compact JSON text."""
        return text(getattr(lib, f"ota_{self._kind}_to_json"), self.handle)

    def to_dict(self):
        """The document as a dict."""
        return _json.loads(self.to_json())


class Manifest(_Document):
    """A validated model manifest."""

    _kind = "manifest"
    _free = lib.ota_manifest_free


class Package(_Document):
    """A validated package."""

    _kind = "package"
    _free = lib.ota_package_free


class Profile(_Document):
    """A validated device profile."""

    _kind = "profile"
    _free = lib.ota_profile_free


def check(package, profile):
    """The compatibility report of ``package`` on the device ``profile``: a dict with
    ``compatible`` and every rejection (``reason``, ``target``, ``needed``, ``found``)."""
    ok = ctypes.c_bool(False)
    report = text(lib.ota_compat_check, package.handle, profile.handle, extra=(ctypes.byref(ok),))
    result = _json.loads(report)
    assert result["compatible"] == ok.value
    return result


def check_fleet(package, profiles):
    """The fleet report of ``package`` over ``profiles`` (JSON text of an array, or a list of
    ``Profile`` objects or dicts): ``total``, ``eligible``, ``rejected`` and the count of
    each reason."""
    if not isinstance(profiles, (str, bytes)):
        profiles = "[" + ",".join(p.to_json() if isinstance(p, Profile) else _json.dumps(p) for p in profiles) + "]"
    ptr, n, _keep = as_bytes(profiles)
    return _json.loads(text(lib.ota_compat_check_fleet, package.handle, ptr, n))


def validate_sbom(format, document):
    """Validates an SBOM (``format`` is ``"spdx-2.3"`` or ``"cyclonedx-1.5"``) and returns its
    summary; raises ``InvalidError`` listing every fault otherwise."""
    fptr, fn, _k1 = as_bytes(format)
    dptr, dn, _k2 = as_bytes(document)
    return _json.loads(text(lib.ota_sbom_validate, fptr, fn, dptr, dn))


# --- The publisher path: keys, sealing, signing, verifying, opening. -----------------------

__all__ += [
    "generate_seal_key", "SigningKey", "TrustedKeys", "sign", "verify", "VerifiedPackage",
    "Sealer", "Opener", "seal", "open_sealed", "registration_build", "registration_object_key",
    "registration_open_file",
]


def generate_seal_key():
    """A new random 32-byte encryption key (from the operating system's RNG)."""
    buf = (ctypes.c_uint8 * 32)()
    call(lib.ota_seal_key_generate(buf, 32))
    return bytes(buf)


def _key32(key):
    if isinstance(key, str):
        key = bytes.fromhex(key)
    return as_bytes(key)


class SigningKey(Managed):
    """An Ed25519 signing key."""

    _free = lib.ota_signing_key_free

    @classmethod
    def generate(cls):
        """A new key from the operating system's RNG."""
        h = ctypes.c_void_p()
        call(lib.ota_signing_key_generate(ctypes.byref(h)))
        return cls(h.value)

    @classmethod
    def load(cls, pkcs8):
        """Loads a PKCS#8 private key, PEM (text or bytes) or DER."""
        ptr, n, _keep = as_bytes(pkcs8)
        h = ctypes.c_void_p()
        call(lib.ota_signing_key_load(ptr, n, ctypes.byref(h)))
        return cls(h.value)

    def to_pem(self):
        """The key as PKCS#8 PEM text."""
        return text(lib.ota_signing_key_to_pem, self.handle)

    def to_der(self):
        """The key as PKCS#8 DER bytes."""
        return _ffi.binary(lib.ota_signing_key_to_der, self.handle)

    @property
    def public_key(self):
        """The raw public key as 64 hex characters."""
        return text(lib.ota_signing_key_public_key, self.handle)

    @property
    def key_id(self):
        """The key id: the hex SHA-256 of the raw public key."""
        return text(lib.ota_signing_key_id, self.handle)


class TrustedKeys(Managed):
    """A set of trusted public keys (64 hex characters or PEM each)."""

    _free = lib.ota_trusted_keys_free

    def __init__(self, keys=()):
        h = ctypes.c_void_p()
        call(lib.ota_trusted_keys_new(ctypes.byref(h)))
        super().__init__(h.value)
        for k in keys:
            self.add(k)

    def add(self, public_key):
        """Trusts a public key, or the public key of a ``SigningKey``."""
        if isinstance(public_key, SigningKey):
            public_key = public_key.public_key
        ptr, n, _keep = as_bytes(public_key)
        call(lib.ota_trusted_keys_add(self.handle, ptr, n))


def sign(package, keys):
    """Signs a sealed ``Package`` with every key: the DSSE envelope as JSON text."""
    arr = (ctypes.c_void_p * len(keys))(*[k.handle for k in keys])
    return text(lib.ota_envelope_sign, package.handle, arr, len(keys))


class VerifiedPackage(Managed):
    """A package whose envelope was verified against trusted keys."""

    _free = lib.ota_verified_package_free

    def to_dict(self):
        """``{"id", "signed_by", "package"}``."""
        return _json.loads(text(lib.ota_verified_package_to_json, self.handle))


def verify(envelope, trusted, threshold=1):
    """Verifies a DSSE envelope: at least ``threshold`` distinct trusted keys must have signed
    it. Raises ``ThresholdNotMetError``, ``SignatureInvalidError``, ... otherwise."""
    ptr, n, _keep = as_bytes(envelope)
    h = ctypes.c_void_p()
    call(lib.ota_envelope_verify(ptr, n, trusted.handle, threshold, ctypes.byref(h)))
    return VerifiedPackage(h.value)


class _Streaming(Managed):
    """A sealer or opener: bytes in with ``write``, output to ``sink`` as it is ready."""

    def __init__(self, sink):
        self._callback = _ffi.writer(sink)  # kept alive as long as the handle
        super().__init__(None)

    def _start(self, handle):
        self._handle = handle

    def write(self, data):
        """Takes the next input bytes."""
        ptr, n, _keep = as_bytes(data)
        call(self._write(self.handle, ptr, n))

    def finish(self):
        """Ends the stream and returns what it produced, as a dict."""
        return _json.loads(text(self._finish, self.handle))


class Sealer(_Streaming):
    """Seals plaintext written to it; the sealed artifact goes to ``sink(bytes)`` (for
    example ``file.write``). With ``plaintext_sha256`` (32 raw bytes), the output is
    reproducible."""

    _free = lib.ota_sealer_free
    _write = lib.ota_sealer_write
    _finish = lib.ota_sealer_finish

    def __init__(self, key, sink, plaintext_sha256=None):
        super().__init__(sink)
        kptr, kn, _k = _key32(key)
        h = ctypes.c_void_p()
        if plaintext_sha256 is None:
            call(lib.ota_sealer_new(kptr, kn, self._callback, None, ctypes.byref(h)))
        else:
            dptr, dn, _d = as_bytes(plaintext_sha256)
            call(lib.ota_sealer_new_reproducible(kptr, kn, dptr, dn, self._callback, None, ctypes.byref(h)))
        self._start(h.value)


class Opener(_Streaming):
    """Opens a verified package's artifact written to it in order, checking every 64 KiB
    chunk before decrypting it; the plaintext goes to ``sink(bytes)``. Only a successful
    ``finish()`` means the plaintext is complete."""

    _free = lib.ota_opener_free
    _write = lib.ota_opener_write
    _finish = lib.ota_opener_finish

    def __init__(self, verified, key, sink):
        super().__init__(sink)
        kptr, kn, _k = _key32(key)
        h = ctypes.c_void_p()
        call(lib.ota_opener_new(verified.handle, kptr, kn, self._callback, None, ctypes.byref(h)))
        self._start(h.value)


def seal(plaintext, key, reproducible=False):
    """Seals bytes in memory: ``(sealed bytes, info dict)``. The returned sealer-less info has
    ``sha256``, ``size_bytes``, ``plaintext_size``, ``plaintext_sha256``, ``iv`` and
    ``chunks``."""
    import hashlib

    out = []
    digest = hashlib.sha256(plaintext).digest() if reproducible else None
    with Sealer(key, out.append, digest) as s:
        s.write(plaintext)
        info = s.finish()
    return b"".join(out), info


def open_sealed(verified, key, artifact):
    """Opens a verified package's artifact held in memory: the plaintext."""
    out = []
    with Opener(verified, key, out.append) as o:
        o.write(artifact)
        o.finish()
    return b"".join(out)


def _package_set_sealed(self, sealer):
    """Sets ``sha256``, ``size_bytes``, the chunk table and seal information from a finished
    ``Sealer``, so the package can be signed."""
    call(lib.ota_package_set_sealed(self.handle, sealer.handle))


Package.set_sealed = _package_set_sealed


def registration_build(sealer, key, resource_name, dev_stage, architecture, version, s3_endpoint, bucket, cdn_base=None):
    """Seed 002's registration record for a finished ``Sealer``'s artifact, as a dict."""
    params = {
        "resource_name": resource_name, "dev_stage": dev_stage, "architecture": architecture,
        "version": version, "s3_endpoint": s3_endpoint, "bucket": bucket,
    }
    if cdn_base is not None:
        params["cdn_base"] = cdn_base
    kptr, kn, _k = _key32(key)
    pptr, pn, _p = as_bytes(_json.dumps(params))
    return _json.loads(text(lib.ota_registration_build, sealer.handle, kptr, kn, pptr, pn))


def registration_object_key(registration):
    """The object key ``{dev_stage}/{resource_name}-{architecture}-{version}.enc``."""
    ptr, n, _keep = as_bytes(_json.dumps(registration) if isinstance(registration, dict) else registration)
    return text(lib.ota_registration_object_key, ptr, n)


def registration_open_file(registration, artifact_path, out_path, max_plaintext):
    """Opens a sealed file known only by its registration record: checks its size and SHA-256
    before decrypting, and writes ``out_path`` only on success."""
    rptr, rn, _r = as_bytes(_json.dumps(registration) if isinstance(registration, dict) else registration)
    aptr, an, _a = as_bytes(str(artifact_path))
    optr, on, _o = as_bytes(str(out_path))
    call(lib.ota_registration_open_file(rptr, rn, aptr, an, optr, on, max_plaintext))


# --- The device path: the update agent and health probes. ----------------------------------

__all__ += ["DeviceIo", "Agent", "COMMANDS", "probe_run"]

COMMANDS = {0: None, 1: "persist", 2: "fetch", 3: "swap", 4: "probe", 5: "restore_previous", 6: "report"}


class DeviceIo:
    """The device's storage for the agent. Subclass it and implement ``stage_write(offset,
    data)``, ``stage_read(offset, n) -> bytes``, ``slot_open()``, ``slot_write(data)`` and
    ``slot_flush()``; an exception in any of them fails the operation that needed it."""

    def stage_write(self, offset, data):
        raise NotImplementedError

    def stage_read(self, offset, n):
        raise NotImplementedError

    def slot_open(self):
        raise NotImplementedError

    def slot_write(self, data):
        raise NotImplementedError

    def slot_flush(self):
        pass

    def _struct(self):
        """The ota_device_io for the library; the callbacks live as long as this object."""

        def guard(f):
            def call_(*a):
                try:
                    f(*a)
                    return 0
                except Exception:  # noqa: BLE001 - the library reports the failure
                    return 1

            return call_

        def read(_ctx, offset, buf, n):
            data = self.stage_read(offset, n)
            if len(data) != n:
                raise IOError("short read")
            ctypes.memmove(buf, data, n)

        self._callbacks = (
            _ffi.STAGE_WRITE(guard(lambda _c, o, d, n: self.stage_write(o, ctypes.string_at(d, n)))),
            _ffi.STAGE_READ(guard(read)),
            _ffi.SLOT_OPEN(guard(lambda _c: self.slot_open())),
            _ffi.WRITE_FN(guard(lambda _c, d, n: self.slot_write(ctypes.string_at(d, n)))),
            _ffi.SLOT_FLUSH(guard(lambda _c: self.slot_flush())),
        )
        return _ffi.DeviceIoStruct(None, *self._callbacks)


class Agent(Managed):
    """The device's update agent. After creating it and after every ``handle_*`` call, carry
    out ``commands()`` in order: ``persist`` (store ``text`` durably first), ``fetch``
    (``offset``/``length``), ``swap``, ``probe`` (``text`` is the probe), ``restore_previous``
    and ``report`` (``text`` is the report)."""

    _free = lib.ota_agent_free

    def __init__(self, config, io, now, record=None):
        self._io = io
        self._io_struct = io._struct()
        cptr, cn, _c = as_bytes(config if isinstance(config, (str, bytes)) else _json.dumps(config))
        rptr, rn, _r = as_bytes(record or b"")
        h = ctypes.c_void_p()
        call(lib.ota_agent_new(cptr, cn, rptr, rn, now, ctypes.byref(self._io_struct), ctypes.byref(h)))
        super().__init__(h.value)

    def handle_assignment(self, assignment, now):
        """Takes an assignment; raises the refusal's exception (a rejected report is queued)."""
        ptr, n, _k = as_bytes(assignment if isinstance(assignment, (str, bytes)) else _json.dumps(assignment))
        call(lib.ota_agent_handle_assignment(self.handle, ptr, n, now))

    def handle_chunk(self, offset, data, now):
        """Takes a fetched chunk; returns whether it was new."""
        ptr, n, _k = as_bytes(data)
        new = ctypes.c_bool(False)
        call(lib.ota_agent_handle_chunk(self.handle, offset, ptr, n, now, ctypes.byref(new)))
        return new.value

    def handle_swapped(self, now):
        call(lib.ota_agent_handle_swapped(self.handle, now))

    def handle_probe_result(self, healthy, detail, now):
        ptr, n, _k = as_bytes(detail)
        call(lib.ota_agent_handle_probe_result(self.handle, healthy, ptr, n, now))

    def handle_restored(self, now):
        call(lib.ota_agent_handle_restored(self.handle, now))

    def handle_tick(self, now):
        call(lib.ota_agent_handle_tick(self.handle, now))

    def poll_command(self):
        """The next command as a dict (``kind``, ``index``, ``offset``, ``length``,
        ``swapped_at``, ``text``), or None."""
        c = _ffi.CommandStruct()
        call(lib.ota_agent_poll_command(self.handle, ctypes.byref(c)))
        kind = COMMANDS.get(c.kind)
        if kind is None:
            return None
        return {
            "kind": kind, "index": c.index, "offset": c.offset, "length": c.length,
            "swapped_at": c.swapped_at, "text": text(lib.ota_agent_command_text, self.handle),
        }

    def commands(self):
        """Every pending command, in order."""
        while True:
            c = self.poll_command()
            if c is None:
                return
            yield c

    def timeout(self):
        """When to call ``handle_tick`` next (Unix ms), or None."""
        at = ctypes.c_uint64(0)
        call(lib.ota_agent_timeout(self.handle, ctypes.byref(at)))
        return None if at.value == 2**64 - 1 else at.value

    @property
    def state(self):
        return lib.ota_agent_state(self.handle).decode()

    def installed_version(self, name):
        """The active version of a package, or None."""
        ptr, n, _k = as_bytes(name)
        return text(lib.ota_agent_installed_version, self.handle, ptr, n) or None


def probe_run(spec, allowlist, swapped_at_ms):
    """Runs a health probe for real (each call runs it once): ``(healthy, detail)``."""
    sptr, sn, _s = as_bytes(spec if isinstance(spec, (str, bytes)) else _json.dumps(spec))
    aptr, an, _a = as_bytes(_json.dumps(list(allowlist)))
    healthy = ctypes.c_bool(False)
    buf = ctypes.create_string_buffer(4096)
    n = ctypes.c_size_t(0)
    status = lib.ota_probe_run(sptr, sn, aptr, an, swapped_at_ms, ctypes.byref(healthy), buf, len(buf), ctypes.byref(n))
    if status == _errors.INSUFFICIENT_SIZE:
        return healthy.value, "(the probe's detail is longer than 4 KiB)"
    call(status)
    return healthy.value, buf.raw[: n.value].decode("utf-8", "replace")


# --- The control plane. ----------------------------------------------------------------------

from ._rollout import Rollout, audit_verify  # noqa: E402

__all__ += ["Rollout", "audit_verify"]

# --- TUF. ------------------------------------------------------------------------------------

from ._tuf import TufClient, TufRepo  # noqa: E402

__all__ += ["TufClient", "TufRepo"]
