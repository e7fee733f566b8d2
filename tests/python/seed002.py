"""An independent implementation of seed 002's artifact format with the `cryptography`
package, as the seed's publish script does it: gzip, then AES-256-CBC with PKCS7 padding,
the 16-byte IV prefixed. It shares no code with ota."""

import gzip
import hashlib
import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def seal(plaintext, key, iv=None):
    """The sealed artifact: IV || AES-256-CBC-PKCS7(gzip(plaintext))."""
    iv = iv or os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(gzip.compress(plaintext)) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + enc.update(padded) + enc.finalize()


def decrypt(artifact, key):
    """The gzip stream inside a sealed artifact."""
    dec = Cipher(algorithms.AES(key), modes.CBC(artifact[:16])).decryptor()
    padded = dec.update(artifact[16:]) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def open_(artifact, key):
    """The plaintext of a sealed artifact."""
    return gzip.decompress(decrypt(artifact, key))


def registration(artifact, key, resource_name, dev_stage, architecture, version, cdn_base):
    """The registration record the seed's script POSTs to the admin API."""
    object_key = f"{dev_stage}/{resource_name}-{architecture}-{version}.enc"
    return {
        "resource_name": resource_name,
        "dev_stage": dev_stage,
        "architecture": architecture,
        "version": version,
        "cdn_url": f"{cdn_base.rstrip('/')}/{object_key}",
        "sha256": hashlib.sha256(artifact).hexdigest(),
        "encryption_key": key.hex(),
        "size_bytes": len(artifact),
    }
