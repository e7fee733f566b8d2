"""The foundation API from Python: statuses and exceptions, manifest/package/profile parsing,
the compatibility check per device and fleet, and SBOM validation."""

import ctypes
import gc
import json
import unittest

import ota
from ota import _errors, _ffi
from helpers import fixture


class Statuses(unittest.TestCase):
    def test_version(self):
        self.assertEqual(ota.version(), "0.1.0")

    def test_the_default_build_has_every_optional_feature(self):
        # The suite runs on the workspace's default build; the pip test in tests/python.rs
        # installs a build without them and checks what calling them raises.
        self.assertEqual(ota.features(), frozenset({"tuf", "probe-runners"}))

    def test_exception_classes_come_from_the_library(self):
        # Every status the library knows has a class named after it, and no other: the
        # binding reads the names through ota_status_name instead of keeping a table.
        known = {}
        for code in range(1, 10_000):
            name = _ffi.lib.ota_status_name(code)
            if name is not None:
                known[code] = name.decode()
        self.assertEqual({c: cls.name for c, cls in _errors._BY_CODE.items()}, known)
        for code, name in known.items():
            cls = _errors.error_for(code, "x").__class__
            self.assertEqual((cls.status, cls.name), (code, name))
            self.assertTrue(issubclass(cls, ota.OtaError))
            self.assertIs(getattr(ota, cls.__name__), cls)
        self.assertIs(ota.JsonSyntaxError, _errors.error_for(100, "").__class__)
        self.assertEqual(ota.WrongHandleError.status, 7)
        self.assertFalse(hasattr(_errors, "STATUSES"))

    def test_the_retired_incompatible_status_has_no_class(self):
        self.assertIsNone(_ffi.lib.ota_status_name(200))
        self.assertFalse(hasattr(ota, "IncompatibleError"))
        err = _errors.error_for(200, "x")
        self.assertEqual((type(err), err.status), (ota.OtaError, 200))


class Documents(unittest.TestCase):
    def test_manifest_round_trip(self):
        with ota.Manifest.from_json(fixture("manifests/valid/tensorrt-orin-nx.json")) as m:
            d = m.to_dict()
            self.assertEqual(d["name"], "yolo-v8n")
            again = ota.Manifest.from_json(m.to_json())
            self.assertEqual(again.to_json(), m.to_json())
            again.close()
            again.close()  # closing twice is harmless
            with self.assertRaises(ValueError):
                again.to_json()

    def test_every_invalid_manifest_raises_naming_the_field(self):
        cases = {
            "unknown-key-nested": (ota.UnknownFieldError, "io.inputs[0].colour"),
            "missing-name": (ota.MissingFieldError, "name"),
            "version-v-prefix": (ota.InvalidValueError, "version"),
            "io-dimension-below-minus-one": (ota.InvalidError, "io.outputs[0].shape[1]"),
            "tensorrt-dla-with-fp32-only-precision": (ota.InvalidError, "tensorrt.dla_core"),
            "latency-nan": (ota.JsonSyntaxError, "metrics[1].value"),
            "license-not-spdx": (ota.InvalidValueError, "license"),
        }
        for name, (cls, path) in cases.items():
            with self.subTest(name):
                with self.assertRaises(cls) as cm:
                    ota.Manifest.from_json(fixture(f"manifests/invalid/{name}.json"))
                self.assertIn(path + ":", str(cm.exception))

    def test_bad_input(self):
        with self.assertRaises(ota.InvalidUtf8Error):
            ota.Package.from_json(b'{"name":"\xff"}')
        with self.assertRaises(ota.JsonSyntaxError):
            ota.Profile.from_json("{")
        with self.assertRaises(ota.InvalidValueError):
            ota.Package.from_json("[]")
        with self.assertRaises(ota.InvalidValueError) as cm:
            ota.Package.from_json(fixture("packages/invalid/registry-tag-only.json"))
        self.assertIn("pin the digest", str(cm.exception))
        with self.assertRaises(ota.InvalidError) as cm:
            ota.Profile.from_json(fixture("profiles/invalid/widens-dla-cores.json"))
        self.assertIn("accelerators[1].count", str(cm.exception))

    def test_null_pointers_are_refused(self):
        out = ctypes.c_void_p()
        self.assertEqual(_ffi.lib.ota_package_parse(None, 5, ctypes.byref(out)), 1)
        self.assertIn("`json` is NULL", _ffi.last_error())
        self.assertEqual(_ffi.lib.ota_package_to_json(None, None, 0, None), 1)

    def test_small_buffers_report_the_size_needed(self):
        d = json.loads(fixture("packages/valid/model-tensorrt-orin-nx.json"))
        d["release_notes"] = "Retrained. " * 1000
        with ota.Package.from_json(json.dumps(d)) as p:
            n = ctypes.c_size_t(0)
            buf = ctypes.create_string_buffer(8)
            status = _ffi.lib.ota_package_to_json(p.handle, buf, 8, ctypes.byref(n))
            self.assertEqual(status, _errors.INSUFFICIENT_SIZE)
            self.assertEqual(n.value, len(p.to_json().encode()))
            self.assertGreater(n.value, 4096)  # so text() had to grow its buffer

    def test_handles_are_freed_when_collected(self):
        for _ in range(200):
            ota.Profile.from_json(fixture("profiles/valid/orin-nx-line-camera.json"))
        gc.collect()


