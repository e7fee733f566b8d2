"""The device: the update agent over the device's storage, and health probes."""

import ctypes
import json as _json
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Type, TypeVar, Union

from . import _errors, _lib
from ._ffi import as_bytes, as_text, call, last_error, lib, stop_for, text
from ._managed import INT, TEXT, BytesInput, JsonInput, Managed, TextInput, arg, json_arg
from ._sign import VerifiedPackage

_A = TypeVar("_A", bound="Agent")

__all__ = ["DeviceIo", "Agent", "COMMANDS", "probe_run"]

COMMANDS: Dict[int, Optional[str]] = {0: None, 1: "persist", 2: "fetch", 3: "swap", 4: "probe", 5: "restore_previous", 6: "report"}


class DeviceIo:
    """The device's storage for the agent. Subclass it and implement ``stage_write(offset,
    data)``, ``stage_read(offset, n) -> bytes``, ``slot_open()``, ``slot_write(data)`` and
    ``slot_flush()``; an exception in any of them fails the operation that needed it."""

    def stage_write(self, offset: int, data: bytes) -> None:
        """Stores ``data`` at ``offset`` of the staging area."""
        raise NotImplementedError

    def stage_read(self, offset: int, n: int) -> bytes:
        """Reads ``n`` bytes at ``offset`` of the staging area."""
        raise NotImplementedError

    def slot_open(self) -> None:
        """Opens the inactive slot for writing, from its start."""
        raise NotImplementedError

    def slot_write(self, data: bytes) -> None:
        """Appends ``data`` to the inactive slot."""
        raise NotImplementedError

    def slot_flush(self) -> None:
        """Makes what was written to the slot durable."""

    def _struct(self) -> "_lib.DeviceIoStruct":
        """The ota_device_io for the library; the callbacks live as long as this object."""

        def guard(f: Callable[..., Any]) -> Callable[..., int]:
            def call_(*a: Any) -> int:
                try:
                    f(*a)
                    return 0
                except BaseException as e:  # noqa: BLE001 - the library reports the failure
                    return stop_for(e)

            return call_

        def read(_ctx: Any, offset: int, buf: Any, n: int) -> None:
            data = self.stage_read(offset, n)
            if not isinstance(data, (bytes, bytearray)) or len(data) != n:
                raise IOError("stage_read must return exactly n bytes")
            ctypes.memmove(buf, bytes(data), n)

        self._callbacks = (
            _lib.STAGE_WRITE(guard(lambda _c, o, d, n: self.stage_write(o, ctypes.string_at(d, n)))),
            _lib.STAGE_READ(guard(read)),
            _lib.SLOT_OPEN(guard(lambda _c: self.slot_open())),
            _lib.WRITE_FN(guard(lambda _c, d, n: self.slot_write(ctypes.string_at(d, n)))),
            _lib.SLOT_FLUSH(guard(lambda _c: self.slot_flush())),
        )
        return _lib.DeviceIoStruct(None, *self._callbacks)


