"""Drive the device's update agent through one update: take the assignment, persist each
record before going on, fetch and stage the chunks, write the inactive slot, swap, run the
health probe, and report. The storage is two slot files and a staging file in a directory.

    python3 examples/python/agent.py WORKDIR

Reads what pack_and_sign.py wrote into WORKDIR; the device lives in ``WORKDIR/device``. The
chunks come from ``model.enc`` (a real device fetches them by HTTP range requests).
"""

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional

import ota

NOW = 1_776_000_000_000  # Unix milliseconds; a real device uses its clock


class SlotStorage(ota.DeviceIo):
    """Staging and two slots (``slot-a.bin``, ``slot-b.bin``) in ``root``, made durable with
    fsync; ``active`` names the slot the device runs from."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.active = "a"
        self.labels: Dict[str, str] = {}  # what each slot holds: the text of the swap to it
        self._writer: Optional[BinaryIO] = None
        root.mkdir(parents=True, exist_ok=True)
        (root / "staging.bin").touch()

    def inactive(self) -> str:
        return "b" if self.active == "a" else "a"

    def swap_to(self, update: str) -> None:
        """Makes the slot holding ``update`` active. Never a toggle, so that a swap carried out
        again after a power cut is harmless: when the active slot holds it already, nothing
        happens; otherwise the inactive slot is labelled first, then activated (a real device
        keeps the labels and the active slot durably, as the bootloader's environment)."""
        if self.labels.get(self.active) == update:
            return
        self.labels[self.inactive()] = update
        self.active = self.inactive()

    def restore_from(self, failed: str) -> None:
        """Makes the previous slot active again, only while the failed update's slot runs."""
        if self.labels.get(self.active) == failed:
            self.active = self.inactive()

    def stage_write(self, offset: int, data: bytes) -> None:
        with open(self.root / "staging.bin", "r+b") as f:
            f.seek(offset)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def stage_read(self, offset: int, n: int) -> bytes:
        with open(self.root / "staging.bin", "rb") as f:
            f.seek(offset)
            return f.read(n)

    def slot_open(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = open(self.root / f"slot-{self.inactive()}.bin", "wb")

    def slot_write(self, data: bytes) -> None:
        if self._writer is None:
            raise OSError("the slot is not open")
        self._writer.write(data)

    def slot_flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            os.fsync(self._writer.fileno())
            self._writer.close()
            self._writer = None


def device_config(public_key: str, probe_program: str) -> Dict[str, Any]:
    """The device (its profile), the keys it trusts, when it probes, what a probe may run."""
    return {
        "device": {"device_id": "pi-gate-001", "device_type": "gate-controller", "hardware_profile": "generic-arm64",
                   "arch": "arm64", "memory_mb": 4096,
                   "runtimes": {"onnxruntime": {"version": "1.17.1", "max_opset": 20, "max_ir_version": 9}}},
        "trusted_keys": [public_key],
        "probe_policy": {"initial_delay_ms": 0, "interval_ms": 0, "successes_needed": 1},
        "exec_allowlist": [probe_program],
    }


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    work = Path(argv[0])
    envelope = json.loads((work / "envelope.json").read_text())
    public_key = (work / "public-key.txt").read_text().strip()
    with ota.TrustedKeys([public_key]) as trusted:
        with ota.verify(envelope, trusted) as verified:
            package = verified.to_dict()
    probe_program = shutil.which("true") or "/bin/true"
    # What the control plane sends the device for this rollout.
    assignment = {
        "package_id": package["id"], "type": "model", "version": package["package"]["version"],
        "size_bytes": package["package"]["size_bytes"], "sha256": package["package"]["sha256"],
        "envelope": envelope, "encryption_key": (work / "seal-key.hex").read_text().strip(),
        "rollout_id": "rol_resnet50", "probe": {"kind": "exec", "path": probe_program, "timeout_ms": 5000},
    }
    storage = SlotStorage(work / "device")
    artifact = (work / "model.enc").read_bytes()
    now = NOW
    reports: List[Dict[str, Any]] = []
    with ota.Agent(device_config(public_key, probe_program), storage, now) as agent:
        agent.handle_assignment(assignment, now)  # ota.DowngradeError, ota.NotCompatibleError, ...
        for _ in range(10_000):  # bounded: each round is one input
            fetches = []
            for command in iter(agent.poll, None):  # in order: a record to persist comes first
                kind = command["kind"]
                if kind == "persist":
                    (work / "device" / "record.json").write_text(command["text"])  # durably, before going on
                elif kind == "fetch":
                    fetches.append((command["offset"], command["length"]))
                elif kind == "swap":
                    storage.swap_to(command["text"])  # the bootloader switches slots and restarts
                    agent.handle_swapped(now)
                elif kind == "probe":
                    healthy, detail = ota.probe_run(command["text"], [probe_program], command["swapped_at"])
                    agent.handle_probe_result(healthy, detail, now)
                elif kind == "restore_previous":
                    storage.restore_from(command["text"])
                    agent.handle_restored(now)
                elif kind == "report":
                    reports.append(json.loads(command["text"]))  # send it to the control plane
            for offset, length in fetches:
                agent.handle_chunk(offset, artifact[offset:offset + length], now)
            if fetches:
                continue
            at = agent.timeout()
            if at is None:
                break
            now = max(now, at)
            agent.handle_tick(now)
        print(f"agent {agent.state}; installed {agent.installed_version(package['package']['name'])}")
    for report in reports:
        print(f"report: {report['status']} {report.get('firmware_version', '')}")
    installed = (work / "device" / f"slot-{storage.active}.bin").read_bytes()
    model = package["package"]["manifest"]["files"][0]
    intact = hashlib.sha256(installed).hexdigest() == model["sha256"]
    print(f"slot {storage.active} holds {model['path']}, {len(installed)} bytes, {'intact' if intact else 'CORRUPT'}")
    return 0 if intact and reports and reports[-1]["status"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
