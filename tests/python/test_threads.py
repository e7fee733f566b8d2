"""Handles across threads: calls on one object from several threads run one at a time (ctypes
releases the GIL, so without the object's lock they would run inside libota together), and
``close()`` waits for the call under way; from inside that call it is refused."""

import copy
import inspect
import os
import pickle
import threading
import typing
import unittest

import audit_trail
import ota
from test_entry_points import entry_points
from test_rollout import T0, config, firmware, sensors

THREADS = 4


def joiner(rollout, thread, joins):
    """Joins ``joins`` new devices to ``rollout``, reading its status after each."""
    for i in range(joins):
        device = sensors(1)[0]
        device["device_id"] = f"new-{thread}-{i:03}"
        rollout.join(device, T0 + 1)
        rollout.status()


class Threads(unittest.TestCase):
    def test_threads_hammering_one_rollout_keep_its_audit_chain_intact(self):
        joins = 150
        with firmware("2.0.0") as package:
            with ota.Rollout.create(config(package), package, sensors(20), T0) as rollout:
                trail = rollout.audit_records()
                threads = [threading.Thread(target=joiner, args=(rollout, k, joins)) for k in range(THREADS)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                trail += rollout.audit_records()
                self.assertEqual(len(trail), 1 + THREADS * joins)
                self.assertEqual(ota.audit_verify(trail, rollout.audit_head()), len(trail))
                joined = [rec["cause"]["device_id"] for rec in audit_trail.records(trail)[1:]]
                self.assertEqual(len(set(joined)), THREADS * joins)
                status = rollout.status()
                self.assertEqual(sum(status["devices"].values()), 20 + THREADS * joins)

    def test_close_during_another_threads_call_waits_for_it(self):
        armed, in_call, closing = threading.Event(), threading.Event(), threading.Event()
        out = []

        def sink(data):
            if armed.is_set() and not in_call.is_set():
                in_call.set()
                self.assertTrue(closing.wait(60))
                # The closer is blocked in close() until this call returns: a bounded wait
                # whose outcome does not depend on timing (it stays blocked however long).
                closer.join(0.5)
                self.assertTrue(closer.is_alive())
                self.assertFalse(sealer.closed)
            out.append(data)

        def close():
            self.assertTrue(in_call.wait(60))
            closing.set()
            sealer.close()

        sealer = ota.Sealer(ota.generate_seal_key(), sink)
        closer = threading.Thread(target=close)
        closer.start()
        # The sink may be called during write (a full block is sealed as soon as it is in) and
        # always during finish (the last block and the padding): armed for finish, the call the
        # closer must wait for.
        sealer.write(bytes(range(256)) * 4096)
        armed.set()
        info = sealer.finish()
        closer.join(60)
        self.assertFalse(closer.is_alive())
        self.assertTrue(sealer.closed)
        self.assertEqual(sum(map(len, out)), info["size_bytes"])
        with self.assertRaises(ValueError):
            sealer.finish()

    def test_close_from_inside_its_own_call_is_refused(self):
        refused = []
        armed = threading.Event()

        def sink(data):
            if armed.is_set():
                try:
                    sealer.close()
                except RuntimeError as e:
                    refused.append(str(e))
                    raise

        sealer = ota.Sealer(ota.generate_seal_key(), sink)
        armed.set()  # the sealer wrote its header already, in the constructor
        with self.assertRaises(ota.IoError):
            sealer.write(bytes(1 << 20))
            sealer.finish()
        self.assertIn("Sealer.close() inside a call that uses it", refused[0])
        self.assertFalse(sealer.closed)
        sealer.close()
        self.assertTrue(sealer.closed)

    def test_a_callback_calling_its_own_object_fails_the_call_and_crashes_nothing(self):
        # The sink finishes the sealer whose write is under way: the library refuses, so the
        # write fails instead of going on with a sealer freed under it.
        refused = []
        armed = threading.Event()

        def sink(data):
            if armed.is_set():
                try:
                    sealer.finish()
                except ota.OtaError as e:
                    refused.append(e)
                    raise

        sealer = ota.Sealer(ota.generate_seal_key(), sink)
        armed.set()
        with self.assertRaises(ota.IoError):
            sealer.write(os.urandom(2 << 20))
        self.assertIsInstance(refused[0], ota.InvalidArgumentError)
        self.assertIn("in use by the call whose callback this is", refused[0].message)
        sealer.close()
        self.assertTrue(sealer.closed)

    def test_a_keyboard_interrupt_in_a_callback_is_raised_not_taken_for_success(self):
        armed = threading.Event()

        def sink(data):
            if armed.is_set():
                raise KeyboardInterrupt

        sealer = ota.Sealer(ota.generate_seal_key(), sink)
        armed.set()
        with self.assertRaises(KeyboardInterrupt):
            sealer.write(os.urandom(2 << 20))
        # The write failed; the sealer refuses to go on rather than end a truncated artifact.
        with self.assertRaises(ota.OtaError):
            sealer.finish()
        sealer.close()

    def test_objects_cannot_be_copied_or_pickled(self):
        with ota.Sealer(ota.generate_seal_key(), lambda data: None) as sealer:
            for attempt in (copy.copy, copy.deepcopy, pickle.dumps):
                with self.subTest(attempt=attempt.__name__):
                    with self.assertRaisesRegex(TypeError, "Sealer objects cannot be"):
                        attempt(sealer)
            sealer.write(b"still usable")
            sealer.finish()

    def test_every_entry_point_that_can_take_a_handle_holds_its_lock(self):
        def managed(hint):
            if isinstance(hint, type):
                return issubclass(hint, ota.Managed)
            return any(managed(a) for a in typing.get_args(hint))

        held = 0
        for qual, (fn, owner) in sorted(entry_points().items()):
            target = fn.fget if isinstance(fn, property) else fn.__init__ if isinstance(fn, type) else fn
            if owner is not None and qual.rsplit(".", 1)[-1] in ("close", "closed", "handle"):
                continue  # Managed's own: close() takes the lock itself; the others read an attribute
            hints = typing.get_type_hints(target, localns=vars(ota))
            takes_handle = (owner is not None and issubclass(owner, ota.Managed)) or any(
                managed(h) for p, h in hints.items() if p != "return")
            if takes_handle:
                with self.subTest(entry_point=qual):
                    self.assertTrue(getattr(inspect.unwrap(target, stop=lambda f: hasattr(f, "_holds_handles")),
                                            "_holds_handles", False), qual)
                    held += 1
        self.assertGreater(held, 50)


if __name__ == "__main__":
    unittest.main()
