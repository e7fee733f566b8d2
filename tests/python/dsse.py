"""A few lines of DSSE with `cryptography`'s Ed25519, independent of ota: the
pre-authentication encoding, a verifier with a threshold, and a signer."""

import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def pae(payload_type, payload):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def key_id(raw_public_key):
    return hashlib.sha256(raw_public_key).hexdigest()


def verify(envelope_json, trusted_raw_keys, threshold):
    """The payload if ``threshold`` distinct trusted keys signed it validly, else None."""
    env = json.loads(envelope_json)
    payload = base64.b64decode(env["payload"])
    message = pae(env["payloadType"], payload)
    keys = {key_id(k): Ed25519PublicKey.from_public_bytes(k) for k in trusted_raw_keys}
    good = set()
    for s in env["signatures"]:
        key = keys.get(s.get("keyid"))
        if key is None:
            continue
        try:
            key.verify(base64.b64decode(s["sig"]), message)
            good.add(s["keyid"])
        except InvalidSignature:
            pass
    return payload if len(good) >= threshold else None


def sign(payload, payload_type, private_keys):
    """An envelope over ``payload`` signed by each ``Ed25519PrivateKey``."""
    message = pae(payload_type, payload)
    sigs = []
    for k in private_keys:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        sigs.append({"keyid": key_id(raw), "sig": base64.b64encode(k.sign(message)).decode()})
    return json.dumps({"payloadType": payload_type, "payload": base64.b64encode(payload).decode(), "signatures": sigs})
