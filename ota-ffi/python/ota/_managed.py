"""The base class of every object that owns a libota handle, with the lock that makes it safe
across threads (``holding``), and the argument checks every binding entry point uses: ``arg``
for one value of given classes, ``json_arg`` for a JSON document in any of the forms the
package accepts."""

import functools
import json as _json
import os
import sys
import threading
import types
from types import TracebackType
from typing import (
    Any, Callable, ClassVar, Iterable, List, Mapping, Optional, ParamSpec, Sequence, Tuple, Type, TypeVar, Union
)

from ._ffi import raise_stopped

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
_P = ParamSpec("_P")
_R = TypeVar("_R")


class _Guard:
    """Who is using one handle: at most one thread at a time, through any number of nested
    calls (the lock is re-entrant; the library itself refuses a callback's call of the object
    whose call invoked it, with ``InvalidArgumentError``)."""

    __slots__ = ("_lock", "_owner", "_depth")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._owner: Optional[int] = None
        self._depth = 0

    def acquire(self) -> None:
        """Waits until no other thread is using the handle, then takes it."""
        self._lock.acquire()
        if self._depth == 0:
            self._owner = threading.get_ident()
        self._depth += 1

    def release(self) -> None:
        """Gives back one ``acquire``."""
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
        self._lock.release()

    def nested_here(self) -> bool:
        """Whether this thread uses the handle in a call inside another that uses it (a
        callback's)."""
        return self.held_here() and self._depth > 1

    def held_here(self) -> bool:
        """Whether this thread is inside a call that uses the handle."""
        return self._owner == threading.get_ident()


def _handles_in(values: Iterable[Any]) -> List["Managed"]:
    """The handle owners among ``values`` and in the lists, tuples and sets among them, each
    once, in one global order (by ``id``): taking their locks in that order, two calls that
    share objects cannot wait on each other."""
    found = {}
    for value in values:
        for each in value if isinstance(value, (list, tuple, set, frozenset)) else (value,):
            if isinstance(each, Managed):
                found[id(each)] = each
    return [found[k] for k in sorted(found)]


def holding(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` holding the lock of every handle owner among its arguments (``self`` too) for
    the whole call: a call into libota never runs beside another call on the same object, nor
    beside its ``close()``. Every public method of a ``Managed`` subclass gets this by
    itself; the package's functions that take handle owners are decorated with it."""

    @functools.wraps(fn)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        taken: List[_Guard] = []
        try:
            for managed in _handles_in((*args, *kwargs.values())):
                managed._guard.acquire()
                taken.append(managed._guard)
            return fn(*args, **kwargs)
        finally:
            for guard in reversed(taken):
                guard.release()

    call._holds_handles = True  # type: ignore[attr-defined]
    return call


def _hold_members(cls: type) -> None:
    """Wraps each public method, class method, static method and property getter that ``cls``
    defines, and its ``__init__``, with ``holding``."""
    for name, member in list(vars(cls).items()):
        if name.startswith("_") and name != "__init__":
            continue
        if isinstance(member, property) and member.fget is not None:
            setattr(cls, name, property(holding(member.fget), member.fset, member.fdel, member.__doc__))
        elif isinstance(member, classmethod):
            setattr(cls, name, classmethod(holding(member.__func__)))
        elif isinstance(member, staticmethod):
            setattr(cls, name, staticmethod(holding(member.__func__)))
        elif isinstance(member, types.FunctionType):
            setattr(cls, name, holding(member))


class Managed:
    """Owns one handle and frees it exactly once: on ``close()``, at the end of a ``with``
    block, or when garbage-collected. Objects come only from the package's functions and
    constructors: a raw handle from outside the package is refused, since the library could
    not tell a stray address from a handle without reading it.

    Safe across threads: each object has a lock, held by every call that uses the object
    (as ``self`` or as an argument), so calls on one object from several threads run one at
    a time, and ``close()`` waits for the call under way (see the package's README)."""

    _free: ClassVar[Callable[[int], None]]  # set by subclasses: the library's ota_<object>_free
    _handle: Optional[int] = None
    _guard: _Guard

    def __new__(cls: Type[_Self], *args: Any, **kwargs: Any) -> _Self:
        self = super().__new__(cls)
        self._guard = _Guard()
        return self

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _hold_members(cls)

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
        """Frees the handle, once the call another thread is making with it returns. Closing
        twice is harmless. Raises RuntimeError when called from inside a call that uses the
        object (from one of its callbacks): that call still needs the handle."""
        if self._guard.held_here():
            raise RuntimeError(f"{type(self).__name__}.close() inside a call that uses it: close it after the call returns")
        self._guard.acquire()
        try:
            handle, self._handle = self._handle, None
            if handle is not None:
                # Freeing an opener, an install or an agent under way may hand its callback
                # the plaintext it still holds: a KeyboardInterrupt raised there is raised here.
                type(self)._free(handle)
                raise_stopped()
        finally:
            self._guard.release()

    def __copy__(self) -> Any:
        raise TypeError(f"{type(self).__name__} objects cannot be copied: each owns its handle alone")

    def __deepcopy__(self, memo: Any) -> Any:
        raise TypeError(f"{type(self).__name__} objects cannot be copied: each owns its handle alone")

    def __reduce__(self) -> Any:
        raise TypeError(f"{type(self).__name__} objects cannot be pickled: each owns a handle of this process")

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
        except BaseException:  # interpreter shutdown, or a callback's exception: nowhere to raise it
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
