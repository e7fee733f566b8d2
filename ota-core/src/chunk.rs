//! The chunk table: the stored artifact cut into 64 KiB chunks, each with its SHA-256.
//!
//! The table is part of the signed package, so a device can verify each chunk the moment it
//! arrives, in any order. [`VerifiedBytes`] is the only input the decryptor
//! ([`crate::open::Opener`]) takes, and it can only be made by checking bytes against a
//! digest: [`ChunkTable::verify`] for a chunk, or the whole-file check of
//! [`crate::open::open_checked`].

use std::io;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::digest::Sha256Digest;
use crate::status::Status;

mod digests;

pub(crate) use digests::into_store;
pub use digests::{BLOCK, ChunkDigests, MemoryTableStore, TableReadError, TableStore};

/// The size of every chunk but the last: 64 KiB.
pub const CHUNK_SIZE: u32 = 64 * 1024;

/// The SHA-256 of every 64 KiB chunk of an artifact; the last chunk may be shorter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkTable {
    /// The chunk size in bytes (always [`CHUNK_SIZE`]).
    pub chunk_size: u32,
    /// The digest of each chunk, in order. Shared, not copied: the openers, downloads and
    /// installs of one package all hold the same table, in memory or in the host's storage.
    pub sha256: ChunkDigests,
}

/// Bytes that were checked against a signed digest, with their offset in the artifact.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedBytes<'a> {
    offset: u64,
    data: &'a [u8],
}

impl<'a> VerifiedBytes<'a> {
    /// Only verifiers in this crate make these.
    pub(crate) fn new(offset: u64, data: &'a [u8]) -> Self {
        VerifiedBytes { offset, data }
    }

    /// The offset of the first byte in the artifact.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// A chunk that does not match its table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The chunk's bytes do not hash to the table's digest.
    #[error("chunk {index} does not match its signed digest")]
    DigestMismatch {
        /// The chunk's index.
        index: usize,
    },
    /// The chunk has the wrong length for its index.
    #[error("chunk {index} is {found} bytes, expected {expected}")]
    WrongLength {
        /// The chunk's index.
        index: usize,
        /// The length the table implies.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// The chunk's digest could not be read back from the host's storage.
    #[error("chunk {index}: {source}")]
    Table {
        /// The chunk's index.
        index: usize,
        /// What went wrong.
        source: TableReadError,
    },
    /// There is no chunk with this index.
    #[error("chunk {index} is out of range: the artifact has {count} chunks")]
    OutOfRange {
        /// The index given.
        index: usize,
        /// How many chunks there are.
        count: usize,
    },
}

impl ChunkError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            ChunkError::DigestMismatch { .. } => Status::ChunkDigestMismatch,
            ChunkError::Table { .. } => Status::Io,
            ChunkError::WrongLength { .. } | ChunkError::OutOfRange { .. } => {
                Status::ChunkOutOfRange
            }
        }
    }
}

impl ChunkTable {
    /// How many chunks an artifact of `size` bytes has.
    pub fn count_for(size: u64) -> usize {
        usize::try_from(size.div_ceil(u64::from(CHUNK_SIZE))).unwrap_or(usize::MAX)
    }

    /// The number of chunks.
    pub fn len(&self) -> usize {
        self.sha256.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.sha256.is_empty()
    }

    /// The byte range of chunk `index` in an artifact of `size` bytes.
    pub fn range(index: usize, size: u64) -> Range<u64> {
        let start = (index as u64).saturating_mul(u64::from(CHUNK_SIZE));
        let end = start.saturating_add(u64::from(CHUNK_SIZE)).min(size);
        start.min(size)..end
    }

    /// Checks chunk `index` of an artifact of `size` bytes: its length, then its digest.
    pub fn verify<'a>(
        &self,
        index: usize,
        size: u64,
        data: &'a [u8],
    ) -> Result<VerifiedBytes<'a>, ChunkError> {
        let found = self
            .sha256
            .get(index)
            .map_err(|source| ChunkError::Table { index, source })?;
        let Some(expected) = found else {
            return Err(ChunkError::OutOfRange {
                index,
                count: self.len(),
            });
        };
        let range = Self::range(index, size);
        let len = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
        if data.len() != len {
            return Err(ChunkError::WrongLength {
                index,
                expected: len,
                found: data.len(),
            });
        }
        if Sha256Digest::of(data) != expected {
            return Err(ChunkError::DigestMismatch { index });
        }
        Ok(VerifiedBytes::new(range.start, data))
    }
}

/// What [`ChunkTable::check_stream`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCheck {
    /// How many bytes the stream held.
    pub size_bytes: u64,
    /// The indices of the chunks that do not match the table (or are past its end).
    pub bad: Vec<usize>,
}

impl StreamCheck {
    /// Whether the stream is exactly the signed artifact of `size` bytes.
    pub fn matches(&self, size: u64) -> bool {
        self.bad.is_empty() && self.size_bytes == size
    }
}

