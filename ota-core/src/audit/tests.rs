//! The audit trail's tests: records written, hashed and read back as docs/audit-trail.md says.

use super::*;

fn trail() -> Vec<AuditRecord> {
    let mut c = Chain::default();
    (0..5)
        .map(|i| {
            c.append(
                UnixMs(1000 + i),
                Cause::Timer,
                Input::Tick,
                vec![Effect::Sent { commands: i }],
            )
        })
        .collect()
}

/// A batch's record, written byte for byte as docs/audit-trail.md says, versions of every
/// form included; the hash is the SHA-256 of the line less its `hash` member, computed
/// apart from the library (Python's hashlib). A stored trail must verify as it did.
#[test]
fn a_batch_record_is_written_and_hashed_as_documented() {
    use crate::report::ReportStatus;
    use crate::rollout::{BatchedReport, ReportBatch};
    let v = |t: &str| Some(t.parse::<crate::version::Version>().unwrap());
    let n = |t: &str| t.parse::<Name>().unwrap();
    let report =
        |id: &str, status, attempt, firmware_version, reason: Option<&str>| BatchedReport {
            device_id: n(id),
            status,
            attempt,
            firmware_version,
            reason: reason.map(str::to_owned),
        };
    let rec = Chain::default().append(
        UnixMs(5),
        Cause::Devices,
        Input::Reports(ReportBatch {
            rollout_id: n("rol_1"),
            reports: vec![
                report("dev-1", ReportStatus::Success, 1, v("1.2.3"), None),
                report("dev-2", ReportStatus::Success, 2, v("1.0.0-rc.1+b7"), None),
                report(
                    "dev-3",
                    ReportStatus::Failure,
                    1,
                    None,
                    Some("probe failed"),
                ),
            ],
        }),
        vec![
            Effect::DevicesUpdated {
                version: v("1.2.3"),
                devices: vec![n("dev-1")],
            },
            Effect::DeviceUpdated {
                device_id: n("dev-2"),
                version: v("1.0.0-rc.1+b7"),
            },
        ],
    );
    assert_eq!(
        rec.to_json(),
        concat!(
            "{\"seq\":0,\"at\":5,\"cause\":{\"kind\":\"devices\"},\"input\":{\"reports\":{\"rollout_id\":\"rol",
            "_1\",\"reports\":[[\"dev-1\",\"success\",1,\"1.2.3\"],[\"dev-2\",\"success\",2,\"1.0.0-rc.1+b7",
            "\"],[\"dev-3\",\"failure\",1,null,\"probe failed\"]]}},\"effects\":[{\"kind\":\"devices_upda",
            "ted\",\"version\":\"1.2.3\",\"devices\":[\"dev-1\"]},{\"kind\":\"device_updated\",\"device_id\"",
            ":\"dev-2\",\"version\":\"1.0.0-rc.1+b7\"}],\"prev\":\"00000000000000000000000000000000000",
            "00000000000000000000000000000\",\"hash\":\"0e34a7df8739f67222523a6472ff223a8d5faadbc",
            "570658a7af345a59d8cb3f2\"}",
        )
    );
}

fn n(t: &str) -> Name {
    t.parse().unwrap()
}

/// `dev-0042`'s routine effect for `in_progress`.
fn in_progress() -> Vec<Effect> {
    vec![Effect::DeviceInProgress {
        device_id: n("dev-0042"),
    }]
}

fn report(
    status: crate::report::ReportStatus,
    version: Option<&str>,
) -> crate::report::DeviceReport {
    crate::report::DeviceReport {
        device_id: n("dev-0042"),
        rollout_id: Some(n("rol_4c7e")),
        firmware_version: version.map(|t| t.parse().unwrap()),
        status,
        reason: None,
        attempt: None,
    }
}

