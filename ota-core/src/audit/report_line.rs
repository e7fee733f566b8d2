//! A report line: the trail's short form of the commonest record, a device's accepted report
//! whose only effect is the routine one (`in_progress` → `device_in_progress`, `success` →
//! `device_updated`). Written `[at,device_id,status,firmware_version,attempt]`, its trailing
//! defaults left out (`[1700000001001,"dev-0042","success","2.0.0"]`), it holds only what a
//! reader cannot rebuild: the record's number, its link, its cause, its effect and the report's
//! rollout follow from the records before it (see docs/audit-trail.md).

use std::borrow::Cow;

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::ser::SerializeSeq as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{AuditRecord, Cause};
use crate::digest::Sha256Digest;
use crate::name::Name;
use crate::report::{DeviceReport, ReportStatus};
use crate::rollout::{Effect, Input};
use crate::time::UnixMs;
use crate::version::{self, Version, VersionText};

/// What a report line says: borrowed from the record it is written from, owned when read.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ReportLine<'a> {
    pub at: UnixMs,
    pub device_id: Cow<'a, Name>,
    pub status: ReportStatus,
    pub firmware_version: Option<Cow<'a, Version>>,
    /// `Some` for an [`Input::AttemptReport`], `None` for an [`Input::Report`].
    pub attempt: Option<u32>,
}

impl<'a> ReportLine<'a> {
    /// The line a record can be written as, or `None` when it needs the whole object: anything
    /// but a device's own report of its rollout, carrying no reason, with exactly the routine
    /// effect.
    pub fn of(r: &'a AuditRecord) -> Option<ReportLine<'a>> {
        let (report, attempt) = match &r.input {
            Input::Report(report) => (report, None),
            Input::AttemptReport { report, attempt } => (report, Some(*attempt)),
            _ => return None,
        };
        let plain =
            report.rollout_id.is_some() && report.reason.is_none() && report.attempt.is_none();
        let caused =
            matches!(&r.cause, Cause::Device { device_id } if *device_id == report.device_id);
        (plain && caused && routine_only(report, &r.effects)).then(|| ReportLine {
            at: r.at,
            device_id: Cow::Borrowed(&report.device_id),
            status: report.status,
            firmware_version: report.firmware_version.as_ref().map(Cow::Borrowed),
            attempt,
        })
    }

    /// The line's hash, after the record `prev`: of `prev`'s hex, then the line's text
    /// ([`ReportLine::write`], on the stack); through serde on the heap for a line whose
    /// version has a pre-release or a build.
    pub fn hash(&self, prev: &Sha256Digest) -> Sha256Digest {
        let mut stack = [0u8; 64 + LINE_MAX];
        if let Some((hex, rest)) = stack.split_first_chunk_mut::<64>()
            && let Some(n) = self.write(rest)
        {
            prev.write_hex(hex);
            return Sha256Digest::of(&stack[..64 + n]);
        }
        let mut text = prev.hex().as_bytes().to_vec();
        // Writing into a `Vec` fails only where the line cannot be serialized, which a line
        // built from a record cannot be: its fields are names, versions and numbers.
        let _ = serde_json::to_writer(&mut text, self);
        Sha256Digest::of(&text)
    }

    /// The line's text, as [`ReportLine::write`] writes it, or through serde.
    pub fn text(&self) -> String {
        let mut stack = [0u8; LINE_MAX];
        if let Some(n) = self.write(&mut stack)
            && let Ok(text) = std::str::from_utf8(&stack[..n])
        {
            return text.to_owned();
        }
        crate::json::to_string(self)
    }

    /// Writes the line's compact JSON into `out`, byte for byte what serde_json writes from
    /// its [`Serialize`] (the tests compare them), without serde: the trail hashes one for
    /// nearly every report. Nothing in a line needs escaping: a [`Name`] is `[A-Za-z0-9._-]`,
    /// a status is a fixed word, a version `[0-9.]`. Its length; `None` when it does not fit,
    /// or names a version with a pre-release or a build (serde writes those).
    pub(super) fn write(&self, out: &mut [u8]) -> Option<usize> {
        let mut w = Cursor { out, n: 0 };
        w.put(b"[")?;
        w.put(itoa::Buffer::new().format(self.at.0).as_bytes())?;
        w.put(b",\"")?;
        w.put(self.device_id.as_str().as_bytes())?;
        w.put(b"\",\"")?;
        w.put(self.status.as_str().as_bytes())?;
        w.put(b"\"")?;
        match &self.firmware_version {
            Some(v) => {
                let mut text = [0u8; version::PLAIN_MAX];
                let len = VersionText(v).write_plain(&mut text)?;
                w.put(b",\"")?;
                w.put(&text[..len])?;
                w.put(b"\"")?;
            }
            None if self.attempt.is_some() => w.put(b",null")?,
            None => {}
        }
        if let Some(attempt) = self.attempt {
            w.put(b",")?;
            w.put(itoa::Buffer::new().format(attempt).as_bytes())?;
        }
        w.put(b"]")?;
        Some(w.n)
    }

    /// The record this line stands for, numbered and linked by the caller.
    pub fn record(self, rollout_id: &Name) -> Option<(Cause, Input, Vec<Effect>, UnixMs)> {
        let effects = vec![self.routine()?];
        let report = DeviceReport {
            device_id: self.device_id.clone().into_owned(),
            rollout_id: Some(rollout_id.clone()),
            firmware_version: self.firmware_version.map(Cow::into_owned),
            status: self.status,
            reason: None,
            attempt: None,
        };
        let input = match self.attempt {
            Some(attempt) => Input::AttemptReport { report, attempt },
            None => Input::Report(report),
        };
        let cause = Cause::Device {
            device_id: self.device_id.into_owned(),
        };
        Some((cause, input, effects, self.at))
    }

    /// The routine effect of the report, the only one a line stands for; `None` for a status
    /// that has none (a failure, a rejection: they always take the whole object).
    fn routine(&self) -> Option<Effect> {
        let device_id = self.device_id.clone().into_owned();
        match self.status {
            ReportStatus::InProgress => Some(Effect::DeviceInProgress { device_id }),
            ReportStatus::Success => Some(Effect::DeviceUpdated {
                device_id,
                version: self.firmware_version.clone().map(Cow::into_owned),
            }),
            _ => None,
        }
    }
}

/// The longest line [`ReportLine::write`] writes on the stack: brackets, commas and quotes
/// (12), the time (20 digits), the longest name, the longest status (11), a plain version and
/// an attempt (10 digits).
const LINE_MAX: usize = 12 + 20 + Name::MAX_LEN + 11 + version::PLAIN_MAX + 10;

/// Bytes written one slice after another into a fixed buffer.
struct Cursor<'b> {
    out: &'b mut [u8],
    n: usize,
}

