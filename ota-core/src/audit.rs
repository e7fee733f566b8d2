//! The append-only, hash-chained audit trail.
//!
//! Every record carries its sequence number, time, cause, the input that caused it, what it
//! changed, and the hash of the record before it; its own hash covers all of that. Editing,
//! reordering or dropping any record breaks the chain, and [`verify`] says where. Dropping
//! the last records leaves a chain that still links: [`verify_with_head`] catches that against
//! the head the rollout carries in its status and snapshot ([`AuditHead`], written
//! `SEQ:HASH`). The rollout engine writes one record per state-changing input, its input and
//! its effects typed ([`Input`], [`Effect`]), so replaying a trail's inputs rebuilds exactly
//! the same rollout, and rewording a message never changes a stored record.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::json;
use crate::name::Name;
use crate::rollout::{Effect, Input};
use crate::status::Status;
use crate::time::UnixMs;

/// Who or what caused a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Cause {
    /// An operator (or the service acting for one).
    Operator {
        /// Who.
        by: Name,
    },
    /// A rule of the plan (the halt rule, a wave gate).
    Rule,
    /// A timer on the injected clock.
    Timer,
    /// The devices whose reports a batch holds ([`crate::rollout::ReportBatch`]).
    Devices,
    /// A device's report, join or leave.
    Device {
        /// Which device.
        device_id: Name,
    },
    /// An external verdict.
    External {
        /// Who gave it.
        by: Name,
    },
}

/// One record of the trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Its position, from 0.
    pub seq: u64,
    /// When.
    pub at: UnixMs,
    /// Who or what caused it.
    pub cause: Cause,
    /// The input that was applied, so the trail can be replayed.
    pub input: Input,
    /// What changed (`published`, `device_updated`, `halt_tripped`, `paused`...).
    pub effects: Vec<Effect>,
    /// The hash of the record before (zeros for the first).
    pub prev: Sha256Digest,
    /// The SHA-256 of this record's JSON without this field.
    pub hash: Sha256Digest,
}

/// What a record's hash covers: the record without its hash, fields in this order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    at: UnixMs,
    cause: &'a Cause,
    input: &'a Input,
    effects: &'a [Effect],
    prev: &'a Sha256Digest,
}

impl AuditRecord {
    /// The hash this record should have.
    pub fn compute_hash(&self) -> Sha256Digest {
        let h = Hashed {
            seq: self.seq,
            at: self.at,
            cause: &self.cause,
            input: &self.input,
            effects: &self.effects,
            prev: &self.prev,
        };
        // The record's JSON, written into one buffer and hashed at once: written straight
        // into the hash, token by token, it took longer than the hashing itself.
        // A batch's record takes about 47 bytes a report (see docs/audit-trail.md): sized for
        // 64 up front, it is written without being copied as it grows.
        let reports = match &self.input {
            Input::Reports(b) => b.reports.len(),
            _ => 0,
        };
        let mut text = Vec::with_capacity(512 + 64 * reports);
        if serde_json::to_writer(&mut text, &h).is_err() {
            return Sha256Digest::of(json::to_string(&h).as_bytes());
        }
        Sha256Digest::of(&text)
    }

    /// The record as one line of JSON (the trail is stored one record per line).
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }
}

/// The head of a trail: where the next record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    /// The next sequence number.
    pub next_seq: u64,
    /// The hash of the last record.
    pub tip: Sha256Digest,
}

impl Default for Chain {
    fn default() -> Self {
        Chain {
            next_seq: 0,
            tip: Sha256Digest::from_bytes([0; 32]),
        }
    }
}

impl Chain {
    /// Appends a record: numbers it, links it to the tip and hashes it.
    pub fn append(
        &mut self,
        at: UnixMs,
        cause: Cause,
        input: Input,
        effects: Vec<Effect>,
    ) -> AuditRecord {
        let mut r = AuditRecord {
            seq: self.next_seq,
            at,
            cause,
            input,
            effects,
            prev: self.tip,
            hash: Sha256Digest::from_bytes([0; 32]),
        };
        r.hash = r.compute_hash();
        self.next_seq += 1;
        self.tip = r.hash;
        r
    }

