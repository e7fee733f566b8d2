"""Pack and sign a model: seal its file (gzip, AES-256-CBC, a table of 64 KiB chunk digests),
fill the package from the seal, and sign it with an Ed25519 key (a DSSE envelope).

    python3 examples/python/pack_and_sign.py WORKDIR [MODEL_FILE]

Writes into WORKDIR: ``model.enc`` (the sealed artifact, for any object store),
``envelope.json`` (the signed package), ``public-key.txt`` (for verifiers and devices),
``seal-key.hex`` (the encryption key, sent to a device with its assignment) and
``signing-key.pem`` (keep it secret). Without MODEL_FILE, a random 300 kB stand-in is packed.
"""

import hashlib
import os
import sys
from pathlib import Path
from typing import Any, Dict, List

import ota

CHUNK = 1 << 20  # read the model piece by piece: memory stays bounded


def package_document(model: Path) -> Dict[str, Any]:
    """The package of an ONNX model for 64-bit ARM boards: what it is, what it needs, and its
    file (``sha256`` and ``size_bytes`` of the package itself are filled from the seal)."""
    digest = hashlib.sha256()
    with open(model, "rb") as f:
        for piece in iter(lambda: f.read(CHUNK), b""):
            digest.update(piece)
    size = model.stat().st_size
    return {
        "type": "model",
        "name": "resnet50",
        "version": "1.4.0",
        "artifact_uri": "s3://models/resnet50/1.4.0.enc",
        "sha256": "0" * 64,
        "size_bytes": size,
        "channel": "stable",
        "source": {"kind": "upload"},
        "manifest": {
            "name": "resnet50",
            "version": "1.4.0",
            "license": "Apache-2.0",
            "created_at": "2026-04-15T07:32:37Z",
            "channel": "stable",
            "description": "ResNet-50 classifier, ONNX, any 64-bit ARM board",
            "framework": "onnx",
            "precision": ["fp32"],
            "files": [{"path": model.name, "role": "weights", "size_bytes": size, "sha256": digest.hexdigest()}],
            "io": {
                "max_batch_size": 8,
                "inputs": [{"name": "input", "dtype": "fp32", "shape": [-1, 3, 224, 224]}],
                "outputs": [{"name": "logits", "dtype": "fp32", "shape": [-1, 1000]}],
            },
            "metrics": [{"name": "top1_accuracy", "value": 76.1, "unit": "percent", "dataset": "imagenet-val"}],
            "targets": [{"hardware_profile": "generic-arm64", "runtimes": {"onnxruntime": ">=1.16"},
                         "min_memory_mb": 1024}],
            "onnx": {"ir_version": 8, "opset_imports": [{"domain": "", "version": 17}]},
        },
    }


def main(argv: List[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__, file=sys.stderr)
        return 2
    work = Path(argv[0])
    work.mkdir(parents=True, exist_ok=True)
    if len(argv) == 2:
        model = Path(argv[1])
    else:
        model = work / "resnet50.onnx"
        model.write_bytes(os.urandom(300_000))

    seal_key = ota.generate_seal_key()
    with ota.SigningKey.generate() as signer, ota.Package.from_json(package_document(model)) as package:
        with open(work / "model.enc", "wb") as out, ota.Sealer(seal_key, out.write) as sealer, open(model, "rb") as f:
            for piece in iter(lambda: f.read(CHUNK), b""):
                sealer.write(piece)
            info = sealer.finish()
            package.set_sealed(sealer)  # sha256, size_bytes, chunk table and seal information
        envelope = ota.sign(package, [signer])
        (work / "envelope.json").write_text(envelope)
        (work / "public-key.txt").write_text(signer.public_key + "\n")
        (work / "signing-key.pem").write_text(signer.to_pem())
        (work / "seal-key.hex").write_text(seal_key.hex() + "\n")
        print(f"sealed {info['plaintext_size']} bytes into {info['size_bytes']} ({len(info['chunks']['sha256'])} chunks of {info['chunks']['chunk_size']} bytes)")
        print(f"signed by key {signer.key_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
