"""Every entry point of the package, found by walking ``ota.__all__`` (so a new one cannot be
forgotten), called with None and with an object of every handle type in each parameter: each
call either takes the value (its type hint allows it) or raises TypeError naming the
parameter. Nothing reaches the library as another object's handle, so nothing crashes the
interpreter. Objects cannot be made from raw handles either."""

import base64
import collections.abc
import enum
import hashlib
import inspect
import json
import os
import shutil
import tempfile
import types
import typing
import unittest

import ota
from helpers import FIXTURES, fixture

# The DeviceIo methods are the device's storage, implemented by a subclass and called by the
# library: they are not entry points into it.
NOT_ENTRY_POINTS = {"DeviceIo.stage_write", "DeviceIo.stage_read", "DeviceIo.slot_open", "DeviceIo.slot_write",
                    "DeviceIo.slot_flush"}


class Storage(ota.DeviceIo):
    """Device storage in memory."""

    def __init__(self):
        self.stage = bytearray()
        self.slot = bytearray()

    def stage_write(self, offset, data):
        self.stage[offset:offset + len(data)] = data

    def stage_read(self, offset, n):
        return bytes(self.stage[offset:offset + n])

    def slot_open(self):
        self.slot = bytearray()

    def slot_write(self, data):
        self.slot += data


def entry_points():
    """``{qualified name: (callable, owner class or None)}`` for every public function, class
    constructor, method, class method and property of the package."""
    found = {}
    for name in ota.__all__:
        obj = getattr(ota, name)
        if isinstance(obj, type) and issubclass(obj, (BaseException, enum.Enum)):
            continue  # exceptions and enumerations (ReportStatus) are values, not entry points
        if inspect.isfunction(obj):
            found[name] = (obj, None)
        elif isinstance(obj, type) and obj is not ota.Managed:  # its methods: under each subclass
            public_init = list(inspect.signature(obj.__init__).parameters) != ["self", "handle"]
            if public_init and "__init__" in {k for c in obj.__mro__ if c not in (ota.Managed, object) for k in vars(c)}:
                found[f"{name}()"] = (obj, obj)  # objects made from a handle: see the raw handle test
            for attr in dir(obj):
                if attr.startswith("_"):
                    continue
                raw = inspect.getattr_static(obj, attr)
                qual = f"{name}.{attr}"
                if qual in NOT_ENTRY_POINTS:
                    continue
                if isinstance(raw, property):
                    found[qual] = (raw, obj)
                elif isinstance(raw, (classmethod, staticmethod, types.FunctionType)):
                    found[qual] = (getattr(obj, attr), obj)
    return found


def accepts(hint, value):
    """Whether ``value`` fits type ``hint`` (the subset of typing the package uses)."""
    if hint is typing.Any:
        return True
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        return any(accepts(a, value) for a in typing.get_args(hint))
    if isinstance(hint, typing.TypeVar):
        return True
    if origin is not None:
        return isinstance(value, origin)
    if isinstance(hint, type):
        return isinstance(value, hint)
    raise AssertionError(f"unknown hint {hint!r}")


class EntryPoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp()
        cls.key = ota.SigningKey.generate()
        cls.trusted = ota.TrustedKeys([cls.key])
        cls.seal_key = ota.generate_seal_key()
        cls.sealed_out = []
        cls.sealer = ota.Sealer(cls.seal_key, cls.sealed_out.append)
        cls.sealer.write(b"firmware" * 100)
        cls.sealer.finish()
        cls.package = ota.Package.from_json(fixture("packages/valid/seed-004-firmware.json"))
        cls.package.set_sealed(cls.sealer)
        cls.envelope = ota.sign(cls.package, [cls.key])
        cls.verified = ota.verify(cls.envelope, cls.trusted)
        cls.profile = ota.Profile.from_json(fixture("profiles/valid/orin-nx-line-camera.json"))
        cls.manifest = ota.Manifest.from_json(fixture("manifests/valid/" + sorted(
            os.listdir(os.path.join(FIXTURES, "manifests", "valid")))[0]))
        cls.opener = ota.Opener(cls.verified, cls.seal_key, lambda b: None)
        package_id = "pkg_" + hashlib.sha256(base64.b64decode(json.loads(cls.envelope)["payload"])).hexdigest()[:16]
        cls.rollout = ota.Rollout.create(
            {"rollout_id": "rol_1", "tenant": "acme", "created_by": "alice",
             "spec": {"package_id": package_id, "target_profile_id": "prof_temp_v2", "canary_percent": 5,
                      "failure_threshold_percent": 10}},
            cls.verified, [], 0)
        cls.io = Storage()
        cls.agent_config = {
            "device": {"device_id": "dev_1", "device_type": "temp-sensor", "hardware_profile": "acme-sensor-v2",
                       "arch": "armv7", "installed": {"temp-sensor-fw": "1.2.0"}},
            "trusted_keys": [cls.key.public_key],
            "probe_policy": {"initial_delay_ms": 0, "interval_ms": 0, "successes_needed": 1},
        }
        cls.agent = ota.Agent(cls.agent_config, cls.io, 0)
        tuf = os.path.join(FIXTURES, "tuf", "rotation-good")
        with open(os.path.join(tuf, "trusted", "root.json"), "rb") as f:
            cls.tuf_root = f.read()
        cls.tuf_metadata = os.path.join(tuf, "repo", "metadata")
        cls.tuf_targets = os.path.join(tuf, "repo", "targets")
        cls.tuf_client = ota.TufClient(cls.tuf_root, cls.tuf_metadata, cls.tuf_targets)
        cls.tuf_repo = cls.tuf_client.refresh(1_776_238_357_000)
        # One object of each kind the package makes, by class.
        cls.instances = {
            ota.Manifest: cls.manifest, ota.Package: cls.package, ota.Profile: cls.profile, ota.SigningKey: cls.key,
            ota.TrustedKeys: cls.trusted, ota.VerifiedPackage: cls.verified, ota.Sealer: cls.sealer,
            ota.Opener: cls.opener, ota.Rollout: cls.rollout, ota.Agent: cls.agent, ota.TufClient: cls.tuf_client,
            ota.TufRepo: cls.tuf_repo, ota.DeviceIo: cls.io,
        }

    @classmethod
    def tearDownClass(cls):
        for obj in cls.instances.values():
            if isinstance(obj, ota.Managed):
                obj.close()
        shutil.rmtree(cls.work)

    def samples(self):
        """A value of the right type for each parameter name of the package."""
        return {
            "data": "{}", "format": "spdx-2.3", "document": "{}", "sealer": self.sealer, "package": self.package,
            "profile": self.profile, "profiles": [self.profile], "keys": [self.key], "pkcs8": self.key.to_pem(),
            "public_key": self.key.public_key, "envelope": self.envelope, "trusted": self.trusted, "threshold": 1,
            "key": self.seal_key, "sink": lambda b: None, "plaintext_sha256": bytes(32), "verified": self.verified,
            "plaintext": b"x", "reproducible": False, "artifact": b"", "resource_name": "r", "dev_stage": "prod",
            "architecture": "armv7", "version": "1.0.0", "s3_endpoint": "https://s3", "bucket": "b",
            "cdn_base": "https://cdn", "registration": "{}", "artifact_path": os.path.join(self.work, "a"),
            "out_path": os.path.join(self.work, "o"), "max_plaintext": 10, "threads": 1, "config": "{}", "fleet": [],
            "now": 0, "rollback": None, "trail": [], "snapshot": "{}", "report": "{}", "attempt": 1, "by": "alice",
            "wave": 0, "passed": True, "device_id": "dev-1", "head": None, "io": self.io, "record": "{}",
            "assignment": "{}", "verified_package": self.verified, "offset": 0, "healthy": True,
            "detail": "ok", "name": "fw.enc", "spec": "{}", "allowlist": [], "swapped_at_ms": 0,
            "root": self.tuf_root, "metadata_url": self.tuf_metadata, "targets_url": self.tuf_targets,
            "state_dir": None, "progress_timeout_ms": None, "path": os.path.join(self.work, "p"),
            "envelope_path": os.path.join(self.work, "e"), "table_path": os.path.join(self.work, "t"),
            "Agent.handle_chunk.data": b"",
        }

    def sample(self, samples, qual, name, hint):
        """The sample for parameter ``name`` of ``qual`` if it fits the hint, else the first
        object of the package's kinds, or JSON text, that does."""
        for value in [samples.get(f"{qual}.{name}", samples[name]), *self.instances.values(), "{}"]:
            if accepts(hint, value):
                return value
        raise AssertionError(f"{qual}: no sample fits parameter {name}: {hint}")

    def bound(self, fn, owner, name):
        """``fn`` ready to call with keyword arguments: a method is bound to the live object of
        its class; a property becomes its getter."""
        if isinstance(fn, property):
            return lambda: fn.fget(self.instances[owner])
        if owner is not None and not name.endswith("()") and not inspect.ismethod(fn):
            return getattr(self.instances[owner], name.rsplit(".", 1)[1])
        return fn

    def test_every_parameter_refuses_none_and_every_wrong_handle_by_name(self):
        samples = self.samples()
        wrong_values = [None, object(), 1.5] + list(self.instances.values())
        checked = 0
        for qual, (fn, owner) in sorted(entry_points().items()):
            target = self.bound(fn, owner, qual)
            if isinstance(fn, property):
                continue  # no parameters; see test_properties_and_methods_refuse_a_closed_object
            signature = inspect.signature(target)
            hints = typing.get_type_hints(
                fn.__init__ if isinstance(fn, type) else fn, localns=vars(ota))
            for param in signature.parameters.values():
                if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                    continue
                self.assertIn(param.name, samples, f"{qual}: no sample value for parameter {param.name}; add one")
                self.assertIn(param.name, hints, f"{qual}: parameter {param.name} has no type hint")
                for wrong in wrong_values:
                    if accepts(hints[param.name], wrong):
                        continue
                    kwargs = {p: self.sample(samples, qual, p, hints[p]) for p in signature.parameters}
                    kwargs[param.name] = wrong
                    with self.subTest(entry_point=qual, parameter=param.name, value=type(wrong).__name__):
                        with self.assertRaises(TypeError) as cm:
                            target(**kwargs)
                        self.assertIn(param.name, str(cm.exception))
                    checked += 1
        self.assertGreater(checked, 500, checked)
        print(f"\n{len(entry_points())} entry points, {checked} wrong values refused by name", end=" ")

    def test_every_json_parameter_takes_a_dict_str_bytes_or_path_alike(self):
        """Each parameter hinted ``ota.JsonInput`` takes the same document as a dict, str,
        bytes or ``pathlib.Path``: the library sees the same text, so any failure is the same
        exception (a document that is wrong for the call fails as itself, never as a type)."""
        import pathlib
        samples = self.samples()
        documents = {"data": fixture("profiles/valid/minimal.json")}
        checked = 0
        for qual, (fn, owner) in sorted(entry_points().items()):
            if isinstance(fn, property):
                continue
            target = self.bound(fn, owner, qual)
            hints = typing.get_type_hints(fn.__init__ if isinstance(fn, type) else fn, localns=vars(ota))
            signature = inspect.signature(target)
            for param in signature.parameters.values():
                if hints.get(param.name) not in (ota.JsonInput, typing.Optional[ota.JsonInput]):
                    continue
                text = documents.get(param.name, b'{"a": 1}')
                path = pathlib.Path(self.work, f"{param.name}.json")
                path.write_bytes(text)
                outcomes = set()
                for form in (json.loads(text), text.decode(), text, path):
                    kwargs = {p: self.sample(samples, qual, p, hints[p]) for p in signature.parameters}
                    kwargs[param.name] = form
                    with self.subTest(entry_point=qual, parameter=param.name, form=type(form).__name__):
                        try:
                            result = target(**kwargs)
                            outcomes.add("ok")
                            if isinstance(result, ota.Managed):
                                result.close()
                        except ota.OtaError as e:
                            outcomes.add(type(e).__name__)
                        checked += 1
                with self.subTest(entry_point=qual, parameter=param.name):
                    self.assertEqual(len(outcomes), 1, outcomes)
        self.assertGreater(checked, 40)

    def test_every_entry_point_has_a_return_type_and_a_docstring(self):
        for qual, (fn, _owner) in entry_points().items():
            with self.subTest(entry_point=qual):
                target = fn.fget if isinstance(fn, property) else fn.__init__ if isinstance(fn, type) else fn
                self.assertIn("return", typing.get_type_hints(target, localns=vars(ota)), qual)
                self.assertTrue((fn.__doc__ or "").strip(), f"{qual} has no docstring")

    def test_properties_and_methods_refuse_a_closed_object(self):
        with ota.SigningKey.generate() as key:
            pass
        for attr in ("public_key", "key_id", "to_pem", "to_der"):
            with self.assertRaises(ValueError):
                value = getattr(key, attr)
                value() if callable(value) else value

    def test_an_object_is_never_made_from_a_raw_handle(self):
        for cls in self.instances:
            if not issubclass(cls, ota.Managed):
                continue
            with self.subTest(cls=cls.__name__):
                obj = cls.__new__(cls)
                with self.assertRaises(TypeError) as cm:
                    ota.Managed.__init__(obj, 0xDEAD0000)
                self.assertIn("raw handle", str(cm.exception))
                obj._handle = None
        made_from_handles = [cls for cls in self.instances if issubclass(cls, ota.Managed)
                             and f"{cls.__name__}()" not in entry_points()]
        self.assertIn(ota.Rollout, made_from_handles)
        for cls in made_from_handles:
            with self.subTest(cls=cls.__name__), self.assertRaises(TypeError) as cm:
                cls(0xDEAD0000)
            self.assertIn("raw handle", str(cm.exception))

    def test_a_method_called_on_another_class_s_object_is_refused_by_the_library(self):
        with self.assertRaises(ota.WrongHandleError) as cm:
            ota.Rollout.status(self.agent)
        self.assertIsInstance(cm.exception, TypeError)
        with self.assertRaises(ota.WrongHandleError):
            ota.Agent.poll(self.rollout)

    def test_integers_out_of_range_name_the_parameter(self):
        for bad in (-1, 2**64):
            with self.assertRaises(ValueError) as cm:
                self.rollout.handle_tick(bad)
            self.assertIn("now", str(cm.exception))
        with self.assertRaises(TypeError) as cm:
            self.rollout.handle_tick(True)
        self.assertIn("now must be int, not bool", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
