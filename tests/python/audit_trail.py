"""An audit-trail verifier independent of ota: only hashlib and json, from the format in
docs/audit-trail.md. It reads the stored lines, hashes each record's bytes as stored (a
whole record's line without its final ``hash`` member; a report line after the hash before
it), checks every link, and returns the head."""

import hashlib
import json
import re

# A name (a device id): ASCII letters and digits, then also '.', '_' and '-', at most 128.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# A semantic version (semver.org's own expression).
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?", re.ASCII)
# A whole record's members, in the order they are written.
_WHOLE = ["seq", "at", "cause", "input", "effects", "prev", "hash"]

# A record's line ends with its hash, the last member of the object.
_TAIL = re.compile(rb',"hash":"([0-9a-f]{64})"\}$')
ZERO = "0" * 64


class TrailError(Exception):
    """The trail does not verify; the message says which record and why."""


def record_hash(line: bytes) -> str:
    """The hash a stored record line should carry: SHA-256 of the line with its final
    ``,"hash":"…"`` member cut out."""
    m = _TAIL.search(line)
    if m is None:
        raise TrailError(f"not an audit record line: {line[:60]!r}")
    return hashlib.sha256(line[: m.start()] + b"}").hexdigest()


def _compact(raw: bytes, value) -> bool:
    """Whether ``raw`` is ``value`` written as the trail writes it: compact JSON, members in
    their order, non-ASCII as UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() == raw


def _uint(v, bits: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**bits


def _semver(v) -> bool:
    """A semantic version whose major, minor and patch each fit in 64 bits."""
    m = _SEMVER.fullmatch(v) if isinstance(v, str) else None
    return m is not None and all(int(m.group(k)) < 2**64 for k in (1, 2, 3))


def report_line(raw: bytes):
    """A report line's fields, ``[at, device_id, status, firmware_version, attempt]`` (the last
    two optional), checked as the library reads one: each field of its type, written as the
    trail writes it (compact JSON, a ``null`` version only before an attempt)."""
    try:
        fields = json.loads(raw)
    except ValueError as e:
        raise TrailError(f"not a report line: {e}") from None
    ok = (isinstance(fields, list) and 3 <= len(fields) <= 5 and _uint(fields[0], 64)
          and isinstance(fields[1], str) and _NAME.fullmatch(fields[1]) is not None
          and fields[2] in ("in_progress", "success"))
    if ok and len(fields) >= 4:
        version = fields[3]
        ok = _semver(version) or (version is None and len(fields) == 5)
    if ok and len(fields) == 5:
        ok = _uint(fields[4], 32)
    if not ok:
        raise TrailError(f"not a report line: {raw[:60]!r}")
    if not _compact(raw, fields):
        raise TrailError(f"a report line not in compact form: {raw[:60]!r}")
    return fields


def _line(line) -> bytes:
    """A stored line's bytes, without its line end (``\\n`` or ``\\r\\n``)."""
    raw = (line.encode() if isinstance(line, str) else line).rstrip(b"\n")
    return raw[:-1] if raw.endswith(b"\r") else raw


def _created(rec) -> str:
    """The rollout a whole record creates, or None."""
    inp = rec.get("input")
    return inp["create"].get("rollout_id") if isinstance(inp, dict) and isinstance(inp.get("create"), dict) else None


def records(lines):
    """The trail's records as dicts, each report line expanded into the record it stands for:
    the device's report (of the rollout record 0 created) and its routine effect."""
    out, rollout = [], None
    for line in lines:
        raw = _line(line)
        if not raw.strip():
            continue
        if not raw.startswith(b"["):
            rec = json.loads(raw)
            rollout = _created(rec) or rollout
            out.append(rec)
            continue
        at, device, status, *rest = report_line(raw)
        version = rest[0] if rest else None
        report = {"device_id": device, "rollout_id": rollout, "status": status}
        if version is not None:
            report["firmware_version"] = version
        effect = ({"kind": "device_in_progress", "device_id": device} if status == "in_progress"
                  else {"kind": "device_updated", "device_id": device, "version": version})
        inp = {"attempt_report": {"report": report, "attempt": rest[1]}} if len(rest) > 1 else {"report": report}
        out.append({"seq": out[-1]["seq"] + 1 if out else 0, "at": at,
                    "cause": {"kind": "device", "device_id": device}, "input": inp, "effects": [effect]})
    return out


def verify(lines, head=None):
    """Verifies a trail given as its stored lines (str or bytes), from record 0: each
    record's hash, its sequence number and its link to the record before; then, when
    ``head`` (``SEQ:HASH``) is given, that the trail ends there. Returns the head,
    ``SEQ:HASH``."""
    tip, seq, rollout = ZERO, -1, None
    for line in lines:
        raw = _line(line)
        if not raw.strip():
            continue
        if raw.startswith(b"["):
            # A report line: numbered and linked by its place, hashed after the hash before it.
            if rollout is None:
                raise TrailError(f"audit record {seq + 1} is a report line before the creation record")
            report_line(raw)
            seq, tip = seq + 1, hashlib.sha256(tip.encode() + raw).hexdigest()
            continue
        digest = record_hash(raw)
        rec = json.loads(raw)
        if not (isinstance(rec, dict) and list(rec) == _WHOLE and _uint(rec["seq"], 64)
                and _uint(rec["at"], 64) and _compact(raw, rec)):
            raise TrailError(f"audit record {seq + 1} is not written as the trail writes it")
        rollout = _created(rec) or rollout
        if rec.get("hash") != digest:
            raise TrailError(f"audit record {rec.get('seq')} was altered")
        if rec.get("seq") != seq + 1 or rec.get("prev") != tip:
            raise TrailError(f"audit record {rec.get('seq')} does not follow record {seq}")
        seq, tip = rec["seq"], digest
    if seq < 0:
        raise TrailError("the audit trail is empty")
    found = f"{seq}:{tip}"
    if head is not None and head != found:
        raise TrailError(f"the audit trail ends at {found}, not at its anchored head {head}")
    return found
