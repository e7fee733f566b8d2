//! Opening a sealed artifact: the inverse of [`crate::seal`], streaming, with bounded memory.
//!
//! [`Opener`] takes only [`VerifiedBytes`] — bytes already checked against a signed chunk
//! digest — so nothing is decrypted before its hash is checked. It refuses output past the
//! declared plaintext size (decompression bombs), trailing data after the gzip stream, and
//! any size or digest that differs from what was declared; [`Opener::finish`] is what says
//! the output is complete. [`ChunkedOpener`] and [`open_chunked`] check raw bytes against the
//! signed chunk table as they arrive. [`open_checked`] opens a whole file known only by its
//! SHA-256 and size (seed 002's registration record): it checks the digest in a first pass
//! before decrypting anything in a second.

use std::io::{self, Read, Seek, SeekFrom, Write};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::cbc_stream::{BATCH, BLOCK, CbcDecrypt};
use crate::chunk::{ChunkTable, VerifiedBytes};
use crate::digest::Sha256Digest;
use crate::seal::{SealError, SealKey};

/// What an artifact to be opened must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The sealed artifact's size.
    pub size_bytes: u64,
    /// The sealed artifact's SHA-256.
    pub sha256: Sha256Digest,
    /// The plaintext's size, if declared: the output must be exactly this long.
    pub plaintext_size: Option<u64>,
    /// The plaintext's SHA-256, if declared.
    pub plaintext_sha256: Option<Sha256Digest>,
    /// The most plaintext accepted when its size is not declared.
    pub max_plaintext: u64,
}

impl Expected {
    /// The bound on the plaintext: its declared size, or `max_plaintext`.
    pub fn plaintext_bound(&self) -> u64 {
        self.plaintext_size.unwrap_or(self.max_plaintext)
    }
}

/// What opening produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Opened {
    /// The plaintext's size.
    pub plaintext_size: u64,
    /// The plaintext's SHA-256.
    pub plaintext_sha256: Sha256Digest,
}

/// Counts, hashes and bounds the plaintext on its way to the output.
struct Bounded<W> {
    inner: W,
    written: u64,
    max: u64,
    hasher: Sha256,
    exceeded: bool,
    failed: Option<String>,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.max {
            self.exceeded = true;
            return Err(io::Error::other("plaintext bound exceeded"));
        }
        let n = self
            .inner
            .write(buf)
            .inspect_err(|e| self.failed = Some(e.to_string()))?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner
            .flush()
            .inspect_err(|e| self.failed = Some(e.to_string()))
    }
}

/// Opens a sealed artifact from verified bytes, streaming the plaintext into `W`.
///
/// Feed [`VerifiedBytes`] in order with [`Opener::push`], then call [`Opener::finish`]:
/// only a successful `finish` means the output is the complete, declared plaintext. On any
/// error the output is incomplete and must be discarded.
pub struct Opener<W: Write> {
    key: SealKey,
    /// The decryptor, made once the IV (the first 16 bytes) is complete.
    cbc: Option<CbcDecrypt>,
    expected: Expected,
    iv: [u8; BLOCK],
    /// Bytes of the IV seen so far.
    iv_len: usize,
    consumed: u64,
    hasher: Sha256,
    gz: flate2::write::GzDecoder<Bounded<W>>,
}

impl<W: Write> Opener<W> {
    /// An opener for an artifact that must match `expected`.
    pub fn new(key: &SealKey, expected: Expected, out: W) -> Self {
        let max = expected.plaintext_bound();
        Opener {
            key: key.clone(),
            cbc: None,
            expected,
            iv: [0; BLOCK],
            iv_len: 0,
            consumed: 0,
            hasher: Sha256::new(),
            gz: flate2::write::GzDecoder::new(Bounded {
                inner: out,
                written: 0,
                max,
                hasher: Sha256::new(),
                exceeded: false,
                failed: None,
            }),
        }
    }

    /// How many artifact bytes have been consumed: the offset the next push must start at.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// How much plaintext has been written.
    pub fn plaintext_written(&self) -> u64 {
        self.gz.get_ref().written
    }

