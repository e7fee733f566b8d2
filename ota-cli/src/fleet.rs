//! `ota check --fleet`: a fleet file read as a stream and checked on every core.
//!
//! The file is a JSON array of device profiles, JSON Lines (one profile per line, or any
//! whitespace between them), or a YAML sequence. JSON is never held whole: the reading thread
//! cuts it into profiles (each at most [`Limits::max_document_bytes`], the whole at most
//! [`Limits::max_fleet_bytes`], both refused as soon as they are passed), and worker threads
//! parse, validate and check batches of them, through bounded queues. What is kept per device
//! is its id (device ids must be unique) and, when the package fits it, its place in the
//! eligible list. YAML is converted whole (it is meant for small fleets), within the same
//! bound.
//!
//! Errors name the file, the profile's index and the field (`fleet.json: [3].arch: ...`), as
//! the core's fleet parser does; a profile's fault is reported for the first faulty profile in
//! file order.

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

use ota_core::compat::{self, FleetReport};
use ota_core::json::ParseError;
use ota_core::name::Name;
use ota_core::{DeviceProfile, Limits, Package, Status};
use serde::de::{Error as _, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::doc::{self, Form};
use crate::out::CliError;

/// Profiles per batch handed to a worker.
const BATCH: usize = 2048;
/// Batches in flight (queued or being checked): with [`BATCH`], what bounds the memory.
const IN_FLIGHT: usize = 8;
/// The reading buffer.
const BUFFER: usize = 256 << 10;

/// Checks `package` against every profile in the fleet file at `path`.
pub fn check(path: &Path, package: &Package, limits: &Limits) -> Result<FleetReport, CliError> {
    let file = File::open(path).map_err(|e| CliError::io(path, e))?;
    let mut reader = BufReader::with_capacity(BUFFER, Counted::new(file, limits));
    let first = first_byte(&mut reader).map_err(|e| CliError::io(path, e))?;
    let form = match first {
        _ if doc::form(path, b"[") == Form::Yaml => Form::Yaml,
        Some(b'[' | b'{') | None => Form::Json,
        Some(_) => Form::Yaml,
    };
    if form == Form::Yaml {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| reader.get_ref().error(path, e))?;
        let json = doc::yaml_to_json(&bytes).map_err(|e| {
            CliError::failure(
                Some(Status::JsonSyntax),
                format!("{}: not a YAML document: {e}", path.display()),
            )
        })?;
        let reader = BufReader::new(Counted::new(io::Cursor::new(json), limits));
        return run(path, package, limits, reader, true);
    }
    run(path, package, limits, reader, first != Some(b'{'))
}

