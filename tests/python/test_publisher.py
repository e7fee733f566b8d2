"""The publisher path from Python: keys, sealing and opening, signing and verifying, the
registration record, and interoperability with independent seed 002 and DSSE code."""

import hashlib
import json
import os
import tempfile
import unittest
import zlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

import dsse
import ota
import seed002
from helpers import fixture

PAYLOAD_TYPE = "application/vnd.ota.package+json"


def noise(n, seed=1):
    out = bytearray()
    block = seed.to_bytes(8, "little")
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


class Keys(unittest.TestCase):
    def test_generate_save_load(self):
        with ota.SigningKey.generate() as k:
            self.assertEqual(k.key_id, hashlib.sha256(bytes.fromhex(k.public_key)).hexdigest())
            for form in (k.to_pem(), k.to_der()):
                with ota.SigningKey.load(form) as again:
                    self.assertEqual(again.key_id, k.key_id)
            self.assertTrue(k.to_pem().startswith("-----BEGIN PRIVATE KEY-----"))

    def test_keys_from_cryptography_load(self):
        # A PKCS#8 key written by another library reads back with the same public key.
        c = Ed25519PrivateKey.generate()
        pem = c.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        raw = c.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        with ota.SigningKey.load(pem) as k:
            self.assertEqual(k.public_key, raw.hex())
        spki = c.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        with ota.TrustedKeys([spki]):
            pass

    def test_bad_keys(self):
        with self.assertRaises(ota.InvalidSigningKeyError):
            ota.SigningKey.load(b"not a key")
        with self.assertRaises(ota.InvalidSigningKeyError):
            ota.TrustedKeys(["abcd"])
        with self.assertRaises(ota.InvalidKeyError):
            ota.seal(b"x", b"short")


def sealed_package(plaintext, key, signer):
    """(package, envelope, artifact) for the seed 004 firmware sealed with ``key``."""
    out = []
    with ota.Sealer(key, out.append) as s:
        s.write(plaintext)
        s.finish()
        with ota.Package.from_json(fixture("packages/valid/seed-004-firmware.json")) as p:
            p.set_sealed(s)
            env = ota.sign(p, [signer])
            statement = p.to_dict()
    return statement, env, b"".join(out)