impl Cursor<'_> {
    /// Appends `bytes`; `None` (and nothing written) when they do not fit.
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.n + bytes.len();
        self.out.get_mut(self.n..end)?.copy_from_slice(bytes);
        self.n = end;
        Some(())
    }
}

/// Whether `effects` is exactly the routine effect of `report` ([`ReportLine::routine`]),
/// compared in place: this runs for every report the engine records.
fn routine_only(report: &DeviceReport, effects: &[Effect]) -> bool {
    match (report.status, effects) {
        (ReportStatus::InProgress, [Effect::DeviceInProgress { device_id }]) => {
            *device_id == report.device_id
        }
        (ReportStatus::Success, [Effect::DeviceUpdated { device_id, version }]) => {
            *device_id == report.device_id && *version == report.firmware_version
        }
        _ => false,
    }
}

impl Serialize for ReportLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let len = if self.attempt.is_some() {
            5
        } else if self.firmware_version.is_some() {
            4
        } else {
            3
        };
        let mut seq = s.serialize_seq(Some(len))?;
        seq.serialize_element(&self.at)?;
        seq.serialize_element(&self.device_id)?;
        seq.serialize_element(&self.status)?;
        if len > 3 {
            seq.serialize_element(&self.firmware_version.as_deref().map(VersionText))?;
        }
        if let Some(attempt) = self.attempt {
            seq.serialize_element(&attempt)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for ReportLine<'static> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ReportLine<'static>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ReportLine<'static>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a report line, [at, device_id, status, firmware_version, attempt], the last two optional")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<ReportLine<'static>, A::Error> {
                let at = a
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let device_id: Name = a
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                let status = a
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(2, &self))?;
                let firmware_version = a.next_element::<Option<Version>>()?.flatten();
                let attempt = a.next_element()?;
                if a.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::invalid_length(6, &self));
                }
                Ok(ReportLine {
                    at,
                    device_id: Cow::Owned(device_id),
                    status,
                    firmware_version: firmware_version.map(Cow::Owned),
                    attempt,
                })
            }
        }
        d.deserialize_seq(V)
    }
}
