//! Refusing a duplicate device id in a fleet of any size, in bounded memory.
//!
//! Each id is kept as a 128-bit digest (the first half of its SHA-256) beside its index in the
//! file. The digests are gathered in runs of [`RUN`], each sorted and written to a temporary
//! file when full; the ids themselves go, in file order, to another temporary file. At the end
//! the sorted runs are merged, reading each through a slice of a fixed budget
//! ([`MERGE_BUDGET`]), and two equal digests side by side are a duplicate: the one reported is
//! the first in file order that repeats an earlier id, named from the file of ids, as a
//! fleet held whole would report it. The memory is one run and the merge's budget, whatever
//! the fleet's size; the disk is 24 bytes and the id per device.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};

use sha2::{Digest, Sha256};

/// Digests sorted in memory before a run is written out.
pub const RUN: usize = 1 << 15;
/// The bytes the merge reads ahead, shared by every run.
const MERGE_BUDGET: usize = 1 << 20;
/// The bytes of a record on disk: the digest, then the index (little-endian).
const RECORD: usize = 24;

/// The digest an id is compared by.
pub fn digest(id: &str) -> u128 {
    let d = Sha256::digest(id.as_bytes());
    let mut half = [0u8; 16];
    half.copy_from_slice(&d[..16]);
    u128::from_le_bytes(half)
}

/// One device: its id's digest and its index in the file; ordered by digest, then index.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Record {
    digest: u128,
    index: u64,
}

/// The ids seen so far, partly on disk.
pub struct Unique {
    run: Vec<Record>,
    run_len: usize,
    /// The sorted runs, one after the other.
    runs: BufWriter<File>,
    /// The length of each run written.
    lengths: Vec<usize>,
    /// Every id, one a line, in file order.
    ids: BufWriter<File>,
}

/// A duplicate id: the index that repeats an earlier one, and the id.
#[derive(Debug, PartialEq, Eq)]
pub struct Duplicate {
    /// The index (in the file) of the repeat.
    pub index: u64,
    /// The id.
    pub id: String,
}

impl Unique {
    /// An empty set, with its temporary files.
    pub fn new() -> io::Result<Unique> {
        Unique::with_run(RUN)
    }

    /// An empty set that writes a run every `run_len` ids.
    pub fn with_run(run_len: usize) -> io::Result<Unique> {
        Ok(Unique {
            run: Vec::with_capacity(run_len),
            run_len,
            runs: BufWriter::with_capacity(1 << 16, tempfile::tempfile()?),
            lengths: Vec::new(),
            ids: BufWriter::with_capacity(1 << 16, tempfile::tempfile()?),
        })
    }

    /// Adds devices from `index` on: their ids, each followed by a newline, and their
    /// [`digest`]s.
    pub fn push(&mut self, index: u64, ids: &[u8], digests: &[u128]) -> io::Result<()> {
        self.ids.write_all(ids)?;
        for (i, &digest) in digests.iter().enumerate() {
            self.run.push(Record {
                digest,
                index: index + i as u64,
            });
            if self.run.len() == self.run_len {
                self.spill()?;
            }
        }
        Ok(())
    }

    /// Sorts the run in memory and writes it out.
    fn spill(&mut self) -> io::Result<()> {
        if self.run.is_empty() {
            return Ok(());
        }
        self.run.sort_unstable();
        for r in &self.run {
            self.runs.write_all(&r.digest.to_le_bytes())?;
            self.runs.write_all(&r.index.to_le_bytes())?;
        }
        self.lengths.push(self.run.len());
        self.run.clear();
        Ok(())
    }

