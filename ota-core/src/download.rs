//! Downloading a verified package's artifact in 64 KiB chunks, in any order, and installing
//! it as the verified prefix grows.
//!
//! A [`Download`] is made from a [`VerifiedPackage`], so it holds the signed size, SHA-256 and
//! chunk table. [`Download::plan`] lists what is still missing, one chunk per request.
//! [`Download::accept`] checks a chunk against the table the moment it arrives: a bad chunk
//! is rejected with its index and stays missing, a duplicate is harmless, and misaligned,
//! oversize or out-of-range data is an error — as are bytes past the signed size ("endless
//! data") and chunks of another package ("mix-and-match": they cannot match this table).
//! Verified chunks go to the host's [`Staging`] storage.
//!
//! The download's state ([`DownloadState`]) is which chunks are verified: a bitmap, a few
//! hundred bytes for a gigabyte. [`Download::resume`] re-verifies every chunk it marks before
//! trusting it again, so a byte that flipped in storage is found and that chunk refetched.
//!
//! [`Install`] decrypts and decompresses the contiguous verified prefix into a slot writer
//! as it grows, so installing overlaps downloading. Each byte is hashed once on its way in:
//! a chunk this [`Download`] verified itself ([`Download::accept`], or [`ChunkCheck::check`]
//! on any thread then [`Download::store`]) is read back from staging and decrypted without
//! being hashed again ([`Download::is_verified_in_session`]), while a chunk that came back
//! from storage after a restart ([`Download::resume`]) is checked against the signed table
//! again as the install reads it, so no byte that changed in storage across a restart is
//! ever decrypted. Staging must not be written by anyone else while a download is
//! installed: bytes changed there in the same session are not hashed again, but gzip's
//! CRC-32 and the sizes still fail the install at the end, so the device stays on its
//! previous version. The size, the padding, gzip's CRC-32 and the plaintext's size are
//! confirmed at the end (the signed chunk table covers every byte, so the whole artifact is
//! not hashed again). Memory stays at one chunk plus the decoder's buffers whatever the
//! artifact's size, and the chunk table is shared with the package, not copied: in memory
//! (32 bytes a chunk), or in the host's storage for a package verified with
//! [`crate::sign::verify_reader`], when nothing grows with the artifact but two bitmaps of a
//! bit a chunk and a hash per 64 digests. Its two
//! stages, [`StagedDecrypt`] and [`Inflate`], can run on two threads (`ota_host::pipeline`).

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::chunk::{CHUNK_SIZE, ChunkError, ChunkTable, VerifiedBytes};
use crate::digest::Sha256Digest;
use crate::json::{self, Fault, ParseError, Validate};
use crate::limits::Limits;
use crate::seal::{Decrypt, Inflate, Opened, SealError, SealKey};
use crate::sign::{PackageId, VerifiedPackage};
use crate::status::Status;

/// Where verified chunks are kept until they are installed: the host's storage, addressed
/// by the chunk's offset in the artifact.
pub trait Staging {
    /// Stores `data` at `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Fills `buf` with the bytes stored at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl Staging for Vec<u8> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start + data.len();
        if self.len() < end {
            self.resize(end, 0);
        }
        self[start..end].copy_from_slice(data);
        Ok(())
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let src = self
            .get(start..start + buf.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "not staged"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// One request for a missing chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRequest {
    /// The chunk's index.
    pub index: usize,
    /// Its offset in the artifact.
    pub offset: u64,
    /// Its length (64 KiB, or less for the last chunk).
    pub length: u32,
}

/// What accepting a chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Accepted {
    /// A new chunk: verified and stored.
    New {
        /// Its index.
        index: usize,
    },
    /// A chunk already verified: nothing changed.
    Duplicate {
        /// Its index.
        index: usize,
    },
}

/// Which chunks are verified: the persistent state of a download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadState {
    /// The package.
    pub package_id: PackageId,
    /// The artifact's SHA-256, binding the state to the artifact.
    pub sha256: Sha256Digest,
    /// One bit per chunk (chunk i is bit i % 8 of byte i / 8), as hex.
    pub verified: String,
}

impl DownloadState {
    /// Parses a saved state, bounded by `limits.max_document_bytes` (a bitmap of a 15 GiB
    /// artifact is 60 KiB of hex).
    pub fn from_json(bytes: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        json::parse("download state", bytes, limits.max_document_bytes)
    }
}

