"""The type gate: every binding entry point checks its arguments before anything reaches the
library, so a wrong object raises TypeError naming the argument instead of being handed to C
as another object's handle. Below it, the library refuses a handle of another type by its tag."""

import ctypes
import unittest

import ota
from ota import _ffi
from helpers import fixture

PACKAGE = "packages/valid/seed-004-firmware.json"
PROFILE = "profiles/valid/orin-nx-line-camera.json"


class TypeGate(unittest.TestCase):
    def setUp(self):
        self.package = ota.Package.from_json(fixture(PACKAGE))
        self.profile = ota.Profile.from_json(fixture(PROFILE))
        self.key = ota.SigningKey.generate()
        self.trusted = ota.TrustedKeys([self.key])

    def tearDown(self):
        for obj in (self.package, self.profile, self.key, self.trusted):
            obj.close()

    def assertTypeError(self, argument, expected, call, *args, **kwargs):
        with self.assertRaises(TypeError) as cm:
            call(*args, **kwargs)
        self.assertIn(argument, str(cm.exception))
        self.assertIn(expected, str(cm.exception))

    def test_check_with_package_and_profile_swapped_names_the_argument(self):
        self.assertTypeError("package must be ota.Package, not ota.Profile", "", ota.check, self.profile, self.package)
        self.assertTypeError("profile must be ota.Profile", "not ota.Package", ota.check, self.package, self.package)
        self.assertTypeError("package", "not NoneType", ota.check, None, self.profile)
        self.assertTypeError("profiles[1]", "ota.Profile or dict", ota.check_fleet, self.package, [self.profile, 3])

    def test_a_rollout_of_an_unsigned_package_raises_before_the_library_is_called(self):
        config = {"rollout_id": "rol_1", "tenant": "t", "created_by": "me", "spec": {}}
        self.assertTypeError("package must be ota.VerifiedPackage", "not ota.Package",
                             ota.Rollout.create, config, self.package, [], 0)
        self.assertTypeError("package must be ota.VerifiedPackage", "not ota.Profile",
                             ota.Rollout.replay, config, self.profile, [], 0, [])
        with _verified(self.package, self.key, self.trusted) as verified:
            self.assertTypeError("rollback must be ota.VerifiedPackage", "not ota.Profile",
                                 ota.Rollout.replay, config, verified, [], 0, [], rollback=self.profile)
            self.assertTypeError("trail[0] must be str", "not int", ota.Rollout.replay, config, verified, [], 0, [1])
            self.assertTypeError("now must be int", "not str", ota.Rollout.create, config, verified, [], "now")
        self.assertTypeError("package must be ota.VerifiedPackage", "not ota.SigningKey",
                             ota.Rollout.restore, "{}", self.key)
        self.assertTypeError("snapshot must be", "not int", ota.Rollout.restore, 7, self.key)
        self.assertTypeError("head must be", "not int", ota.audit_verify, [], head=7)
        self.assertTypeError("trail must be list or tuple", "not int", ota.audit_verify, 7)

    def test_a_streaming_write_of_an_int_raises_instead_of_sealing_zero_bytes(self):
        # bytes(10_000_000) is ten million zero bytes: a write must never take an int for data.
        out = []
        with ota.Sealer(bytes(32), out.append) as s:
            self.assertTypeError("data must be", "not int", s.write, 10_000_000)
            self.assertTypeError("data must be", "not bool", s.write, True)
            s.write(b"")
        self.assertLess(sum(map(len, out)), 1_000)

    def test_rollout_inputs_check_their_arguments(self):
        r = _closed_rollout()
        self.assertTypeError("by must be", "not int", r.pause, 7, 0)
        self.assertTypeError("wave must be int", "not str", r.approve, "1", "alice", 0)
        self.assertTypeError("passed must be bool", "not str", r.verdict, 0, "yes", "alice", 0)
        self.assertTypeError("device_id must be", "not int", r.leave, 42, 0)
        self.assertTypeError("report must be", "not int", r.handle_report, 42, 0)
        self.assertTypeError("profile must be", "not ota.Profile", r.join, self.profile, 0)

    def test_publisher_calls_check_their_handles(self):
        self.assertTypeError("package must be ota.Package", "not ota.Profile", ota.sign, self.profile, [self.key])
        self.assertTypeError("keys[0] must be ota.SigningKey", "not ota.TrustedKeys", ota.sign, self.package,
                             [self.trusted])
        self.assertTypeError("trusted must be ota.TrustedKeys", "not ota.SigningKey", ota.verify, "{}", self.key)
        self.assertTypeError("threshold must be int", "not str", ota.verify, "{}", self.trusted, "1")
        self.assertTypeError("verified must be ota.VerifiedPackage", "not ota.Package", ota.Opener, self.package,
                             bytes(32), lambda b: None)
        self.assertTypeError("sealer must be ota.Sealer", "not ota.Package", self.package.set_sealed, self.package)
        self.assertTypeError("sealer must be ota.Sealer", "not ota.Package", ota.registration_build, self.package,
                             bytes(32), "r", "prod", "armv7", "1.0.0", "https://s3", "b")
        self.assertTypeError("data must be", "not int", ota.Package.from_json, 42)
        self.assertTypeError("public_key must be", "not int", self.trusted.add, 7)

    def test_device_and_tuf_calls_check_their_arguments(self):
        self.assertTypeError("io must be ota.DeviceIo", "not dict", ota.Agent, {}, {}, 0)
        self.assertTypeError("name must be", "not int", ota.TufRepo.resolve, _closed_repo(), 5)

    def test_the_library_refuses_a_rollout_of_another_type_by_its_tag(self):
        buf = ctypes.create_string_buffer(64)
        n = ctypes.c_size_t(0)
        kind = ctypes.c_uint32(0)
        status = _ffi.lib.ota_rollout_status(self.package.handle, buf, 64, ctypes.byref(n))
        self.assertEqual(status, ota.WrongHandleError.status)
        self.assertEqual(_ffi.last_error(), "`rollout` is an ota_package, not an ota_rollout")
        status = _ffi.lib.ota_rollout_poll(self.key.handle, ctypes.byref(kind), buf, 64, ctypes.byref(n))
        self.assertEqual(status, ota.WrongHandleError.status)
        self.assertIn("ota_signing_key", _ffi.last_error())

    def test_the_library_refuses_a_handle_of_another_type_by_its_tag(self):
        # Below the type gate: a profile handed straight to C where a package belongs.
        buf = ctypes.create_string_buffer(64)
        n = ctypes.c_size_t(0)
        ok = ctypes.c_bool(False)
        status = _ffi.lib.ota_compat_check(self.profile.handle, self.profile.handle, buf, 64, ctypes.byref(n),
                                           ctypes.byref(ok))
        self.assertEqual(status, ota.WrongHandleError.status)
        self.assertEqual(_ffi.last_error(), "`package` is an ota_profile, not an ota_package")
        status = _ffi.lib.ota_package_to_json(self.key.handle, buf, 64, ctypes.byref(n))
        self.assertEqual(status, ota.WrongHandleError.status)
        self.assertIn("ota_signing_key", _ffi.last_error())


