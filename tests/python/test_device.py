"""The device path from Python: a firmware agent that updates from shuffled chunks with one
corrupted and a power cut, probes with the real runner, commits or rolls back on its own,
and refuses an unknown signer and a downgrade; an assignment with the package the host
verified, and a restore with it after a power cut; wrong types and handles refused."""

import json
import os
import random
import tempfile
import time
import unittest

import ota
from ota import _ffi
from helpers import fixture  # noqa: F401  (the fixtures directory)


class Storage(ota.DeviceIo):
    """Staging and two slots in a directory; survives the agent (a power cut)."""

    def __init__(self, root):
        self.root = root
        self.active = "a"
        self.labels = {}  # what each slot holds: the text of the swap that activated it
        with open(self.slot(self.active), "wb") as f:
            f.write(b"firmware 1.2.0")
        self._writer = None

    def swap_to(self, update):
        """Makes the slot holding ``update`` active: never a toggle. Done already (the power
        went after it): nothing to do; otherwise the inactive slot is labelled, then activated."""
        if self.labels.get(self.active) == update:
            return
        self.labels[self.inactive()] = update
        self.active = self.inactive()

    def restore_from(self, failed):
        """Only while the failed update's slot is active is the other one activated."""
        if self.labels.get(self.active) == failed:
            self.active = self.inactive()

    def slot(self, name):
        return os.path.join(self.root, f"slot-{name}.bin")

    def inactive(self):
        return "b" if self.active == "a" else "a"

    def stage_write(self, offset, data):
        path = os.path.join(self.root, "staging.bin")
        with open(path, "r+b" if os.path.exists(path) else "w+b") as f:
            f.seek(offset)
            f.write(data)

    def stage_read(self, offset, n):
        with open(os.path.join(self.root, "staging.bin"), "rb") as f:
            f.seek(offset)
            return f.read(n)

    def slot_open(self):
        if self._writer:
            self._writer.close()
        self._writer = open(self.slot(self.inactive()), "wb")

    def slot_write(self, data):
        self._writer.write(data)

    def slot_flush(self):
        self._writer.flush()
        os.fsync(self._writer.fileno())
        self._writer.close()
        self._writer = None

    def active_bytes(self):
        with open(self.slot(self.active), "rb") as f:
            return f.read()


class Device:
    """Runs an agent the way firmware would."""

    def __init__(self, root, config):
        self.root = root
        self.config = config
        self.io = Storage(root)
        self.record = None
        self.now = 1_700_000_000_000
        self.reports = []
        self.wanted = []
        self.agent = ota.Agent(config, self.io, self.now)
        self.corrupted = False
        self.cut_after_switch = None  # "swap" or "restore_previous": the power goes right after
        self.cuts = 0

    def boot(self):
        self.agent.close()
        self.now += 1000
        self.wanted = []
        self.agent = ota.Agent(self.config, self.io, self.now, record=self.record)

    def drain(self):
        for c in iter(self.agent.poll, None):
            kind = c["kind"]
            if kind == "persist":
                self.record = c["text"]
            elif kind == "fetch":
                self.wanted.append((c["offset"], c["length"]))
            elif kind == "swap":
                self.io.swap_to(c["text"])
                if self.cut_after_switch == kind:
                    return self.power_cut()
                self.agent.handle_swapped(self.now)
            elif kind == "probe":
                healthy, detail = ota.probe_run(c["text"], ["/bin/true", "/bin/false"], c["swapped_at"])
                self.agent.handle_probe_result(healthy, detail, self.now)
            elif kind == "restore_previous":
                self.io.restore_from(c["text"])
                if self.cut_after_switch == kind:
                    return self.power_cut()
                self.agent.handle_restored(self.now)
            elif kind == "report":
                self.reports.append(json.loads(c["text"]))

    def power_cut(self):
        """The power goes before the agent hears of the switch; the device boots again."""
        self.cut_after_switch = None
        self.cuts += 1
        self.boot()
        self.drain()

    def run(self, artifact, cut_after=None, seed=0):
        rng = random.Random(seed)
        delivered = 0
        while True:
            self.drain()
            if self.wanted:
                offset, length = self.wanted.pop(rng.randrange(len(self.wanted)))
                data = bytearray(artifact[offset:offset + length])
                if offset == 65536 and not self.corrupted:
                    self.corrupted = True
                    data[7] ^= 0xFF
                    with self.test.assertRaises(ota.ChunkDigestMismatchError):
                        self.agent.handle_chunk(offset, bytes(data), self.now)
                    continue
                self.agent.handle_chunk(offset, bytes(data), self.now)
                delivered += 1
                if cut_after and delivered == cut_after:
                    cut_after = None
                    self.boot()
                continue
            at = self.agent.timeout()
            if at is None:
                return
            self.now = max(self.now, at)
            self.agent.handle_tick(self.now)


