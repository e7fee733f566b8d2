"""The Python snippets of README.md ("Use it from Python", and the TUF section's) run as
written, in order, against the real module: a renamed method or a changed shape fails here,
not in a reader's hands."""

import contextlib
import io
import os
import re
import shutil
import tempfile
import unittest
import warnings

import ota
from helpers import FIXTURES, fixture
from test_device import Storage, agent_config, publish
from test_rollout import sensors

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def python_snippets(heading="Use it from Python"):
    """The ```python blocks of the README's section ``heading``, in order."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


class Readme(unittest.TestCase):
    def test_the_python_snippets_run_as_written(self):
        snippets = python_snippets()
        self.assertEqual(len(snippets), 4)
        model = os.urandom(200_000)
        cwd = os.getcwd()
        names = {}
        with tempfile.TemporaryDirectory() as root, ota.SigningKey.generate() as signer:
            os.chdir(root)
            try:
                with open("package.json", "wb") as f:
                    f.write(fixture("packages/valid/seed-004-firmware.json"))
                with open("device.json", "wb") as f:
                    f.write(fixture("profiles/valid/minimal.json"))
                with open("model.engine", "wb") as f:
                    f.write(model)
                assignment, _, _ = publish("2.0.0", 100_000, "/bin/true", signer, ota.generate_seal_key())
                names.update({
                    "now_ms": 1_700_000_000_000,
                    "fleet_profiles": sensors(40),
                    "device_config": agent_config(signer),
                    "storage": Storage(root),
                    "assignment": assignment,
                })
                out = io.StringIO()
                # The snippets read files with open(...).read(), as a reader would.
                with contextlib.redirect_stdout(out), warnings.catch_warnings():
                    warnings.simplefilter("ignore", ResourceWarning)
                    for i, snippet in enumerate(snippets):
                        exec(compile(snippet, f"<README.md, Python snippet {i + 1}>", "exec"), names)  # noqa: S102
                with open("model.out", "rb") as f:
                    self.assertEqual(f.read(), model)
            finally:
                os.chdir(cwd)
                if "storage" in names and names["storage"]._writer:
                    names["storage"].slot_flush()
        self.assertEqual(names["plaintext"], model)
        self.assertGreaterEqual(len(names["trail"]), 2)
        self.assertIn("'kind': 'send'", out.getvalue())
        self.assertIn("profile.ota.rollout.started.acme.rol_4c7e", out.getvalue())
        self.assertIn('"state":"downloading"', names["record"])
        self.assertEqual(names["agent"].state, "downloading")
        names["agent"].close()
        names["pkg"].close()
        names["verified"].close()

    def test_the_tuf_python_snippet_runs_as_written(self):
        # Against a repository of the fixtures whose root rotated once (as test_tuf.py).
        [snippet] = python_snippets("TUF: the second route to a verified package")
        repo = os.path.join(FIXTURES, "tuf", "rotation-good")
        cwd = os.getcwd()
        with tempfile.TemporaryDirectory() as root:
            os.chdir(root)
            try:
                shutil.copy(os.path.join(repo, "trusted", "root.json"), "root.json")
                names = {
                    "ota": ota, "now_ms": 1_776_238_357_000, "state_dir": os.path.join(root, "state"),
                    "metadata_url": os.path.join(repo, "repo", "metadata"),
                    "targets_url": os.path.join(repo, "repo", "targets"),
                }
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    exec(compile(snippet, "<README.md, TUF Python snippet>", "exec"), names)  # noqa: S102
                self.assertEqual(os.path.getsize("fw.enc"), names["length"])
                self.assertIn("'role': 'root'", out.getvalue())
                names["client"].close()
                names["verified"].close()
            finally:
                os.chdir(cwd)


if __name__ == "__main__":
    unittest.main()
