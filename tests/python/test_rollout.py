"""The control plane from Python: seed 004's rollout (240 eligible sensors, a canary of 12)
and seed 000's (a 4-device canary, one probe failure, paused with no device down), driven to
the end; snapshot and restore; the audit trail verified, replayed and tampered with; bad
input."""

import json
import unittest

import audit_trail
import ota
from helpers import fixture

T0 = 1_700_000_000_000
SIGNER = ota.SigningKey.generate()
TRUSTED = ota.TrustedKeys([SIGNER])


def firmware(version, rollback=False):
    """Seed 004's firmware at ``version``, sealed, signed and verified; with ``rollback``, as
    a rollback of 2.0.0."""
    d = json.loads(fixture("packages/valid/seed-004-firmware.json"))
    d["version"] = version
    if rollback:
        d["rollback"] = {"from": "2.0.0", "expires": "2100-01-01T00:00:00Z"}
    out = []
    with ota.Sealer(ota.generate_seal_key(), out.append) as s:
        s.write(version.encode() * 100)
        s.finish()
        with ota.Package.from_json(json.dumps(d)) as p:
            p.set_sealed(s)
            envelope = ota.sign(p, [SIGNER])
    return ota.verify(envelope, TRUSTED)


def sensors(n, incompatible_every=0):
    """``n`` temperature sensors of profile prof_temp_v2 on 1.2.0; every
    ``incompatible_every``-th one is a doorbell."""
    fleet = []
    for i in range(n):
        doorbell = incompatible_every and i % incompatible_every == incompatible_every - 1
        fleet.append({
            "device_id": f"dev-{i:04}", "device_type": "doorbell" if doorbell else "temp-sensor",
            "hardware_profile": ["acme-sensor-v2", "acme-sensor-v3", "acme-sensor-lite"][i % 3],
            "arch": "armv7", "installed": {"temp-sensor-fw": "1.2.0"},
            "labels": {"profile": "prof_temp_v2", "site": f"plant-{i % 7}"},
        })
    return fleet


def config(package, rollback=None, **spec):
    request = {"package_id": package.to_dict()["id"], "target_profile_id": "prof_temp_v2",
               "canary_percent": 5, "failure_threshold_percent": 10}
    if rollback is not None:
        request["rollback_package_id"] = rollback.to_dict()["id"]
    request.update(spec)
    return {"rollout_id": "rol_4c7e", "tenant": "acme", "created_by": "alice", "spec": request}


def report(device, status, version):
    r = {"device_id": device, "rollout_id": "rol_4c7e", "firmware_version": version, "status": status}
    if status == "failure":
        r["reason"] = "health probe failed"
    return r


def sends(rollout):
    commands = rollout.commands()
    assert all(c["kind"] == "send" for c in commands), commands
    return [c["device_id"] for c in commands]


