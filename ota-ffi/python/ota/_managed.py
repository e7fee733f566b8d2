"""The base class of every object that owns a libota handle, and the one argument check every
binding entry point uses."""

import os


class Managed:
    """Owns one handle and frees it exactly once: on ``close()``, at the end of a ``with``
    block, or when garbage-collected."""

    _free = None  # set by subclasses: the library's ota_<object>_free

    def __init__(self, handle):
        self._handle = handle

    @property
    def handle(self):
        """The raw handle; raises ValueError once closed."""
        if self._handle is None:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._handle

    def close(self):
        """Frees the handle. Closing twice is harmless."""
        handle, self._handle = self._handle, None
        if handle is not None:
            type(self)._free(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


# What the library takes as input, by kind, for ``arg``.
BYTES = (bytes, bytearray, memoryview, str)
TEXT = (str, bytes, bytearray, memoryview)
PATH = (str, bytes, os.PathLike)
JSON = (str, bytes, bytearray, memoryview, dict, list)
INT = int


def _name(cls):
    """``ota.Package`` for the binding's classes, ``str`` for the others."""
    return ("ota." if cls.__module__.split(".")[0] == "ota" else "") + cls.__name__


def _describe(expected):
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(_name(k) for k in kinds)


def arg(name, value, expected, optional=False):
    """Checks argument ``name`` before anything reaches the library: ``value`` must be an
    instance of ``expected`` (a class or a tuple of classes; ``None`` too when ``optional``).
    Raises TypeError naming the argument otherwise, so a wrong object is never handed to C as
    another's handle. Returns the handle of a ``Managed`` object (None for an optional None),
    and any other value unchanged."""
    if value is None and optional:
        return None
    if isinstance(value, bool) and expected is int:
        raise TypeError(f"{name} must be int, not bool")
    if not isinstance(value, expected):
        raise TypeError(f"{name} must be {_describe(expected)}, not {_name(type(value))}")
    if isinstance(value, Managed):
        return value.handle
    return value
