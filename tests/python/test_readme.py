"""The Python snippets of README.md ("Use it from Python") run as written, in order, against
the real module: a renamed method or a changed shape fails here, not in a reader's hands."""

import contextlib
import io
import os
import re
import tempfile
import unittest
import warnings

import ota
from helpers import fixture
from test_device import Storage, agent_config, publish
from test_rollout import sensors

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def python_snippets():
    """The ```python blocks of the README's "Use it from Python" section, in order."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
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


if __name__ == "__main__":
    unittest.main()
