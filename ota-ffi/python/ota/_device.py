"""The device: the update agent over the device's storage, and health probes."""

import ctypes
import json as _json

from . import _errors, _lib
from ._ffi import as_bytes, call, json_text, lib, text
from ._managed import BYTES, INT, JSON, Managed, arg

__all__ = ["DeviceIo", "Agent", "COMMANDS", "probe_run"]

COMMANDS = {0: None, 1: "persist", 2: "fetch", 3: "swap", 4: "probe", 5: "restore_previous", 6: "report"}


class DeviceIo:
    """The device's storage for the agent. Subclass it and implement ``stage_write(offset,
    data)``, ``stage_read(offset, n) -> bytes``, ``slot_open()``, ``slot_write(data)`` and
    ``slot_flush()``; an exception in any of them fails the operation that needed it."""

    def stage_write(self, offset, data):
        raise NotImplementedError

    def stage_read(self, offset, n):
        raise NotImplementedError

    def slot_open(self):
        raise NotImplementedError

    def slot_write(self, data):
        raise NotImplementedError

    def slot_flush(self):
        pass

    def _struct(self):
        """The ota_device_io for the library; the callbacks live as long as this object."""

        def guard(f):
            def call_(*a):
                try:
                    f(*a)
                    return 0
                except Exception:  # noqa: BLE001 - the library reports the failure
                    return 1

            return call_

        def read(_ctx, offset, buf, n):
            data = self.stage_read(offset, n)
            if len(data) != n:
                raise IOError("short read")
            ctypes.memmove(buf, data, n)

        self._callbacks = (
            _lib.STAGE_WRITE(guard(lambda _c, o, d, n: self.stage_write(o, ctypes.string_at(d, n)))),
            _lib.STAGE_READ(guard(read)),
            _lib.SLOT_OPEN(guard(lambda _c: self.slot_open())),
            _lib.WRITE_FN(guard(lambda _c, d, n: self.slot_write(ctypes.string_at(d, n)))),
            _lib.SLOT_FLUSH(guard(lambda _c: self.slot_flush())),
        )
        return _lib.DeviceIoStruct(None, *self._callbacks)


class Agent(Managed):
    """The device's update agent. After creating it and after every ``handle_*`` call, carry
    out ``commands()`` in order: ``persist`` (store ``text`` durably first), ``fetch``
    (``offset``/``length``), ``swap``, ``probe`` (``text`` is the probe), ``restore_previous``
    and ``report`` (``text`` is the report)."""

    _free = lib.ota_agent_free

    def __init__(self, config, io, now, record=None):
        arg("io", io, DeviceIo)
        now = arg("now", now, INT)
        cptr, cn, _c = as_bytes(json_text(arg("config", config, JSON)))
        rptr, rn, _r = as_bytes(json_text(arg("record", record, JSON, optional=True)) if record else b"")
        self._io = io
        self._io_struct = io._struct()
        h = ctypes.c_void_p()
        call(lib.ota_agent_new(cptr, cn, rptr, rn, now, ctypes.byref(self._io_struct), ctypes.byref(h)))
        super().__init__(h.value)

    def handle_assignment(self, assignment, now):
        """Takes an assignment; raises the refusal's exception (a rejected report is queued)."""
        ptr, n, _k = as_bytes(json_text(arg("assignment", assignment, JSON)))
        call(lib.ota_agent_handle_assignment(self.handle, ptr, n, arg("now", now, INT)))

    def handle_chunk(self, offset, data, now):
        """Takes a fetched chunk; returns whether it was new."""
        offset = arg("offset", offset, INT)
        ptr, n, _k = as_bytes(arg("data", data, (bytes, bytearray, memoryview)))
        new = ctypes.c_bool(False)
        call(lib.ota_agent_handle_chunk(self.handle, offset, ptr, n, arg("now", now, INT), ctypes.byref(new)))
        return new.value

    def handle_swapped(self, now):
        call(lib.ota_agent_handle_swapped(self.handle, arg("now", now, INT)))

    def handle_probe_result(self, healthy, detail, now):
        healthy = arg("healthy", healthy, bool)
        ptr, n, _k = as_bytes(arg("detail", detail, BYTES))
        call(lib.ota_agent_handle_probe_result(self.handle, healthy, ptr, n, arg("now", now, INT)))

    def handle_restored(self, now):
        call(lib.ota_agent_handle_restored(self.handle, arg("now", now, INT)))

    def handle_tick(self, now):
        call(lib.ota_agent_handle_tick(self.handle, arg("now", now, INT)))

    def poll_command(self):
        """The next command as a dict (``kind``, ``index``, ``offset``, ``length``,
        ``swapped_at``, ``text``), or None."""
        c = _lib.CommandStruct()
        call(lib.ota_agent_poll_command(self.handle, ctypes.byref(c)))
        kind = COMMANDS.get(c.kind)
        if kind is None:
            return None
        return {
            "kind": kind, "index": c.index, "offset": c.offset, "length": c.length,
            "swapped_at": c.swapped_at, "text": text(lib.ota_agent_command_text, self.handle),
        }

    def commands(self):
        """Every pending command, in order."""
        while True:
            c = self.poll_command()
            if c is None:
                return
            yield c

    def timeout(self):
        """When to call ``handle_tick`` next (Unix ms), or None."""
        at = ctypes.c_uint64(0)
        call(lib.ota_agent_timeout(self.handle, ctypes.byref(at)))
        return None if at.value == 2**64 - 1 else at.value

    @property
    def state(self):
        return lib.ota_agent_state(self.handle).decode()

    def installed_version(self, name):
        """The active version of a package, or None."""
        ptr, n, _k = as_bytes(arg("name", name, BYTES))
        return text(lib.ota_agent_installed_version, self.handle, ptr, n) or None


def probe_run(spec, allowlist, swapped_at_ms):
    """Runs a health probe for real (each call runs it once): ``(healthy, detail)``."""
    sptr, sn, _s = as_bytes(json_text(arg("spec", spec, JSON)))
    aptr, an, _a = as_bytes(_json.dumps(list(arg("allowlist", allowlist, (list, tuple)))))
    swapped_at_ms = arg("swapped_at_ms", swapped_at_ms, INT)
    healthy = ctypes.c_bool(False)
    buf = ctypes.create_string_buffer(4096)
    n = ctypes.c_size_t(0)
    status = lib.ota_probe_run(sptr, sn, aptr, an, swapped_at_ms, ctypes.byref(healthy), buf, len(buf), ctypes.byref(n))
    if status == _errors.INSUFFICIENT_SIZE:
        return healthy.value, "(the probe's detail is longer than 4 KiB)"
    call(status)
    return healthy.value, buf.raw[: n.value].decode("utf-8", "replace")