    /// The first id (in file order) that repeats an earlier one, if any.
    pub fn finish(mut self) -> io::Result<Option<Duplicate>> {
        self.spill()?;
        let runs = self
            .runs
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        let each = (MERGE_BUDGET / self.lengths.len().max(1) / RECORD).max(64) * RECORD;
        let mut readers = Vec::with_capacity(self.lengths.len());
        let mut offset = 0u64;
        for &n in &self.lengths {
            readers.push(Run {
                file: &runs,
                next: offset,
                end: offset + (n * RECORD) as u64,
                buf: Vec::with_capacity(each),
                at: 0,
            });
            offset += (n * RECORD) as u64;
        }
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(rec) = r.next()? {
                heap.push(Reverse((rec, i)));
            }
        }
        let mut last: Option<Record> = None;
        let mut first_repeat: Option<u64> = None;
        while let Some(Reverse((rec, i))) = heap.pop() {
            if let Some(prev) = last
                && prev.digest == rec.digest
            {
                first_repeat = Some(first_repeat.map_or(rec.index, |f| f.min(rec.index)));
            }
            last = Some(rec);
            if let Some(next) = readers[i].next()? {
                heap.push(Reverse((next, i)));
            }
        }
        let Some(index) = first_repeat else {
            return Ok(None);
        };
        let ids = self
            .ids
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        let id = id_at(ids, index)?;
        Ok(Some(Duplicate { index, id }))
    }
}

/// The id on line `index` of the file of ids.
fn id_at(mut ids: File, index: u64) -> io::Result<String> {
    use std::io::Seek;
    ids.seek(io::SeekFrom::Start(0))?;
    let mut lines = BufReader::new(ids).lines();
    let mut n = 0u64;
    while let Some(line) = lines.next().transpose()? {
        if n == index {
            return Ok(line);
        }
        n += 1;
    }
    Err(io::Error::other("the file of ids ended early"))
}

/// One sorted run of the file, read ahead through its own buffer.
struct Run<'a> {
    file: &'a File,
    /// The file offset of the next bytes to read, and the run's end.
    next: u64,
    end: u64,
    buf: Vec<u8>,
    /// The next record's place in `buf`.
    at: usize,
}

impl Run<'_> {
    fn next(&mut self) -> io::Result<Option<Record>> {
        if self.at == self.buf.len() {
            let n = (self.buf.capacity() as u64).min(self.end - self.next) as usize;
            if n == 0 {
                return Ok(None);
            }
            self.buf.resize(n, 0);
            read_exact_at(self.file, &mut self.buf, self.next)?;
            self.next += n as u64;
            self.at = 0;
        }
        let r = &self.buf[self.at..self.at + RECORD];
        self.at += RECORD;
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&r[..16]);
        let mut index = [0u8; 8];
        index.copy_from_slice(&r[16..]);
        Ok(Some(Record {
            digest: u128::from_le_bytes(digest),
            index: u64::from_le_bytes(index),
        }))
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ids: &[&str], run: usize) -> Option<Duplicate> {
        let mut u = Unique::with_run(run).unwrap();
        for (i, id) in ids.iter().enumerate() {
            u.push(i as u64, format!("{id}\n").as_bytes(), &[digest(id)])
                .unwrap();
        }
        u.finish().unwrap()
    }

    #[test]
    fn a_duplicate_found_across_spilled_runs_is_named_with_its_index() {
        // Runs of 2: "a" in the first run, its repeat in the third.
        let ids = ["a", "b", "c", "d", "a", "e", "f"];
        assert_eq!(
            check(&ids, 2),
            Some(Duplicate {
                index: 4,
                id: "a".into()
            })
        );
    }

    #[test]
    fn the_first_repeat_in_file_order_is_reported_whatever_the_runs() {
        // "d" repeats at 5 and "b" at 6: 5 is reported, with any run length.
        let ids = ["b", "d", "x", "y", "z", "d", "b", "d"];
        for run in 1..=ids.len() + 1 {
            assert_eq!(
                check(&ids, run),
                Some(Duplicate {
                    index: 5,
                    id: "d".into()
                }),
                "runs of {run}"
            );
        }
    }

    #[test]
    fn distinct_ids_over_many_runs_have_no_duplicate() {
        let ids: Vec<String> = (0..1000).map(|i| format!("dev-{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(check(&refs, 7), None);
        assert_eq!(check(&[], 7), None);
    }
}
