//! The device's data path on two threads: the driver for the core's opening stages.
//!
//! The core offers each path as two sans-IO stages: a first that verifies every chunk
//! against the signed table and decrypts it ([`ChunkedDecrypt`] for a stream,
//! [`StagedDecrypt`] for a download's staged chunks), and a second that only inflates
//! ([`Inflate`]). Here the first runs on the caller's thread and the second on its own,
//! joined by a bounded queue of [`BLOCK`]-byte buffers that are recycled, so memory stays at
//! [`DEPTH`] + 2 blocks whatever the artifact's size. With `threads` below 2 (a one-core
//! device) both stages run on the caller's thread, as the core's own [`open_chunked`] and
//! [`Install`] do. Staging a batch of chunks that arrived in any order ([`stage`]) hashes
//! them on both threads the same way: the core's [`Download::checker`] checks on either
//! thread, and [`Download::store`] stores on the caller's.
//!
//! Every security property is the core's: no byte is decrypted before its chunk matched the
//! signed table, and only a successful return means the output is the complete, declared
//! plaintext. On an error from either stage the other stops, and the output must be
//! discarded.
//!
//! A package that declares segments (`seal.segments`, [`ota_core::segment`]) is inflated
//! on `threads` workers instead: the caller's thread verifies, decrypts and cuts the gzip
//! stream into segments, the workers inflate them apart, and the caller's thread writes their
//! plaintext out in order, checking gzip's CRC-32 and length and the declared size (the
//! output is byte for byte the one-thread path's: see [`ota_core::segment`]). At most
//! `2 × threads + 1` segments are in flight, each held compressed and inflated (1 MiB of
//! plaintext as sealed, at most [`ota_core::segment::MAX_SEGMENT`]), so memory stays at about
//! 10 MiB on two threads whatever the artifact's size.
//!
//! [`open_chunked`]: ota_core::seal::open_chunked
//! [`Install`]: ota_core::download::Install

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

use ota_core::VerifiedPackage;
use ota_core::chunk::ChunkTable;
use ota_core::download::{Accepted, CheckedChunk, Download, DownloadError, StagedDecrypt, Staging};
use ota_core::seal::{self, ChunkedDecrypt, Expected, Inflate, Opened, SealError, SealKey};
use ota_core::segment::{self, Joiner, Segment, Segmenter, Segments};

/// The size of a block passed between the threads.
pub const BLOCK: usize = 128 * 1024;

/// How many blocks the queue holds.
pub const DEPTH: usize = 4;

/// The name of the threads that inflate: a panic on one is caught and becomes the open's
/// error, so a host that keeps panics off its stderr (the C ABI) can recognise them.
pub const INFLATE_THREAD: &str = "ota-inflate";

/// How many threads the device pipeline should use here: 2 when the machine has two cores or
/// more, else 1.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

/// Opens a sealed artifact read in order from `source`, each 64 KiB chunk checked against
/// `chunks` before it is decrypted, the plaintext inflated into `out`: on two threads when
/// `threads` is 2 or more (a package with segments: this thread and `threads` inflating),
/// else as [`seal::open_chunked`].
pub fn open_chunked<R: Read, W: Write + Send>(
    mut source: R,
    key: &SealKey,
    chunks: &ChunkTable,
    expected: Expected,
    out: W,
    threads: usize,
) -> Result<(Opened, W), SealError> {
    if threads < 2 {
        return seal::open_chunked(source, key, chunks, expected, out);
    }
    let mut stage = ChunkedDecrypt::new(key, chunks.clone(), &expected);
    inflate_on(&expected, out, threads, |emit| {
        // Read a block at a time: it stays in this core's cache from the read's copy through
        // the hash and the decryption (1 MiB reads spent 3.7 times as long copying).
        let mut buf = vec![0u8; BLOCK];
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            stage.update(&buf[..n], &mut *emit)?;
        }
        emit(&stage.finish()?)
    })
}

/// Accepts chunks that arrived together, in any order (`(offset, bytes)` each), into
/// `staging`, as [`Download::accept`] does one by one: each checked against the signed table,
/// then stored and marked verified. With `threads` 2 or more a second thread checks chunks
/// too ([`Download::checker`]), handing them through a bounded queue to this one, which
/// stores them; hashing, the costly part, is shared between both. Returns what each chunk
/// did, in the order given: a bad chunk's error names it and leaves it missing.
pub fn stage(
    download: &mut Download,
    chunks: &[(u64, &[u8])],
    staging: &mut dyn Staging,
    threads: usize,
) -> Vec<Result<Accepted, DownloadError>> {
    if threads < 2 || chunks.len() < 2 {
        return chunks
            .iter()
            .map(|(offset, data)| download.accept(*offset, data, staging))
            .collect();
    }
    let check = download.checker();
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Result<Accepted, DownloadError>>> = vec![None; chunks.len()];
    let (tx, rx) = mpsc::sync_channel::<(usize, Result<CheckedChunk<'_>, DownloadError>)>(DEPTH);
    std::thread::scope(|s| {
        let (check, next) = (&check, &next);
        s.spawn(move || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((offset, data)) = chunks.get(i) else {
                    break;
                };
                if tx.send((i, check.check(*offset, data))).is_err() {
                    break;
                }
            }
        });
        let mut store = |i: usize, checked: Result<CheckedChunk<'_>, DownloadError>| {
            results[i] = Some(checked.and_then(|c| download.store(c, staging)));
        };
        loop {
            while let Ok((i, checked)) = rx.try_recv() {
                store(i, checked);
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((offset, data)) = chunks.get(i) else {
                break;
            };
            store(i, check.check(*offset, data));
        }
        // The rest the other thread checked; the queue ends when it does.
        for (i, checked) in rx {
            store(i, checked);
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(DownloadError::Staging {
                    message: "the checking thread stopped".into(),
                })
            })
        })
        .collect()
}