    /// Decrypts and decompresses the next verified bytes.
    pub fn push(&mut self, bytes: VerifiedBytes<'_>) -> Result<(), SealError> {
        if bytes.offset() != self.consumed {
            return Err(SealError::OutOfOrder {
                expected: self.consumed,
                found: bytes.offset(),
            });
        }
        let mut data = bytes.data();
        if self.consumed + data.len() as u64 > self.expected.size_bytes {
            return Err(SealError::TooLong {
                expected: self.expected.size_bytes,
            });
        }
        self.hasher.update(data);
        self.consumed += data.len() as u64;
        if self.iv_len < BLOCK {
            let take = (BLOCK - self.iv_len).min(data.len());
            self.iv[self.iv_len..self.iv_len + take].copy_from_slice(&data[..take]);
            self.iv_len += take;
            data = &data[take..];
            if self.iv_len == BLOCK {
                self.cbc = Some(CbcDecrypt::new(&self.key, self.iv));
            }
        }
        let Opener {
            cbc: Some(cbc), gz, ..
        } = self
        else {
            return Ok(());
        };
        let mut result = Ok(());
        cbc.update(data, |plain| {
            if result.is_ok() {
                result = inflate(gz, plain);
            }
        });
        result
    }

    /// Checks that everything declared was received and matches, removes the padding, ends
    /// the gzip stream, and returns the plaintext's size and digest with the writer.
    pub fn finish(mut self) -> Result<(Opened, W), SealError> {
        if self.consumed < self.expected.size_bytes {
            return Err(SealError::Truncated {
                expected: self.expected.size_bytes,
                found: self.consumed,
            });
        }
        let digest = Sha256Digest::from_bytes(std::mem::take(&mut self.hasher).finalize().into());
        if digest != self.expected.sha256 {
            return Err(SealError::DigestMismatch);
        }
        let last = self
            .cbc
            .take()
            .ok_or(SealError::DecryptionFailed)?
            .finish()?;
        inflate(&mut self.gz, &last)?;
        if self.gz.try_finish().is_err() {
            return Err(inflate_error(&self.gz));
        }
        let bounded = self.gz.finish().map_err(SealError::from)?;
        let opened = Opened {
            plaintext_size: bounded.written,
            plaintext_sha256: Sha256Digest::from_bytes(bounded.hasher.finalize().into()),
        };
        if let Some(expected) = self.expected.plaintext_size
            && expected != opened.plaintext_size
        {
            return Err(SealError::PlaintextSizeMismatch {
                expected,
                found: opened.plaintext_size,
            });
        }
        if let Some(expected) = self.expected.plaintext_sha256
            && expected != opened.plaintext_sha256
        {
            return Err(SealError::PlaintextDigestMismatch);
        }
        Ok((opened, bounded.inner))
    }
}

/// Writes plaintext into the gzip decoder; a decoder that takes no more has ended its stream.
fn inflate<W: Write>(
    gz: &mut flate2::write::GzDecoder<Bounded<W>>,
    mut plain: &[u8],
) -> Result<(), SealError> {
    while !plain.is_empty() {
        match gz.write(plain) {
            Ok(0) => return Err(SealError::TrailingData),
            Ok(n) => plain = &plain[n..],
            Err(_) => return Err(inflate_error(gz)),
        }
    }
    Ok(())
}

/// Why the decoder failed: the bound, the output writer, or the data itself.
fn inflate_error<W: Write>(gz: &flate2::write::GzDecoder<Bounded<W>>) -> SealError {
    let b = gz.get_ref();
    if b.exceeded {
        SealError::PlaintextTooLarge { max: b.max }
    } else if let Some(message) = &b.failed {
        SealError::Io {
            message: message.clone(),
        }
    } else {
        SealError::DecryptionFailed
    }
}

/// Opens a sealed artifact known only by its SHA-256 and size (seed 002's registration
/// record), from a seekable source: the first pass checks size and digest and decrypts
/// nothing; the second decrypts, hashing again so a change between the passes is caught.
pub fn open_checked<R: Read + Seek, W: Write>(
    mut source: R,
    key: &SealKey,
    expected: Expected,
    out: W,
) -> Result<(Opened, W), SealError> {
    let mut buf = vec![0u8; BATCH];
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = read_some(&mut source, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        if size > expected.size_bytes {
            return Err(SealError::TooLong {
                expected: expected.size_bytes,
            });
        }
    }
    if size < expected.size_bytes {
        return Err(SealError::Truncated {
            expected: expected.size_bytes,
            found: size,
        });
    }
    if Sha256Digest::from_bytes(hasher.finalize().into()) != expected.sha256 {
        return Err(SealError::DigestMismatch);
    }
    source.seek(SeekFrom::Start(0))?;
    let mut opener = Opener::new(key, expected, out);
    loop {
        let n = read_some(&mut source, &mut buf)?;
        if n == 0 {
            break;
        }
        // The whole file's digest was checked above; the opener checks it again.
        opener.push(VerifiedBytes::new(opener.consumed(), &buf[..n]))?;
    }
    opener.finish()
}

