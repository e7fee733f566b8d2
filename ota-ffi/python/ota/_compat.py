"""The compatibility check: a package against one device profile, or against a fleet."""

import ctypes
import json as _json
import os
from typing import Any, Dict, Mapping, Sequence, Union

from ._documents import Package, Profile
from ._ffi import lib, text
from ._managed import JsonInput, arg, holding, json_arg

__all__ = ["check", "check_fleet"]


@holding
def check(package: Package, profile: Profile) -> Dict[str, Any]:
    """The compatibility report of ``package`` on the device ``profile``: a dict with
    ``compatible`` and every rejection (``reason``, ``target``, ``needed``, ``found``)."""
    p = arg("package", package, Package)
    d = arg("profile", profile, Profile)
    ok = ctypes.c_bool(False)
    result: Dict[str, Any] = _json.loads(text(lib.ota_compat_check, p, d, extra=(ctypes.byref(ok),)))
    if result["compatible"] != ok.value:
        raise AssertionError("libota's report and its flag disagree")
    return result


@holding
def check_fleet(
    package: Package, profiles: Union[Sequence[Union[Profile, Mapping[str, Any]]], JsonInput]
) -> Dict[str, Any]:
    """The fleet report of ``package`` over ``profiles``: a list of ``Profile`` objects or
    dicts, or the JSON array as text or a path. Returns ``total``, ``eligible``, ``rejected``
    and the count of each reason."""
    p = arg("package", package, Package)
    if isinstance(profiles, (list, tuple)):
        parts = []
        for i, each in enumerate(profiles):
            arg(f"profiles[{i}]", each, (Profile, dict))
            parts.append(each.to_json() if isinstance(each, Profile) else _json.dumps(each))
        fleet = ("[" + ",".join(parts) + "]").encode("utf-8")
        n = len(fleet)
    else:
        arg("profiles", profiles, (str, bytes, bytearray, memoryview, list, tuple, os.PathLike))
        fleet, n = json_arg("profiles", profiles)
    report: Dict[str, Any] = _json.loads(text(lib.ota_compat_check_fleet, p, fleet, n))
    return report
