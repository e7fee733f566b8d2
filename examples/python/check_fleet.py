"""Check a signed package against device profiles: which devices can run it, and why the
others cannot (device type, hardware, runtime version, opset, memory...).

    python3 examples/python/check_fleet.py WORKDIR

Reads what pack_and_sign.py wrote into WORKDIR; the fleet is made up here.
"""

import sys
from pathlib import Path
from typing import Any, Dict, List

import ota


def fleet() -> List[Dict[str, Any]]:
    """Three boards: one that fits, one whose ONNX Runtime is too old, one of another kind."""
    board = {"device_type": "gate-controller", "hardware_profile": "generic-arm64", "arch": "arm64",
             "memory_mb": 4096}
    return [
        {**board, "device_id": "pi-gate-01",
         "runtimes": {"onnxruntime": {"version": "1.17.1", "max_opset": 20, "max_ir_version": 9}}},
        {**board, "device_id": "pi-gate-02",
         "runtimes": {"onnxruntime": {"version": "1.14.0", "max_opset": 18, "max_ir_version": 8}}},
        {**board, "device_id": "nuc-01", "hardware_profile": "generic-x86_64", "arch": "x86_64",
         "runtimes": {"onnxruntime": {"version": "1.17.1", "max_opset": 20, "max_ir_version": 9}}},
    ]


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    work = Path(argv[0])
    with ota.TrustedKeys([(work / "public-key.txt").read_text().strip()]) as trusted:
        with ota.verify(work / "envelope.json", trusted) as verified:
            statement = verified.to_dict()["package"]
    with ota.Package.from_json(statement) as package:
        for device in fleet():
            with ota.Profile.from_json(device) as profile:
                report = ota.check(package, profile)
            reasons = [f"{r['reason']} (needs {r.get('needed')}, has {r.get('found')})" for r in report["rejections"]]
            print(f"{device['device_id']}: {'compatible' if report['compatible'] else '; '.join(reasons)}")
        summary = ota.check_fleet(package, fleet())
        print(f"fleet: {len(summary['eligible'])} of {summary['total']} eligible ({', '.join(summary['eligible'])}),"
              f" {summary['rejected']} rejected")
        return 0 if summary["eligible"] == ["pi-gate-01"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
