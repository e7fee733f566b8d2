//! Checking a whole artifact against its signed chunk table on several threads: the driver
//! for the core's [`ChunkTable::check_stream`].
//!
//! The caller's thread reads the source, a batch of [`BATCH`] chunks at a time, and the
//! workers hash the chunks of each batch against the table. Batches are recycled through a
//! bounded queue, so memory stays at a few batches whatever the artifact's size. The result
//! is exactly the core's: the same bytes read, the same size, the same bad chunks (sorted),
//! reading stopped as soon as the source is longer than the signed size.

use std::io::{self, Read};
use std::sync::{Mutex, mpsc};

use ota_core::chunk::{CHUNK_SIZE, ChunkError, ChunkTable, StreamCheck, read_chunk};

/// How many chunks a batch holds (1 MiB).
pub const BATCH: usize = 16;

const CHUNK: usize = CHUNK_SIZE as usize;

/// A batch: its first chunk's index, its bytes and the lengths of its chunks.
struct Batch {
    first: usize,
    bytes: Vec<u8>,
    lens: Vec<usize>,
}

/// Reads a whole artifact of signed size `size` from `source` and checks every chunk against
/// `table`: on `threads` workers when `threads` is 2 or more, else as
/// [`ChunkTable::check_stream`] on the caller's thread. Either way the answer is the same.
pub fn check_stream<R: Read>(
    table: &ChunkTable,
    size: u64,
    mut source: R,
    threads: usize,
) -> io::Result<StreamCheck> {
    if threads < 2 {
        return table.check_stream(size, source);
    }
    let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(threads);
    let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
    let full_rx = Mutex::new(full_rx);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (full_rx, empty_tx) = (&full_rx, empty_tx.clone());
                scope.spawn(move || {
                    let mut bad = Vec::new();
                    loop {
                        // The lock is held only to take the next batch.
                        let next = full_rx.lock().map_or(None, |rx| rx.recv().ok());
                        let Some(batch) = next else { break };
                        let mut at = 0;
                        for (i, &len) in batch.lens.iter().enumerate() {
                            let index = batch.first + i;
                            match table.verify(index, size, &batch.bytes[at..at + len]) {
                                Ok(_) => {}
                                // The table could not be read (from the host's storage): an
                                // error, as on one thread, not a chunk found bad. This worker
                                // stops; the reader finds the queue closed.
                                Err(ChunkError::Table { source, .. }) => {
                                    return Err(io::Error::other(source));
                                }
                                Err(_) => bad.push(index),
                            }
                            at += len;
                        }
                        // The reader may have finished: a batch it will not reuse is dropped.
                        let _ = empty_tx.send(batch);
                    }
                    Ok(bad)
                })
            })
            .collect();
        drop(empty_tx);
        let read = read_batches(size, &mut source, &full_tx, &empty_rx, threads);
        drop(full_tx);
        let mut bad: Vec<usize> = Vec::new();
        let mut lost = false;
        let mut table_error = None;
        for worker in workers {
            // A worker only verifies chunks, with nothing that can panic on any input; if one
            // did, the chunks it held were not checked, so the check fails rather than call
            // them good.
            match worker.join() {
                Ok(Ok(found)) => bad.extend(found),
                Ok(Err(e)) => table_error = table_error.or(Some(e)),
                Err(_) => lost = true,
            }
        }
        if lost {
            return Err(io::Error::other(
                "a checking thread panicked: the artifact was not checked whole",
            ));
        }
        if let Some(e) = table_error {
            return Err(e);
        }
        let (size_bytes, overflow) = read?;
        bad.extend(overflow);
        bad.sort_unstable();
        Ok(StreamCheck { size_bytes, bad })
    })
}

