//! `ota check --fleet`: a fleet file read as a stream and checked on every core, in memory
//! independent of its size.
//!
//! The file is a JSON array of device profiles, JSON Lines (one profile per line, or any
//! whitespace between them), or a YAML sequence. JSON is never held whole: the reading thread
//! cuts it into profiles ([`scan`]; each at most [`Limits::max_document_bytes`], the whole at
//! most [`Limits::max_fleet_bytes`], both refused as soon as they are passed), and worker
//! threads parse, validate and check batches of them, through bounded queues. Nothing is kept
//! per device in memory: the eligible devices go to a temporary file as they are decided
//! ([`eligible`]), copied into the output in place, and device ids (which must be unique) are
//! compared by digest in sorted runs on disk ([`unique`]). YAML is converted whole (it is meant
//! for small fleets: at most a profile's limit and a buffer).
//!
//! Errors name the file, the profile's index and the field (`fleet.json: [3].arch: ...`), as
//! the core's fleet parser does; of a profile's fault and a duplicate id, the first in file
//! order is reported.

mod eligible;
mod scan;
mod unique;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

use ota_core::compat::{self, Reason};
use ota_core::json::ParseError;
use ota_core::{DeviceProfile, Limits, Package, Status};

use self::eligible::{Eligible, EligibleList};
use self::scan::{Fault, Scanner};
use self::unique::Unique;
use crate::doc::{self, Form};
use crate::out::CliError;

/// Profiles per batch handed to a worker.
const BATCH: usize = 2048;
/// Batches in flight (queued or being checked): with [`BATCH`], what bounds the memory.
const IN_FLIGHT: usize = 4;
/// What a YAML fleet may hold beyond a profile's limit (it is read whole).
const YAML_SLACK: usize = 512 << 10;

/// The verdict for a fleet.
pub struct Verdict {
    /// Profiles checked.
    pub total: usize,
    /// The devices the package fits, in file order.
    pub eligible: EligibleList,
    /// Devices it does not fit.
    pub rejected: usize,
    /// For each reason, how many devices were rejected for it.
    pub reasons: BTreeMap<Reason, usize>,
}

/// Checks `package` against every profile in the fleet file at `path`.
pub fn check(path: &Path, package: &Package, limits: &Limits) -> Result<Verdict, CliError> {
    let file = File::open(path).map_err(|e| CliError::io(path, e))?;
    let counted = Counted::new(
        file,
        limits.max_fleet_bytes as u64,
        format!(
            "the fleet exceeds the limit of {} bytes",
            limits.max_fleet_bytes
        ),
    );
    let mut scanner = Scanner::new(counted, limits.max_document_bytes);
    let first = scanner
        .first_byte()
        .map_err(|e| fault(path, scanner.source(), e))?;
    let form = match first {
        _ if doc::form(path, b"[") == Form::Yaml => Form::Yaml,
        Some(b'[' | b'{') | None => Form::Json,
        Some(_) => Form::Yaml,
    };
    if form == Form::Yaml {
        let max = limits.max_document_bytes + YAML_SLACK;
        let mut bytes = Vec::new();
        let read = scanner
            .into_rest()
            .take(max as u64 + 1)
            .read_to_end(&mut bytes);
        match read {
            Err(e) => return Err(CliError::io(path, e)),
            Ok(n) if n > max => {
                return Err(CliError::failure(
                    Some(Status::TooLarge),
                    format!(
                        "{}: a profile exceeds the limit of {} bytes",
                        path.display(),
                        limits.max_document_bytes
                    ),
                ));
            }
            Ok(_) => {}
        }
        let json = doc::yaml_to_json(&bytes).map_err(|e| {
            CliError::failure(
                Some(Status::JsonSyntax),
                format!("{}: not a YAML document: {e}", path.display()),
            )
        })?;
        let counted = Counted::new(io::Cursor::new(json), u64::MAX, String::new());
        let mut scanner = Scanner::new(counted, limits.max_document_bytes);
        scanner
            .first_byte()
            .map_err(|e| fault(path, scanner.source(), e))?;
        return run(path, package, limits, scanner);
    }
    if first == Some(b'{') {
        scanner.lines();
    }
    run(path, package, limits, scanner)
}