/// Opens a sealed artifact from a stream, checking each 64 KiB chunk against its signed
/// digest before decrypting it: one pass.
pub fn open_chunked<R: Read, W: Write>(
    mut source: R,
    key: &SealKey,
    chunks: &ChunkTable,
    expected: Expected,
    out: W,
) -> Result<(Opened, W), SealError> {
    let mut opener = ChunkedOpener::new(key, chunks.clone(), expected, out);
    let mut buf = vec![0u8; BATCH];
    loop {
        let n = read_some(&mut source, &mut buf)?;
        if n == 0 {
            break;
        }
        opener.update(&buf[..n])?;
    }
    opener.finish()
}

/// Opens a sealed artifact from raw bytes in order: each 64 KiB chunk is checked against the
/// signed chunk table as soon as it is complete, and only then decrypted. Memory stays at
/// one chunk plus the decoder's buffers.
pub struct ChunkedOpener<W: Write> {
    chunks: ChunkTable,
    size: u64,
    index: usize,
    buf: Vec<u8>,
    opener: Opener<W>,
}

impl<W: Write> ChunkedOpener<W> {
    /// An opener for an artifact with this signed chunk table.
    pub fn new(key: &SealKey, chunks: ChunkTable, expected: Expected, out: W) -> Self {
        let size = expected.size_bytes;
        ChunkedOpener {
            chunks,
            size,
            index: 0,
            buf: Vec::with_capacity(crate::chunk::CHUNK_SIZE as usize),
            opener: Opener::new(key, expected, out),
        }
    }

    /// Takes the next bytes of the artifact.
    pub fn update(&mut self, mut data: &[u8]) -> Result<(), SealError> {
        while !data.is_empty() {
            let range = ChunkTable::range(self.index, self.size);
            let len = usize::try_from(range.end - range.start).unwrap_or(0);
            if len == 0 {
                return Err(SealError::TooLong {
                    expected: self.size,
                });
            }
            let take = (len - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == len {
                let verified = self.chunks.verify(self.index, self.size, &self.buf)?;
                self.opener.push(verified)?;
                self.buf.clear();
                self.index += 1;
            }
        }
        Ok(())
    }

    /// How much plaintext has been written.
    pub fn plaintext_written(&self) -> u64 {
        self.opener.plaintext_written()
    }

    /// Ends the artifact: see [`Opener::finish`].
    pub fn finish(self) -> Result<(Opened, W), SealError> {
        if !self.buf.is_empty() {
            let start = ChunkTable::range(self.index, self.size).start;
            return Err(SealError::Truncated {
                expected: self.size,
                found: start + self.buf.len() as u64,
            });
        }
        self.opener.finish()
    }
}

fn read_some<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, SealError> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::cbc_stream::tests::encrypt;
    use crate::seal::tests::{data, key};
    use crate::seal::{Sealed, seal_bytes};

    fn expected(sealed: &Sealed) -> Expected {
        Expected {
            size_bytes: sealed.size_bytes,
            sha256: sealed.sha256,
            plaintext_size: Some(sealed.plaintext_size),
            plaintext_sha256: Some(sealed.plaintext_sha256),
            max_plaintext: 0,
        }
    }

    fn open(bytes: &[u8], key: &SealKey, sealed: &Sealed) -> Result<Vec<u8>, SealError> {
        open_chunked(bytes, key, &sealed.chunks, expected(sealed), Vec::new()).map(|(_, out)| out)
    }

    #[test]
    fn round_trips_at_every_boundary() {
        for n in [
            0, 1, 15, 16, 17, 1000, 65_519, 65_520, 65_536, 131_072, 200_001,
        ] {
            let pt = data(n);
            let (bytes, sealed) = seal_bytes(&key(), [9; 16], &pt).unwrap();
            assert_eq!(sealed.size_bytes, bytes.len() as u64);
            assert_eq!(sealed.sha256, Sha256Digest::of(&bytes));
            assert_eq!(&bytes[..16], &[9; 16]);
            assert_eq!((bytes.len() - 16) % 16, 0);
            assert_eq!(
                sealed.chunks.len(),
                ChunkTable::count_for(sealed.size_bytes)
            );
            assert_eq!(sealed.plaintext_size, n as u64);
            assert_eq!(open(&bytes, &key(), &sealed).unwrap(), pt, "n = {n}");
            let (opened, out) = open_checked(
                std::io::Cursor::new(&bytes),
                &key(),
                expected(&sealed),
                Vec::new(),
            )
            .unwrap();
            assert_eq!(out, pt);
            assert_eq!(opened.plaintext_sha256, Sha256Digest::of(&pt));
        }
    }

