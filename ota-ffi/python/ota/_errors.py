"""One exception class per ota_status, named after it. The names come from the library
(``ota_status_name``), so this module keeps no copy of the status table."""

from ._lib import lib

OK = 0
INSUFFICIENT_SIZE = 3

# Status codes are grouped by hundreds below this bound (ota-core/src/status.rs).
_CODE_BOUND = 10_000


class OtaError(Exception):
    """A call into libota failed. ``status`` is the numeric ota_status, ``name`` its
    snake_case name, and the message the library's one-line detail."""

    status = -1
    name = "unknown"

    def __init__(self, message):
        super().__init__(message)
        self.message = message


_BY_CODE = {}


def _class_name(name):
    return "".join(part.capitalize() for part in name.split("_")) + "Error"


def _define(code, name):
    cls_name = _class_name(name)
    doc = f"ota_status {name} ({code}): {lib.ota_status_message(code).decode()}."
    cls = type(cls_name, (OtaError,), {"status": code, "name": name, "__doc__": doc})
    _BY_CODE[code] = cls
    globals()[cls_name] = cls
    return cls


def _statuses():
    """``{code: name}`` for every status the library knows, success excluded."""
    found = {}
    for code in range(1, _CODE_BOUND):
        name = lib.ota_status_name(code)
        if name is not None:
            found[code] = name.decode()
    return found


for _code, _name in _statuses().items():
    _define(_code, _name)

__all__ = ["OtaError"] + [cls.__name__ for cls in _BY_CODE.values()]


def error_for(status, message):
    """The exception for ``status`` with ``message``."""
    cls = _BY_CODE.get(status)
    if cls is None:
        err = OtaError(f"status {status}: {message}")
        err.status = status
        return err
    return cls(message)
