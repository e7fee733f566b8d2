"""Documents: model manifests, packages and device profiles parsed and validated from JSON, and
SBOM validation."""

import ctypes
import json as _json
from typing import TYPE_CHECKING, Any, Dict, Type, TypeVar

from ._ffi import as_text, call, lib, text
from ._managed import JsonInput, Managed, arg, json_arg

if TYPE_CHECKING:
    from ._seal import Sealer

__all__ = ["Manifest", "Package", "Profile", "validate_sbom"]

_D = TypeVar("_D", bound="_Document")


class _Document(Managed):
    _kind: str = ""

    @classmethod
    def from_json(cls: Type[_D], data: JsonInput) -> _D:
        """Parses and validates a document: a dict, its JSON text (str or bytes), or the path
        of a file holding it (``pathlib.Path``). Raises a ``ValidationError`` (a
        ``ValueError``: ``JsonSyntaxError``, ``MissingFieldError``, ``InvalidError``...) whose
        message names the offending field."""
        json, n = json_arg("data", data)
        handle = ctypes.c_void_p()
        call(getattr(lib, f"ota_{cls._kind}_parse")(json, n, ctypes.byref(handle)))
        return cls(handle.value)

    def to_json(self) -> str:
        """The document as compact JSON text."""
        return text(getattr(lib, f"ota_{self._kind}_to_json"), self.handle)

    def to_dict(self) -> Dict[str, Any]:
        """The document as a dict."""
        value: Dict[str, Any] = _json.loads(self.to_json())
        return value


class Manifest(_Document):
    """A validated model manifest. Made by ``Manifest.from_json``."""

    _kind = "manifest"
    _free = lib.ota_manifest_free


class Package(_Document):
    """A validated package. Made by ``Package.from_json``."""

    _kind = "package"
    _free = lib.ota_package_free

    def set_sealed(self, sealer: "Sealer") -> None:
        """Sets ``sha256``, ``size_bytes``, the chunk table and seal information from a
        finished ``Sealer``, so the package can be signed."""
        from ._seal import Sealer

        s = arg("sealer", sealer, Sealer)
        call(lib.ota_package_set_sealed(self.handle, s))


class Profile(_Document):
    """A validated device profile. Made by ``Profile.from_json``."""

    _kind = "profile"
    _free = lib.ota_profile_free


def validate_sbom(format: str, document: JsonInput) -> Dict[str, Any]:
    """Validates an SBOM (``format`` is ``"spdx-2.3"`` or ``"cyclonedx-1.5"``; ``document`` a
    dict, JSON text or a path) and returns its summary; raises ``InvalidError`` listing every
    fault otherwise."""
    f, fn = as_text(arg("format", format, str))
    d, dn = json_arg("document", document)
    summary: Dict[str, Any] = _json.loads(text(lib.ota_sbom_validate, f, fn, d, dn))
    return summary