class Seed004(unittest.TestCase):
    def setUp(self):
        self.pkg, self.rb = firmware("2.0.0"), firmware("1.9.0", rollback=True)
        self.fleet = sensors(260, 13)
        self.config = config(self.pkg, self.rb)
        self.trail, self.events = [], []

    def tearDown(self):
        self.pkg.close()
        self.rb.close()

    def drain(self, r):
        self.trail += r.audit_records()
        self.events += r.events()

    def test_canary_approval_completion_snapshot_replay_and_tampering(self):
        r = ota.Rollout.create(self.config, self.pkg, self.fleet, T0, rollback=self.rb)
        s = r.status()
        self.assertEqual((s["status"], s["canary_percent"], s["scheduled_count"], s["eligible"]),
                         ("active", 5.0, 12, 240))
        self.assertEqual(s["devices"]["incompatible"], 20)
        self.assertEqual(s["incompatible_reasons"], {"device_type_mismatch": 20})
        canary = sends(r)
        self.assertEqual(len(canary), 12)
        self.drain(r)
        self.assertEqual(self.events[0]["subject"], "profile.ota.rollout.started.acme.rol_4c7e")

        now = T0 + 60_000
        for d in canary:
            r.handle_report(report(d, "in_progress", "1.2.0"), now)
            r.handle_report(report(d, "success", "2.0.0"), now + 1000)
        self.assertEqual(sends(r), [], "the rest waits for an approval")
        self.drain(r)
        self.assertIn("gate_waiting", [e["kind"] for e in self.events])

        # Persisted and restored, it carries on where it was.
        snap = r.snapshot()
        r.close()
        with self.assertRaises(ota.PlanInvalidError):
            ota.Rollout.restore(snap, self.rb)  # another package than the snapshot's
        r = ota.Rollout.restore(snap, self.pkg, self.rb)
        self.assertEqual(r.snapshot(), snap)

        now += 3_600_000
        r.approve(1, "alice", now)
        rest = sends(r)
        self.assertEqual(len(rest), 228)
        self.assertFalse(set(rest) & set(canary))
        for d in rest:
            r.handle_report(report(d, "success", "2.0.0"), now)
        self.drain(r)
        s = r.status()
        self.assertEqual((s["status"], s["devices"]["succeeded"]), ("completed", 240))
        kinds = [e["kind"] for e in self.events]
        self.assertEqual(kinds[-1], "completed")
        self.assertIn("approved", kinds)
        with self.assertRaises(ota.RolloutStateError):
            r.pause("alice", now)
        self.assertIsNone(r.timeout())

        # The trail verifies, ends at the head the rollout carries, and replays into the same
        # rollout. Without its last record it still links, but misses the head.
        self.assertEqual(ota.audit_verify(self.trail), len(self.trail))
        head = r.audit_head()
        self.assertEqual(ota.audit_verify(self.trail, head=head), len(self.trail))
        self.assertEqual(ota.audit_verify(self.trail[:-1]), len(self.trail) - 1)
        with self.assertRaises(ota.AuditBrokenError):
            ota.audit_verify(self.trail[:-1], head=head)
        with self.assertRaises(ota.InvalidArgumentError):
            ota.audit_verify(self.trail, head="not a head")
        self.assertIn('"approve"', "".join(self.trail))
        with ota.Rollout.replay(self.config, self.pkg, self.fleet, T0, self.trail, rollback=self.rb) as again:
            self.assertEqual(again.snapshot(), r.snapshot())
        with self.assertRaises(ota.ReplayMismatchError):
            ota.Rollout.replay(self.config, self.pkg, self.fleet[:-1], T0, self.trail, rollback=self.rb)

        # An edited record, a dropped one, two swapped: each is caught.
        edited = list(self.trail)
        i = next(i for i, line in enumerate(edited) if '"status":"success"' in line)
        edited[i] = edited[i].replace('"status":"success"', '"status":"failure"')
        for bad in (edited, self.trail[:3] + self.trail[4:], self.trail[:3] + [self.trail[4], self.trail[3]] + self.trail[5:]):
            with self.assertRaises(ota.AuditBrokenError):
                ota.audit_verify(bad)
            with self.assertRaises(ota.OtaError):
                ota.Rollout.replay(self.config, self.pkg, self.fleet, T0, bad, rollback=self.rb)
        r.close()

    def test_a_fleet_judged_on_threads_makes_the_rollout_a_one_thread_replay_makes(self):
        # 20,000 devices: above the size at which the C ABI judges a fleet's compatibility on
        # the machine's cores (ota_host::rollout::MIN_PARALLEL, 16,384). A replay creates it
        # again on one thread and checks the creation record's device table against its own.
        fleet = sensors(20_000, 13)
        with ota.Rollout.create(config(self.pkg), self.pkg, fleet, T0) as r:
            s = r.status()
            self.assertEqual((s["eligible"], s["devices"]["incompatible"]), (20_000 - 1538, 1538))
            self.assertEqual(s["scheduled_count"], 924)  # 5 % of 18,462, rounded up
            trail = r.audit_records()
            with ota.Rollout.replay(config(self.pkg), self.pkg, fleet, T0, trail) as again:
                self.assertEqual(again.snapshot(), r.snapshot())
            fleet[7]["device_type"] = "doorbell"  # another fleet: another device table
            with self.assertRaises(ota.ReplayMismatchError):
                ota.Rollout.replay(config(self.pkg), self.pkg, fleet, T0, trail)

    def test_rollback_goes_to_the_updated_devices_only(self):
        r = ota.Rollout.create(self.config, self.pkg, self.fleet, T0, rollback=self.rb)
        canary = sends(r)
        for d in canary[:6]:
            r.handle_report(report(d, "success", "2.0.0"), T0 + 1)
        r.rollback("alice", T0 + 2)
        commands = r.commands()
        self.assertEqual(r.status()["status"], "rolling_back")
        back = {c["device_id"] for c in commands if c["kind"] == "send" and c["rollback"]}
        self.assertEqual(back, set(canary[:6]))
        self.assertTrue(all(c["package_id"] == self.rb.to_dict()["id"] for c in commands if c["kind"] == "send"))
        for d in back:
            r.handle_report(report(d, "success", "1.9.0"), T0 + 3)
        for d in canary[6:]:
            r.handle_report(report(d, "failure", "1.2.0"), T0 + 3)
        s = r.status()
        self.assertEqual((s["status"], s["devices"]["rolled_back"]), ("completed", 6))
        kinds = [e["kind"] for e in r.events()]
        self.assertIn("rolling_back", kinds)
        self.assertIn("rolled_back", kinds)
        r.close()

    def test_membership_and_bad_input(self):
        with self.assertRaises(ota.InvalidError) as e:
            ota.Rollout.create(config(self.pkg, canary_percent=150), self.pkg, self.fleet, T0)
        self.assertIn("canary_percent", str(e.exception))
        with self.assertRaises(ota.PlanInvalidError):
            ota.Rollout.create(self.config, self.pkg, self.fleet, T0)  # the rollback package is missing
        with self.assertRaises(ota.PlanInvalidError):
            ota.Rollout.create(config(self.rb), self.pkg, self.fleet, T0)  # names another package
        with self.assertRaises(ota.UnknownFieldError):
            ota.Rollout.create(dict(self.config, colour="red"), self.pkg, self.fleet, T0)

        with ota.Rollout.create(self.config, self.pkg, self.fleet, T0, rollback=self.rb) as r:
            r.commands()
            with self.assertRaises(ota.RolloutNotFoundError):
                r.handle_report(report("dev-9999", "success", "2.0.0"), T0)
            with self.assertRaises(ota.InvalidValueError):
                r.handle_report({"device_id": "dev-0001", "status": "exploded"}, T0)
            with self.assertRaises(ota.RolloutNotFoundError):
                r.approve(9, "alice", T0)
            with self.assertRaises(ota.RolloutStateError):
                r.resume("alice", T0)
            r.leave("dev-0000", T0 + 1)
            self.assertEqual(r.status()["devices"]["removed"], 1)
            newcomer = sensors(300)[299]
            r.join(newcomer, T0 + 2)
            self.assertEqual(r.status()["eligible"], 241)
        with self.assertRaises(ValueError):
            r.status()


