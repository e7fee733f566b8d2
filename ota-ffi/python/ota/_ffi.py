"""How every binding calls libota: arguments in (bytes, text, JSON), an ota_status turned into
an exception by one function, ``call``, and output buffers grown as the library asks."""

import ctypes
import json as _json
import os
import threading
from ctypes import c_size_t
from typing import Any, Callable, FrozenSet, Optional, Tuple

from . import _errors
from . import _lib
from ._lib import WRITE_FN, lib, u8p

__all__ = ["lib", "version", "features", "call", "stop_for", "raise_stopped", "last_error", "as_bytes", "as_text", "json_text", "text", "binary", "writer"]


def last_error() -> str:
    """The last error message on this thread."""
    n = c_size_t(0)
    lib.ota_last_error_message(None, 0, ctypes.byref(n))
    buf = ctypes.create_string_buffer(n.value + 1)
    lib.ota_last_error_message(buf, len(buf), ctypes.byref(n))
    return buf.value.decode("utf-8", "replace")


_stopped = threading.local()


def stop_for(exc: BaseException) -> int:
    """What a callback answers when it raised ``exc``: 1, which fails the library's call. An
    exception that is not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``) is kept,
    and ``call`` raises it when the failed call returns, instead of the library's error: it
    is never lost, and never taken for success."""
    if not isinstance(exc, Exception):
        _stopped.exc = exc
    return 1


def raise_stopped() -> None:
    """Raises the exception a callback stopped with (``stop_for``), if one is kept: for the
    calls that return no status (a ``_free``)."""
    exc = getattr(_stopped, "exc", None)
    if exc is not None:
        _stopped.exc = None
        raise exc


def call(status: int) -> None:
    """Raises the exception named after ``status`` unless it is OTA_STATUS_OK; first, one a
    callback of the call stopped with (``stop_for``)."""
    raise_stopped()
    if status != 0:
        raise _errors.error_for(status, last_error())


def as_bytes(data: Any) -> Tuple[Optional[Any], int, bytes]:
    """``(pointer, length, keep)`` for a ``const uint8_t *`` input from bytes, bytearray,
    memoryview or str (as UTF-8); ``keep`` must stay alive for the call."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = bytes(data)
    return (ctypes.cast(ctypes.c_char_p(data), u8p) if data else None), len(data), data


def as_text(data: Any) -> Tuple[bytes, int]:
    """``(bytes, length)`` for a ``const char *`` input from str (as UTF-8), a path, bytes,
    bytearray or memoryview."""
    if isinstance(data, os.PathLike):
        data = os.fspath(data)
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = bytes(data)
    return data, len(data)


def json_text(value: Any) -> Any:
    """``value`` as JSON text: str and bytes pass through, anything else is dumped."""
    return value if isinstance(value, (str, bytes, bytearray, memoryview)) else _json.dumps(value)


def binary(fn: Any, *args: Any) -> bytes:
    """Calls ``fn(*args, buf, buf_len, &out_n)`` for binary output, growing the buffer once."""
    size = 4096
    for _ in range(2):
        buf = (ctypes.c_uint8 * size)()
        n = c_size_t(0)
        status = fn(*args, buf, size, ctypes.byref(n))
        if status == _errors.INSUFFICIENT_SIZE:
            size = n.value
            continue
        call(status)
        return bytes(buf[: n.value])
    raise _errors.error_for(_errors.INSUFFICIENT_SIZE, "the output kept growing")


def writer(sink: Callable[[bytes], Any]) -> Any:
    """A write callback that hands each piece to ``sink(bytes)``; an exception in the sink
    stops the library's operation (which then fails with IoError)."""

    def write(_ctx: Any, data: Any, n: int) -> int:
        try:
            sink(ctypes.string_at(data, n))
            return 0
        except BaseException as e:  # noqa: BLE001 - any failure of the sink stops the operation
            return stop_for(e)

    return WRITE_FN(write)


def text(fn: Any, *args: Any, extra: Tuple[Any, ...] = ()) -> str:
    """Calls ``fn(*args, buf, buf_len, &out_n, *extra)``, growing the buffer once if the
    library says it is too small, and returns the text."""
    size = 4096
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        n = c_size_t(0)
        status = fn(*args, buf, size, ctypes.byref(n), *extra)
        if status == _errors.INSUFFICIENT_SIZE:
            size = n.value + 1
            continue
        call(status)
        return buf.raw[: n.value].decode("utf-8")
    raise _errors.error_for(_errors.INSUFFICIENT_SIZE, "the output kept growing")


def version() -> str:
    """The library's version string."""
    v: bytes = lib.ota_version()
    return v.decode()


def features() -> FrozenSet[str]:
    """The optional cargo features of ota-ffi the loaded libota was built with: ``"tuf"``
    (``TufClient``, ``TufRepo``) and ``"probe-runners"`` (``probe_run``). The default build has
    both; a firmware build (``--no-default-features``) neither, and calling what it lacks raises
    ``NotImplementedError``."""
    return _lib.features