def publish(version, size, probe, signer, key, signed=None):
    """(assignment, artifact, plaintext) for the seed 004 firmware at ``version``, the
    assignment asking for ``probe``; the ``signed`` dict's fields (``rollback``, ``probe``)
    go into the signed package statement."""
    plaintext = os.urandom(size)
    out = []
    with ota.Sealer(key, out.append) as s:
        s.write(plaintext)
        s.finish()
        d = json.loads(fixture("packages/valid/seed-004-firmware.json"))
        d["version"] = version
        d.update(signed or {})
        with ota.Package.from_json(json.dumps(d)) as p:
            p.set_sealed(s)
            envelope = json.loads(ota.sign(p, [signer]))
            statement = p.to_dict()
    from hashlib import sha256
    artifact = b"".join(out)
    import base64
    package_id = "pkg_" + sha256(base64.b64decode(envelope["payload"])).hexdigest()[:16]
    assignment = {
        "package_id": package_id, "type": "fw", "version": version,
        "size_bytes": statement["size_bytes"], "sha256": statement["sha256"],
        "envelope": envelope, "encryption_key": key.hex(), "rollout_id": "rol_4c7e",
        "probe": {"kind": "exec", "path": probe, "timeout_ms": 5000},
    }
    return assignment, artifact, plaintext


def agent_config(signer):
    """The seed 004 sensor, trusting ``signer``, probing at once."""
    return {
        "device": {"device_id": "dev_8f3a", "device_type": "temp-sensor", "hardware_profile": "acme-sensor-v2",
                   "arch": "armv7", "installed": {"temp-sensor-fw": "1.2.0"}},
        "trusted_keys": [signer.public_key],
        "probe_policy": {"initial_delay_ms": 0, "interval_ms": 0, "successes_needed": 1},
        "exec_allowlist": ["/bin/true", "/bin/false"],
    }


def as_tuf_target(assignment, target):
    """The same assignment naming a TUF target instead of carrying an envelope."""
    tuf = {k: v for k, v in assignment.items() if k != "envelope"}
    tuf["tuf_target"] = target
    return tuf


