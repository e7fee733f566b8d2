"""The base class of every object that owns a libota handle, and the argument checks every
binding entry point uses: ``arg`` for one value of given classes, ``json_arg`` for a JSON
document in any of the forms the package accepts."""

import json as _json
import os
import sys
from types import TracebackType
from typing import Any, Callable, ClassVar, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

__all__ = ["Managed", "JsonInput", "TextInput", "BytesInput", "PathInput"]

JsonInput = Union[Mapping[str, Any], Sequence[Any], str, bytes, bytearray, memoryview, os.PathLike[str]]
"""A JSON document: a dict (or list), its text as str or bytes, or the path of a file holding
it as an ``os.PathLike`` (``pathlib.Path``). A str is always the text, never a path."""

TextInput = Union[str, bytes, bytearray, memoryview]
"""Text: str (encoded as UTF-8) or its bytes."""

BytesInput = Union[bytes, bytearray, memoryview]
"""Binary data."""

PathInput = Union[str, bytes, os.PathLike[str]]
"""A file system path."""

_Self = TypeVar("_Self", bound="Managed")


class Managed:
    """Owns one handle and frees it exactly once: on ``close()``, at the end of a ``with``
    block, or when garbage-collected. Objects come only from the package's functions and
    constructors: a raw handle from outside the package is refused, since the library could
    not tell a stray address from a handle without reading it."""

    _free: ClassVar[Callable[[int], None]]  # set by subclasses: the library's ota_<object>_free

    def __init__(self, handle: Optional[int]) -> None:
        if handle is not None:
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if not isinstance(caller, str) or not (caller == "ota" or caller.startswith("ota.")):
                raise TypeError(f"{type(self).__name__} objects come from the ota package's functions, not from a raw handle")
            if isinstance(handle, bool) or not isinstance(handle, int):
                raise TypeError(f"handle must be int, not {type(handle).__name__}")
        self._handle = handle

    @property
    def handle(self) -> int:
        """The raw handle; raises ValueError once closed."""
        if self._handle is None:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._handle

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._handle is None

    def close(self) -> None:
        """Frees the handle. Closing twice is harmless."""
        handle, self._handle = self._handle, None
        if handle is not None:
            type(self)._free(handle)

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


# What the library takes as input, by kind, for ``arg``.
BYTES = (bytes, bytearray, memoryview, str)
TEXT = (str, bytes, bytearray, memoryview)
PATH = (str, bytes, os.PathLike)
JSON = (str, bytes, bytearray, memoryview, dict, list, tuple, os.PathLike)
INT = int

_U64 = 2**64


def _name(cls: type) -> str:
    """``ota.Package`` for the binding's classes, ``str`` for the others."""
    return ("ota." if cls.__module__.split(".")[0] == "ota" else "") + cls.__name__


def _describe(expected: Union[type, Tuple[type, ...]]) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(_name(k) for k in kinds)


def arg(name: str, value: Any, expected: Union[type, Tuple[type, ...]], optional: bool = False) -> Any:
    """Checks argument ``name`` before anything reaches the library: ``value`` must be an
    instance of ``expected`` (a class or a tuple of classes; ``None`` too when ``optional``).
    Raises TypeError naming the argument otherwise, so a wrong object is never handed to C as
    another's handle. An ``int`` must be a bool-free integer in the range of ``uint64_t``
    (ValueError naming the argument otherwise). Returns the handle of a ``Managed`` object
    (None for an optional None), and any other value unchanged."""
    if value is None and optional:
        return None
    if isinstance(value, bool) and expected is int:
        raise TypeError(f"{name} must be int, not bool")
    if not isinstance(value, expected):
        raise TypeError(f"{name} must be {_describe(expected)}, not {_name(type(value))}")
    if expected is int and isinstance(value, int) and not 0 <= value < _U64:
        raise ValueError(f"{name} must be between 0 and 2**64 - 1, not {value}")
    if isinstance(value, Managed):
        return value.handle
    return value


def json_arg(name: str, value: Any, optional: bool = False) -> Tuple[bytes, int]:
    """Argument ``name`` as JSON text for the library, ``(bytes, length)``: a dict, list or
    tuple is serialized, str and bytes pass through, an ``os.PathLike`` names a file that is
    read. TypeError naming the argument for anything else; ``(b"", 0)`` for an optional None."""
    if value is None and optional:
        return b"", 0
    value = arg(name, value, JSON)
    if isinstance(value, os.PathLike):
        with open(value, "rb") as f:
            data = f.read()
    elif isinstance(value, (dict, list, tuple)):
        try:
            data = _json.dumps(value).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} is not serializable as JSON: {e}") from None
    elif isinstance(value, str):
        data = value.encode("utf-8")
    else:
        data = bytes(value)
    return data, len(data)
