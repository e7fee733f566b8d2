"""The compatibility check: a package against one device profile, or against a fleet."""

import ctypes
import json as _json

from ._documents import Package, Profile
from ._ffi import as_text, lib, text
from ._managed import TEXT, arg

__all__ = ["check", "check_fleet"]


def check(package, profile):
    """The compatibility report of ``package`` on the device ``profile``: a dict with
    ``compatible`` and every rejection (``reason``, ``target``, ``needed``, ``found``)."""
    p = arg("package", package, Package)
    d = arg("profile", profile, Profile)
    ok = ctypes.c_bool(False)
    result = _json.loads(text(lib.ota_compat_check, p, d, extra=(ctypes.byref(ok),)))
    assert result["compatible"] == ok.value
    return result


def check_fleet(package, profiles):
    """The fleet report of ``package`` over ``profiles`` (JSON text of an array, or a list of
    ``Profile`` objects or dicts): ``total``, ``eligible``, ``rejected`` and the count of
    each reason."""
    p = arg("package", package, Package)
    if not isinstance(profiles, TEXT):
        arg("profiles", profiles, (list, tuple))
        for i, each in enumerate(profiles):
            arg(f"profiles[{i}]", each, (Profile, dict))
        profiles = "[" + ",".join(x.to_json() if isinstance(x, Profile) else _json.dumps(x) for x in profiles) + "]"
    fleet, n = as_text(profiles)
    return _json.loads(text(lib.ota_compat_check_fleet, p, fleet, n))
