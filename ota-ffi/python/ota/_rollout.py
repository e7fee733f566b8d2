"""The control plane: the rollout engine and its audit trail."""

import collections
import ctypes
import json as _json
import os
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple, Type, TypeVar, Union

from ._ffi import as_text, call, lib, text
from ._managed import INT, TEXT, JsonInput, Managed, TextInput, arg, json_arg
from ._sign import VerifiedPackage

Trail = Union[Sequence[str], TextInput, os.PathLike[str]]
"""An audit trail: its records (one JSON line each) as a list, as text, or a file's path."""

Output = Tuple[str, Any]
"""A rollout output: ``("audit", line)``, ``("command", dict)`` or ``("event", dict)``."""

_R = TypeVar("_R", bound="Rollout")

__all__ = ["Rollout", "audit_verify"]


def _trail_text(trail: Trail) -> Tuple[bytes, int]:
    """An audit trail as text: text passes through, a file is read, a list of JSON lines is
    joined."""
    if isinstance(trail, TEXT):
        return as_text(trail)
    if isinstance(trail, os.PathLike):
        with open(trail, "rb") as f:
            data = f.read()
        return data, len(data)
    arg("trail", trail, (list, tuple, os.PathLike) + TEXT)
    return as_text("".join(arg(f"trail[{i}]", line, str) + "\n" for i, line in enumerate(trail)))


_KINDS = {1: "audit", 2: "command", 3: "event"}


