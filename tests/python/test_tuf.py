"""TUF from Python: refresh through a root rotation, resolve a target to a verified package,
download it and read the Trust Center; a changed target and a timestamp rollback are refused,
the trusted state unchanged."""

import os
import shutil
import tempfile
import unittest

import ota
from helpers import FIXTURES

NOW = 1_776_238_357_000


def client(name, state):
    d = os.path.join(FIXTURES, "tuf", name)
    with open(os.path.join(d, "trusted", "root.json"), "rb") as f:
        root = f.read()
    return ota.TufClient(root, os.path.join(d, "repo", "metadata"), os.path.join(d, "repo", "targets"), state)


class Tuf(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.work)

    def test_refresh_resolve_download_trust_center(self):
        state = os.path.join(self.work, "state")
        with client("rotation-good", state) as c, c.refresh(NOW) as repo:
            self.assertEqual(sorted(os.listdir(state)), ["root.json", "snapshot.json", "targets.json", "timestamp.json"])
            pkg, length = repo.resolve("fw.enc")
            with pkg:
                d = pkg.to_dict()
                self.assertTrue(d["id"].startswith("pkg_"))
                self.assertEqual(d["package"]["name"], "temp-sensor-fw")
                self.assertEqual(d["package"]["size_bytes"], length)
            chunks = []
            self.assertEqual(repo.download("fw.enc", chunks.append), length)
            out = os.path.join(self.work, "fw.enc")
            repo.download_file("fw.enc", out)
            with open(out, "rb") as f:
                self.assertEqual(f.read(), b"".join(chunks))
            tc = repo.trust_center()
            self.assertEqual([r["role"] for r in tc["roles"]], ["root", "timestamp", "snapshot", "targets"])
            self.assertEqual(tc["roles"][0]["version"], 2)
            self.assertEqual(tc["targets"][0]["name"], "fw.enc")
            with self.assertRaises(ota.TufUnsafeTargetNameError):
                repo.resolve("../../etc/passwd")
            with self.assertRaises(ota.TufTargetNotFoundError):
                repo.resolve("nope")

    def test_a_changed_target_is_refused_and_not_written(self):
        with client("target-bytes", os.path.join(self.work, "s")) as c, c.refresh(NOW) as repo:
            out = os.path.join(self.work, "bad.enc")
            with self.assertRaises(ota.TufTargetMismatchError) as e:
                repo.download_file("fw.enc", out)
            self.assertIn("fw.enc", str(e.exception))
            self.assertFalse(os.path.exists(out))

    def test_a_timestamp_rollback_is_refused_and_the_state_kept(self):
        state = os.path.join(self.work, "state")
        shutil.copytree(os.path.join(FIXTURES, "tuf", "rollback-timestamp", "trusted"), state)
        with open(os.path.join(state, "timestamp.json"), "rb") as f:
            before = f.read()
        with client("rollback-timestamp", state) as c:
            with self.assertRaises(ota.TufRollbackError):
                c.refresh(NOW)
            with self.assertRaises(ota.TufExpiredError):
                # The same client two years on: the trusted root itself has expired.
                client("rotation-good", os.path.join(self.work, "other")).refresh(NOW + 2 * 365 * 86_400_000)
        with open(os.path.join(state, "timestamp.json"), "rb") as f:
            self.assertEqual(f.read(), before)


if __name__ == "__main__":
    unittest.main()
