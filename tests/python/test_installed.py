"""When the suite runs against the package installed with pip (tests/tests/python.rs sets
OTA_EXPECT_INSTALLED_IN to the virtual environment), ``ota`` and its libota are the installed
copies, not the source tree's."""

import os
import unittest

import ota
from ota import _lib


@unittest.skipUnless(os.environ.get("OTA_EXPECT_INSTALLED_IN"), "not an installed-package run")
class Installed(unittest.TestCase):
    def test_the_package_is_the_installed_copy(self):
        venv = os.path.realpath(os.environ["OTA_EXPECT_INSTALLED_IN"])
        package_dir = os.path.realpath(os.path.dirname(ota.__file__))
        self.assertTrue(package_dir.startswith(venv + os.sep), package_dir)
        self.assertEqual(os.path.realpath(os.path.dirname(_lib.path)), package_dir)
        self.assertTrue(os.path.isfile(os.path.join(package_dir, "py.typed")))
        self.assertTrue(ota.version())