    #[test]
    fn tampering_is_caught_before_decryption() {
        let pt = data(150_000);
        let (bytes, sealed) = seal_bytes(&key(), [3; 16], &pt).unwrap();
        let last = bytes.len() - 1;
        for (at, chunk) in [(0usize, 0usize), (70_000, 1), (last, 2)] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert_eq!(
                open(&bad, &key(), &sealed).unwrap_err(),
                SealError::Chunk(crate::chunk::ChunkError::DigestMismatch { index: chunk })
            );
            assert_eq!(
                open_checked(
                    std::io::Cursor::new(&bad),
                    &key(),
                    expected(&sealed),
                    Vec::new()
                )
                .unwrap_err(),
                SealError::DigestMismatch
            );
        }
        let short = &bytes[..bytes.len() - 10];
        assert!(matches!(
            open(short, &key(), &sealed).unwrap_err(),
            SealError::Truncated { .. }
        ));
        let mut long = bytes.clone();
        long.extend_from_slice(b"more");
        assert!(matches!(
            open(&long, &key(), &sealed).unwrap_err(),
            SealError::TooLong { .. }
        ));
        assert!(matches!(
            open_checked(
                std::io::Cursor::new(&long),
                &key(),
                expected(&sealed),
                Vec::new()
            )
            .unwrap_err(),
            SealError::TooLong { .. }
        ));
        assert_eq!(
            open(&bytes, &SealKey::from_bytes([1; 32]), &sealed).unwrap_err(),
            SealError::DecryptionFailed
        );
    }

    #[test]
    fn a_decompression_bomb_stops_at_its_bound() {
        // A megabyte of zeros seals to about a kilobyte; declare far less.
        let pt = vec![0u8; 1 << 20];
        let (bytes, sealed) = seal_bytes(&key(), [5; 16], &pt).unwrap();
        let mut e = expected(&sealed);
        e.plaintext_size = Some(4096);
        let err = open_chunked(
            bytes.as_slice(),
            &key(),
            &sealed.chunks,
            e.clone(),
            Vec::new(),
        )
        .unwrap_err();
        assert_eq!(err, SealError::PlaintextTooLarge { max: 4096 });
        // The bound holds mid-stream: nothing past it was ever written.
        let mut opener = Opener::new(&key(), e, Vec::new());
        let _ = opener.push(VerifiedBytes::new(0, &bytes));
        assert!(opener.plaintext_written() <= 4096);
        // Without a declared size, the caller's maximum is the bound.
        let mut e = expected(&sealed);
        e.plaintext_size = None;
        e.max_plaintext = 1000;
        let err = open_checked(std::io::Cursor::new(&bytes), &key(), e, Vec::new()).unwrap_err();
        assert_eq!(err, SealError::PlaintextTooLarge { max: 1000 });
    }

    #[test]
    fn trailing_data_and_a_second_member_are_refused() {
        let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
        gz.write_all(b"hello").unwrap();
        let mut stream = gz.finish().unwrap();
        let single = stream.clone();
        stream.extend_from_slice(b"garbage after the stream");
        for inner in [stream, [single.clone(), single].concat()] {
            let mut bytes = vec![4u8; 16];
            bytes.extend(encrypt(&key(), [4; 16], &inner));
            let e = Expected {
                size_bytes: bytes.len() as u64,
                sha256: Sha256Digest::of(&bytes),
                plaintext_size: None,
                plaintext_sha256: None,
                max_plaintext: 1 << 20,
            };
            let err =
                open_checked(std::io::Cursor::new(&bytes), &key(), e, Vec::new()).unwrap_err();
            assert_eq!(err, SealError::TrailingData);
        }
    }

    #[test]
    fn bytes_must_come_in_order() {
        let (bytes, sealed) = seal_bytes(&key(), [2; 16], &data(1000)).unwrap();
        let mut opener = Opener::new(&key(), expected(&sealed), Vec::new());
        let err = opener
            .push(VerifiedBytes::new(16, &bytes[16..]))
            .unwrap_err();
        assert_eq!(
            err,
            SealError::OutOfOrder {
                expected: 0,
                found: 16
            }
        );
    }
}
