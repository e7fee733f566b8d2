"""The examples of examples/python run as a reader would run them, in order, in one work
directory, with the ``ota`` package this suite runs against: each must exit 0 (each checks its
own outcome: the opened model matches its manifest, one board of three is eligible, the
rollout completes, the agent's slot holds the model intact)."""

import os
import subprocess
import sys
import tempfile
import unittest

import ota

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "python")
ORDER = ["pack_and_sign.py", "verify.py", "check_fleet.py", "rollout.py", "agent.py"]


class Examples(unittest.TestCase):
    def test_every_example_is_run_here(self):
        self.assertEqual(sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py")), sorted(ORDER))

    def test_the_examples_run_in_order_and_succeed(self):
        env = dict(os.environ)
        # The child imports the same ota as this suite: the source tree's or the installed one.
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(ota.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        with tempfile.TemporaryDirectory() as work:
            for name in ORDER:
                with self.subTest(example=name):
                    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), work], env=env,
                                         capture_output=True, text=True, timeout=120)
                    self.assertEqual(out.returncode, 0, f"{name}:\n{out.stdout}{out.stderr}")
                    self.assertTrue(out.stdout.strip(), name)
            self.assertTrue(os.path.exists(os.path.join(work, "audit.jsonl")))


if __name__ == "__main__":
    unittest.main()