class Outputs(unittest.TestCase):
    def test_each_steps_audit_record_comes_before_what_it_caused(self):
        with firmware("2.0.0") as pkg, ota.Rollout.create(
                config(pkg, canary_percent=10), pkg, sensors(40), T0) as r:
            kinds = [k for k, _ in r.outputs()]
            self.assertEqual(kinds[0], "audit")
            self.assertEqual(kinds.count("audit"), 1)
            self.assertEqual(kinds.count("command"), 4)
            r.pause("alice", T0 + 1)
            out = r.outputs()
            self.assertEqual([k for k, _ in out], ["audit", "event"])
            self.assertEqual(out[1][1]["subject"], "profile.ota.rollout.paused.acme.rol_4c7e")
            self.assertIsNone(r.poll())


class Attempts(unittest.TestCase):
    def test_a_report_about_an_attempt_a_retry_replaced_counts_for_nothing(self):
        retries = {"retries": {"failed": {"max": 1, "backoff_ms": 1000}}}
        with firmware("2.0.0") as pkg, ota.Rollout.create(
                config(pkg, canary_percent=10, **retries), pkg, sensors(40), T0) as r:
            d = sends(r)[0]
            self.assertEqual(r.attempt(d), 1)
            r.handle_report(report(d, "failure", "1.2.0"), T0 + 1, attempt=1)
            r.handle_tick(T0 + 1001)
            self.assertEqual(sends(r), [d])
            self.assertEqual(r.attempt(d), 2)
            r.audit_records()
            r.events()
            # The first attempt's failure, replayed: by the call's attempt, by the report's own,
            # or naming none (about the first).
            first = report(d, "failure", "1.2.0")
            for replay in (lambda: r.handle_report(first, T0 + 1002, attempt=1),
                           lambda: r.handle_report(dict(first, attempt=1), T0 + 1002),
                           lambda: r.handle_report(first, T0 + 1002)):
                with self.assertRaises(ota.RolloutStateError) as e:
                    replay()
                self.assertIn("attempt", str(e.exception))
            refused = [e for rec in audit_trail.records(r.audit_records()) for e in rec["effects"]]
            self.assertEqual([e["kind"] for e in refused], ["report_refused"] * 3)
            # By the refusal's stable name, not the message's words.
            self.assertEqual([e["reason"] for e in refused], ["stale_attempt"] * 3)
            # A success naming no version is refused too.
            with self.assertRaises(ota.MissingFieldError):
                r.handle_report({"device_id": d, "rollout_id": "rol_4c7e", "status": "success"}, T0 + 1003,
                                attempt=2)
            r.handle_report(report(d, "success", "2.0.0"), T0 + 1004, attempt=2)
            self.assertEqual(r.status()["devices"]["succeeded"], 1)

    def test_attempt_arguments_are_checked(self):
        with firmware("2.0.0") as pkg, ota.Rollout.create(
                config(pkg, canary_percent=10), pkg, sensors(40), T0) as r:
            d = sends(r)[0]
            for bad, error in ((0, ValueError), (2**32, ValueError), (-1, ValueError), ("1", TypeError),
                               (True, TypeError), (1.0, TypeError)):
                with self.assertRaises(error, msg=repr(bad)) as e:
                    r.handle_report(report(d, "in_progress", "1.2.0"), T0 + 1, attempt=bad)
                self.assertIn("attempt", str(e.exception))
            with self.assertRaises(ota.InvalidArgumentError) as e:
                r.handle_report(dict(report(d, "in_progress", "1.2.0"), attempt=2), T0 + 1, attempt=1)
            self.assertIn("attempt", str(e.exception))
            for bad in (None, 7, b"\xff"):
                with self.assertRaises((TypeError, ota.OtaError), msg=repr(bad)):
                    r.attempt(bad)  # type: ignore[arg-type]
            with self.assertRaises(ota.RolloutNotFoundError):
                r.attempt("dev-9999")
            r.handle_report(report(d, "in_progress", "1.2.0"), T0 + 1, attempt=1)
            self.assertEqual(r.status()["devices"]["in_progress"], 1)


