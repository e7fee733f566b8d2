"""The audit trail checked by a verifier that shares no code with ota (audit_trail.py: only
hashlib and json, from docs/audit-trail.md): it reproduces every record's hash from the
stored line, agrees with ``ota.audit_verify`` and the rollout's head, and catches what the
library catches."""

import hashlib
import json
import unittest

import audit_trail
import ota
from test_rollout import T0, config, firmware, report, sends, sensors


class IndependentVerifier(unittest.TestCase):
    def setUp(self):
        self.pkg, self.rb = firmware("2.0.0"), firmware("1.9.0", rollback=True)
        r = ota.Rollout.create(config(self.pkg, self.rb), self.pkg, sensors(60, 7), T0, rollback=self.rb)
        trail = r.audit_records()
        now = T0 + 1000
        for n, d in enumerate(sends(r)):
            r.handle_report(report(d, "in_progress", "1.2.0"), now)
            if n == 0:
                # Text that JSON escapes, and text it does not.
                failed = report(d, "failure", "1.2.0")
                failed["reason"] = 'flash "bank" ü\tπ\n\u0001/ok'
                r.handle_report(failed, now + 1)
            else:
                r.handle_report(report(d, "success", "2.0.0"), now + 1)
            trail += r.audit_records()
        r.pause("alice", now + 2)
        trail += r.audit_records()
        self.trail, self.head = trail, r.audit_head()
        r.close()

    def tearDown(self):
        self.pkg.close()
        self.rb.close()

    def test_the_independent_verifier_reproduces_every_hash_and_the_head(self):
        self.assertGreater(len(self.trail), 5)
        self.assertIn("\\u0001", "".join(self.trail))
        self.assertEqual(audit_trail.verify(self.trail, head=self.head), self.head)
        self.assertEqual(ota.audit_verify(self.trail, head=self.head), len(self.trail))
        whole = [line for line in self.trail if line.startswith("{")]
        for line in whole:
            self.assertEqual(audit_trail.record_hash(line.encode()), json.loads(line)["hash"])
        # The routine reports are report lines, each at most 64 bytes here.
        lines = [line for line in self.trail if line.startswith("[")]
        self.assertGreaterEqual(len(lines), 5)
        self.assertEqual(len(whole) + len(lines), len(self.trail))
        self.assertLessEqual(max(len(line.encode()) + 1 for line in lines), 64)
        expanded = audit_trail.records(self.trail)
        self.assertEqual([r["seq"] for r in expanded], list(range(len(self.trail))))
        self.assertEqual({r["effects"][0]["kind"] for r in expanded if r["cause"]["kind"] == "device"
                          and len(r["effects"]) == 1} >= {"device_in_progress", "device_updated"}, True)

    def extended(self, line):
        """The trail with ``line`` appended as a report line, and the head it then has."""
        tip = self.head.split(":")[1]
        return self.trail + [line], f"{len(self.trail)}:{hashlib.sha256((tip + line).encode()).hexdigest()}"

    def test_both_verifiers_take_and_refuse_the_same_report_lines(self):
        for good in ('[5,"dev-1","success","2.0.0",1]', '[5,"dev-1","in_progress"]',
                     '[5,"dev-1","in_progress",null,2]', '[5,"dev.1_a-b","success","1.0.0-rc.1+b7"]'):
            trail, head = self.extended(good)
            self.assertEqual(audit_trail.verify(trail, head=head), head)
            self.assertEqual(ota.audit_verify(trail, head=head), len(trail))
        for bad in ('[5,"dev-1","success",null]', '[5,"dev 1","success"]', '[5,"","success"]',
                    '[-5,"dev-1","success"]', '[true,"dev-1","success"]',
                    '[18446744073709551616,"dev-1","success"]', '[5,"dev-1","success","not-a-version"]',
                    '[5,"dev-1","success","01.0.0"]', '[5,"dev-1","success",{"a":1},"x"]',
                    '[5,"dev-1","success","1.2.1\u0663"]', '[5,"dev-1","success","99999999999999999999.0.0"]',
                    '[5,"dev-1","success","2.0.0",null]', '[5,"dev-1","success","2.0.0",-1]',
                    '[5,"dev-1","success","2.0.0",4294967296]', '[5, "dev-1","success"]',
                    '[5,"dev-1","failure"]', '[5,"dev-1"]', '[5,"dev-1","success","2.0.0",1,2]'):
            trail, head = self.extended(bad)
            with self.assertRaises(audit_trail.TrailError, msg=bad):
                audit_trail.verify(trail, head=head)
            with self.assertRaises(ota.AuditBrokenError, msg=bad):
                ota.audit_verify(trail, head=head)
        # A whole record is read only as written, by both: its hash recomputed, so only the
        # way it is written is wrong.
        last = json.loads(self.trail[-1])
        del last["hash"]
        for bad in (dict(last, extra=1), {"at": last["at"], **last}, dict(last, seq=float(last["seq"]))):
            body = json.dumps(bad, separators=(",", ":"), ensure_ascii=False)
            line = body[:-1] + ',"hash":"' + hashlib.sha256(body.encode()).hexdigest() + '"}'
            trail = self.trail[:-1] + [line]
            with self.assertRaises(audit_trail.TrailError, msg=line[:80]):
                audit_trail.verify(trail)
            with self.assertRaises(ota.AuditBrokenError, msg=line[:80]):
                ota.audit_verify(trail)
        spaced = [self.trail[0].replace('"seq":0', '"seq": 0', 1)] + self.trail[1:]
        with self.assertRaises(audit_trail.TrailError):
            audit_trail.verify(spaced)
        with self.assertRaises(ota.AuditBrokenError):
            ota.audit_verify(spaced)
        # Lines ending "\r\n" read as lines ending "\n", by both.
        crlf = "".join(line + "\r\n" for line in self.trail)
        self.assertEqual(audit_trail.verify(crlf.encode().split(b"\n"), head=self.head), self.head)
        self.assertEqual(ota.audit_verify(crlf, head=self.head), len(self.trail))

    def test_a_report_line_before_the_creation_record_is_refused_by_both(self):
        line = next(line for line in self.trail if line.startswith("["))
        for trail in ([line] + self.trail, [line]):
            with self.assertRaises(audit_trail.TrailError):
                audit_trail.verify(trail)
            with self.assertRaises(ota.AuditBrokenError):
                ota.audit_verify(trail)

    def test_records_reads_every_kind_of_record_a_tick_included(self):
        pkg = firmware("2.0.0")
        r = ota.Rollout.create(config(pkg), pkg, sensors(60, 7), T0)
        try:
            trail = r.audit_records()
            d = sends(r)[0]
            r.handle_report(report(d, "in_progress", "1.2.0"), T0 + 1)
            r.handle_tick(r.timeout())
            trail += r.audit_records()
        finally:
            r.close()
            pkg.close()
        kinds = [rec["input"] if isinstance(rec["input"], str) else next(iter(rec["input"]))
                 for rec in audit_trail.records(trail)]
        self.assertIn("tick", kinds)
        self.assertEqual(kinds[:2], ["create", "report"])

    def test_an_edited_or_rewritten_report_line_is_caught(self):
        at = next(i for i, line in enumerate(self.trail) if line.startswith("[") and '"success"' in line)
        edits = (self.trail[at].replace('"success"', '"in_progress"'),  # another status
                 self.trail[at].replace('"dev-', '"dex-'),  # another device
                 self.trail[at].replace(",", ", "))  # not as the trail writes it
        for n, edited in enumerate(edits):
            bad = self.trail[:at] + [edited] + self.trail[at + 1:]
            with self.assertRaises(audit_trail.TrailError, msg=edited):
                audit_trail.verify(bad, head=self.head)
            with self.assertRaises(ota.AuditBrokenError, msg=edited):
                ota.audit_verify(bad, head=self.head)
            if n < 2:
                # Read alone it is well formed: only the chain (the next whole record or the
                # head) shows the edit.
                audit_trail.records(bad)

    def test_the_independent_verifier_catches_edits_drops_reorders_and_a_short_trail(self):
        edited = list(self.trail)
        edited[2] = edited[2].replace('"at":', '"at":1', 1)
        swapped = self.trail[:2] + [self.trail[3], self.trail[2]] + self.trail[4:]
        for bad, what in ((edited, "altered"), (self.trail[:2] + self.trail[3:], "does not follow"),
                          (swapped, "does not follow")):
            with self.assertRaisesRegex(audit_trail.TrailError, what):
                audit_trail.verify(bad)
            with self.assertRaises(ota.AuditBrokenError):
                ota.audit_verify(bad)
        # Cut short, it still links: only the head shows the loss.
        audit_trail.verify(self.trail[:-1])
        with self.assertRaisesRegex(audit_trail.TrailError, "anchored head"):
            audit_trail.verify(self.trail[:-1], head=self.head)
        with self.assertRaisesRegex(audit_trail.TrailError, "empty"):
            audit_trail.verify([])


if __name__ == "__main__":
    unittest.main()