impl Validate for DownloadState {
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        if hex::decode(&self.verified).is_err() {
            json::fault(
                faults,
                json::field(path, "verified"),
                "must be lowercase hex, two characters a byte",
            );
        }
    }
}

/// A download or install failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The data does not start on a chunk boundary.
    #[error("data at offset {offset} does not start on a 64 KiB chunk boundary")]
    Misaligned {
        /// The offset given.
        offset: u64,
    },
    /// The data starts at or past the end of the artifact.
    #[error("offset {offset} is past the end of the {size}-byte artifact")]
    OutOfRange {
        /// The offset given.
        offset: u64,
        /// The signed size.
        size: u64,
    },
    /// More than one chunk's worth of data.
    #[error("{length} bytes is more than one 64 KiB chunk")]
    Oversize {
        /// The length given.
        length: usize,
    },
    /// The data runs past the signed size ("endless data").
    #[error("data runs to byte {end}, past the signed size of {size}")]
    TooLong {
        /// Where the data ends.
        end: u64,
        /// The signed size.
        size: u64,
    },
    /// The chunk does not match the signed table.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// A chunk read back from staging no longer matches; it is missing again.
    #[error("stored chunk {index} no longer matches its digest and must be fetched again")]
    StoredChunkCorrupt {
        /// The chunk's index.
        index: usize,
    },
    /// Saved state belongs to another package.
    #[error("the saved download state is for {found}, not {expected}")]
    StateMismatch {
        /// The package being downloaded.
        expected: PackageId,
        /// The package the state is for.
        found: PackageId,
    },
    /// An install was given the download of another package.
    #[error("the download is of {found}, but the install is of {expected}")]
    PackageMismatch {
        /// The package being installed.
        expected: PackageId,
        /// The package the download is of.
        found: PackageId,
    },
    /// The staging storage failed.
    #[error("staging storage: {message}")]
    Staging {
        /// What the storage said.
        message: String,
    },
    /// Decrypting or decompressing into the slot failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// Install was finished before every chunk was installed.
    #[error("{installed} of {total} chunks are installed")]
    Incomplete {
        /// Chunks installed.
        installed: usize,
        /// Chunks in the artifact.
        total: usize,
    },
}

impl DownloadError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            DownloadError::Misaligned { .. } => Status::ChunkMisaligned,
            DownloadError::OutOfRange { .. } | DownloadError::Oversize { .. } => {
                Status::ChunkOutOfRange
            }
            DownloadError::TooLong { .. } => Status::TooLong,
            DownloadError::Chunk(e) => e.status(),
            DownloadError::StoredChunkCorrupt { .. } => Status::StoredChunkCorrupt,
            DownloadError::StateMismatch { .. } | DownloadError::PackageMismatch { .. } => {
                Status::DownloadStateMismatch
            }
            DownloadError::Staging { .. } => Status::Io,
            DownloadError::Seal(e) => e.status(),
            DownloadError::Incomplete { .. } => Status::Truncated,
        }
    }
}

fn staging_error(e: io::Error) -> DownloadError {
    DownloadError::Staging {
        message: e.to_string(),
    }
}

/// A download in progress.
#[derive(Debug, Clone)]
pub struct Download {
    package_id: PackageId,
    sha256: Sha256Digest,
    size: u64,
    table: ChunkTable,
    verified: Vec<u8>,
    /// The chunks whose staged bytes this download verified on their way in
    /// ([`Download::accept`], [`Download::store`]): the same bitmap layout as `verified`,
    /// never persisted.
    in_session: Vec<u8>,
    count: usize,
}

impl Download {
    /// A new download of a verified package's artifact: nothing verified yet.
    pub fn new(package: &VerifiedPackage) -> Self {
        let table = package.chunks().clone();
        Download {
            package_id: package.id().clone(),
            sha256: package.package().sha256,
            size: package.package().size_bytes,
            verified: vec![0; table.len().div_ceil(8)],
            in_session: vec![0; table.len().div_ceil(8)],
            table,
            count: 0,
        }
    }

