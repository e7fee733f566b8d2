//! Reading a trail's lines back into records: a whole object stands alone, and a report line
//! takes its number, its link and its rollout from the records before it.

use serde::Deserialize as _;

use super::report_line::ReportLine;
use super::{AuditError, AuditRecord, Chain, Form};
use crate::name::Name;
use crate::rollout::Input;

/// Reads a trail's stored lines, in order, into [`AuditRecord`]s. [`Reader::read`] takes only
/// lines written as the library writes them (compact JSON, a whole record's members in order,
/// a report line's defaults left out), so what it reads is what a verifier hashing the stored
/// bytes reads; [`Reader::read_value`] takes records already parsed as JSON values (a whole
/// record's members in any order). It only reads: hashes and links are checked by
/// [`super::verify`].
#[derive(Debug, Clone)]
pub struct Reader {
    /// Where the next record goes, as the lines read so far say.
    chain: Chain,
    /// The trail's rollout, from its creation record, for the report lines.
    rollout_id: Option<Name>,
    /// Lines read, blank ones included.
    lines: usize,
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

impl Reader {
    /// A reader of a trail from its first record.
    pub fn new() -> Reader {
        Reader {
            chain: Chain::default(),
            rollout_id: None,
            lines: 0,
        }
    }

    /// A reader of the records after `chain`'s tip, in rollout `rollout_id`'s trail: how a host
    /// reads the records written after a snapshot ([`crate::rollout::Rollout::audit_chain`]).
    pub fn after(chain: Chain, rollout_id: Name) -> Reader {
        Reader {
            chain,
            rollout_id: Some(rollout_id),
            lines: 0,
        }
    }

    /// Reads the next stored line (without its `\n`): `None` for a blank one. A malformed
    /// line's error gives its number among the lines this reader was given (from 1).
    pub fn read(&mut self, line: &str) -> Result<Option<AuditRecord>, AuditError> {
        self.lines += 1;
        if line.trim().is_empty() {
            return Ok(None);
        }
        let record = if line.starts_with('[') {
            self.report_line(line)?
        } else {
            let r: AuditRecord =
                serde_json::from_str(line).map_err(|e| self.malformed(e.to_string()))?;
            if r.to_json() != line {
                return Err(self.malformed(
                    "a whole record is not written as the trail writes it (compact JSON, its members in order)"
                        .into(),
                ));
            }
            r
        };
        Ok(Some(self.advance(record)))
    }

    /// Reads the next record given as a JSON value, as a JSON document carries a trail
    /// (ota-server's audit listing): a whole record by its members, whatever their order; a
    /// report line as the line it writes.
    pub fn read_value(&mut self, value: &serde_json::Value) -> Result<AuditRecord, AuditError> {
        self.lines += 1;
        let record = if value.is_array() {
            self.report_line(&value.to_string())?
        } else {
            AuditRecord::deserialize(value).map_err(|e| self.malformed(e.to_string()))?
        };
        Ok(self.advance(record))
    }

    fn malformed(&self, message: String) -> AuditError {
        AuditError::Malformed {
            line: self.lines,
            message,
        }
    }

    /// The record a report line stands for, numbered and linked after the records read.
    fn report_line(&self, line: &str) -> Result<AuditRecord, AuditError> {
        let rollout_id = self.rollout_id.as_ref().ok_or_else(|| {
            self.malformed("a report line before the creation record that names its rollout".into())
        })?;
        let said: ReportLine = serde_json::from_str(line)
            .map_err(|e| self.malformed(format!("a report line: {e}")))?;
        let (cause, input, effects, at) = said.record(rollout_id).ok_or_else(|| {
            self.malformed("a report line's status is in_progress or success".into())
        })?;
        let mut r = AuditRecord {
            seq: self.chain.next_seq,
            at,
            cause,
            input,
            effects,
            prev: self.chain.tip,
            hash: self.chain.tip,
            form: Form::ReportLine,
        };
        if r.to_json() != line {
            return Err(self.malformed(
                "a report line is not written as the trail writes it (compact JSON, defaults left out)"
                    .into(),
            ));
        }
        r.hash = r.compute_hash();
        Ok(r)
    }

    /// Moves past a record read: the next one follows it.
    fn advance(&mut self, record: AuditRecord) -> AuditRecord {
        if let Input::Create { rollout_id, .. } = &record.input {
            self.rollout_id = Some(rollout_id.clone());
        }
        self.chain = Chain {
            next_seq: record.seq.saturating_add(1),
            tip: record.hash,
        };
        record
    }
}