/// Installs a download whose chunks are all verified and staged into `slot`: each chunk is
/// read back from `staging` and decrypted, as [`ota_core::download::Install`] does, on two
/// threads when `threads` is 2 or more. A chunk `download` accepted in this session is not
/// hashed again; one that came back from storage after a restart is checked again first,
/// and if its stored copy no longer matches it is marked missing in `download`.
pub fn install<W: Write + Send>(
    package: &VerifiedPackage,
    key: &SealKey,
    download: &mut Download,
    staging: &mut dyn Staging,
    slot: W,
    threads: usize,
) -> Result<(Opened, W), DownloadError> {
    let mut stage = StagedDecrypt::new(package, key);
    let expected = package.expected();
    let (opened, mut slot) = if threads < 2 {
        let mut inflate = Inflate::new(&expected, slot);
        stage.advance(download, staging, |gz| inflate.write(gz))?;
        inflate.write(&stage.finish()?)?;
        inflate.finish()?
    } else {
        inflate_on(
            &expected,
            slot,
            threads,
            |emit| -> Result<(), DownloadError> {
                stage.advance(download, staging, &mut *emit)?;
                Ok(emit(&stage.finish()?)?)
            },
        )?
    };
    slot.flush().map_err(|e| DownloadError::Seal(e.into()))?;
    Ok((opened, slot))
}

/// What the first stage hands the second.
type Emit<'a> = dyn FnMut(&[u8]) -> Result<(), SealError> + 'a;

/// Runs `first` on this thread and inflates the gzip stream it emits on the others: in
/// segments on `threads` workers when the package declares them, else on one.
fn inflate_on<W, E>(
    expected: &Expected,
    out: W,
    threads: usize,
    first: impl FnOnce(&mut Emit<'_>) -> Result<(), E>,
) -> Result<(Opened, W), E>
where
    W: Write + Send,
    E: From<SealError>,
{
    match &expected.segments {
        // Segments that do not fit what is expected (a bound below the signed size) are not
        // used: the stream inflates in one piece, with that path's checks.
        Some(segments)
            if segments
                .fault(expected.plaintext_bound(), expected.size_bytes)
                .is_none() =>
        {
            apart(segments, expected, out, threads, first)
        }
        _ => two_threads(Inflate::new(expected, out), first),
    }
}

/// A segment's number and its compressed bytes (given back to be refilled), and its
/// plaintext or why it did not inflate.
type Inflated = (usize, Vec<u8>, Result<Vec<u8>, SealError>);

/// Runs `first` on this thread, cutting the gzip stream it emits into segments that
/// `threads` workers inflate apart, and writes their plaintext out in order on this thread.
fn apart<W, E>(
    segments: &Segments,
    expected: &Expected,
    out: W,
    threads: usize,
    first: impl FnOnce(&mut Emit<'_>) -> Result<(), E>,
) -> Result<(Opened, W), E>
where
    W: Write,
    E: From<SealError>,
{
    let mut cut = Segmenter::new(segments, expected.plaintext_bound());
    let (job_tx, job_rx) = mpsc::sync_channel::<Segment>(threads);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Inflated>();
    // Plaintext buffers written out, for the workers to fill again.
    let written = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        // A thread the system refuses (a thread limit, no memory) is an error, not a panic:
        // the segments go to the workers that did start, and with none the open fails.
        let mut started = 0;
        let mut refused = None;
        for _ in 0..threads {
            let (jobs, done, written) = (&job_rx, done_tx.clone(), &written);
            match std::thread::Builder::new()
                .name(INFLATE_THREAD.into())
                .spawn_scoped(s, move || inflate_segments(jobs, &done, written))
            {
                Ok(_) => started += 1,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        drop(done_tx);
        if let (0, Some(e)) = (started, refused) {
            return Err(not_started(e).into());
        }
        let mut flow = Flow {
            jobs: Some(job_tx),
            done: done_rx,
            ready: BTreeMap::new(),
            in_flight: 0,
            limit: 2 * started + 1,
            join: Joiner::new(expected, out),
            spare: Vec::new(),
            written: &written,
        };
        first(&mut |gz: &[u8]| {
            for buf in flow.spare.drain(..) {
                cut.recycle(buf);
            }
            cut.push(gz, |segment| flow.send(segment))
        })?;
        let (last, trailer) = cut.finish()?;
        flow.send(last)?;
        // No more segments: the workers end once they have inflated what they hold.
        flow.jobs = None;
        while flow.in_flight > 0 {
            flow.take_one()?;
        }
        Ok(flow.join.finish(trailer)?)
    })
}

/// The error of a thread the system would not start.
fn not_started(e: io::Error) -> SealError {
    SealError::Io {
        message: format!("starting an inflating thread: {e}"),
    }
}

/// Inflates segments until the queue closes, each into a buffer written out before, or a
/// new one.
fn inflate_segments(
    jobs: &Mutex<mpsc::Receiver<Segment>>,
    done: &mpsc::Sender<Inflated>,
    written: &Mutex<Vec<Vec<u8>>>,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let mut plain = written
            .lock()
            .ok()
            .and_then(|mut w| w.pop())
            .unwrap_or_default();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            segment::inflate(&job, &mut plain)
        }))
        .unwrap_or_else(|_| {
            Err(SealError::Io {
                message: "an inflating thread panicked".into(),
            })
        });
        if done.send((job.index, job.data, r.map(|()| plain))).is_err() {
            return;
        }
    }
}