    /// Resumes a download from its saved state: every chunk the state marks verified is read
    /// back from staging and checked again; one that no longer matches is missing again.
    /// Returns the download and the indices that must be refetched. The chunks it keeps came
    /// back from storage, so the install checks each of them again as it reads it
    /// ([`Download::is_verified_in_session`] is false for them).
    pub fn resume(
        package: &VerifiedPackage,
        state: &DownloadState,
        staging: &mut dyn Staging,
    ) -> Result<(Self, Vec<usize>), DownloadError> {
        let mut d = Self::new(package);
        if &state.package_id != package.id() || state.sha256 != d.sha256 {
            return Err(DownloadError::StateMismatch {
                expected: package.id().clone(),
                found: state.package_id.clone(),
            });
        }
        let bits = hex::decode(&state.verified).unwrap_or_default();
        let mut refetch = Vec::new();
        let mut buf = vec![0u8; CHUNK_SIZE as usize];
        for index in 0..d.table.len() {
            let marked = bits
                .get(index / 8)
                .is_some_and(|b| b & (1 << (index % 8)) != 0);
            if !marked {
                continue;
            }
            let len = d.chunk_len(index);
            let ok = staging.read_at(d.offset(index), &mut buf[..len]).is_ok()
                && d.table.verify(index, d.size, &buf[..len]).is_ok();
            if ok {
                d.mark(index);
            } else {
                refetch.push(index);
            }
        }
        Ok((d, refetch))
    }

    /// The persistent state: which chunks are verified.
    pub fn state(&self) -> DownloadState {
        DownloadState {
            package_id: self.package_id.clone(),
            sha256: self.sha256,
            verified: hex::encode(&self.verified),
        }
    }

    /// The package being downloaded.
    pub fn package_id(&self) -> &PackageId {
        &self.package_id
    }

    /// The signed size of the artifact.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many chunks the artifact has.
    pub fn chunk_count(&self) -> usize {
        self.table.len()
    }

    /// How many chunks are verified.
    pub fn verified_count(&self) -> usize {
        self.count
    }

    /// Whether every chunk is verified.
    pub fn is_complete(&self) -> bool {
        self.count == self.table.len()
    }

    /// Whether chunk `index` is verified.
    pub fn is_verified(&self, index: usize) -> bool {
        self.verified
            .get(index / 8)
            .is_some_and(|b| b & (1 << (index % 8)) != 0)
    }

    /// Whether chunk `index`'s staged bytes were verified by this download on their way in
    /// ([`Download::accept`], [`Download::store`]), so installing it need not hash them
    /// again. False for a chunk that came back from storage after a restart
    /// ([`Download::resume`]): the install checks that one as it reads it.
    pub fn is_verified_in_session(&self, index: usize) -> bool {
        self.in_session
            .get(index / 8)
            .is_some_and(|b| b & (1 << (index % 8)) != 0)
    }

    fn mark(&mut self, index: usize) {
        if !self.is_verified(index) {
            self.verified[index / 8] |= 1 << (index % 8);
            self.count += 1;
        }
    }

    /// Marks chunk `index` missing again (its stored copy is bad).
    pub fn invalidate(&mut self, index: usize) {
        if self.is_verified(index) {
            self.verified[index / 8] &= !(1 << (index % 8));
            self.in_session[index / 8] &= !(1 << (index % 8));
            self.count -= 1;
        }
    }

    fn offset(&self, index: usize) -> u64 {
        index as u64 * u64::from(CHUNK_SIZE)
    }

    fn chunk_len(&self, index: usize) -> usize {
        let r = ChunkTable::range(index, self.size);
        usize::try_from(r.end - r.start).unwrap_or(0)
    }

    /// Up to `max` requests for missing chunks, in order.
    pub fn plan(&self, max: usize) -> Vec<ChunkRequest> {
        (0..self.table.len())
            .filter(|i| !self.is_verified(*i))
            .take(max)
            .map(|index| ChunkRequest {
                index,
                offset: self.offset(index),
                length: u32::try_from(self.chunk_len(index)).unwrap_or(CHUNK_SIZE),
            })
            .collect()
    }

    /// Takes a chunk that arrived at `offset`: checks where it goes and that it matches its
    /// signed digest, then stores it ([`ChunkCheck::check`], then [`Download::store`]).
    pub fn accept(
        &mut self,
        offset: u64,
        data: &[u8],
        staging: &mut dyn Staging,
    ) -> Result<Accepted, DownloadError> {
        let index = check_chunk(&self.table, self.size, offset, data)?;
        self.store_checked(index, data, staging)
    }

    /// What chunks of this download are checked against, for checking them on other threads
    /// while this download stores others ([`Download::store`]): the signed table is shared,
    /// not copied.
    pub fn checker(&self) -> ChunkCheck {
        ChunkCheck {
            package_id: self.package_id.clone(),
            sha256: self.sha256,
            size: self.size,
            table: self.table.clone(),
        }
    }

