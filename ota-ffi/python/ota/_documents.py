"""Documents: model manifests, packages and device profiles parsed and validated from JSON, and
SBOM validation."""

import ctypes
import json as _json

from ._ffi import as_text, call, lib, text
from ._managed import TEXT, Managed, arg

__all__ = ["Manifest", "Package", "Profile", "validate_sbom"]


class _Document(Managed):
    _kind = None

    @classmethod
    def from_json(cls, data):
        """Parses and validates a document from JSON text or bytes. Raises the exception of
        the failure's status, whose message names the offending field."""
        json, n = as_text(arg("data", data, TEXT))
        handle = ctypes.c_void_p()
        call(getattr(lib, f"ota_{cls._kind}_parse")(json, n, ctypes.byref(handle)))
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

    def set_sealed(self, sealer):
        """Sets ``sha256``, ``size_bytes``, the chunk table and seal information from a
        finished ``Sealer``, so the package can be signed."""
        from ._seal import Sealer

        call(lib.ota_package_set_sealed(self.handle, arg("sealer", sealer, Sealer)))


class Profile(_Document):
    """A validated device profile."""

    _kind = "profile"
    _free = lib.ota_profile_free


def validate_sbom(format, document):
    """Validates an SBOM (``format`` is ``"spdx-2.3"`` or ``"cyclonedx-1.5"``) and returns its
    summary; raises ``InvalidError`` listing every fault otherwise."""
    f, fn = as_text(arg("format", format, TEXT))
    d, dn = as_text(arg("document", document, TEXT))
    return _json.loads(text(lib.ota_sbom_validate, f, fn, d, dn))