/// A batch of profiles: their bytes one after the other, where each ends, and the index of
/// the first in the file.
struct Batch {
    seq: usize,
    first: usize,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// Reads the profiles with `scanner` on this thread, checks them on the others, and merges
/// the results in file order on one more.
fn run<R: Read>(
    path: &Path,
    package: &Package,
    limits: &Limits,
    mut scanner: Scanner<Counted<R>>,
) -> Result<Verdict, CliError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stop = AtomicBool::new(false);
    let (batch_tx, batch_rx) = mpsc::sync_channel::<Batch>(IN_FLIGHT);
    let batch_rx = Mutex::new(batch_rx);
    let (done_tx, done_rx) = mpsc::sync_channel::<(usize, Checked)>(IN_FLIGHT);
    std::thread::scope(|s| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let (batch_rx, stop) = (&batch_rx, &stop);
            s.spawn(move || {
                loop {
                    let next = batch_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok(batch)) = next else {
                        return;
                    };
                    let checked = if stop.load(Ordering::Relaxed) {
                        Checked::default()
                    } else {
                        check_batch(package, limits, &batch)
                    };
                    if done_tx.send((batch.seq, checked)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let merger = s.spawn(|| merge(done_rx, &stop));

        // Cut the input into profiles, here, and hand them out in batches.
        let new_batch = |seq, first| Batch {
            seq,
            first,
            bytes: Vec::with_capacity(BATCH * 512),
            ends: Vec::with_capacity(BATCH),
        };
        let mut batch = new_batch(0, 0);
        let mut count = 0usize;
        let scanned = loop {
            match scanner.next() {
                Ok(Some(r)) => {
                    batch.bytes.extend_from_slice(&scanner.bytes()[r]);
                    batch.ends.push(batch.bytes.len());
                    count += 1;
                    if batch.ends.len() == BATCH {
                        let full = std::mem::replace(&mut batch, new_batch(0, count));
                        let seq = full.seq;
                        batch.seq = seq + 1;
                        if stop.load(Ordering::Relaxed) || batch_tx.send(full).is_err() {
                            // A worker found a fault: stop reading.
                            break Ok(());
                        }
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        // The last, partial batch.
        if scanned.is_ok() && !batch.ends.is_empty() && !stop.load(Ordering::Relaxed) {
            let _ = batch_tx.send(batch);
        }
        drop(batch_tx);
        let merged = merger
            .join()
            .unwrap_or_else(|_| Err(CliError::usage("checking the fleet failed")));
        let verdict = merged.map_err(|e| CliError {
            message: format!("{}: {}", path.display(), e.message),
            ..e
        })?;
        if let Err(e) = scanned {
            // A profile's own fault, found first, is reported before the reader's.
            return Err(fault(path, scanner.source(), e));
        }
        Ok(verdict)
    })
}

/// What one batch gave.
#[derive(Default)]
struct Checked {
    /// Profiles checked, and rejected.
    total: usize,
    rejected: usize,
    /// For each reason, how many devices were rejected for it.
    reasons: BTreeMap<Reason, usize>,
    /// The eligible devices' ids as JSON strings separated by commas, and how many.
    eligible: Vec<u8>,
    eligible_count: usize,
    /// The device ids, in order, each followed by a newline, up to the first faulty profile;
    /// and their digests.
    ids: Vec<u8>,
    digests: Vec<u128>,
    /// The first profile that does not parse or validate.
    error: Option<CliError>,
}

/// Parses and checks one batch.
fn check_batch(package: &Package, limits: &Limits, batch: &Batch) -> Checked {
    let mut profiles = Vec::with_capacity(batch.ends.len());
    let mut error = None;
    let mut start = 0;
    for (i, &end) in batch.ends.iter().enumerate() {
        match DeviceProfile::from_json_with_limits(&batch.bytes[start..end], limits) {
            Ok(p) => profiles.push(p),
            Err(e) => {
                let at = batch.first + i;
                error = Some(profile_error(at, &e));
                break;
            }
        }
        start = end;
    }
    let mut ids = Vec::with_capacity(profiles.len() * 24);
    let mut digests = Vec::with_capacity(profiles.len());
    for p in &profiles {
        let id = p.device_id.as_str();
        ids.extend_from_slice(id.as_bytes());
        ids.push(b'\n');
        digests.push(unique::digest(id));
    }
    if error.is_some() {
        return Checked {
            ids,
            digests,
            error,
            ..Checked::default()
        };
    }
    let report = compat::check_fleet(package, &profiles);
    let mut eligible = Vec::with_capacity(report.eligible.len() * 24);
    for (i, id) in report.eligible.iter().enumerate() {
        if i > 0 {
            eligible.push(b',');
        }
        // A name is ASCII letters, digits, `.`, `_` and `-`: nothing to escape.
        eligible.push(b'"');
        eligible.extend_from_slice(id.as_str().as_bytes());
        eligible.push(b'"');
    }
    Checked {
        total: report.total,
        rejected: report.rejected,
        reasons: report.reasons,
        eligible,
        eligible_count: report.eligible.len(),
        ids,
        digests,
        error: None,
    }
}

/// A profile's parse error, its fields under `[index]` as in the core's fleet parser.
fn profile_error(index: usize, e: &ParseError) -> CliError {
    let faults: Vec<String> = e
        .faults()
        .iter()
        .map(|f| {
            let at = match f.path.as_str() {
                "." | "" => format!("[{index}]"),
                p => format!("[{index}].{p}"),
            };
            // Positions would point into the profile, not the file.
            format!("{at}: {}", doc::strip_positions(&f.message))
        })
        .collect();
    CliError::failure(Some(e.status()), format!("fleet: {}", faults.join("; ")))
}

/// Merges the batches' results in file order: the counts, the eligible list (to its file),
/// and the ids (to the uniqueness check, which is decided at the end). Drains every batch,
/// whatever fails, so that no thread waits on it.
fn merge(done: mpsc::Receiver<(usize, Checked)>, stop: &AtomicBool) -> Result<Verdict, CliError> {
    let spill = |e: io::Error| CliError::usage(format!("a temporary file: {e}"));
    let mut sinks = Unique::new().and_then(|u| Ok((u, Eligible::new()?)));
    let (mut total, mut rejected) = (0usize, 0usize);
    let mut reasons: BTreeMap<Reason, usize> = BTreeMap::new();
    let mut pending: HashMap<usize, Checked> = HashMap::new();
    let mut next = 0usize;
    let mut failed: Option<CliError> = None;
    let mut index = 0u64;
    for (seq, checked) in done {
        pending.insert(seq, checked);
        while let Some(c) = pending.remove(&next) {
            next += 1;
            let Ok((unique, eligible)) = &mut sinks else {
                stop.store(true, Ordering::Relaxed);
                continue;
            };
            if failed.is_some() {
                continue;
            }
            let pushed = unique
                .push(index, &c.ids, &c.digests)
                .and_then(|()| eligible.push(&c.eligible, c.eligible_count));
            index += c.digests.len() as u64;
            if let Err(e) = pushed {
                sinks = Err(e);
                continue;
            }
            if let Some(e) = c.error {
                stop.store(true, Ordering::Relaxed);
                failed = Some(e);
                continue;
            }
            total += c.total;
            rejected += c.rejected;
            for (reason, n) in c.reasons {
                *reasons.entry(reason).or_default() += n;
            }
        }
    }
    let (unique, eligible) = sinks.map_err(spill)?;
    if let Some(d) = unique.finish().map_err(spill)? {
        return Err(CliError::failure(
            Some(Status::Invalid),
            format!("fleet: [{}].device_id: duplicate value {:?}", d.index, d.id),
        ));
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Verdict {
        total,
        eligible: eligible.finish().map_err(spill)?,
        rejected,
        reasons,
    })
}

/// The scanner's fault as the command's error: a bound, an I/O error, or the JSON's syntax.
fn fault<R>(path: &Path, counted: &Counted<R>, e: Fault) -> CliError {
    match e {
        Fault::Io(e) => match counted.tripped() {
            Some(m) => {
                CliError::failure(Some(Status::TooLarge), format!("{}: {m}", path.display()))
            }
            None => CliError::io(path, e),
        },
        Fault::TooLarge(m) => CliError::failure(
            Some(Status::TooLarge),
            format!("{}: fleet: {m}", path.display()),
        ),
        Fault::Syntax(m) => CliError::failure(
            Some(Status::JsonSyntax),
            format!("{}: fleet: {m}", path.display()),
        ),
    }
}

/// The file under the scanner: counts what is read, and refuses to read past `max` bytes.
struct Counted<R> {
    inner: R,
    read: u64,
    max: u64,
    /// What to say when the bound is passed.
    over: String,
    /// Whether the bound stopped the reading.
    tripped: bool,
}

impl<R> Counted<R> {
    fn new(inner: R, max: u64, over: String) -> Self {
        Counted {
            inner,
            read: 0,
            max,
            over,
            tripped: false,
        }
    }

    /// The bound that stopped the reading, if one did.
    fn tripped(&self) -> Option<&str> {
        self.tripped.then_some(self.over.as_str())
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.max {
            self.tripped = true;
            return Err(io::Error::other(self.over.clone()));
        }
        Ok(n)
    }
}