    /// The last record written, or `None` before the first.
    pub fn head(&self) -> Option<AuditHead> {
        self.next_seq.checked_sub(1).map(|seq| AuditHead {
            seq,
            hash: self.tip,
        })
    }
}

/// The last record of a trail: its sequence number and hash. Kept apart from the trail (in the
/// rollout's status and snapshot), it anchors the trail's end. Written `SEQ:HASH`
/// (`41:9f86d0…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    /// The last record's sequence number.
    pub seq: u64,
    /// The last record's hash.
    pub hash: Sha256Digest,
}

impl fmt::Display for AuditHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// Text that is not `SEQ:HASH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "an audit head is SEQ:HASH (a record number and 64 lowercase hex characters), found {found:?}"
)]
pub struct AuditHeadError {
    /// The text.
    pub found: String,
}

impl FromStr for AuditHead {
    type Err = AuditHeadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AuditHeadError {
            found: s.to_string(),
        };
        let (seq, hash) = s.split_once(':').ok_or_else(bad)?;
        Ok(AuditHead {
            seq: seq.parse().map_err(|_| bad())?,
            hash: hash.parse().map_err(|_| bad())?,
        })
    }
}

/// A trail that does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A record's hash does not match its content: it was edited.
    #[error("audit record {seq} was altered: its hash does not match its content")]
    Altered {
        /// The record's sequence number.
        seq: u64,
    },
    /// A record does not follow the one before: a record was dropped, inserted or reordered.
    #[error("audit record {seq} does not follow record {expected}: the chain is broken")]
    Broken {
        /// The sequence number found.
        seq: u64,
        /// The sequence number expected.
        expected: u64,
    },
    /// A line is not an audit record.
    #[error("audit line {line}: {message}")]
    Malformed {
        /// The line (from 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The trail holds no record: a rollout's trail always starts with its creation's, so an
    /// empty one is a trail lost, not one verified.
    #[error("the audit trail is empty: a rollout's trail starts with its creation record")]
    Empty,
    /// The trail's first record is not where the trail starts.
    #[error("the audit trail does not start at record 0")]
    Truncated,
    /// The trail links, but does not end at the head it was anchored to: records were dropped
    /// from its end, or it is another trail.
    #[error(
        "the audit trail does not end at its anchored head, record {expected_seq}: it holds {records} record(s)"
    )]
    HeadMismatch {
        /// The anchored head's sequence number.
        expected_seq: u64,
        /// How many records the trail holds.
        records: u64,
    },
}

impl AuditError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        Status::AuditBroken
    }
}

/// Verifies a trail from its first record: every record's hash, and every link. Returns the
/// chain's head. An empty trail fails ([`AuditError::Empty`]).
///
/// This proves the records given are an unaltered start of the trail, not that none was
/// dropped from its end: a trail cut short still links. Only [`verify_with_head`], against
/// the head kept apart from the trail (the rollout's status and snapshot carry it), proves
/// the trail whole.
pub fn verify(records: &[AuditRecord]) -> Result<Chain, AuditError> {
    if records.is_empty() {
        return Err(AuditError::Empty);
    }
    let mut chain = Chain::default();
    for (i, r) in records.iter().enumerate() {
        if i == 0 && r.seq != 0 {
            return Err(AuditError::Truncated);
        }
        if r.compute_hash() != r.hash {
            return Err(AuditError::Altered { seq: r.seq });
        }
        if r.seq != chain.next_seq || r.prev != chain.tip {
            return Err(AuditError::Broken {
                seq: r.seq,
                expected: chain.next_seq,
            });
        }
        chain.next_seq += 1;
        chain.tip = r.hash;
    }
    Ok(chain)
}

/// Verifies a whole trail, as [`verify`] does, and that it ends at `head`: a trail whose last
/// records were dropped still links, and only the head kept apart from it shows the loss.
pub fn verify_with_head(records: &[AuditRecord], head: &AuditHead) -> Result<Chain, AuditError> {
    let chain = verify(records)?;
    if chain.head() != Some(*head) {
        return Err(AuditError::HeadMismatch {
            expected_seq: head.seq,
            records: chain.next_seq,
        });
    }
    Ok(chain)
}

/// Parses a trail stored one JSON record per line (blank lines ignored).
pub fn parse_lines(text: &str) -> Result<Vec<AuditRecord>, AuditError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| AuditError::Malformed {
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
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
}