class FirmwareAgent(unittest.TestCase):
    def test_update_power_cut_probe_commit_and_rollback(self):
        key = ota.generate_seal_key()
        with tempfile.TemporaryDirectory() as root, ota.SigningKey.generate() as signer, \
                ota.SigningKey.generate() as stranger:
            config = agent_config(signer)
            d = Device(root, config)
            d.test = self
            self.assertEqual(d.agent.state, "idle")

            evil, _, _ = publish("3.0.0", 1000, "/bin/true", stranger, key)
            with self.assertRaises(ota.ThresholdNotMetError):
                d.agent.handle_assignment(evil, d.now)
            d.drain()
            self.assertEqual(d.reports[-1]["status"], "rejected")
            self.assertIs(ota.report_status(d.reports[-1]), ota.ReportStatus.REJECTED)

            good, artifact, plaintext = publish("2.0.0", 300_000, "/bin/true", signer, key)
            d.agent.handle_assignment(good, d.now)
            d.run(artifact, cut_after=2)
            self.assertTrue(d.corrupted)
            self.assertEqual(d.reports[-1]["status"], "success")
            self.assertIs(ota.report_status(json.dumps(d.reports[-1])), ota.ReportStatus.SUCCESS)
            self.assertEqual(d.io.active_bytes(), plaintext)
            self.assertEqual(d.agent.installed_version("temp-sensor-fw"), "2.0.0")

            sick, artifact2, _ = publish("2.1.0", 50_000, "/bin/false", signer, key)
            d.agent.handle_assignment(sick, d.now)
            d.run(artifact2)
            self.assertEqual(d.reports[-1]["status"], "failure")
            self.assertIs(ota.report_status(d.reports[-1]), ota.ReportStatus.FAILURE)
            self.assertEqual(d.reports[-1]["firmware_version"], "2.0.0")
            self.assertEqual(d.io.active_bytes(), plaintext)

            old, _, _ = publish("1.9.0", 1000, "/bin/true", signer, key)
            d.boot()
            d.drain()
            with self.assertRaises(ota.DowngradeError):
                d.agent.handle_assignment(old, d.now)
            with self.assertRaises(ota.WrongStateError):
                d.agent.handle_swapped(d.now)
            d.agent.close()

    def test_a_signed_rollback_downgrades_only_from_the_version_it_replaces_until_it_expires(self):
        key = ota.generate_seal_key()
        with tempfile.TemporaryDirectory() as root, ota.SigningKey.generate() as signer:
            d = Device(root, agent_config(signer))
            d.test = self
            good, artifact, plaintext = publish("2.0.0", 70_000, "/bin/true", signer, key)
            d.agent.handle_assignment(good, d.now)
            d.run(artifact)
            self.assertEqual(d.io.active_bytes(), plaintext)

            later = "2100-01-01T00:00:00Z"
            other, _, _ = publish("1.5.0", 1000, "/bin/true", signer, key,
                                  signed={"rollback": {"from": "2.1.0", "expires": later}})
            with self.assertRaises(ota.DowngradeError) as e:
                d.agent.handle_assignment(other, d.now)
            self.assertIn("replaces 2.1.0, but the device runs 2.0.0", str(e.exception))
            expired, _, _ = publish("1.5.0", 1000, "/bin/true", signer, key,
                                    signed={"rollback": {"from": "2.0.0", "expires": "2020-01-01T00:00:00Z"}})
            with self.assertRaises(ota.DowngradeError) as e:
                d.agent.handle_assignment(expired, d.now)
            self.assertIn("expired at 2020-01-01T00:00:00Z", str(e.exception))
            d.drain()
            self.assertEqual(d.io.active_bytes(), plaintext)

            back, artifact2, plaintext2 = publish("1.5.0", 1000, "/bin/true", signer, key,
                                                  signed={"rollback": {"from": "2.0.0", "expires": later}})
            d.agent.handle_assignment(back, d.now)
            d.run(artifact2)
            self.assertEqual(d.reports[-1]["status"], "success")
            self.assertEqual(d.io.active_bytes(), plaintext2)
            d.agent.close()

            # The unbound rollback of old is no package at all: a downgrade pass forever.
            with self.assertRaises(ota.OtaError) as e:
                publish("1.5.0", 1000, "/bin/true", signer, key, signed={"rollback": True})
            self.assertIn("rollback", str(e.exception))
            self.assertIn("downgrade pass forever", str(e.exception))

    def test_a_signed_probe_is_run_instead_of_the_assignments_and_interpreters_never_run(self):
        key = ota.generate_seal_key()
        with tempfile.TemporaryDirectory() as root, ota.SigningKey.generate() as signer:
            d = Device(root, agent_config(signer))
            d.test = self
            signed = {"kind": "exec", "path": "/bin/false", "args": ["--signed"], "timeout_ms": 5000}
            sick, artifact, _ = publish("2.0.0", 1000, "/bin/true", signer, key, signed={"probe": signed})
            d.agent.handle_assignment(sick, d.now)
            d.run(artifact)
            self.assertEqual(d.reports[-1]["status"], "failure")
            self.assertEqual(d.io.active_bytes(), b"firmware 1.2.0")
            d.agent.close()

            shell = {"kind": "exec", "path": "/usr/bin/env", "args": ["sh", "-c", "exit 0"], "timeout_ms": 2000}
            healthy, detail = ota.probe_run(shell, ["/usr/bin/env"], 0)
            self.assertFalse(healthy)
            self.assertIn("interpreter", detail)
            with self.assertRaises(ota.OtaError) as e:
                publish("2.0.1", 1000, "/bin/true", signer, key, signed={"probe": shell})
            self.assertIn("probe", str(e.exception))
            self.assertIn("interpreter", str(e.exception))

    def test_a_power_cut_right_after_the_host_swaps_or_restores_does_not_toggle_back(self):
        key = ota.generate_seal_key()
        with tempfile.TemporaryDirectory() as root, ota.SigningKey.generate() as signer:
            d = Device(root, agent_config(signer))
            d.test = self
            good, artifact, plaintext = publish("2.0.0", 100_000, "/bin/true", signer, key)
            d.agent.handle_assignment(good, d.now)
            d.cut_after_switch = "swap"
            d.run(artifact)
            self.assertEqual(d.cuts, 1)
            self.assertEqual(d.reports[-1]["status"], "success")
            self.assertEqual(d.io.active_bytes(), plaintext)

            sick, artifact2, _ = publish("2.1.0", 50_000, "/bin/false", signer, key)
            d.agent.handle_assignment(sick, d.now)
            d.cut_after_switch = "restore_previous"
            d.run(artifact2)
            self.assertEqual(d.cuts, 2)
            self.assertEqual(d.reports[-1]["status"], "failure")
            self.assertEqual(d.io.active_bytes(), plaintext)
            d.agent.close()

    def test_a_cancel_ends_a_download_and_leaves_the_active_slot(self):
        key = ota.generate_seal_key()
        with tempfile.TemporaryDirectory() as root, ota.SigningKey.generate() as signer:
            d = Device(root, agent_config(signer))
            good, artifact, plaintext = publish("2.0.0", 200_000, "/bin/true", signer, key)
            d.agent.handle_assignment(good, d.now)
            d.drain()
            offset, length = d.wanted.pop(0)
            d.agent.handle_chunk(offset, artifact[offset:offset + length], d.now)
            self.assertEqual(d.agent.state, "downloading")
            self.assertIsNotNone(d.agent.timeout())  # the download deadline
            d.agent.handle_cancel(d.now)
            d.drain()
            self.assertEqual(d.agent.state, "idle")
            self.assertEqual(d.reports[-1]["status"], "failure")
            self.assertIn("cancelled", d.reports[-1]["reason"])
            self.assertEqual(d.io.active_bytes(), b"firmware 1.2.0")
            d.agent.handle_cancel(d.now)  # nothing in progress: harmless
            with self.assertRaises(TypeError):
                d.agent.handle_cancel("now")  # type: ignore[arg-type]
            d.agent.close()

    def test_a_verified_assignment_then_a_restore_with_the_package_verified_again(self):
        key = ota.generate_seal_key()
        with tempfile.TemporaryDirectory() as root, ota.SigningKey.generate() as signer:
            config = agent_config(signer)
            d = Device(root, config)
            d.test = self
            good, artifact, plaintext = publish("2.0.0", 200_000, "/bin/true", signer, key)
            other, _, _ = publish("2.1.0", 1000, "/bin/true", signer, key)
            with ota.TrustedKeys([signer]) as trusted, \
                    ota.verify(json.dumps(good["envelope"]), trusted) as v200, \
                    ota.verify(json.dumps(other["envelope"]), trusted) as v210:
                # Another package than the envelope proves: refused, with a rejected report.
                with self.assertRaises(ota.StatementInvalidError):
                    d.agent.handle_verified_assignment(good, v210, d.now)
                d.drain()
                self.assertEqual(d.reports[-1]["status"], "rejected")
                # A TUF target: only a package a TUF client resolved may back it.
                tuf = as_tuf_target(good, "temp-sensor-fw/2.0.0/fw.enc")
                with self.assertRaises(ota.InvalidArgumentError) as cm:
                    d.agent.handle_assignment(tuf, d.now)
                self.assertIn("temp-sensor-fw/2.0.0/fw.enc", str(cm.exception))
                with self.assertRaises(ota.InvalidArgumentError):
                    d.agent.handle_verified_assignment(tuf, v200, d.now)
                d.drain()
                self.assertEqual(d.agent.state, "idle")

                # The envelope's own package: taken.
                d.agent.handle_verified_assignment(good, v200, d.now)
                d.drain()
                self.assertEqual(d.agent.state, "downloading")
                self.assertIsNotNone(d.record)

                # The power goes; the host restores the agent with the package verified again.
                d.agent.close()
                d.wanted = []
                with self.assertRaises(ota.RecordInvalidError):
                    ota.Agent.restore(config, d.io, d.now, d.record, package=v210)
                d.agent = ota.Agent.restore(config, d.io, d.now, d.record, package=v200)
                self.assertEqual(d.agent.state, "downloading")
                d.run(artifact)
                self.assertEqual(d.reports[-1]["status"], "success")
                self.assertEqual(d.io.active_bytes(), plaintext)
                self.assertEqual(d.agent.installed_version("temp-sensor-fw"), "2.0.0")
            d.agent.close()

    def test_wrong_types_raise_and_wrong_handles_are_refused_by_the_library(self):
        key = ota.generate_seal_key()
        with tempfile.TemporaryDirectory() as root, ota.SigningKey.generate() as signer, \
                ota.Package.from_json(fixture("packages/valid/seed-004-firmware.json")) as unsigned:
            config = agent_config(signer)
            d = Device(root, config)
            good, _, _ = publish("2.0.0", 1000, "/bin/true", signer, key)
            with self.assertRaises(TypeError) as cm:
                d.agent.handle_verified_assignment(good, unsigned, d.now)
            self.assertEqual(str(cm.exception), "verified_package must be ota.VerifiedPackage, not ota.Package")
            with self.assertRaises(TypeError) as cm:
                ota.Agent.restore(config, d.io, d.now, "{}", package=unsigned)
            self.assertEqual(str(cm.exception), "package must be ota.VerifiedPackage, not ota.Package")
            with self.assertRaises(TypeError) as cm:
                ota.Agent.restore(config, {}, d.now, "{}")
            self.assertIn("io must be ota.DeviceIo", str(cm.exception))
            with self.assertRaises(TypeError) as cm:
                d.agent.handle_assignment(7, d.now)
            self.assertIn("assignment must be", str(cm.exception))
            with self.assertRaises(TypeError) as cm:
                d.agent.handle_probe_result(True, 7, d.now)
            self.assertIn("detail must be", str(cm.exception))
            with self.assertRaises(TypeError) as cm:
                d.agent.installed_version(None)
            self.assertIn("name must be", str(cm.exception))
            with self.assertRaises(TypeError) as cm:
                ota.probe_run({"kind": "file", "path": "/x"}, "/bin/true", 0)
            self.assertIn("allowlist must be", str(cm.exception))

            # Below the type gate: an unsigned package handed straight to C where a verified
            # package belongs, and as the agent, is refused by its tag, not read.
            a, n = _ffi.as_text(json.dumps(good))
            status = _ffi.lib.ota_agent_handle_verified_assignment(d.agent.handle, a, n, unsigned.handle, d.now)
            self.assertEqual(status, ota.WrongHandleError.status)
            self.assertEqual(_ffi.last_error(), "`package` is an ota_package, not an ota_verified_package")
            self.assertEqual(_ffi.lib.ota_agent_handle_tick(unsigned.handle, d.now), ota.WrongHandleError.status)
            self.assertEqual(_ffi.last_error(), "`agent` is an ota_package, not an ota_agent")
            self.assertIsNone(_ffi.lib.ota_agent_state(unsigned.handle))
            self.assertEqual(d.agent.state, "idle")
            d.agent.close()

    def test_probe_runner(self):
        self.assertEqual(ota.probe_run({"kind": "exec", "path": "/bin/true", "timeout_ms": 2000}, ["/bin/true"], 0),
                         (True, "exit status 0"))
        healthy, detail = ota.probe_run({"kind": "exec", "path": "/bin/sh", "timeout_ms": 2000}, ["/bin/true"], 0)
        self.assertFalse(healthy)
        self.assertIn("allowlist", detail)
        healthy, detail = ota.probe_run({"kind": "http", "url": "http://127.0.0.1:9/", "timeout_ms": 500}, [], 0)
        self.assertFalse(healthy)
        with tempfile.NamedTemporaryFile() as f:
            now_ms = int(time.time() * 1000)
            self.assertFalse(ota.probe_run({"kind": "file", "path": f.name}, [], now_ms + 60_000)[0])
            self.assertTrue(ota.probe_run({"kind": "file", "path": f.name}, [], now_ms - 60_000)[0])


class ReportStatusTest(unittest.TestCase):
    def test_report_status_reads_every_status_and_names_a_bad_field(self):
        for member in ota.ReportStatus:
            got = ota.report_status({"device_id": "dev-1", "status": member.value})
            self.assertIs(got, member)
            self.assertEqual(got, member.value)
        with self.assertRaises(ValueError) as e:
            ota.report_status({"device_id": "dev-1", "status": "ok"})
        self.assertIn("status", str(e.exception))
        with self.assertRaises(TypeError):
            ota.report_status(42)  # type: ignore[arg-type]


if __name__ == "__main__":
    unittest.main()

