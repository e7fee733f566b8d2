"""An audit-trail verifier independent of ota: only hashlib and json, from the format in
docs/audit-trail.md. It reads the stored lines, hashes each record's bytes as stored (the
line without its final ``hash`` member), checks every link, and returns the head."""

import hashlib
import json
import re

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


def verify(lines, head=None):
    """Verifies a trail given as its stored lines (str or bytes), from record 0: each
    record's hash, its sequence number and its link to the record before; then, when
    ``head`` (``SEQ:HASH``) is given, that the trail ends there. Returns the head,
    ``SEQ:HASH``."""
    tip, seq = ZERO, -1
    for n, line in enumerate(lines):
        raw = line.encode() if isinstance(line, str) else line
        raw = raw.rstrip(b"\n")
        if not raw.strip():
            continue
        digest = record_hash(raw)
        rec = json.loads(raw)
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