    /// Stores a chunk [`ChunkCheck::check`] verified, as [`Download::accept`] would; a chunk
    /// checked for another download is refused.
    pub fn store(
        &mut self,
        chunk: CheckedChunk<'_>,
        staging: &mut dyn Staging,
    ) -> Result<Accepted, DownloadError> {
        if chunk.package_id != self.package_id || chunk.sha256 != self.sha256 {
            return Err(DownloadError::PackageMismatch {
                expected: self.package_id.clone(),
                found: chunk.package_id.clone(),
            });
        }
        self.store_checked(chunk.index, chunk.data, staging)
    }

    fn store_checked(
        &mut self,
        index: usize,
        data: &[u8],
        staging: &mut dyn Staging,
    ) -> Result<Accepted, DownloadError> {
        if self.is_verified(index) {
            return Ok(Accepted::Duplicate { index });
        }
        staging
            .write_at(self.offset(index), data)
            .map_err(staging_error)?;
        self.mark(index);
        self.in_session[index / 8] |= 1 << (index % 8);
        Ok(Accepted::New { index })
    }
}

/// Checks where a chunk that arrived at `offset` goes and that it matches its signed digest;
/// its index.
fn check_chunk(
    table: &ChunkTable,
    size: u64,
    offset: u64,
    data: &[u8],
) -> Result<usize, DownloadError> {
    if offset >= size {
        return Err(DownloadError::OutOfRange { offset, size });
    }
    if !offset.is_multiple_of(u64::from(CHUNK_SIZE)) {
        return Err(DownloadError::Misaligned { offset });
    }
    if data.len() > CHUNK_SIZE as usize {
        return Err(DownloadError::Oversize { length: data.len() });
    }
    let end = offset + data.len() as u64;
    if end > size {
        return Err(DownloadError::TooLong { end, size });
    }
    let index = usize::try_from(offset / u64::from(CHUNK_SIZE)).unwrap_or(usize::MAX);
    table.verify(index, size, data)?;
    Ok(index)
}

/// What a download's chunks are checked against ([`Download::checker`]): hashing, the costly
/// part of taking a chunk, needs no access to the download, so a host may check chunks on
/// several threads and store them on one (`ota_host::pipeline::stage`).
#[derive(Debug, Clone)]
pub struct ChunkCheck {
    package_id: PackageId,
    sha256: Sha256Digest,
    size: u64,
    table: ChunkTable,
}

impl ChunkCheck {
    /// Checks a chunk that arrived at `offset` as [`Download::accept`] does: where it goes and
    /// that it matches its signed digest.
    pub fn check<'a>(
        &self,
        offset: u64,
        data: &'a [u8],
    ) -> Result<CheckedChunk<'a>, DownloadError> {
        let index = check_chunk(&self.table, self.size, offset, data)?;
        Ok(CheckedChunk {
            package_id: self.package_id.clone(),
            sha256: self.sha256,
            index,
            data,
        })
    }
}

/// A chunk that matched its signed digest ([`ChunkCheck::check`]), to be stored by its
/// download ([`Download::store`]).
#[derive(Debug, Clone)]
pub struct CheckedChunk<'a> {
    package_id: PackageId,
    sha256: Sha256Digest,
    index: usize,
    data: &'a [u8],
}

impl CheckedChunk<'_> {
    /// The chunk's index.
    pub fn index(&self) -> usize {
        self.index
    }
}

/// The first stage of installing: reads each chunk of the verified prefix back from staging,
/// checks it against the signed table again if it came back from storage after a restart
/// (one verified on its way in this session is not hashed twice), and decrypts it
/// ([`Decrypt`]), passing the gzip stream on. [`Install`] joins it to an [`Inflate`] on one
/// thread; `ota_host::pipeline` runs the two on two threads.
pub struct StagedDecrypt {
    decrypt: Decrypt,
    package_id: PackageId,
    sha256: Sha256Digest,
    table: ChunkTable,
    size: u64,
    next: usize,
    buf: Vec<u8>,
}

