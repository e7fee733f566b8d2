"""The exception classes: written out in ota/_errors.py, checked here against the library's
status table so that none is missing, misnamed or misnumbered; and their hierarchy."""

import json
import unittest

import ota
from ota import _errors
from ota._lib import lib
from helpers import fixture

# Status codes are grouped by hundreds below this bound (ota-core/src/status.rs).
CODE_BOUND = 10_000


def library_statuses():
    """``{code: name}`` for every status the library knows, success excluded."""
    found = {}
    for code in range(1, CODE_BOUND):
        name = lib.ota_status_name(code)
        if name is not None:
            found[code] = name.decode()
    return found


class Errors(unittest.TestCase):
    def test_one_exported_class_per_library_status_named_after_it(self):
        statuses = library_statuses()
        self.assertGreater(len(statuses), 50)
        for code, name in statuses.items():
            with self.subTest(status=name):
                cls = _errors.status_class(code)
                self.assertIsNotNone(cls, f"no exception class for status {name} ({code})")
                self.assertEqual(cls.name, name)
                self.assertEqual(cls.__name__, "".join(p.capitalize() for p in name.split("_")) + "Error")
                self.assertIs(getattr(ota, cls.__name__), cls)
                self.assertIn(cls.__name__, ota.__all__)
        known = {c.status for c in _errors._BY_CODE.values()}
        self.assertEqual(known, set(statuses), "classes for statuses the library does not have")

    def test_parse_errors_are_value_errors_and_verification_failures_share_one_base(self):
        for cls in (ota.JsonSyntaxError, ota.MissingFieldError, ota.UnknownFieldError, ota.InvalidValueError,
                    ota.InvalidError, ota.InvalidKeyError, ota.PlanInvalidError, ota.RecordInvalidError):
            self.assertTrue(issubclass(cls, ota.ValidationError), cls)
            self.assertTrue(issubclass(cls, ValueError), cls)
        for cls in (ota.SignatureInvalidError, ota.ThresholdNotMetError, ota.DigestMismatchError,
                    ota.ChunkDigestMismatchError, ota.AuditBrokenError, ota.TufRollbackError, ota.TufExpiredError,
                    ota.EnvelopeInvalidError):
            self.assertTrue(issubclass(cls, ota.VerificationError), cls)
            self.assertFalse(issubclass(cls, ValueError), cls)
        self.assertTrue(issubclass(ota.IoError, OSError))
        self.assertTrue(issubclass(ota.WrongHandleError, TypeError))
        for cls in _errors._BY_CODE.values():
            self.assertTrue(issubclass(cls, ota.OtaError))

    def test_a_missing_field_is_caught_as_value_error_naming_it(self):
        d = json.loads(fixture("packages/valid/seed-004-firmware.json"))
        del d["version"]
        with self.assertRaises(ValueError) as cm:
            ota.Package.from_json(d)
        self.assertIsInstance(cm.exception, ota.MissingFieldError)
        self.assertEqual(cm.exception.status, 102)
        self.assertIn("version", str(cm.exception))

    def test_a_tampered_envelope_is_caught_as_verification_error(self):
        key = ota.SigningKey.generate()
        envelope = json.loads(fixture("packages/valid/seed-004-firmware.json"))
        with ota.Package.from_json(envelope) as p, ota.Sealer(bytes(32), lambda b: None) as s:
            s.write(b"x")
            s.finish()
            p.set_sealed(s)
            signed = json.loads(ota.sign(p, [key]))
        other = ota.SigningKey.generate()
        with self.assertRaises(ota.VerificationError) as cm, ota.TrustedKeys([other]) as trusted:
            ota.verify(signed, trusted)
        self.assertIsInstance(cm.exception, ota.ThresholdNotMetError)


if __name__ == "__main__":
    unittest.main()
