//! Sealing on several threads: the core's [`Sealer`] takes blocks compressed elsewhere
//! ([`Sealer::push_block`]), and [`seal_parallel`] compresses them on worker threads while
//! the calling thread reads the input, encrypts and hashes. The artifact is byte for byte the
//! one a single-threaded [`Sealer`] makes of the same input, key and IV, whatever the thread
//! count (see [`ota_core::deflate`]).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use ota_core::deflate;
use ota_core::seal::{SealError, Sealed, Sealer};

/// One block to compress: its index, its plaintext, and its dictionary.
struct Job {
    index: u64,
    plain: Arc<Vec<u8>>,
    dictionary: Vec<u8>,
}

/// A compressed block, or why it could not be.
type Done = (u64, Arc<Vec<u8>>, io::Result<Vec<u8>>);

/// Seals everything `input` gives into `sealer` and finishes it, compressing on `threads`
/// worker threads (1 or less: on the calling thread, through `Write`). Memory stays bounded:
/// at most `2 × threads + 1` blocks of [`deflate::BLOCK`] bytes are in flight.
pub fn seal_parallel<R: Read, W: Write>(
    mut sealer: Sealer<W>,
    mut input: R,
    threads: usize,
) -> Result<(Sealed, W), SealError> {
    if threads <= 1 {
        io::copy(&mut input, &mut sealer)?;
        return sealer.finish();
    }
    std::thread::scope(|scope| {
        let (job_tx, job_rx) = sync_channel::<Job>(threads);
        let job_rx = Arc::new(std::sync::Mutex::new(job_rx));
        let (done_tx, done_rx) = sync_channel::<Done>(threads * 2);
        for _ in 0..threads {
            let jobs = Arc::clone(&job_rx);
            let done = done_tx.clone();
            scope.spawn(move || worker(&jobs, &done));
        }
        drop(done_tx);
        let result = drive(&mut sealer, &mut input, threads, job_tx, &done_rx);
        // The workers end when the job channel closes (`drive` dropped its sender); drain
        // what they still send so none blocks.
        while done_rx.recv().is_ok() {}
        result
    })?;
    sealer.finish()
}

/// Compresses jobs until the channel closes.
fn worker(jobs: &std::sync::Mutex<Receiver<Job>>, done: &SyncSender<Done>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let mut out = Vec::with_capacity(job.plain.len() / 2 + 64);
        let r = deflate::compress_block(&job.dictionary, &job.plain, &mut out).map(|()| out);
        if done.send((job.index, job.plain, r)).is_err() {
            return;
        }
    }
}

/// Reads blocks and hands them out, and pushes compressed blocks into the sealer in order.
fn drive<R: Read, W: Write>(
    sealer: &mut Sealer<W>,
    input: &mut R,
    threads: usize,
    jobs: SyncSender<Job>,
    done: &Receiver<Done>,
) -> Result<(), SealError> {
    let mut jobs = Some(jobs);
    let mut next_read = 0u64;
    let mut next_push = 0u64;
    let mut ready: BTreeMap<u64, (Arc<Vec<u8>>, Vec<u8>)> = BTreeMap::new();
    let mut dictionary: Vec<u8> = Vec::new();
    let mut eof = false;
    loop {
        // Keep the workers busy, within the bound.
        while !eof && next_read - next_push < (threads as u64) * 2 {
            let block = read_block(input)?;
            eof = block.len() < deflate::BLOCK;
            if block.is_empty() {
                break;
            }
            let next_dictionary = deflate::dictionary(next_read + 1, &block).to_vec();
            let job = Job {
                index: next_read,
                plain: Arc::new(block),
                dictionary: std::mem::replace(&mut dictionary, next_dictionary),
            };
            next_read += 1;
            if let Some(tx) = &jobs
                && tx.send(job).is_err()
            {
                return Err(io::Error::other("a compression worker stopped").into());
            }
        }
        if eof {
            jobs = None; // no more jobs: the workers may end
        }
        if next_push == next_read {
            return Ok(());
        }
        let (index, plain, deflated) = done
            .recv()
            .map_err(|_| io::Error::other("the compression workers stopped"))?;
        ready.insert(index, (plain, deflated?));
        while let Some((plain, deflated)) = ready.remove(&next_push) {
            sealer.push_block(&plain, &deflated)?;
            next_push += 1;
        }
    }
}

/// Reads up to one block: shorter only at the end of the input.
fn read_block<R: Read>(input: &mut R) -> io::Result<Vec<u8>> {
    let mut block = Vec::with_capacity(deflate::BLOCK);
    input.take(deflate::BLOCK as u64).read_to_end(&mut block)?;
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_core::seal::SealKey;

    fn data(n: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Half compressible, half noise, so blocks differ in size.
                if (i / 4096) % 2 == 0 {
                    b"weights "[i % 8]
                } else {
                    x as u8
                }
            })
            .collect()
    }

    fn seal(plain: &[u8], threads: usize) -> (Sealed, Vec<u8>) {
        let key = SealKey::from_bytes([9; 32]);
        let sealer = Sealer::new(&key, [3; 16], Vec::new()).unwrap();
        seal_parallel(sealer, plain, threads).unwrap()
    }

    #[test]
    fn the_artifact_is_the_same_whatever_the_thread_count() {
        for n in [
            0,
            1,
            deflate::BLOCK - 1,
            deflate::BLOCK,
            3 * deflate::BLOCK + 5,
            11 * deflate::BLOCK,
        ] {
            let plain = data(n);
            let (one, bytes) = seal(&plain, 1);
            for threads in [2, 3, 8] {
                let (many, other) = seal(&plain, threads);
                assert_eq!(bytes, other, "{n} bytes on {threads} threads");
                assert_eq!(one, many);
            }
            let key = SealKey::from_bytes([9; 32]);
            let (core, sealed) = ota_core::seal::seal_bytes(&key, [3; 16], &plain).unwrap();
            assert_eq!(
                (sealed, core),
                (one, bytes),
                "{n} bytes: as the core's own sealer"
            );
        }
    }

    #[test]
    fn a_failing_input_fails_the_seal() {
        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = buf.len().min(self.0);
                self.0 -= n;
                Ok(n)
            }
        }
        let key = SealKey::from_bytes([9; 32]);
        let sealer = Sealer::new(&key, [3; 16], Vec::new()).unwrap();
        let e = seal_parallel(sealer, Broken(5 * deflate::BLOCK), 2).unwrap_err();
        assert!(e.to_string().contains("disk on fire"), "{e}");
    }
}