/// Reads the profiles with `reader` (a JSON array when `array`, else JSON Lines) on this
/// thread, and checks them on the others.
fn run<R: Read>(
    path: &Path,
    package: &Package,
    limits: &Limits,
    mut reader: BufReader<Counted<R>>,
    array: bool,
) -> Result<FleetReport, CliError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stop = AtomicBool::new(false);
    let (batch_tx, batch_rx) = mpsc::sync_channel::<(usize, usize, Vec<Box<RawValue>>)>(IN_FLIGHT);
    let batch_rx = Mutex::new(batch_rx);
    let (done_tx, done_rx) = mpsc::sync_channel::<(usize, Checked)>(IN_FLIGHT);
    let mark = reader.get_ref().mark.clone();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let (batch_rx, stop) = (&batch_rx, &stop);
            s.spawn(move || {
                loop {
                    let next = batch_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((seq, first, batch))) = next else {
                        return;
                    };
                    let checked = if stop.load(Ordering::Relaxed) {
                        Checked::default()
                    } else {
                        check_batch(package, limits, first, &batch)
                    };
                    if done_tx.send((seq, checked)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let merger = s.spawn(|| merge(done_rx, &stop));

        // Cut the input into profiles, here, and hand them out in batches.
        let mut batch = Vec::with_capacity(BATCH);
        let (mut seq, mut count) = (0usize, 0usize);
        // `end`: how many profiles were read, this batch's included.
        let mut flush = |batch: &mut Vec<Box<RawValue>>, end: usize| -> bool {
            let full = std::mem::replace(batch, Vec::with_capacity(BATCH));
            let first = end - full.len();
            let sent = !stop.load(Ordering::Relaxed) && batch_tx.send((seq, first, full)).is_ok();
            seq += 1;
            sent
        };
        let mut each = |raw: Box<RawValue>| -> Result<bool, String> {
            if raw.get().len() > limits.max_document_bytes {
                return Err(format!(
                    "[{count}]: a profile of {} bytes exceeds the limit of {} bytes",
                    raw.get().len(),
                    limits.max_document_bytes
                ));
            }
            batch.push(raw);
            count += 1;
            Ok(batch.len() < BATCH || flush(&mut batch, count))
        };
        let scanned = if array {
            let mut de = serde_json::Deserializer::from_reader(&mut reader);
            serde::Deserializer::deserialize_seq(
                &mut de,
                Elements {
                    each: &mut each,
                    mark: &mark,
                },
            )
            .and_then(|()| de.end())
        } else {
            let de = serde_json::Deserializer::from_reader(&mut reader);
            let mut profiles = de.into_iter::<Box<RawValue>>();
            loop {
                mark.set(u64::MAX);
                match profiles.next() {
                    None => break Ok(()),
                    Some(Err(e)) => break Err(e),
                    Some(Ok(raw)) => match each(raw) {
                        Ok(true) => {}
                        Ok(false) => break Err(serde_json::Error::custom(STOPPED)),
                        Err(m) => break Err(serde_json::Error::custom(m)),
                    },
                }
            }
        };
        // The last, partial batch.
        if scanned.is_ok() && !batch.is_empty() {
            flush(&mut batch, count);
        }
        drop(batch_tx);
        let merged = merger
            .join()
            .unwrap_or_else(|_| Err(CliError::usage("checking the fleet failed")));
        let report = merged.map_err(|e| CliError {
            message: format!("{}: {}", path.display(), e.message),
            ..e
        })?;
        if let Err(e) = scanned {
            // A profile's own fault, found first, is reported before the reader's stop.
            return Err(reader.get_ref().scan_error(path, e));
        }
        Ok(report)
    })
}

/// What one batch gave.
#[derive(Default)]
struct Checked {
    report: FleetReport,
    /// Every device id of the batch, in order (for the uniqueness check).
    ids: Vec<Name>,
    /// The first profile that does not parse or validate.
    error: Option<CliError>,
}