class Agent(Managed):
    """The device's update agent, driven by its ``handle_*`` inputs. After creating it and
    after each input, take ``poll()`` until None (``iter(agent.poll, None)``) and carry out
    each command in order: ``persist`` (store ``text``, the record, durably before anything
    else), ``fetch`` (``offset``/``length``), ``swap`` (``text`` names the update: make the
    slot holding it active; when the active slot holds it already, do nothing — never a
    toggle, so a swap carried out again after a power cut is harmless), ``probe`` (``text`` is
    the probe), ``restore_previous`` (``text`` names the failed update: only while its slot is
    active, make the other one active) and ``report`` (``text`` is the report). Call
    ``handle_tick`` when
    ``timeout()`` says. Times are Unix milliseconds.

    ``Agent(config, io, now)`` starts a new device; ``record=`` (the text of the last
    ``persist``) resumes after a restart. ``Agent.restore`` resumes with the update's package
    verified again, which an update proved by a TUF target needs."""

    _free = lib.ota_agent_free

    def __init__(self, config: JsonInput, io: DeviceIo, now: int, record: Optional[JsonInput] = None) -> None:
        config_text, cn = json_arg("config", config)
        arg("io", io, DeviceIo)
        now = arg("now", now, INT)
        record_text, rn = json_arg("record", record, optional=True)
        self._open(io, lambda io_struct, out: lib.ota_agent_new(config_text, cn, record_text, rn, now, io_struct, out))

    @classmethod
    def restore(
        cls: Type[_A],
        config: JsonInput,
        io: DeviceIo,
        now: int,
        record: JsonInput,
        package: Optional[VerifiedPackage] = None,
    ) -> _A:
        """The agent from its last persisted ``record``, with the update's package as the host
        verified it again after the restart: a ``VerifiedPackage`` (``TufRepo.resolve`` gives
        it for a TUF target; None is allowed for an envelope, which the agent verifies
        itself). Raises ``RecordInvalidError`` when the package is not the record's update."""
        config_text, cn = json_arg("config", config)
        arg("io", io, DeviceIo)
        now = arg("now", now, INT)
        record_text, rn = json_arg("record", record)
        p = arg("package", package, VerifiedPackage, optional=True)
        agent = cls.__new__(cls)
        agent._open(
            io, lambda io_struct, out: lib.ota_agent_restore(config_text, cn, record_text, rn, p, now, io_struct, out)
        )
        return agent

    def _open(self, io: DeviceIo, make: Callable[[Any, Any], int]) -> None:
        """Makes the handle with ``make(io_struct, handle_out)``; ``io``'s callbacks live as long
        as this object."""
        Managed.__init__(self, None)
        self._io = io
        self._io_struct = io._struct()
        h = ctypes.c_void_p()
        status = make(ctypes.byref(self._io_struct), ctypes.byref(h))
        self._handle = h.value  # owned (and freed) even if a callback's exception is raised
        call(status)

    def handle_assignment(self, assignment: JsonInput, now: int) -> None:
        """Takes an assignment; raises the refusal's exception (a rejected report is queued).
        An assignment that names a TUF target needs ``handle_verified_assignment``."""
        a, n = json_arg("assignment", assignment)
        call(lib.ota_agent_handle_assignment(self.handle, a, n, arg("now", now, INT)))

    def handle_verified_assignment(self, assignment: JsonInput, verified_package: VerifiedPackage, now: int) -> None:
        """Takes an assignment with the ``VerifiedPackage`` the host verified for it: the
        package ``TufRepo.resolve`` gave for the assignment's TUF target, or the package of
        its envelope (which the agent verifies too, and then requires to be this one).
        Raises as ``handle_assignment`` does, and ``InvalidArgumentError`` when a TUF
        target's package was verified for another target or not through TUF."""
        a, n = json_arg("assignment", assignment)
        p = arg("verified_package", verified_package, VerifiedPackage)
        call(lib.ota_agent_handle_verified_assignment(self.handle, a, n, p, arg("now", now, INT)))

    def handle_chunk(self, offset: int, data: BytesInput, now: int) -> bool:
        """Takes a fetched chunk; returns whether it was new."""
        offset = arg("offset", offset, INT)
        ptr, n, _k = as_bytes(arg("data", data, (bytes, bytearray, memoryview)))
        new = ctypes.c_bool(False)
        call(lib.ota_agent_handle_chunk(self.handle, offset, ptr, n, arg("now", now, INT), ctypes.byref(new)))
        return bool(new.value)

    def handle_swapped(self, now: int) -> None:
        """The swap to the new slot was done (the device restarted into it)."""
        call(lib.ota_agent_handle_swapped(self.handle, arg("now", now, INT)))

    def handle_probe_result(self, healthy: bool, detail: TextInput, now: int) -> None:
        """The result of the ``probe`` command."""
        healthy = arg("healthy", healthy, bool)
        detail, n = as_text(arg("detail", detail, TEXT))
        call(lib.ota_agent_handle_probe_result(self.handle, healthy, detail, n, arg("now", now, INT)))

    def handle_restored(self, now: int) -> None:
        """The ``restore_previous`` command was carried out."""
        call(lib.ota_agent_handle_restored(self.handle, arg("now", now, INT)))

    def handle_cancel(self, now: int) -> None:
        """The control plane cancelled the update: before the swap it fails at once; after
        it, the previous version is restored. Harmless when nothing is in progress."""
        call(lib.ota_agent_handle_cancel(self.handle, arg("now", now, INT)))

    def handle_tick(self, now: int) -> None:
        """Time passed: timers fire."""
        call(lib.ota_agent_handle_tick(self.handle, arg("now", now, INT)))

    def poll(self) -> Optional[Dict[str, Any]]:
        """Takes the next command as a dict (``kind``, ``index``, ``offset``, ``length``,
        ``swapped_at``, ``text``), or None when nothing is pending. After each input, call it
        until None (``iter(agent.poll, None)``)."""
        c = _lib.CommandStruct()
        t = text(lib.ota_agent_poll, self.handle, ctypes.byref(c))
        kind = COMMANDS.get(c.kind)
        if kind is None:
            return None
        return {
            "kind": kind, "index": c.index, "offset": c.offset, "length": c.length,
            "swapped_at": c.swapped_at, "text": t,
        }

    def timeout(self) -> Optional[int]:
        """The earliest instant (Unix ms) at which to call ``handle_tick`` (an instant already
        past means now), or None when the agent waits only on input."""
        at = ctypes.c_uint64(0)
        call(lib.ota_agent_timeout(self.handle, ctypes.byref(at)))
        return None if at.value == 2**64 - 1 else at.value

    @property
    def state(self) -> str:
        """The agent's state, by name (``idle``, ``downloading``, ...)."""
        state: Optional[bytes] = lib.ota_agent_state(self.handle)
        if state is None:
            # Read from inside a call that changes the agent (one of its callbacks), or an
            # earlier call panicked while using it.
            status = _errors.INVALID_ARGUMENT if self._guard.nested_here() else _errors.PANIC
            raise _errors.error_for(status, last_error())
        return state.decode()

    def installed_version(self, name: TextInput) -> Optional[str]:
        """The active version of a package, or None."""
        name, n = as_text(arg("name", name, TEXT))
        return text(lib.ota_agent_installed_version, self.handle, name, n) or None


def probe_run(spec: JsonInput, allowlist: Sequence[str], swapped_at_ms: int) -> Tuple[bool, str]:
    """Runs a health probe for real (each call runs it once): ``(healthy, detail)``.
    ``allowlist`` lists the programs a ``process`` probe may run."""
    spec_text, sn = json_arg("spec", spec)
    arg("allowlist", allowlist, (list, tuple))
    allowed = [arg(f"allowlist[{i}]", each, str) for i, each in enumerate(allowlist)]
    allow_text, an = as_text(_json.dumps(allowed))
    swapped_at_ms = arg("swapped_at_ms", swapped_at_ms, INT)
    healthy = ctypes.c_bool(False)
    buf = ctypes.create_string_buffer(4096)
    n = ctypes.c_size_t(0)
    status = lib.ota_probe_run(spec_text, sn, allow_text, an, swapped_at_ms, ctypes.byref(healthy), buf, len(buf), ctypes.byref(n))
    if status == _errors.INSUFFICIENT_SIZE:
        return bool(healthy.value), "(the probe's detail is longer than 4 KiB)"
    call(status)
    return bool(healthy.value), buf.raw[: n.value].decode("utf-8", "replace")