impl StagedDecrypt {
    /// The first stage of installing `package`'s artifact, opened with `key`.
    pub fn new(package: &VerifiedPackage, key: &SealKey) -> Self {
        StagedDecrypt {
            decrypt: Decrypt::chunked(key, &package.expected()),
            package_id: package.id().clone(),
            sha256: package.package().sha256,
            table: package.chunks().clone(),
            size: package.package().size_bytes,
            next: 0,
            buf: Vec::with_capacity(CHUNK_SIZE as usize),
        }
    }

    /// How many chunks are installed.
    pub fn installed(&self) -> usize {
        self.next
    }

    /// Decrypts every verified chunk that continues the installed prefix, reading each back
    /// from staging (and checking it again first unless this download verified it on its way
    /// in, [`Download::is_verified_in_session`]), and passes the gzip stream to `emit`. A
    /// chunk from a previous session whose stored copy no longer matches is marked missing in
    /// `download`, and the error names it. The download of another package is refused.
    pub fn advance(
        &mut self,
        download: &mut Download,
        staging: &mut dyn Staging,
        mut emit: impl FnMut(&[u8]) -> Result<(), SealError>,
    ) -> Result<usize, DownloadError> {
        if download.package_id != self.package_id || download.sha256 != self.sha256 {
            return Err(DownloadError::PackageMismatch {
                expected: self.package_id.clone(),
                found: download.package_id.clone(),
            });
        }
        let start = self.next;
        while self.next < self.table.len() && download.is_verified(self.next) {
            let index = self.next;
            let range = ChunkTable::range(index, self.size);
            let len = usize::try_from(range.end - range.start).unwrap_or(0);
            self.buf.resize(len, 0);
            staging
                .read_at(range.start, &mut self.buf)
                .map_err(staging_error)?;
            let verified = if download.is_verified_in_session(index) {
                // Hashed against the signed table in `accept`, in this process.
                VerifiedBytes::new(range.start, &self.buf)
            } else {
                match self.table.verify(index, self.size, &self.buf) {
                    Ok(v) => v,
                    // The table's storage failed, not the chunk's.
                    Err(e @ ChunkError::Table { .. }) => return Err(e.into()),
                    Err(_) => {
                        download.invalidate(index);
                        return Err(DownloadError::StoredChunkCorrupt { index });
                    }
                }
            };
            self.decrypt.push(verified, &mut emit)?;
            self.next += 1;
        }
        Ok(self.next - start)
    }

    /// Ends the first stage once every chunk is in: checks the size and padding, and returns
    /// the last bytes of the gzip stream.
    pub fn finish(self) -> Result<Vec<u8>, DownloadError> {
        if self.next < self.table.len() {
            return Err(DownloadError::Incomplete {
                installed: self.next,
                total: self.table.len(),
            });
        }
        Ok(self.decrypt.finish()?)
    }
}

/// Installs a download into a slot as its verified contiguous prefix grows: a
/// [`StagedDecrypt`] and an [`Inflate`] on the caller's thread.
pub struct Install<W: Write> {
    decrypt: StagedDecrypt,
    inflate: Inflate<W>,
}

impl<W: Write> Install<W> {
    /// An install of `package`'s artifact, opened with `key`, into `slot` (which must start
    /// empty).
    pub fn new(package: &VerifiedPackage, key: &SealKey, slot: W) -> Self {
        Install {
            decrypt: StagedDecrypt::new(package, key),
            inflate: Inflate::new(&package.expected(), slot),
        }
    }

    /// How many chunks are installed.
    pub fn installed(&self) -> usize {
        self.decrypt.installed()
    }

    /// How much plaintext is in the slot.
    pub fn plaintext_written(&self) -> u64 {
        self.inflate.plaintext_written()
    }

    /// Installs every verified chunk that continues the installed prefix: see
    /// [`StagedDecrypt::advance`].
    pub fn advance(
        &mut self,
        download: &mut Download,
        staging: &mut dyn Staging,
    ) -> Result<usize, DownloadError> {
        let inflate = &mut self.inflate;
        self.decrypt
            .advance(download, staging, |gz| inflate.write(gz))
    }

    /// Ends the install once every chunk is in: confirms the size, the padding and the
    /// plaintext's size (and digest), flushes the slot, and returns it.
    pub fn finish(mut self) -> Result<(Opened, W), DownloadError> {
        let last = self.decrypt.finish()?;
        self.inflate.write(&last)?;
        let (opened, mut slot) = self.inflate.finish()?;
        slot.flush().map_err(|e| DownloadError::Seal(e.into()))?;
        Ok((opened, slot))
    }
}