class Layout(unittest.TestCase):
    def test_the_package_init_only_re_exports(self):
        # Every public name is defined in the module named after its capability.
        for name in ota.__all__:
            obj = getattr(ota, name)
            module = getattr(obj, "__module__", None)
            if module is not None:
                self.assertNotEqual(module, "ota", name)
        self.assertEqual(ota.Rollout.__module__, "ota._rollout")
        self.assertEqual(ota.check.__module__, "ota._compat")
        self.assertEqual(ota.Agent.__module__, "ota._device")
        self.assertEqual(ota.Sealer.__module__, "ota._seal")
        self.assertEqual(ota.SigningKey.__module__, "ota._sign")
        self.assertEqual(ota.Package.__module__, "ota._documents")

    def test_arg_names_the_argument_and_both_types(self):
        from ota._managed import INT, arg

        with self.assertRaises(TypeError) as cm:
            arg("wave", "0", INT)
        self.assertEqual(str(cm.exception), "wave must be int, not str")
        with self.assertRaises(TypeError) as cm:
            arg("now", True, INT)
        self.assertEqual(str(cm.exception), "now must be int, not bool")
        self.assertIsNone(arg("rollback", None, ota.VerifiedPackage, optional=True))
        with self.assertRaises(TypeError):
            arg("package", None, ota.VerifiedPackage)
        self.assertEqual(arg("n", 5, INT), 5)
        with ota.SigningKey.generate() as key:
            self.assertEqual(arg("key", key, ota.SigningKey), key.handle)
        with self.assertRaises(ValueError):
            arg("key", key, ota.SigningKey)  # closed: no handle to give


def _verified(package, key, trusted):
    """``package`` sealed, signed by ``key`` and verified against ``trusted``."""
    with ota.Sealer(ota.generate_seal_key(), lambda b: None) as s:
        s.write(b"firmware")
        s.finish()
        package.set_sealed(s)
    return ota.verify(ota.sign(package, [key]), trusted)


def _closed_rollout():
    """A rollout without a handle: any call that got past the type gate would raise
    ValueError, not TypeError."""
    rollout = ota.Rollout.__new__(ota.Rollout)
    rollout._handle = None
    return rollout


def _closed_repo():
    repo = ota.TufRepo.__new__(ota.TufRepo)
    repo._handle = None
    return repo


if __name__ == "__main__":
    unittest.main()