class Seed000(unittest.TestCase):
    def test_one_probe_failure_in_a_four_device_canary_pauses_with_no_device_down(self):
        with firmware("2.1.0") as pkg, ota.Rollout.create(
                config(pkg, canary_percent=10), pkg, sensors(40), T0) as r:
            canary = sends(r)
            self.assertEqual(len(canary), 4)
            now = T0 + 1000
            for i, d in enumerate(canary):
                r.handle_report(report(d, "in_progress", "1.2.0"), now)
                # The third device's probe fails; it restored 1.2.0 on its own and says so.
                r.handle_report(report(d, "failure" if i == 2 else "success", "1.2.0" if i == 2 else "2.1.0"), now)
            s = r.status()
            self.assertEqual((s["status"], s["fleet_impact"]), ("paused", 0))
            self.assertIn("in the canary", s["halt_reason"])
            subjects = [e["subject"] for e in r.events()]
            self.assertIn("profile.ota.rollout.halted.acme.rol_4c7e", subjects)
            self.assertIn("profile.ota.rollout.paused.acme.rol_4c7e", subjects)
            trail = r.audit_records()
            causes = [rec["cause"]["kind"] for rec in audit_trail.records(trail)]
            self.assertEqual(causes[0], "operator")  # published by alice
            self.assertIn("device", causes)
            # Effects are typed: a kind and its fields, never a sentence.
            effects = [e for rec in audit_trail.records(trail) for e in rec["effects"]]
            self.assertIn("paused", [e["kind"] for e in effects])
            tripped = next(e for e in effects if e["kind"] == "halt_tripped")
            self.assertEqual(tripped["reason"]["failures"], 1)
            self.assertEqual(tripped["reason"]["denominator"], "scheduled")
            self.assertEqual(ota.audit_verify(trail), len(trail))

            # Paused: nothing goes out however long it waits; pausing again changes nothing.
            r.handle_tick(now + 86_400_000)
            self.assertEqual(r.commands(), [])
            r.pause("alice", now)
            # Resume acknowledges the failure: the next wave waits for its approval as before.
            r.resume("alice", now + 1)
            self.assertEqual(r.status()["status"], "active")
            self.assertEqual(r.status()["cumulative_acknowledged"]["failures"], 1)
            r.approve(1, "alice", now + 2)
            self.assertEqual(len(sends(r)), 36)


if __name__ == "__main__":
    unittest.main()
