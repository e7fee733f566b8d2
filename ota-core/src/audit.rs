//! The append-only, hash-chained audit trail.
//!
//! Every record carries its sequence number, time, cause, the input that caused it, what it
//! changed, and the hash of the record before it; its own hash covers all of that. A device's
//! routine report is stored as a short report line whose number, link and hash follow from its
//! place (see docs/audit-trail.md). Editing, reordering or dropping a record breaks the chain,
//! and [`verify`] says where: at an edited whole record itself, at the next whole record after
//! a report line. The report lines after the last whole record can be edited or dropped, and
//! the last records dropped, leaving a chain that still links: [`verify_with_head`] catches
//! that against the head the rollout carries in its status and snapshot ([`AuditHead`],
//! written `SEQ:HASH`). The rollout engine writes one record per state-changing input, its
//! input and its effects typed ([`Input`], [`Effect`]), so replaying a trail's inputs rebuilds
//! exactly the same rollout, and rewording a message never changes a stored record.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::json;
use crate::name::Name;
use crate::rollout::{Effect, Input};
use crate::status::Status;
use crate::time::UnixMs;

mod reader;
mod report_line;

pub use reader::Reader;
use report_line::ReportLine;

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
///
/// It serializes as the trail stores it ([`AuditRecord::to_json`]): a report line for a
/// device's routine report, the whole object otherwise. It deserializes from a whole object
/// only: a report line takes its number and link from the records before it, so a trail is
/// read with a [`Reader`] ([`parse_lines`], [`parse_values`]).
#[derive(Debug, Clone, PartialEq)]
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
    /// The SHA-256 of this record's JSON without this field (of `prev` and the line, for a
    /// report line).
    pub hash: Sha256Digest,
    /// How the record is written: as a whole object, or as a report line. Set when the record
    /// is written ([`Chain::append_in`]) or read ([`Reader`]): a stored record keeps its form.
    form: Form,
}

/// A whole record as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Whole {
    seq: u64,
    at: UnixMs,
    cause: Cause,
    input: Input,
    effects: Vec<Effect>,
    prev: Sha256Digest,
    hash: Sha256Digest,
}