/// The segments between this thread and the workers, and their plaintext on its way out.
struct Flow<'a, W: Write> {
    jobs: Option<mpsc::SyncSender<Segment>>,
    done: mpsc::Receiver<Inflated>,
    /// Inflated segments waiting for one before them.
    ready: BTreeMap<usize, Vec<u8>>,
    /// Segments handed out and not yet written.
    in_flight: usize,
    limit: usize,
    join: Joiner<W>,
    /// Compressed buffers to refill.
    spare: Vec<Vec<u8>>,
    /// Plaintext buffers written out, shared with the workers.
    written: &'a Mutex<Vec<Vec<u8>>>,
}

impl<W: Write> Flow<'_, W> {
    /// Hands a segment to the workers, once fewer than the limit are in flight.
    fn send(&mut self, segment: Segment) -> Result<(), SealError> {
        while self.in_flight >= self.limit {
            self.take_one()?;
        }
        let stopped = || SealError::Io {
            message: "the inflating threads stopped".into(),
        };
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(segment)
            .map_err(|_| stopped())?;
        self.in_flight += 1;
        Ok(())
    }

    /// Waits for one inflated segment, and writes out every one that is next in order.
    fn take_one(&mut self) -> Result<(), SealError> {
        let (index, data, plain) = self.done.recv().map_err(|_| SealError::Io {
            message: "the inflating threads stopped".into(),
        })?;
        self.spare.push(data);
        self.ready.insert(index, plain?);
        while let Some(plain) = self.ready.remove(&self.join.next()) {
            self.join.write(self.join.next(), &plain)?;
            self.in_flight -= 1;
            if let Ok(mut w) = self.written.lock() {
                w.push(plain);
            }
        }
        Ok(())
    }
}

/// Runs `first` on this thread, passing its gzip stream through a bounded queue to `inflate`
/// on a second thread. The first error wins; the inflater's, if the first stage stopped
/// only because the inflater had.
fn two_threads<W, E>(
    mut inflate: Inflate<W>,
    first: impl FnOnce(&mut Emit<'_>) -> Result<(), E>,
) -> Result<(Opened, W), E>
where
    W: Write + Send,
    E: From<SealError>,
{
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let second = std::thread::Builder::new()
            .name(INFLATE_THREAD.into())
            .spawn_scoped(s, move || {
                for block in full_rx {
                    inflate.write(&block)?;
                    // The first stage may have finished; a buffer it will not reuse is dropped.
                    let _ = empty_tx.send(block);
                }
                inflate.finish()
            })
            .map_err(not_started)?;
        let mut block = Vec::with_capacity(BLOCK);
        let mut stopped = false;
        let mut send = |block: &mut Vec<u8>| {
            let next = empty_rx
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(BLOCK));
            if full_tx.send(std::mem::replace(block, next)).is_err() {
                stopped = true;
                return Err(SealError::Io {
                    message: "the inflating thread stopped".into(),
                });
            }
            block.clear();
            Ok(())
        };
        let result = first(&mut |mut gz: &[u8]| {
            while !gz.is_empty() {
                let take = (BLOCK - block.len()).min(gz.len());
                block.extend_from_slice(&gz[..take]);
                gz = &gz[take..];
                if block.len() == BLOCK {
                    send(&mut block)?;
                }
            }
            Ok(())
        });
        let result = match result {
            Ok(()) if !block.is_empty() => send(&mut block).map_err(E::from),
            other => other,
        };
        drop(full_tx);
        let second = second.join().unwrap_or_else(|_| {
            Err(SealError::Io {
                message: "the inflating thread panicked".into(),
            })
        });
        match (result, second) {
            (Ok(()), second) => second.map_err(E::from),
            (Err(_), Err(e)) if stopped => Err(E::from(e)),
            (Err(e), _) => Err(e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_threads_is_one_or_two() {
        assert!((1..=2).contains(&default_threads()));
    }
}
