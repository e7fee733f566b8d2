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