/// The reader's side: fills batches chunk by chunk and queues them. Returns the bytes read
/// and the chunk that carried bytes past the signed size, if any (it is not verified).
fn read_batches<R: Read>(
    size: u64,
    source: &mut R,
    full: &mpsc::SyncSender<Batch>,
    empty: &mpsc::Receiver<Batch>,
    threads: usize,
) -> io::Result<(u64, Option<usize>)> {
    let mut made = 0;
    let mut total = 0u64;
    let mut index = 0usize;
    loop {
        let mut batch = match empty.try_recv() {
            Ok(b) => b,
            Err(_) if made < 2 * threads + 1 => {
                made += 1;
                Batch {
                    first: 0,
                    bytes: vec![0; BATCH * CHUNK],
                    lens: Vec::with_capacity(BATCH),
                }
            }
            Err(_) => match empty.recv() {
                Ok(b) => b,
                Err(_) => return Ok((total, None)), // no worker is left
            },
        };
        batch.first = index;
        batch.lens.clear();
        let mut at = 0;
        let mut end = false;
        let mut overflow = None;
        while batch.lens.len() < BATCH {
            let n = read_chunk(source, &mut batch.bytes[at..at + CHUNK])?;
            if n == 0 {
                end = true;
                break;
            }
            total += n as u64;
            if total > size {
                overflow = Some(index); // it carries bytes past the signed size
                end = true;
                break;
            }
            batch.lens.push(n);
            at += n;
            index += 1;
            if n < CHUNK {
                end = true;
                break;
            }
        }
        if !batch.lens.is_empty() && full.send(batch).is_err() {
            return Ok((total, overflow)); // no worker is left
        }
        if end {
            return Ok((total, overflow));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_core::chunk::ChunkHasher;

    /// A reader that hands out at most `step` bytes per call, to split chunks across reads.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn table_of(data: &[u8]) -> ChunkTable {
        let mut h = ChunkHasher::new();
        h.update(data);
        h.finish().chunks
    }

    #[test]
    fn every_thread_count_finds_what_the_core_finds() {
        let size = 40 * CHUNK + 12_345;
        let data: Vec<u8> = (0..size).map(|i| (i * 31 + i / 977) as u8).collect();
        let table = table_of(&data);
        let mut flipped = data.clone();
        for at in [5, 17 * CHUNK + 3, 39 * CHUNK, size - 1] {
            flipped[at] ^= 0x40;
        }
        let long = [data.as_slice(), &vec![7u8; 3 * CHUNK]].concat();
        let exact_past = [data.as_slice(), b"x"].concat();
        let cases: [&[u8]; 6] = [
            &data,
            &flipped,
            &data[..size - 1],
            &data[..20 * CHUNK],
            &long,
            &exact_past,
        ];
        for (n, case) in cases.iter().enumerate() {
            let want = table.check_stream(size as u64, *case).unwrap();
            for threads in 1..=4 {
                for step in [usize::MAX, 1000] {
                    let got =
                        check_stream(&table, size as u64, Trickle(case, step), threads).unwrap();
                    assert_eq!(got, want, "case {n}, {threads} threads, reads of {step}");
                }
            }
        }
        let got = check_stream(&table, size as u64, flipped.as_slice(), 2).unwrap();
        assert_eq!(got.bad, vec![0, 17, 39, 40]);
    }

    #[test]
    fn an_endless_source_ends_past_the_signed_size() {
        let data = vec![1u8; 3 * CHUNK];
        let table = table_of(&data);
        let got = check_stream(&table, data.len() as u64, io::repeat(1), 2).unwrap();
        assert_eq!(got.bad, vec![3]);
        assert!(got.size_bytes > data.len() as u64 && !got.matches(data.len() as u64));
    }

    /// A chunk table kept in storage that changed there is an error on any number of threads,
    /// as on one: the artifact is not called corrupt for it.
    #[test]
    fn a_stored_table_that_changed_is_an_error_not_bad_chunks() {
        use ota_core::chunk::MemoryTableStore;
        use ota_core::seal::{self, SealKey};
        use ota_core::sign::{self, SigningKey};
        use ota_core::{Limits, Package};
        use std::sync::Arc;
        // Incompressible, so the artifact spans two blocks of digests (80 chunks).
        let plain = ota_sim::noise(80 * CHUNK, 7);
        let key = SealKey::from_bytes([7; 32]);
        let (artifact, sealed) = seal::seal_bytes(&key, [1; 16], &plain).unwrap();
        let mut package = Package::from_json(
            br#"{"type":"fw","name":"t","version":"1.0.0","artifact_uri":"s3://b/x","sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","size_bytes":1}"#,
        )
        .unwrap();
        package.set_sealed(&sealed);
        let signer = SigningKey::from_secret([1; 32]);
        let envelope = sign::sign(&package, &[&signer]).unwrap().to_json();
        let trusted = [signer.public_key()].into_iter().collect();
        let store = Arc::new(MemoryTableStore::default());
        let v = sign::verify_reader(
            io::Cursor::new(envelope),
            &trusted,
            1,
            &Limits::DEFAULT,
            Box::new(store.clone()),
        )
        .unwrap();
        let size = v.package().size_bytes;
        // A digest of the second block changed before it is read (a block read and checked
        // is kept as it was).
        assert!(v.chunks().len() > ota_core::chunk::BLOCK + 2);
        store.corrupt((ota_core::chunk::BLOCK + 2) * 32 + 3);
        for threads in 1..=3 {
            let e = check_stream(v.chunks(), size, artifact.as_slice(), threads).unwrap_err();
            assert!(
                e.to_string().contains("changed since"),
                "{threads} threads: {e}"
            );
        }
    }

    #[test]
    fn a_read_error_is_returned() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let table = table_of(&[0u8; 100]);
        let e = check_stream(&table, 100, Failing, 2).unwrap_err();
        assert_eq!(e.to_string(), "disk on fire");
    }
}
