"""Run a staged rollout with automatic gates: a 10% canary, then waves to 50% and 100% that
open by themselves once the devices so far succeeded often enough and the wave before has
soaked for ten minutes. Device reports are simulated; every output is taken in order, the
audit record first, and the trail is verified at the end.

    python3 examples/python/rollout.py WORKDIR

Reads what pack_and_sign.py wrote into WORKDIR; writes the audit trail to ``audit.jsonl``.
"""

import sys
from pathlib import Path
from typing import Any, Dict, List

import ota

T0 = 1_776_000_000_000  # Unix milliseconds; a real control plane uses the clock
MINUTE = 60_000


def fleet(n: int) -> List[Dict[str, Any]]:
    """``n`` boards of the device profile ``prof_gate``, all able to run the model."""
    return [{
        "device_id": f"pi-gate-{i:03}", "device_type": "gate-controller", "hardware_profile": "generic-arm64",
        "arch": "arm64", "memory_mb": 4096,
        "runtimes": {"onnxruntime": {"version": "1.17.1", "max_opset": 20, "max_ir_version": 9}},
        "labels": {"profile": "prof_gate", "site": f"site-{i % 4}"},
    } for i in range(n)]


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    work = Path(argv[0])
    with ota.TrustedKeys([(work / "public-key.txt").read_text().strip()]) as trusted:
        verified = ota.verify(work / "envelope.json", trusted)
    package = verified.to_dict()
    config = {
        "rollout_id": "rol_resnet50", "tenant": "acme", "created_by": "alice",
        "spec": {
            "package_id": package["id"], "target_profile_id": "prof_gate",
            "canary_percent": 10, "failure_threshold_percent": 10,
            "waves": [
                {"percent": 50, "min_soak_ms": 10 * MINUTE},
                {"percent": 100, "min_soak_ms": 10 * MINUTE, "success_gate_percent": 95},
            ],
        },
    }
    version = package["package"]["version"]
    trail: List[str] = []
    now = T0
    with verified, ota.Rollout.create(config, verified, fleet(40), now) as rollout:
        for _ in range(1_000):  # bounded: each round is one input
            sent = []
            for kind, value in rollout.outputs():  # in order: the audit record comes first
                if kind == "audit":
                    trail.append(value)  # a real host appends it durably before acting
                elif kind == "command" and value["kind"] == "send":
                    sent.append(value["device_id"])
                elif kind == "event":
                    print(f"{(now - T0) // MINUTE:>4} min  {value['subject']}")
            if sent:
                print(f"{(now - T0) // MINUTE:>4} min  sent to {len(sent)} devices")
                now += MINUTE  # the devices install and report
                for device in sent:
                    rollout.handle_report({"device_id": device, "rollout_id": "rol_resnet50",
                                           "firmware_version": version, "status": "success"}, now)
                continue
            at = rollout.timeout()
            if at is None:
                break  # nothing left to wait for
            now = max(now, at)
            rollout.handle_tick(now)  # a soak ended: the next wave opens by itself
        status = rollout.status()
        head = rollout.audit_head()
    (work / "audit.jsonl").write_text("".join(line + "\n" for line in trail))
    records = ota.audit_verify(work / "audit.jsonl", head=head)
    print(f"{status['status']}: {status['devices']['succeeded']} devices updated; {records} audit records verified")
    return 0 if status["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