class Rollout(Managed):
    """A staged rollout, driven by its ``handle_*`` inputs and the operator commands. After
    each input, take ``outputs()`` in order (or ``poll()`` one at a time): an ``("audit",
    line)`` record to append to the rollout's trail comes first, then the ``("command",
    dict)``s it caused (``{"kind": "send", "device_id", "package_id", "rollback"}`` as a
    persistent command, or ``{"kind": "cancel", "device_id", "forced"}``) and the ``("event",
    dict)``s (``{"subject": "profile.ota.rollout.<kind>.<tenant>.<rollout_id>", "kind",
    "data"}``) — so a host that persists what it takes, in order, never acts before it has
    recorded. ``commands()``, ``events()`` and ``audit_records()`` take the outputs of one kind
    each, keeping the others for the next call. Call ``handle_tick`` when ``timeout()`` says.
    Times are Unix milliseconds.

    Made by ``Rollout.create``, ``Rollout.replay`` or ``Rollout.restore``."""

    _free = lib.ota_rollout_free

    _taken_by_kind: Optional[Dict[str, Deque[Any]]] = None

    @property
    def _taken(self) -> Dict[str, Deque[Any]]:
        """The outputs taken by ``_take`` but not of the kind it was asked for."""
        if self._taken_by_kind is None:
            self._taken_by_kind = {kind: collections.deque() for kind in _KINDS.values()}
        return self._taken_by_kind

    @classmethod
    def create(
        cls: Type[_R],
        config: JsonInput,
        package: VerifiedPackage,
        fleet: JsonInput,
        now: int,
        rollback: Optional[VerifiedPackage] = None,
    ) -> _R:
        """Creates a rollout. ``config`` is ``{"rollout_id", "tenant", "created_by", "spec"}``
        with ``spec`` the OTA API's rollout request (and the optional waves, halt rule, timers,
        retries, pacing and windows); ``package`` and ``rollback`` are ``VerifiedPackage``;
        ``fleet`` is a list of device profiles (dicts) or its JSON text. A fleet of 16,384
        devices or more is judged on two threads on a machine with two cores (the GIL is
        released); the rollout is the same as on one."""
        cptr, cn = json_arg("config", config)
        p = arg("package", package, VerifiedPackage)
        r = arg("rollback", rollback, VerifiedPackage, optional=True)
        fptr, fn = json_arg("fleet", fleet)
        now = arg("now", now, INT)
        h = ctypes.c_void_p()
        call(lib.ota_rollout_create(cptr, cn, p, r, fptr, fn, now, ctypes.byref(h)))
        return cls(h.value)

    @classmethod
    def replay(
        cls: Type[_R],
        config: JsonInput,
        package: VerifiedPackage,
        fleet: JsonInput,
        now: int,
        trail: Trail,
        rollback: Optional[VerifiedPackage] = None,
    ) -> _R:
        """Rebuilds a rollout from its creation inputs and its audit trail (the records, one
        JSON line each, as a list or as text). Raises ``AuditBrokenError`` for a trail that
        was altered and ``ReplayMismatchError`` when the replay writes other records."""
        cptr, cn = json_arg("config", config)
        p = arg("package", package, VerifiedPackage)
        r = arg("rollback", rollback, VerifiedPackage, optional=True)
        fptr, fn = json_arg("fleet", fleet)
        now = arg("now", now, INT)
        tptr, tn = _trail_text(trail)
        h = ctypes.c_void_p()
        call(lib.ota_rollout_replay(cptr, cn, p, r, fptr, fn, now, tptr, tn, ctypes.byref(h)))
        return cls(h.value)

    @classmethod
    def restore(
        cls: Type[_R], snapshot: JsonInput, package: VerifiedPackage, rollback: Optional[VerifiedPackage] = None
    ) -> _R:
        """Restores a rollout from ``snapshot()`` with the packages the caller verified (DSSE
        or TUF): ``package`` and ``rollback`` must be the ones the snapshot names, or it raises
        ``PlanInvalidError``."""
        ptr, n = json_arg("snapshot", snapshot)
        p = arg("package", package, VerifiedPackage)
        r = arg("rollback", rollback, VerifiedPackage, optional=True)
        h = ctypes.c_void_p()
        call(lib.ota_rollout_restore(ptr, n, p, r, ctypes.byref(h)))
        return cls(h.value)

    def handle_report(self, report: JsonInput, now: int, attempt: Optional[int] = None) -> None:
        """A device's report: ``{"device_id", "rollout_id", "firmware_version", "status",
        "reason"}``, and the ``"attempt"`` the device says back. ``attempt`` (from 1) names
        the attempt of the device's command the report is about, when the host knows it by
        other means than the report (``attempt()`` says the current one as the command goes
        out). A report must match the rollout, the package's version (a success names it) and
        the device's current attempt: one that does not raises (``RolloutStateError`` for an
        attempt a retry replaced) and is recorded. A report naming no attempt is about the
        first of the device's current command (the update's, or the rollback's)."""
        ptr, n = json_arg("report", report)
        now = arg("now", now, INT)
        if attempt is None:
            call(lib.ota_rollout_handle_report(self.handle, ptr, n, now))
            return
        attempt = arg("attempt", attempt, INT)
        if not 1 <= attempt < 2**32:
            raise ValueError(f"attempt must be between 1 and 2**32 - 1, not {attempt}")
        call(lib.ota_rollout_handle_report_attempt(self.handle, ptr, n, attempt, now))

    def attempt(self, device_id: TextInput) -> int:
        """The attempt of the device's current command (1 is the first; each retry after a
        failure or a timeout adds one; a rollback is one more than the update's last): tell it to the device with the ``send`` command, read
        right after taking that command; the device says it back in its report. Raises
        ``RolloutNotFoundError`` for a device the rollout does not have."""
        ptr, n = as_text(arg("device_id", device_id, TEXT))
        out = ctypes.c_uint32(0)
        call(lib.ota_rollout_attempt(self.handle, ptr, n, ctypes.byref(out)))
        return out.value

    def handle_tick(self, now: int) -> None:
        """Time passed: timers fire, soaked waves open, paced commands go out."""
        call(lib.ota_rollout_handle_tick(self.handle, arg("now", now, INT)))

    def _command(self, command: str, by: TextInput, now: int, wave: int = 0) -> None:
        cptr, cn = as_text(command)
        bptr, bn = as_text(arg("by", by, TEXT))
        wave = arg("wave", wave, INT)
        call(lib.ota_rollout_command(self.handle, cptr, cn, wave, bptr, bn, arg("now", now, INT)))

    def pause(self, by: TextInput, now: int) -> None:
        """Pauses: nothing new is sent."""
        self._command("pause", by, now)

    def resume(self, by: TextInput, now: int) -> None:
        """Resumes, acknowledging the failures seen when it paused; those reported while
        paused are judged now, and may halt it again."""
        self._command("resume", by, now)

    def abort(self, by: TextInput, now: int) -> None:
        """Aborts for good."""
        self._command("abort", by, now)

    def rollback(self, by: TextInput, now: int) -> None:
        """Rolls back to the rollback package."""
        self._command("rollback", by, now)

    def approve(self, wave: int, by: TextInput, now: int) -> None:
        """Approves wave ``wave``, the next to open (0 is the canary); another wave raises
        :class:`RolloutStateError` (one the rollout lacks, :class:`RolloutNotFoundError`), and
        so does a rollout neither active nor paused."""
        self._command("approve", by, now, wave)

    def verdict(self, wave: int, passed: bool, by: TextInput, now: int) -> None:
        """An external verdict on wave ``wave``."""
        self._command("pass" if arg("passed", passed, bool) else "fail", by, now, wave)

    def join(self, profile: JsonInput, now: int) -> None:
        """A device joined the fleet (its profile as a dict, JSON text or a path)."""
        ptr, n = json_arg("profile", profile)
        call(lib.ota_rollout_join(self.handle, ptr, n, arg("now", now, INT)))

    def leave(self, device_id: TextInput, now: int) -> None:
        """A device left the target: it becomes ``removed``."""
        ptr, n = as_text(arg("device_id", device_id, TEXT))
        call(lib.ota_rollout_leave(self.handle, ptr, n, arg("now", now, INT)))

    def poll(self) -> Optional[Output]:
        """Takes the next output as ``(kind, value)`` — ``("audit", line)``, ``("command",
        dict)`` or ``("event", dict)`` — or None when nothing is pending. After each input,
        call it until None (``iter(rollout.poll, None)``)."""
        kind = ctypes.c_uint32(0)
        t = text(lib.ota_rollout_poll, self.handle, ctypes.byref(kind))
        name = _KINDS.get(kind.value)
        if name is None:
            return None
        return name, (t if name == "audit" else _json.loads(t))

    def outputs(self) -> List[Output]:
        """Every pending output, in order."""
        return list(iter(self.poll, None))

    def _take(self, kind: str) -> List[Any]:
        for name, value in self.outputs():
            self._taken[name].append(value)
        taken = list(self._taken[kind])
        self._taken[kind].clear()
        return taken

    def commands(self) -> List[Dict[str, Any]]:
        """Every pending command, in order (the other outputs are kept)."""
        return self._take("command")

    def events(self) -> List[Dict[str, Any]]:
        """Every pending event, in order (the other outputs are kept)."""
        return self._take("event")

    def audit_records(self) -> List[str]:
        """Every pending audit record, one JSON line each, in order (the other outputs are
        kept): a whole record (an object), or, for a device's routine report, a report line
        ``[at, device_id, status, firmware_version, attempt]`` whose number, link and effect
        follow from its place (docs/audit-trail.md)."""
        return self._take("audit")

    def audit_head(self) -> str:
        """The last record of the rollout's trail, as ``SEQ:HASH`` for ``audit_verify``."""
        head = self.status()["audit_head"]
        return f"{head['seq']}:{head['hash']}"

    def timeout(self) -> Optional[int]:
        """The earliest instant (Unix ms) at which to call ``handle_tick`` (an instant already
        past means now), or None when the rollout waits only on input."""
        at = ctypes.c_uint64(0)
        call(lib.ota_rollout_timeout(self.handle, ctypes.byref(at)))
        return None if at.value == 2**64 - 1 else at.value

    def status(self) -> Dict[str, Any]:
        """Where the rollout stands: the OTA API's ``rollout_id``, ``status``, ``canary_percent``
        and ``scheduled_count``, the devices per state, the waves, the halt reason, the
        incompatibility reasons and the fleet impact."""
        status: Dict[str, Any] = _json.loads(text(lib.ota_rollout_status, self.handle))
        return status

    def snapshot(self) -> str:
        """The whole state as JSON text, for any database; it holds the trail's head. Take the
        outputs first: they are not part of it."""
        return text(lib.ota_rollout_snapshot, self.handle)


def audit_verify(trail: Trail, head: Optional[TextInput] = None) -> int:
    """Verifies an audit trail (a list of JSON lines, or text with one record per line):
    returns how many records it holds; raises ``AuditBrokenError`` naming where a record was
    edited, dropped, inserted or reordered (the record, or, for a report line, which has no
    hash of its own, the next whole record). With ``head`` (``SEQ:HASH``, as
    ``Rollout.audit_head()`` gives it), the trail must also end there: dropping its last
    records, or editing the report lines after its last whole record, is caught too."""
    ptr, n = _trail_text(trail)
    records = ctypes.c_uint64(0)
    if head is None:
        call(lib.ota_audit_verify(ptr, n, ctypes.byref(records)))
    else:
        hptr, hn = as_text(arg("head", head, TEXT))
        call(lib.ota_audit_verify_head(ptr, n, hptr, hn, ctypes.byref(records)))
    return records.value
