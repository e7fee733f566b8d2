"""Device reports: what an agent tells the control plane about an update."""

import ctypes
import enum

from ._ffi import call, lib
from ._managed import JsonInput, json_arg

__all__ = ["ReportStatus", "report_status"]


class ReportStatus(str, enum.Enum):
    """A report's ``status``; each member equals its JSON text."""

    IN_PROGRESS = "in_progress"
    """The device accepted the assignment and is downloading or installing."""
    SUCCESS = "success"
    """The new version is installed, healthy and committed."""
    FAILURE = "failure"
    """The update failed; the device is on its previous version."""
    REJECTED = "rejected"
    """The device refused the assignment before writing anything."""


# ota_report_status's numbers (include/ota.h).
_BY_CODE = {1: ReportStatus.IN_PROGRESS, 2: ReportStatus.SUCCESS, 3: ReportStatus.FAILURE, 4: ReportStatus.REJECTED}


def report_status(report: JsonInput) -> ReportStatus:
    """Parses and validates a device report (a dict, its JSON text, or a path) and returns its
    status. A malformed report raises the ``ValueError`` naming the field."""
    text, n = json_arg("report", report)
    out = ctypes.c_uint32(0)
    call(lib.ota_report_parse_status(text, n, ctypes.byref(out)))
    return _BY_CODE[out.value]
