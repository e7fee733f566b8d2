//! Reading a trail's lines back into records: a whole object stands alone, and a report line
//! takes its number, its link and its rollout from the records before it.

use super::report_line::ReportLine;
use super::{AuditError, AuditRecord, Chain, Form};
use crate::name::Name;
use crate::rollout::Input;

/// Reads a trail's stored lines, in order, into [`AuditRecord`]s. It only reads: hashes and
/// links are checked by [`super::verify`].
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

    /// Reads the next stored line: `None` for a blank one. A malformed line's error gives its
    /// number among the lines this reader was given (from 1).
    pub fn read(&mut self, line: &str) -> Result<Option<AuditRecord>, AuditError> {
        self.lines += 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            return Ok(None);
        }
        let malformed = |message: String| AuditError::Malformed {
            line: self.lines,
            message,
        };
        let record = if line.starts_with('[') {
            let rollout_id = self.rollout_id.as_ref().ok_or_else(|| {
                malformed("a report line before the creation record that names its rollout".into())
            })?;
            let said: ReportLine =
                serde_json::from_str(line).map_err(|e| malformed(format!("a report line: {e}")))?;
            let (cause, input, effects, at) = said.record(rollout_id).ok_or_else(|| {
                malformed("a report line's status is in_progress or success".into())
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
                return Err(malformed(
                    "a report line is not written as the trail writes it (compact JSON, defaults left out)"
                        .into(),
                ));
            }
            r.hash = r.compute_hash();
            r
        } else {
            let r: AuditRecord =
                serde_json::from_str(line).map_err(|e| malformed(e.to_string()))?;
            if let Input::Create { rollout_id, .. } = &r.input {
                self.rollout_id = Some(rollout_id.clone());
            }
            r
        };
        self.chain = Chain {
            next_seq: record.seq.saturating_add(1),
            tip: record.hash,
        };
        Ok(Some(record))
    }
}