/// A device's routine report is written as a report line (docs/audit-trail.md), hashed as
/// the hex of the hash before it followed by the line, and read back, after the records
/// before it, as the same record.
#[test]
fn a_routine_report_is_a_short_line_hashed_after_the_hash_before_it() {
    use crate::report::ReportStatus::{Failure, InProgress, Success};
    let device = || Cause::Device {
        device_id: n("dev-0042"),
    };
    let rol = n("rol_4c7e");
    let mut c = Chain::default();
    let first = c.append_in(&rol, UnixMs(1), Cause::Timer, Input::Tick, Vec::new());
    let success = c.append_in(
        &rol,
        UnixMs(1_700_000_001_001),
        device(),
        Input::Report(report(Success, Some("2.0.0"))),
        vec![Effect::DeviceUpdated {
            device_id: n("dev-0042"),
            version: Some("2.0.0".parse().unwrap()),
        }],
    );
    assert!(success.is_report_line());
    let line = success.to_json();
    assert_eq!(line, r#"[1700000001001,"dev-0042","success","2.0.0"]"#);
    assert_eq!(
        success.hash,
        Sha256Digest::of(format!("{}{line}", first.hash).as_bytes())
    );
    let attempt = c.append_in(
        &rol,
        UnixMs(1_700_000_001_002),
        device(),
        Input::AttemptReport {
            report: report(InProgress, None),
            attempt: 2,
        },
        in_progress(),
    );
    assert_eq!(
        attempt.to_json(),
        r#"[1700000001002,"dev-0042","in_progress",null,2]"#
    );
    // A line whose version has a pre-release (written by serde) hashes the same way.
    let long = format!("2.0.0-{}", "r".repeat(300));
    let long_line = c.append_in(
        &rol,
        UnixMs(2),
        device(),
        Input::Report(report(Success, Some(&long))),
        vec![Effect::DeviceUpdated {
            device_id: n("dev-0042"),
            version: Some(long.parse().unwrap()),
        }],
    );
    assert!(long_line.to_json().len() > 300);
    assert_eq!(
        long_line.hash,
        Sha256Digest::of(format!("{}{}", attempt.hash, long_line.to_json()).as_bytes())
    );
    // Anything else is a whole object: a failure, a reason, another effect, another cause.
    let failure = c.append_in(
        &rol,
        UnixMs(3),
        device(),
        Input::Report(report(Failure, Some("1.2.0"))),
        in_progress(),
    );
    let mut reasoned = report(InProgress, None);
    reasoned.reason = Some("flashing".into());
    let with_reason = c.append_in(
        &rol,
        UnixMs(4),
        device(),
        Input::Report(reasoned),
        in_progress(),
    );
    let more = c.append_in(
        &rol,
        UnixMs(5),
        device(),
        Input::Report(report(InProgress, None)),
        vec![
            Effect::DeviceInProgress {
                device_id: n("dev-0042"),
            },
            Effect::Sent { commands: 1 },
        ],
    );
    let timer = c.append_in(
        &rol,
        UnixMs(6),
        Cause::Timer,
        Input::Report(report(InProgress, None)),
        in_progress(),
    );
    let other = c.append_in(
        &n("rol_other"),
        UnixMs(7),
        device(),
        Input::Report(report(InProgress, None)),
        in_progress(),
    );
    let plain = c.append(
        UnixMs(8),
        device(),
        Input::Report(report(InProgress, None)),
        in_progress(),
    );
    for whole in [&failure, &with_reason, &more, &timer, &other, &plain] {
        assert!(!whole.is_report_line(), "{}", whole.to_json());
        assert!(whole.to_json().starts_with("{\"seq\":"));
    }
    let after: Vec<AuditRecord> = vec![
        success,
        attempt,
        long_line,
        failure,
        with_reason,
        more,
        timer,
        other,
        plain,
    ];
    let text: String = after.iter().map(|r| r.to_json() + "\n").collect();
    let mut reader = Reader::after(
        Chain {
            next_seq: 1,
            tip: first.hash,
        },
        n("rol_4c7e"),
    );
    let back: Vec<AuditRecord> = text
        .lines()
        .map(|l| reader.read(l).unwrap().unwrap())
        .collect();
    assert_eq!(back, after);
    let mut all = vec![first];
    all.extend(back);
    assert_eq!(verify(&all).unwrap(), c);
    // An edited line reads, but the chain no longer links at the next whole record.
    let edited = text.replacen("2.0.0", "2.0.1", 1);
    let mut reader = Reader::after(
        Chain {
            next_seq: 1,
            tip: all[0].hash,
        },
        n("rol_4c7e"),
    );
    let mut edited: Vec<AuditRecord> = edited
        .lines()
        .map(|l| reader.read(l).unwrap().unwrap())
        .collect();
    edited.insert(0, all[0].clone());
    assert_eq!(
        verify(&edited),
        Err(AuditError::Broken {
            seq: 4,
            expected: 4
        })
    );
}

/// serde writes a record as the trail stores it, and reads a whole one alone; a report
/// line, which needs the records before it, is refused with the way to read it. A stored
/// whole record is read only as written (compact, members in order), as a verifier that
/// hashes the stored bytes reads it.
#[test]
fn a_record_serializes_as_stored_and_only_a_whole_one_reads_alone() {
    let rol = n("rol_4c7e");
    let mut c = Chain::default();
    let tick = c.append_in(&rol, UnixMs(1), Cause::Timer, Input::Tick, Vec::new());
    let line = c.append_in(
        &rol,
        UnixMs(2),
        Cause::Device {
            device_id: n("dev-0042"),
        },
        Input::Report(report(crate::report::ReportStatus::InProgress, None)),
        in_progress(),
    );
    for r in [&tick, &line] {
        assert_eq!(serde_json::to_string(r).unwrap(), r.to_json());
    }
    assert_eq!(
        serde_json::from_str::<AuditRecord>(&tick.to_json()).unwrap(),
        tick
    );
    let e = serde_json::from_str::<AuditRecord>(&line.to_json()).unwrap_err();
    assert!(e.to_string().contains("audit::Reader"), "{e}");
    // The whole record as serde's sequence form of a struct: not a record.
    let seq = format!(
        "[0,1,\"timer\",\"tick\",[],\"{}\",\"{}\"]",
        tick.prev, tick.hash
    );
    assert!(serde_json::from_str::<AuditRecord>(&seq).is_err());
    // Spaced, or its members reordered: the same content, not as the trail writes it.
    let text = tick.to_json();
    for bad in [
        text.replacen("\"seq\":0", "\"seq\": 0", 1),
        text.replacen("{\"seq\":0,\"at\":1,", "{\"at\":1,\"seq\":0,", 1),
    ] {
        assert_ne!(bad, text);
        match parse_lines(&bad) {
            Err(AuditError::Malformed { line: 1, message }) => {
                assert!(message.contains("as the trail writes it"), "{message}")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    // As a JSON value (a document carrying the trail), member order does not matter.
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let line_value: serde_json::Value = serde_json::from_str(&line.to_json()).unwrap();
    let mut reader = Reader::after(Chain::default(), rol);
    assert_eq!(reader.read_value(&value).unwrap(), tick);
    assert_eq!(reader.read_value(&line_value).unwrap(), line);
}

/// A routine report written as a whole object, as every trail was before report lines,
/// still reads and verifies: a stored record keeps its form and its hash.
#[test]
fn a_routine_report_stored_as_a_whole_object_still_verifies() {
    let mut c = Chain::default();
    let first = c.append(UnixMs(1), Cause::Timer, Input::Tick, Vec::new());
    let old = c.append(
        UnixMs(2),
        Cause::Device {
            device_id: n("dev-0042"),
        },
        Input::Report(report(crate::report::ReportStatus::InProgress, None)),
        in_progress(),
    );
    assert!(!old.is_report_line());
    let text = format!("{}\n{}\n", first.to_json(), old.to_json());
    assert!(old.to_json().starts_with("{\"seq\":1,"));
    let back = parse_lines(&text).unwrap();
    assert_eq!(back, [first, old]);
    verify(&back).unwrap();
}

/// A report line that cannot be read is refused, naming its line: before the trail named
/// its rollout, not written as the trail writes it, or not a routine report.
#[test]
fn a_malformed_report_line_is_refused_naming_its_line() {
    let e = parse_lines("\n[5,\"dev-1\",\"success\",\"2.0.0\"]").unwrap_err();
    assert!(
        matches!(&e, AuditError::Malformed { line: 2, message } if message.contains("creation record")),
        "{e}"
    );
    for (bad, says) in [
        ("[5, \"dev-1\",\"success\"]", "as the trail writes it"),
        ("[5,\"dev-1\",\"success\",null]", "as the trail writes it"),
        ("[5,\"dev-1\",\"failure\"]", "in_progress or success"),
        ("[5,\"dev-1\",\"success\",\"2.0.0\",1,2]", "report line"),
        ("[5,\"dev-1\"]", "report line"),
        ("[-5,\"dev-1\",\"success\"]", "report line"),
        ("[5,\"dev 1\",\"success\"]", "report line"),
    ] {
        let mut reader = Reader::after(Chain::default(), n("rol_1"));
        match reader.read(bad) {
            Err(AuditError::Malformed { line: 1, message }) => {
                assert!(message.contains(says), "{bad}: {message}")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn edits_drops_and_reorders_are_detected() {
    let t = trail();
    assert_eq!(verify(&t).unwrap().next_seq, 5);
    let mut edited = t.clone();
    edited[2].effects[0] = Effect::Sent { commands: 99 };
    assert_eq!(verify(&edited), Err(AuditError::Altered { seq: 2 }));
    let mut rehashed = edited.clone();
    rehashed[2].hash = rehashed[2].compute_hash();
    assert_eq!(
        verify(&rehashed),
        Err(AuditError::Broken {
            seq: 3,
            expected: 3
        })
    );
    let mut dropped = t.clone();
    dropped.remove(1);
    assert_eq!(
        verify(&dropped),
        Err(AuditError::Broken {
            seq: 2,
            expected: 1
        })
    );
    let mut swapped = t.clone();
    swapped.swap(1, 2);
    assert_eq!(
        verify(&swapped),
        Err(AuditError::Broken {
            seq: 2,
            expected: 1
        })
    );
    assert_eq!(verify(&t[1..]), Err(AuditError::Truncated));
    let text: String = t.iter().map(|r| r.to_json() + "\n").collect();
    assert_eq!(parse_lines(&text).unwrap(), t);
    assert!(matches!(
        parse_lines("{\n"),
        Err(AuditError::Malformed { line: 1, .. })
    ));
}

#[test]
fn a_records_hash_is_the_sha256_of_its_json_without_the_hash_at_any_length() {
    // Records from a few bytes to several times the hash's buffer, one byte apart around
    // its edges: the hash is that of the text a verifier rebuilds, whatever the length.
    let mut c = Chain::default();
    let mut kept = Vec::new();
    for len in (0..40).chain(440..600).chain([1500, 4000]) {
        let r = c.append(
            UnixMs(len),
            Cause::Rule,
            Input::Tick,
            vec![Effect::ReportRefused {
                device_id: "d".parse().unwrap(),
                reason: "x".repeat(len as usize),
            }],
        );
        let text = json::to_string(&Hashed {
            seq: r.seq,
            at: r.at,
            cause: &r.cause,
            input: &r.input,
            effects: &r.effects,
            prev: &r.prev,
            hash: None,
        });
        assert_eq!(r.hash, Sha256Digest::of(text.as_bytes()), "{len}");
        let mut line: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(line["hash"], r.hash.to_hex(), "{len}");
        assert_eq!(line["prev"], r.prev.to_hex(), "{len}");
        line.as_object_mut().unwrap().remove("hash");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            line,
            "{len}"
        );
        kept.push(r);
    }
    let text: String = kept.iter().map(|r| r.to_json() + "\n").collect();
    assert_eq!(verify(&parse_lines(&text).unwrap()).unwrap(), c);
}

#[test]
fn an_empty_trail_does_not_verify() {
    assert_eq!(verify(&[]), Err(AuditError::Empty));
    assert_eq!(
        parse_lines("\n\n").map(|t| verify(&t)),
        Ok(Err(AuditError::Empty))
    );
    let head = AuditHead {
        seq: 0,
        hash: Sha256Digest::from_bytes([0; 32]),
    };
    assert_eq!(verify_with_head(&[], &head), Err(AuditError::Empty));
    assert_eq!(AuditError::Empty.status(), Status::AuditBroken);
}

#[test]
fn dropping_the_last_record_is_caught_only_against_the_head() {
    let t = trail();
    let head = verify(&t).unwrap().head().unwrap();
    assert_eq!(head.seq, 4);
    assert_eq!(verify_with_head(&t, &head).unwrap().next_seq, 5);
    // The shortened trail still links: only the head shows the loss.
    assert!(verify(&t[..4]).is_ok());
    assert_eq!(
        verify_with_head(&t[..4], &head),
        Err(AuditError::HeadMismatch {
            expected_seq: 4,
            records: 4
        })
    );
    assert_eq!(verify_with_head(&[], &head), Err(AuditError::Empty));
    // The same length, another last record.
    let mut other = t.clone();
    other[4] = Chain {
        next_seq: 4,
        tip: t[3].hash,
    }
    .append(UnixMs(7), Cause::Timer, Input::Tick, Vec::new());
    assert!(verify(&other).is_ok());
    assert!(matches!(
        verify_with_head(&other, &head),
        Err(AuditError::HeadMismatch { .. })
    ));
    // The head's text form round-trips; malformed ones are refused.
    let text = head.to_string();
    assert_eq!(text.parse::<AuditHead>().unwrap(), head);
    for bad in ["", "4", "x:00", "4:zz", &format!("-1:{}", head.hash)] {
        assert!(bad.parse::<AuditHead>().is_err(), "{bad}");
    }
}

proptest::proptest! {
    /// A report line's text, written without serde for its hash and its stored line, is byte
    /// for byte what serde_json writes from the line's `Serialize`, and its hash is of the
    /// hash before it and that text, for every form a line takes: any time, name, status and
    /// attempt, a plain version, one with a pre-release, a build or both (written through
    /// serde), none at all. The hex of the hash before is checked apart, by the known answers
    /// in digest.rs.
    #[test]
    fn a_report_line_is_written_as_serde_json_writes_it(
        at in proptest::prelude::any::<u64>(),
        device_id in "[A-Za-z0-9][A-Za-z0-9._-]{0,127}",
        status in 0..4usize,
        version in proptest::option::of((
            proptest::prelude::any::<u64>(),
            proptest::prelude::any::<u64>(),
            proptest::prelude::any::<u64>(),
            proptest::option::of("[a-z][a-z0-9]{0,7}"),
            proptest::option::of("[a-z0-9]{1,8}"),
        )),
        attempt in proptest::option::of(proptest::prelude::any::<u32>()),
        prev in proptest::prelude::any::<[u8; 32]>(),
    ) {
        use crate::report::ReportStatus;
        use report_line::ReportLine;
        use std::borrow::Cow;
        let status = [
            ReportStatus::InProgress,
            ReportStatus::Success,
            ReportStatus::Failure,
            ReportStatus::Rejected,
        ][status];
        let version = version.map(|(a, b, c, pre, build)| {
            let mut text = format!("{a}.{b}.{c}");
            if let Some(pre) = pre {
                text += &format!("-{pre}");
            }
            if let Some(build) = build {
                text += &format!("+{build}");
            }
            text.parse::<crate::version::Version>().unwrap()
        });
        let line = ReportLine {
            at: UnixMs(at),
            device_id: Cow::Owned(device_id.parse::<Name>().unwrap()),
            status,
            firmware_version: version.map(Cow::Owned),
            attempt,
        };
        let by_serde = serde_json::to_string(&line).unwrap();
        proptest::prop_assert_eq!(line.text(), by_serde.clone());
        // Written by hand (not by serde, the fallback) whenever its version is plain.
        let plain = line
            .firmware_version
            .as_ref()
            .is_none_or(|v| v.pre.is_empty() && v.build.is_empty());
        proptest::prop_assert_eq!(line.write(&mut [0u8; 512]).is_some(), plain);
        let prev = Sha256Digest::from_bytes(prev);
        let expected = Sha256Digest::of(format!("{}{by_serde}", prev.to_hex()).as_bytes());
        proptest::prop_assert_eq!(line.hash(&prev), expected);
    }
}