impl ChunkTable {
    /// Reads a whole artifact of signed size `size` from `source` and checks every chunk
    /// against the table in one pass, hashing each byte once (the table covers every byte,
    /// so the whole artifact is not hashed again). Every bad chunk is listed, not only the
    /// first. Memory is one chunk. Reading stops as soon as the source is longer than `size`
    /// (its `size_bytes` is then above `size`), so an endless source ends.
    pub fn check_stream<R: io::Read>(&self, size: u64, mut source: R) -> io::Result<StreamCheck> {
        let mut buf = vec![0u8; CHUNK_SIZE as usize];
        let mut check = StreamCheck {
            size_bytes: 0,
            bad: Vec::new(),
        };
        for index in 0.. {
            let n = read_chunk(&mut source, &mut buf)?;
            if n == 0 {
                break;
            }
            check.size_bytes += n as u64;
            if check.size_bytes > size {
                check.bad.push(index); // it carries bytes past the signed size
                break; // read no further
            }
            match self.verify(index, size, &buf[..n]) {
                Ok(_) => {}
                Err(ChunkError::Table { source, .. }) => return Err(io::Error::other(source)),
                Err(_) => check.bad.push(index),
            }
        }
        Ok(check)
    }
}

/// Reads into `buf` (one chunk's room) until it is full or `source` ends, retrying an
/// interrupted read; the bytes read. Below `buf.len()` only at the end of the source.
pub fn read_chunk<R: io::Read>(source: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match source.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Computes an artifact's SHA-256, size and chunk table from its bytes, in order, in one pass.
#[derive(Clone, Default)]
pub struct ChunkHasher {
    whole: Sha256,
    chunk: Sha256,
    in_chunk: u32,
    size: u64,
    table: Vec<Sha256Digest>,
}

/// What [`ChunkHasher`] computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// The SHA-256 of the whole artifact.
    pub sha256: Sha256Digest,
    /// Its size.
    pub size_bytes: u64,
    /// Its chunk table.
    pub chunks: ChunkTable,
}

impl ChunkHasher {
    /// An empty hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hashes the next bytes of the artifact.
    pub fn update(&mut self, mut data: &[u8]) {
        self.whole.update(data);
        self.size += data.len() as u64;
        while !data.is_empty() {
            let room = (CHUNK_SIZE - self.in_chunk) as usize;
            let take = room.min(data.len());
            self.chunk.update(&data[..take]);
            self.in_chunk += take as u32;
            data = &data[take..];
            if self.in_chunk == CHUNK_SIZE {
                let digest = std::mem::take(&mut self.chunk).finalize();
                self.table.push(Sha256Digest::from_bytes(digest.into()));
                self.in_chunk = 0;
            }
        }
    }

    /// The digests of everything hashed.
    pub fn finish(mut self) -> Digests {
        if self.in_chunk > 0 {
            self.table
                .push(Sha256Digest::from_bytes(self.chunk.finalize().into()));
        }
        Digests {
            sha256: Sha256Digest::from_bytes(self.whole.finalize().into()),
            size_bytes: self.size,
            chunks: ChunkTable {
                chunk_size: CHUNK_SIZE,
                sha256: self.table.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hasher_cuts_64_kib_chunks_and_a_short_last_one() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 1000) as u8).collect();
        let mut h = ChunkHasher::new();
        for piece in data.chunks(1000) {
            h.update(piece);
        }
        let d = h.finish();
        assert_eq!(d.size_bytes, 200_000);
        assert_eq!(d.sha256, Sha256Digest::of(&data));
        assert_eq!(d.chunks.len(), 4);
        assert_eq!(ChunkTable::count_for(200_000), 4);
        assert_eq!(ChunkTable::range(3, 200_000), 196_608..200_000);
        for i in 0..4 {
            let r = ChunkTable::range(i, 200_000);
            let part = &data[r.start as usize..r.end as usize];
            assert_eq!(
                d.chunks.sha256.get(i).unwrap(),
                Some(Sha256Digest::of(part))
            );
            assert_eq!(d.chunks.verify(i, 200_000, part).unwrap().offset(), r.start);
        }
        assert!(matches!(
            d.chunks.verify(1, 200_000, &data[..65536]),
            Err(ChunkError::DigestMismatch { index: 1 })
        ));
        assert!(matches!(
            d.chunks.verify(3, 200_000, &data[..100]),
            Err(ChunkError::WrongLength { .. })
        ));
        assert!(matches!(
            d.chunks.verify(4, 200_000, &[]),
            Err(ChunkError::OutOfRange { .. })
        ));
        // An exact multiple has no short chunk; an empty artifact has none at all.
        let mut h = ChunkHasher::new();
        h.update(&data[..131_072]);
        assert_eq!(h.finish().chunks.len(), 2);
        assert_eq!(ChunkHasher::new().finish().chunks.len(), 0);
    }

    #[test]
    fn a_stream_check_lists_every_bad_chunk_and_the_size() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 13 + i / 999) as u8).collect();
        let mut h = ChunkHasher::new();
        h.update(&data);
        let table = h.finish().chunks;
        let check = table.check_stream(200_000, data.as_slice()).unwrap();
        assert!(check.matches(200_000));
        let mut bad = data.clone();
        bad[10] ^= 1;
        bad[140_000] ^= 1;
        let check = table.check_stream(200_000, bad.as_slice()).unwrap();
        assert_eq!(check.bad, vec![0, 2]);
        assert!(!check.matches(200_000));
        // Short: the last chunk is the wrong length; long: a chunk past the table.
        let check = table.check_stream(200_000, &data[..199_999]).unwrap();
        assert_eq!((check.size_bytes, check.bad), (199_999, vec![3]));
        let long = [data.as_slice(), b"x"].concat();
        let check = table.check_stream(200_000, long.as_slice()).unwrap();
        assert_eq!((check.size_bytes, check.bad), (200_001, vec![3]));
    }
}
