"""Build glue: puts libota into the wheel beside the ctypes bindings.

The metadata is in pyproject.toml. This file only (1) builds libota with cargo from the
workspace two directories up, or copies the one named by ``OTA_PREBUILT_LIBOTA``, into the
package, and (2) tags the wheel for this platform (it carries a native library) but for any
Python 3 (ctypes: no extension module, no Python ABI)."""

import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1 needs the wheel package
    from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]

HERE = os.path.dirname(os.path.abspath(__file__))
WORKSPACE = os.path.abspath(os.path.join(HERE, "..", ".."))
LIBRARY = {"darwin": "libota.dylib", "win32": "ota.dll"}.get(sys.platform, "libota.so")


def _libota():
    """The path of the libota to ship: the prebuilt one, or cargo's fresh build."""
    prebuilt = os.environ.get("OTA_PREBUILT_LIBOTA")
    if prebuilt:
        if not os.path.isfile(prebuilt):
            sys.exit(f"OTA_PREBUILT_LIBOTA={prebuilt} is not a file")
        return prebuilt
    manifest = os.path.join(WORKSPACE, "ota-ffi", "Cargo.toml")
    if not os.path.isfile(manifest):
        sys.exit(f"no ota-ffi crate at {manifest}: build from a checkout of the ota repository, "
                 "or set OTA_PREBUILT_LIBOTA to a built libota")
    profile = os.environ.get("OTA_CARGO_PROFILE", "release")
    cmd = ["cargo", "build", "--manifest-path", manifest, "--lib", "--profile", profile]
    features = os.environ.get("OTA_CARGO_FEATURES")
    if features is not None:
        cmd += ["--no-default-features", "--features", features]
    print("building libota:", " ".join(cmd), flush=True)
    try:
        subprocess.run(cmd, check=True)
    except FileNotFoundError:
        sys.exit("cargo is not installed: install Rust (https://rustup.rs) or set OTA_PREBUILT_LIBOTA")
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(WORKSPACE, "target")
    out = os.path.join(target, "debug" if profile == "dev" else profile, LIBRARY)
    if not os.path.isfile(out):
        sys.exit(f"cargo built no {out}")
    return out


class BuildPyWithLibota(build_py):
    """build_py, then libota into the built package."""

    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "ota", LIBRARY)
        self.mkpath(os.path.dirname(dest))
        shutil.copyfile(_libota(), dest)


class PlatformWheel(bdist_wheel):
    """A wheel for this platform and any Python 3: ``py3-none-<platform>``."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _python, _abi, platform = super().get_tag()
        return "py3", "none", platform


setup(cmdclass={"build_py": BuildPyWithLibota, "bdist_wheel": PlatformWheel})