impl Serialize for AuditRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.line() {
            Some(line) => line.serialize(s),
            None => self.whole(Some(&self.hash)).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for AuditRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<AuditRecord, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AuditRecord;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole audit record, a JSON object (a report line is read with audit::Reader, after the records before it)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<AuditRecord, A::Error> {
                let w = Whole::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(AuditRecord {
                    seq: w.seq,
                    at: w.at,
                    cause: w.cause,
                    input: w.input,
                    effects: w.effects,
                    prev: w.prev,
                    hash: w.hash,
                    form: Form::Object,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// How a record is written in the trail (see docs/audit-trail.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Form {
    /// The whole record, one JSON object.
    #[default]
    Object,
    /// A report line, `[at,device_id,status,...]`.
    ReportLine,
}

/// A whole record as written, its members in this order; without its `hash`, what the hash
/// covers.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    at: UnixMs,
    cause: &'a Cause,
    input: &'a Input,
    effects: &'a [Effect],
    prev: &'a Sha256Digest,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<&'a Sha256Digest>,
}

impl AuditRecord {
    /// The record as a whole object, with its hash or (what the hash covers) without.
    fn whole<'a>(&'a self, hash: Option<&'a Sha256Digest>) -> Hashed<'a> {
        Hashed {
            seq: self.seq,
            at: self.at,
            cause: &self.cause,
            input: &self.input,
            effects: &self.effects,
            prev: &self.prev,
            hash,
        }
    }

    /// Whether the record is written as a report line, the short form of a device's routine
    /// report (see docs/audit-trail.md), rather than as a whole object.
    pub fn is_report_line(&self) -> bool {
        self.line().is_some()
    }

    /// The report line this record is written as, if it is one (and still says what one can).
    fn line(&self) -> Option<ReportLine<'_>> {
        (self.form == Form::ReportLine)
            .then(|| ReportLine::of(self))
            .flatten()
    }

    /// The hash this record should have.
    pub fn compute_hash(&self) -> Sha256Digest {
        match self.line() {
            Some(line) => line.hash(&self.prev),
            None => self.whole_hash(),
        }
    }

    /// The hash of the record written whole.
    fn whole_hash(&self) -> Sha256Digest {
        let h = self.whole(None);
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

    /// The record as one line of JSON, as the trail stores it: a report line for a device's
    /// routine report, the whole object otherwise.
    pub fn to_json(&self) -> String {
        match self.line() {
            Some(line) => line.text(),
            None => json::to_string(self),
        }
    }

    /// Whether `self`, read as a whole object, is `written` in another form: the same record
    /// (number, time, cause, input, effects, link) written as a report line by a release that
    /// writes one, where this one was stored whole by an earlier release. Its own hash must hold.
    pub(crate) fn is_stored_whole_form_of(&self, written: &AuditRecord) -> bool {
        self.form == Form::Object
            && written.form == Form::ReportLine
            && (
                self.seq,
                self.at,
                &self.cause,
                &self.input,
                &self.effects,
                &self.prev,
            ) == (
                written.seq,
                written.at,
                &written.cause,
                &written.input,
                &written.effects,
                &written.prev,
            )
            && self.compute_hash() == self.hash
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
    /// Appends a record written whole: numbers it, links it to the tip and hashes it.
    pub fn append(
        &mut self,
        at: UnixMs,
        cause: Cause,
        input: Input,
        effects: Vec<Effect>,
    ) -> AuditRecord {
        self.write(None, at, cause, input, effects)
    }

    /// Appends a record to rollout `rollout_id`'s trail, as [`Chain::append`] does, but writes
    /// a device's routine report of that rollout as a report line (see docs/audit-trail.md): a
    /// [`Reader`] rebuilds its rollout from the trail's creation record. The rollout engine
    /// writes its trail so.
    pub fn append_in(
        &mut self,
        rollout_id: &Name,
        at: UnixMs,
        cause: Cause,
        input: Input,
        effects: Vec<Effect>,
    ) -> AuditRecord {
        self.write(Some(rollout_id), at, cause, input, effects)
    }

    fn write(
        &mut self,
        rollout_id: Option<&Name>,
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
            form: Form::Object,
        };
        let ours = r
            .input
            .report()
            .and_then(|(report, _)| report.rollout_id.as_ref());
        let line = (rollout_id.is_some() && ours == rollout_id)
            .then(|| ReportLine::of(&r))
            .flatten();
        let (form, hash) = match line {
            Some(line) => (Form::ReportLine, line.hash(&r.prev)),
            None => (Form::Object, r.whole_hash()),
        };
        r.form = form;
        r.hash = hash;
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
/// This proves the records given, up to the last whole record, are an unaltered start of the
/// trail; not the report lines after it, nor that none was dropped from its end: a trail cut
/// short, or whose last report lines were edited, still links. Only [`verify_with_head`],
/// against the head kept apart from the trail (the rollout's status and snapshot carry it),
/// proves the trail whole.
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

/// Parses a trail stored one record per line (blank lines ignored), from its first record
/// (see [`Reader`]).
pub fn parse_lines(text: &str) -> Result<Vec<AuditRecord>, AuditError> {
    let mut reader = Reader::new();
    let mut records = Vec::new();
    for line in text.lines() {
        if let Some(r) = reader.read(line)? {
            records.push(r);
        }
    }
    Ok(records)
}
/// Parses a trail given as JSON values, one a record, from its first record: how a JSON
/// document carries one (ota-server's `GET /api/v1/ota/rollouts/{id}/audit` gives its
/// `records` so). A value is read as the line it writes (see [`Reader`]).
pub fn parse_values(records: &[serde_json::Value]) -> Result<Vec<AuditRecord>, AuditError> {
    let mut reader = Reader::new();
    records.iter().map(|v| reader.read_value(v)).collect()
}

#[cfg(test)]
mod tests;
