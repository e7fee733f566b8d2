"""Verify a signed package and open its artifact: the envelope must carry a valid signature by
a trusted key, and every 64 KiB chunk of the artifact must match the signed chunk table before
it is decrypted.

    python3 examples/python/verify.py WORKDIR

Reads what pack_and_sign.py wrote into WORKDIR and writes ``model.out``, the plaintext, only
once all of it verified.
"""

import hashlib
import sys
from pathlib import Path
from typing import List

import ota

CHUNK = 1 << 16


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    work = Path(argv[0])
    public_key = (work / "public-key.txt").read_text().strip()
    seal_key = bytes.fromhex((work / "seal-key.hex").read_text().strip())
    with ota.TrustedKeys([public_key]) as trusted:
        try:
            verified = ota.verify(work / "envelope.json", trusted)  # a path, a dict or the JSON text
        except ota.VerificationError as e:
            print(f"refused: {e}", file=sys.stderr)
            return 1
    with verified:
        info = verified.to_dict()
        print(f"{info['id']}: {info['package']['name']} {info['package']['version']}, signed by {info['signed_by']}")
        digest = hashlib.sha256()
        partial = work / "model.out.partial"
        with open(partial, "wb") as out:

            def sink(data: bytes) -> None:
                digest.update(data)
                out.write(data)

            with ota.Opener(verified, seal_key, sink) as opener, open(work / "model.enc", "rb") as f:
                for piece in iter(lambda: f.read(CHUNK), b""):
                    opener.write(piece)
                opener.finish()  # only now is the plaintext complete and verified
        partial.replace(work / "model.out")
        expected = info["package"]["manifest"]["files"][0]["sha256"]
        print(f"opened: sha256 {digest.hexdigest()} ({'matches' if digest.hexdigest() == expected else 'differs from'}"
              " the manifest)")
        return 0 if digest.hexdigest() == expected else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
