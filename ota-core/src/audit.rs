//! The append-only, hash-chained audit trail.
//!
//! Every record carries its sequence number, time, cause, the input that caused it, what it
//! changed, and the hash of the record before it; its own hash covers all of that. Editing,
//! reordering or dropping any record breaks the chain, and [`verify`] says where. The rollout
//! engine writes one record per state-changing input, so replaying a log's inputs rebuilds
//! exactly the same rollout.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::json;
use crate::name::Name;
use crate::status::Status;

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
    /// When (Unix ms).
    pub at: u64,
    /// Who or what caused it.
    pub cause: Cause,
    /// The input that was applied (JSON), so the trail can be replayed.
    pub input: serde_json::Value,
    /// What changed, in words (`published pkg_… signed by …`, `paused: halt rule tripped`).
    pub effects: Vec<String>,
    /// The hash of the record before (zeros for the first).
    pub prev: Sha256Digest,
    /// The SHA-256 of this record's JSON without this field.
    pub hash: Sha256Digest,
}

#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    at: u64,
    cause: &'a Cause,
    input: &'a serde_json::Value,
    effects: &'a [String],
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
        Sha256Digest::of(json::to_string(&h).as_bytes())
    }

    /// The record as one line of JSON (the trail is stored one record per line).
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }
}

/// The head of a trail: where the next record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
        at: u64,
        cause: Cause,
        input: serde_json::Value,
        effects: Vec<String>,
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
    /// The trail's first record is not where the trail starts.
    #[error("the audit trail does not start at record 0")]
    Truncated,
}

impl AuditError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        Status::AuditBroken
    }
}

/// Verifies a whole trail: every record's hash, and every link. Returns the chain's head.
pub fn verify(records: &[AuditRecord]) -> Result<Chain, AuditError> {
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
                    1000 + i,
                    Cause::Timer,
                    serde_json::json!({"tick": i}),
                    vec![format!("effect {i}")],
                )
            })
            .collect()
    }

    #[test]
    fn edits_drops_and_reorders_are_detected() {
        let t = trail();
        assert_eq!(verify(&t).unwrap().next_seq, 5);
        let mut edited = t.clone();
        edited[2].effects[0] = "nothing happened".into();
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
        assert!(verify(&swapped).is_err());
        assert_eq!(verify(&t[1..]), Err(AuditError::Truncated));
        let text: String = t.iter().map(|r| r.to_json() + "\n").collect();
        assert_eq!(parse_lines(&text).unwrap(), t);
        assert!(matches!(
            parse_lines("{\n"),
            Err(AuditError::Malformed { line: 1, .. })
        ));
    }
}