/// Parses and checks one batch; `first` is the index of its first profile in the file.
fn check_batch(
    package: &Package,
    limits: &Limits,
    first: usize,
    batch: &[Box<RawValue>],
) -> Checked {
    let mut profiles = Vec::with_capacity(batch.len());
    for (i, raw) in batch.iter().enumerate() {
        match DeviceProfile::from_json_with_limits(raw.get().as_bytes(), limits) {
            Ok(p) => profiles.push(p),
            Err(e) => {
                return Checked {
                    error: Some(profile_error(first + i, &e)),
                    ..Checked::default()
                };
            }
        }
    }
    Checked {
        report: compat::check_fleet(package, &profiles),
        ids: profiles.into_iter().map(|p| p.device_id).collect(),
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

/// Merges the batches' results in file order, checking that device ids are unique.
fn merge(
    done: mpsc::Receiver<(usize, Checked)>,
    stop: &AtomicBool,
) -> Result<FleetReport, CliError> {
    let mut report = FleetReport::default();
    let mut seen: HashSet<Name> = HashSet::new();
    let mut pending: BTreeMap<usize, Checked> = BTreeMap::new();
    let mut next = 0usize;
    let mut failed = None;
    for (seq, checked) in done {
        pending.insert(seq, checked);
        while let Some(c) = pending.remove(&next) {
            next += 1;
            if failed.is_some() {
                continue;
            }
            if let Some(e) = c.error {
                stop.store(true, Ordering::Relaxed);
                failed = Some(e);
                continue;
            }
            for (i, id) in c.ids.into_iter().enumerate() {
                if !seen.insert(id.clone()) {
                    stop.store(true, Ordering::Relaxed);
                    let at = report.total + i;
                    failed = Some(CliError::failure(
                        Some(Status::Invalid),
                        format!(
                            "fleet: [{at}].device_id: duplicate value {:?}",
                            id.to_string()
                        ),
                    ));
                    break;
                }
            }
            if failed.is_some() {
                continue;
            }
            report.total += c.report.total;
            report.rejected += c.report.rejected;
            report.eligible.extend(c.report.eligible);
            for (reason, n) in c.report.reasons {
                *report.reasons.entry(reason).or_default() += n;
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// The elements of a JSON array, each handed to `each` as raw JSON; `mark` is set where each
/// begins.
struct Elements<'a, F> {
    each: &'a mut F,
    mark: &'a Rc<Cell<u64>>,
}

impl<'de, F: FnMut(Box<RawValue>) -> Result<bool, String>> Visitor<'de> for Elements<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of device profiles")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            self.mark.set(u64::MAX);
            match seq.next_element::<Box<RawValue>>()? {
                Some(raw) => {
                    if !(self.each)(raw).map_err(A::Error::custom)? {
                        // A worker found a fault: stop reading.
                        return Err(A::Error::custom(STOPPED));
                    }
                }
                None => return Ok(()),
            }
        }
    }
}

/// The reader's stop when a worker found a fault first (that fault is reported).
const STOPPED: &str = "stopped";

/// The file under the reading buffer: counts what is read, and refuses to read past
/// [`Limits::max_fleet_bytes`], or more than [`Limits::max_document_bytes`] (and a buffer)
/// into one profile.
struct Counted<R> {
    inner: R,
    read: u64,
    max_total: u64,
    max_one: u64,
    /// Where the current profile began (`u64::MAX`: at the next read).
    mark: Rc<Cell<u64>>,
    /// The bound that stopped the reading, if one did.
    tripped: Cell<Option<String>>,
}

impl<R> Counted<R> {
    fn new(inner: R, limits: &Limits) -> Self {
        Counted {
            inner,
            read: 0,
            max_total: limits.max_fleet_bytes as u64,
            max_one: (limits.max_document_bytes + 2 * BUFFER) as u64,
            mark: Rc::new(Cell::new(0)),
            tripped: Cell::new(None),
        }
    }

    /// An I/O error while reading the file, or the bound that stopped it.
    fn error(&self, path: &Path, e: io::Error) -> CliError {
        match self.tripped.take() {
            Some(m) => {
                CliError::failure(Some(Status::TooLarge), format!("{}: {m}", path.display()))
            }
            None => CliError::io(path, e),
        }
    }

    /// The reader's error: a bound, an I/O error, or the JSON's syntax.
    fn scan_error(&self, path: &Path, e: serde_json::Error) -> CliError {
        if let Some(m) = self.tripped.take() {
            return CliError::failure(Some(Status::TooLarge), format!("{}: {m}", path.display()));
        }
        match e.classify() {
            serde_json::error::Category::Io => CliError::io(path, e),
            _ => CliError::failure(
                Some(match e.classify() {
                    serde_json::error::Category::Data => Status::InvalidValue,
                    _ => Status::JsonSyntax,
                }),
                format!("{}: fleet: {e}", path.display()),
            ),
        }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.mark.get() == u64::MAX {
            self.mark.set(self.read);
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let over = if self.read > self.max_total {
            Some(format!(
                "the fleet exceeds the limit of {} bytes",
                self.max_total
            ))
        } else if self.read - self.mark.get() > self.max_one {
            Some(format!(
                "a profile exceeds the limit of {} bytes",
                self.max_one - 2 * BUFFER as u64
            ))
        } else {
            None
        };
        if let Some(m) = over {
            self.tripped.set(Some(m.clone()));
            return Err(io::Error::other(m));
        }
        Ok(n)
    }
}

/// The first byte that is not whitespace or a UTF-8 byte-order mark, without consuming it.
fn first_byte<R: Read>(r: &mut BufReader<R>) -> io::Result<Option<u8>> {
    use std::io::BufRead;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        if buf.starts_with(b"\xEF\xBB\xBF") {
            r.consume(3);
            continue;
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let b = buf[i];
                r.consume(i);
                return Ok(Some(b));
            }
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    }
}