class Compatibility(unittest.TestCase):
    def setUp(self):
        self.yolo = ota.Package.from_json(fixture("packages/valid/model-tensorrt-orin-nx.json"))
        self.orin = ota.Profile.from_json(fixture("profiles/valid/orin-nx-line-camera.json"))
        self.xavier = ota.Profile.from_json(fixture("profiles/valid/xavier-nx-one-dla.json"))

    def tearDown(self):
        for h in (self.yolo, self.orin, self.xavier):
            h.close()

    def test_fits_and_does_not_fit(self):
        self.assertTrue(ota.check(self.yolo, self.orin)["compatible"])
        r = ota.check(self.yolo, self.xavier)
        self.assertFalse(r["compatible"])
        self.assertEqual([x["reason"] for x in r["rejections"]], ["no_matching_target"])

    def test_every_reason_at_once(self):
        d = json.loads(fixture("profiles/valid/orin-nx-line-camera.json"))
        d.update(allowed_channels=["canary"], device_type="doorbell", memory_mb=1024)
        d["firmware"]["version"] = "5.1"
        with ota.Profile.from_json(json.dumps(d)) as p:
            reasons = [x["reason"] for x in ota.check(self.yolo, p)["rejections"]]
        self.assertEqual(reasons, ["channel_not_allowed", "device_type_mismatch", "firmware_too_old", "insufficient_memory"])

    def test_fleet(self):
        r = ota.check_fleet(self.yolo, [self.orin, self.xavier])
        self.assertEqual(r["eligible"], ["jetson-line7-01"])
        self.assertEqual(r["reasons"], {"no_matching_target": 1})
        with self.assertRaises(ota.InvalidError) as cm:
            ota.check_fleet(self.yolo, [json.loads(fixture("profiles/valid/orin-nx-line-camera.json"))] * 2)
        self.assertIn("[1].device_id", str(cm.exception))


class Sbom(unittest.TestCase):
    def test_validate(self):
        s = ota.validate_sbom("cyclonedx-1.5", fixture("sbom/valid-cyclonedx-1.5.json"))
        self.assertEqual(s, {"format": "cyclonedx-1.5", "name": "resnet50", "components": 2})
        with self.assertRaises(ota.InvalidError) as cm:
            ota.validate_sbom("spdx-2.3", fixture("sbom/invalid-spdx-bad-checksum.json"))
        self.assertIn("packages[0].checksums[0].checksumValue", str(cm.exception))
        with self.assertRaises(ota.InvalidArgumentError):
            ota.validate_sbom("spdx", b"{}")


if __name__ == "__main__":
    unittest.main()