class SealAndOpen(unittest.TestCase):
    def setUp(self):
        self.key = ota.generate_seal_key()
        self.signer = ota.SigningKey.generate()
        self.trusted = ota.TrustedKeys([self.signer])

    def tearDown(self):
        self.signer.close()
        self.trusted.close()

    def test_round_trip_through_a_verified_package(self):
        plaintext = noise(300_000)
        statement, env, artifact = sealed_package(plaintext, self.key, self.signer)
        self.assertEqual(statement["size_bytes"], len(artifact))
        self.assertEqual(len(statement["chunks"]["sha256"]), (len(artifact) + 65535) // 65536)
        with ota.verify(env, self.trusted) as v:
            d = v.to_dict()
            self.assertEqual(d["signed_by"], [self.signer.key_id])
            self.assertTrue(d["id"].startswith("pkg_"))
            self.assertEqual(ota.open_sealed(v, self.key, artifact), plaintext)

    def test_open_file_writes_the_same_bytes_on_any_thread_count_and_nothing_on_failure(self):
        # Three segments and a bit: with threads >= 2 they inflate on other threads.
        plaintext = noise(3 * (1 << 20) + 12_345, 7)
        statement, env, artifact = sealed_package(plaintext, self.key, self.signer)
        self.assertEqual(len(statement["seal"]["segments"]["offsets"]), 3)
        with tempfile.TemporaryDirectory() as d, ota.verify(env, self.trusted) as v:
            src, dst = os.path.join(d, "a.enc"), os.path.join(d, "a.bin")
            with open(src, "wb") as f:
                f.write(artifact)
            for threads in (0, 1, 2, 3, 16):
                ota.open_file(v, self.key, src, dst, threads=threads)
                with open(dst, "rb") as f:
                    self.assertEqual(f.read(), plaintext, f"threads={threads}")
            # The thread count reaches the pipeline: a statement whose first segment offset is
            # one byte off, signed all the same, opens on one thread (which reads the stream as
            # one gzip member) and is refused on two (which inflate from the offsets).
            shifted = json.loads(json.dumps(statement))
            shifted["seal"]["segments"]["offsets"][0] += 1
            with ota.Package.from_json(shifted) as p:
                with ota.verify(ota.sign(p, [self.signer]), self.trusted) as off:
                    ota.open_file(off, self.key, src, dst, threads=1)
                    with self.assertRaises(ota.DecryptionFailedError):
                        ota.open_file(off, self.key, src, dst, threads=2)
            with open(dst, "rb") as f:
                self.assertEqual(f.read(), plaintext)
            # A flipped byte in the third segment, on one thread or several: an error naming
            # the chunk, the previous output untouched, no temporary file left.
            bad = bytearray(artifact)
            bad[(2 << 20) + 70_000] ^= 1
            with open(src, "wb") as f:
                f.write(bad)
            for threads in (1, 2):
                with self.assertRaises(ota.ChunkDigestMismatchError) as cm:
                    ota.open_file(v, self.key, src, dst, threads=threads)
                self.assertIn("chunk 33", str(cm.exception))
                with open(dst, "rb") as f:
                    self.assertEqual(f.read(), plaintext)
                self.assertEqual(sorted(os.listdir(d)), ["a.bin", "a.enc"])
            with self.assertRaises(ota.InvalidArgumentError) as cm:
                ota.open_file(v, self.key, src, dst, threads=17)
            self.assertIn("threads", str(cm.exception))
            with self.assertRaises(ValueError):
                ota.open_file(v, self.key, src, dst, threads=-1)
            with self.assertRaises(TypeError):
                ota.open_file(v, self.key, src, dst, threads=True)
            with self.assertRaises(ota.IoError) as cm:
                ota.open_file(v, self.key, os.path.join(d, "missing.enc"), dst)
            self.assertIn("missing.enc", str(cm.exception))
            # A directory, or a path naming no file, is refused before anything is read.
            for bad in (d, os.path.join(d, "")):
                with self.assertRaises(ota.InvalidArgumentError) as cm:
                    ota.open_file(v, self.key, src, bad)
                self.assertIn("out_path", str(cm.exception))
            self.assertEqual(sorted(os.listdir(d)), ["a.bin", "a.enc"])

    def test_an_envelope_file_verifies_streamed_with_its_table_in_a_file(self):
        plaintext = noise(1_500_000, 3)
        _, env, artifact = sealed_package(plaintext, self.key, self.signer)
        with tempfile.TemporaryDirectory() as d:
            env_path, table = os.path.join(d, "envelope.json"), os.path.join(d, "table")
            src, dst = os.path.join(d, "a.enc"), os.path.join(d, "a.bin")
            with open(env_path, "w") as f:
                f.write(env)
            with open(src, "wb") as f:
                f.write(artifact)
            with ota.verify(env, self.trusted) as whole, \
                    ota.verify_file(env_path, table, self.trusted) as v:
                self.assertEqual(v.to_dict(), whole.to_dict())
                self.assertEqual(v.chunk_count, (len(artifact) + 65535) // 65536)
                # The digests are in the table file, 32 bytes each, and the artifact opens
                # against them.
                self.assertEqual(os.path.getsize(table), 32 * v.chunk_count)

                def flip():
                    with open(table, "r+b") as f:
                        f.seek(40)
                        b = f.read(1)
                        f.seek(40)
                        f.write(bytes([b[0] ^ 1]))

                # A digest that changed in the table file before it is read is found, not
                # trusted. Flipped back, the artifact opens (the block read last is kept,
                # checked: a change after it was read would go unseen, and change nothing).
                flip()
                with self.assertRaises(ota.IoError) as cm:
                    ota.open_file(v, self.key, src, dst, threads=1)
                self.assertIn("changed since the statement was verified", str(cm.exception))
                flip()
                ota.open_file(v, self.key, src, dst, threads=2)
                with open(dst, "rb") as f:
                    self.assertEqual(f.read(), plaintext)
            # A payload altered in the file, another signer, no such file: the errors of verify.
            with open(env_path) as f:
                text = f.read()
            with open(env_path, "w") as f:
                payload = json.loads(env)["payload"]
                f.write(text.replace(payload[20:24], "AAAA" if payload[20:24] != "AAAA" else "BBBB", 1))
            with self.assertRaises(ota.SignatureInvalidError):
                ota.verify_file(env_path, table, self.trusted)
            with ota.SigningKey.generate() as other, ota.TrustedKeys([other]) as t:
                with self.assertRaises(ota.ThresholdNotMetError):
                    ota.verify_file(env_path, table, t)
            with self.assertRaises(ota.IoError) as cm:
                ota.verify_file(os.path.join(d, "missing.json"), table, self.trusted)
            self.assertIn("missing.json", str(cm.exception))
            with self.assertRaises(ota.IoError) as cm:
                ota.verify_file(env_path, os.path.join(d, "no", "table"), self.trusted)
            self.assertIn("table_path", str(cm.exception))
            with self.assertRaises(TypeError):
                ota.verify_file(env_path, 7, self.trusted)

    def test_a_verified_package_s_fields_come_from_accessors_without_json(self):
        plaintext = noise(300_000)
        statement, env, artifact = sealed_package(plaintext, self.key, self.signer)
        with ota.verify(env, self.trusted) as v:
            d = v.to_dict()
            self.assertEqual(v.id, d["id"])
            self.assertEqual(v.name, statement["name"])
            self.assertEqual(v.version, statement["version"])
            self.assertEqual(v.sha256, statement["sha256"])
            self.assertEqual(v.sha256, hashlib.sha256(artifact).hexdigest())
            self.assertIsInstance(v.size, int)
            self.assertEqual(v.size, len(artifact))
            self.assertEqual(v.chunk_count, (len(artifact) + 65535) // 65536)
            self.assertEqual(v.chunk_count, len(statement["chunks"]["sha256"]))
        # A closed package answers with an error, not a crash.
        with self.assertRaises(ValueError):
            _ = v.id

    def test_reproducible_sealing(self):
        a, ia = ota.seal(b"model bytes" * 1000, self.key, reproducible=True)
        b, ib = ota.seal(b"model bytes" * 1000, self.key, reproducible=True)
        c, _ = ota.seal(b"model bytes" * 1000, self.key)
        self.assertEqual(a, b)
        self.assertEqual(ia, ib)
        self.assertNotEqual(a, c)

    def test_every_failure_has_its_exception(self):
        plaintext = noise(200_000, 2)
        _, env, artifact = sealed_package(plaintext, self.key, self.signer)
        with ota.SigningKey.generate() as stranger, ota.TrustedKeys([stranger]) as other:
            with self.assertRaises(ota.ThresholdNotMetError):
                ota.verify(env, other)
        e = json.loads(env)
        e["payload"] = ("B" if e["payload"][30] == "A" else "A").join([e["payload"][:30], e["payload"][31:]])
        with self.assertRaises(ota.SignatureInvalidError):
            ota.verify(json.dumps(e), self.trusted)
        with self.assertRaises(ota.ThresholdNotMetError):
            ota.verify(env, self.trusted, threshold=2)
        with self.assertRaises(ota.InvalidArgumentError):
            ota.verify(env, self.trusted, threshold=0)
        with self.assertRaises(ota.EnvelopeInvalidError):
            ota.verify("{}", self.trusted)
        with ota.verify(env, self.trusted) as v:
            bad = bytearray(artifact)
            bad[70_000] ^= 1
            with self.assertRaises(ota.ChunkDigestMismatchError) as cm:
                ota.open_sealed(v, self.key, bytes(bad))
            self.assertIn("chunk 1", str(cm.exception))
            with self.assertRaises(ota.DecryptionFailedError):
                ota.open_sealed(v, bytes(32), artifact)
            with self.assertRaises(ota.TooLongError):
                ota.open_sealed(v, self.key, artifact + b"\0" * 16)
            with self.assertRaises(ota.TruncatedError):
                ota.open_sealed(v, self.key, artifact[:-16])

            def full(_):
                raise OSError("disk full")

            with ota.Opener(v, self.key, full) as o:
                with self.assertRaises(ota.IoError):
                    o.write(artifact)

            # A sink that failed is not called again (the gzip stream flushes what it holds
            # when it is dropped), and an opener closed before it finished calls it no more.
            calls = []

            def fails(data):
                calls.append(len(data))
                raise OSError("disk full")

            with ota.Opener(v, self.key, fails) as o:
                with self.assertRaises(ota.IoError):
                    o.write(artifact)
            self.assertEqual(len(calls), 1, calls)
            taken = []
            o = ota.Opener(v, self.key, taken.append)
            o.write(artifact[: len(artifact) // 2])
            before = len(taken)
            o.close()
            self.assertEqual(len(taken), before)
        with ota.Package.from_json(fixture("packages/valid/seed-004-firmware.json")) as p:
            with self.assertRaises(ota.NotSealedError):
                ota.sign(p, [self.signer])


class Seed002Interop(unittest.TestCase):
    def test_ota_opens_what_the_seed_script_seals(self):
        key = os.urandom(32)
        plaintext = noise(250_000, 3)
        artifact = seed002.seal(plaintext, key)
        reg = seed002.registration(artifact, key, "my_model", "dev", "arm64", "2026-04-15", "https://cdn.example/")
        self.assertEqual(ota.registration_object_key(reg), "dev/my_model-arm64-2026-04-15.enc")
        with tempfile.TemporaryDirectory() as d:
            src, dst = os.path.join(d, "a.enc"), os.path.join(d, "a.bin")
            with open(src, "wb") as f:
                f.write(artifact)
            ota.registration_open_file(reg, src, dst, max_plaintext=1 << 30)
            with open(dst, "rb") as f:
                self.assertEqual(f.read(), plaintext)
            os.remove(dst)
            # A bound below the plaintext, or a flipped byte: an error, and no file.
            with self.assertRaises(ota.PlaintextTooLargeError):
                ota.registration_open_file(reg, src, dst, max_plaintext=1000)
            self.assertFalse(os.path.exists(dst))
            with open(src, "r+b") as f:
                f.seek(100)
                f.write(b"\x00")
            with self.assertRaises(ota.DigestMismatchError):
                ota.registration_open_file(reg, src, dst, max_plaintext=1 << 30)
            self.assertEqual(os.listdir(d), ["a.enc"])

    def test_the_seed_script_opens_what_ota_seals(self):
        key = os.urandom(32)
        plaintext = noise(250_000, 4)
        out = []
        with ota.Sealer(key, out.append) as s:
            s.write(plaintext)
            info = s.finish()
            reg = ota.registration_build(s, key, "my_model", "dev", "arm64", "2026-04-15",
                                         "http://127.0.0.1:9000", "artifacts", cdn_base="https://cdn.example/")
        artifact = b"".join(out)
        self.assertEqual(seed002.open_(artifact, key), plaintext)
        self.assertEqual(reg, seed002.registration(artifact, key, "my_model", "dev", "arm64", "2026-04-15", "https://cdn.example"))
        self.assertEqual(info["sha256"], hashlib.sha256(artifact).hexdigest())

    def test_each_signed_segment_inflates_on_its_own_with_zlib(self):
        # Checked with the cryptography package and zlib only: every segment the sealer
        # declares inflates apart, from its offset, to its 1 MiB of plaintext, and the
        # whole is still one gzip member that gzip.decompress reads.
        key = os.urandom(32)
        seg = 1 << 20
        plaintext = noise(2 * seg + 12_345, 5)
        artifact, info = ota.seal(plaintext, key)
        self.assertEqual(info["segments"]["plaintext_size"], seg)
        offsets = info["segments"]["offsets"]
        self.assertEqual(len(offsets), 2)
        self.assertEqual(seed002.open_(artifact, key), plaintext)
        gz = seed002.decrypt(artifact, key)
        starts = [10] + offsets
        ends = offsets + [len(gz) - 8]
        for i, (start, end) in enumerate(zip(starts, ends)):
            d = zlib.decompressobj(-15)
            part = d.decompress(gz[start:end])
            self.assertEqual(part, plaintext[i * seg:(i + 1) * seg], f"segment {i}")
            self.assertEqual(d.eof, i == 2, f"segment {i}")
        # One segment or less: none declared.
        _, small = ota.seal(plaintext[:seg], key)
        self.assertNotIn("segments", small)


class DsseInterop(unittest.TestCase):
    def test_python_verifies_what_ota_signs(self):
        with ota.SigningKey.generate() as a, ota.SigningKey.generate() as b:
            _, env, _ = sealed_package(b"firmware", ota.generate_seal_key(), a)
            raw_a, raw_b = bytes.fromhex(a.public_key), bytes.fromhex(b.public_key)
            payload = dsse.verify(env, [raw_a], 1)
            self.assertEqual(json.loads(payload)["name"], "temp-sensor-fw")
            self.assertIsNone(dsse.verify(env, [raw_b], 1))
            self.assertIsNone(dsse.verify(env, [raw_a, raw_b], 2))

    def test_ota_verifies_what_python_signs(self):
        with ota.SigningKey.generate() as k:
            statement, _, _ = sealed_package(b"firmware", ota.generate_seal_key(), k)
        c1, c2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        raw = [c.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) for c in (c1, c2)]
        payload = json.dumps(statement).encode()
        env = dsse.sign(payload, PAYLOAD_TYPE, [c1, c2, c1])
        with ota.TrustedKeys([r.hex() for r in raw]) as trusted:
            with ota.verify(env, trusted, threshold=2) as v:
                self.assertEqual(sorted(v.to_dict()["signed_by"]), sorted(dsse.key_id(r) for r in raw))
            with self.assertRaises(ota.ThresholdNotMetError):
                ota.verify(dsse.sign(payload, PAYLOAD_TYPE, [c1, c1]), trusted, threshold=2)
            with self.assertRaises(ota.EnvelopeInvalidError):
                ota.verify(dsse.sign(payload, "application/json", [c1]), trusted)


if __name__ == "__main__":
    unittest.main()
