//! Opening a sealed artifact: the inverse of [`crate::seal`], streaming, with bounded memory.
//!
//! [`Opener`] takes only [`VerifiedBytes`] — bytes already checked against a signed chunk
//! digest — so nothing is decrypted before its hash is checked. It refuses output past the
//! declared plaintext size (decompression bombs), trailing data after the gzip stream, and
//! any size or digest that differs from what was declared; [`Opener::finish`] is what says
//! the output is complete. [`ChunkedOpener`] and [`open_chunked`] check raw bytes against the
//! signed chunk table as they arrive.
//!
//! Each byte is hashed once: a chunk against the signed table, which covers every byte, so
//! the chunked paths do not hash the whole artifact again, and a declared plaintext digest
//! is not recomputed (see [`Inflate`]). Opening is two sans-IO stages, [`Decrypt`] (or
//! [`ChunkedDecrypt`]: verify, then decrypt) and [`Inflate`]; the openers here run both on
//! the caller's thread, and `ota_host::pipeline` runs them on two threads. [`open_checked`]
//! opens a whole file known only by its SHA-256 and size (publish_artifact.py's registration
//! record): it checks the digest in a first pass before decrypting anything in a second.

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
    /// Where the gzip stream's segments start, if declared: a host with several cores may
    /// inflate them apart ([`crate::segment`]).
    pub segments: Option<crate::segment::Segments>,
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

/// Counts and bounds the plaintext on its way to the output, hashing it when its digest was
/// not declared.
struct Bounded<W> {
    inner: W,
    written: u64,
    max: u64,
    hasher: Option<Sha256>,
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
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner
            .flush()
            .inspect_err(|e| self.failed = Some(e.to_string()))
    }
}

/// The first stage of opening: verified artifact bytes, in order, to the gzip stream inside
/// them (decrypted, the padding removed). It does no I/O and holds one batch.
///
/// Made with [`Decrypt::chunked`], it takes bytes checked chunk by chunk against the signed
/// chunk table ([`ChunkTable::verify`]): the table covers every byte, so the whole
/// artifact is not hashed again, and [`Decrypt::finish`] checks that every byte up to the
/// signed size came. Made with [`Decrypt::whole`], it hashes what it is given and checks the
/// artifact's SHA-256 at the end (for a file known only by that digest, [`open_checked`]).
pub struct Decrypt {
    key: SealKey,
    /// The decryptor, made once the IV (the first 16 bytes) is complete.
    cbc: Option<CbcDecrypt>,
    size: u64,
    sha256: Sha256Digest,
    iv: [u8; BLOCK],
    /// Bytes of the IV seen so far.
    iv_len: usize,
    consumed: u64,
    /// The whole artifact's hash, when its bytes were not checked chunk by chunk.
    whole: Option<Sha256>,
}

impl Decrypt {
    /// A decryptor for bytes each checked against the signed chunk table of an artifact that
    /// must match `expected`.
    pub fn chunked(key: &SealKey, expected: &Expected) -> Self {
        Decrypt {
            key: key.clone(),
            cbc: None,
            size: expected.size_bytes,
            sha256: expected.sha256,
            iv: [0; BLOCK],
            iv_len: 0,
            consumed: 0,
            whole: None,
        }
    }

    /// A decryptor that hashes the whole artifact and checks its SHA-256 on
    /// [`Decrypt::finish`].
    pub fn whole(key: &SealKey, expected: &Expected) -> Self {
        Decrypt {
            whole: Some(Sha256::new()),
            ..Self::chunked(key, expected)
        }
    }

    /// How many artifact bytes have been consumed: the offset the next push must start at.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Decrypts the next verified bytes, passing the gzip stream to `emit` in batches of up
    /// to 64 KiB; the first error `emit` returns stops it and is returned.
    pub fn push(
        &mut self,
        bytes: VerifiedBytes<'_>,
        mut emit: impl FnMut(&[u8]) -> Result<(), SealError>,
    ) -> Result<(), SealError> {
        if bytes.offset() != self.consumed {
            return Err(SealError::OutOfOrder {
                expected: self.consumed,
                found: bytes.offset(),
            });
        }
        let mut data = bytes.data();
        if self.consumed + data.len() as u64 > self.size {
            return Err(SealError::TooLong {
                expected: self.size,
            });
        }
        if let Some(h) = &mut self.whole {
            h.update(data);
        }
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
        let Some(cbc) = &mut self.cbc else {
            return Ok(());
        };
        let mut result = Ok(());
        cbc.update(data, |plain| {
            if result.is_ok() {
                result = emit(plain);
            }
        });
        result
    }

    /// Checks that every byte up to the signed size came (and the whole digest, if hashed),
    /// removes the padding and returns the last bytes of the gzip stream.
    pub fn finish(self) -> Result<Vec<u8>, SealError> {
        if self.consumed < self.size {
            return Err(SealError::Truncated {
                expected: self.size,
                found: self.consumed,
            });
        }
        if let Some(h) = self.whole
            && Sha256Digest::from_bytes(h.finalize().into()) != self.sha256
        {
            return Err(SealError::DigestMismatch);
        }
        self.cbc.ok_or(SealError::DecryptionFailed)?.finish()
    }
}

/// The second stage of opening: the gzip stream to the plaintext, bounded by its declared
/// size (decompression bombs) and refusing trailing data. It does no I/O but `W`'s.
///
/// The plaintext is hashed only when its digest was not declared. A declared digest is not
/// recomputed: the signed chunk table (or whole digest) fixes every byte of the gzip stream,
/// gzip's CRC-32 and length confirm the inflated output is what was compressed, and the
/// declared digest is the one the sealer computed of that same plaintext.
pub struct Inflate<W: Write> {
    gz: flate2::write::GzDecoder<Bounded<W>>,
    plaintext_size: Option<u64>,
    plaintext_sha256: Option<Sha256Digest>,
}

impl<W: Write> Inflate<W> {
    /// An inflater for an artifact that must match `expected`, writing to `out`.
    pub fn new(expected: &Expected, out: W) -> Self {
        Inflate {
            gz: flate2::write::GzDecoder::new(Bounded {
                inner: out,
                written: 0,
                max: expected.plaintext_bound(),
                hasher: expected.plaintext_sha256.is_none().then(Sha256::new),
                exceeded: false,
                failed: None,
            }),
            plaintext_size: expected.plaintext_size,
            plaintext_sha256: expected.plaintext_sha256,
        }
    }

    /// How much plaintext has been written.
    pub fn plaintext_written(&self) -> u64 {
        self.gz.get_ref().written
    }

    /// Inflates the next bytes of the gzip stream; a decoder that takes no more has ended its
    /// stream, and more is trailing data.
    pub fn write(&mut self, mut gz: &[u8]) -> Result<(), SealError> {
        while !gz.is_empty() {
            match self.gz.write(gz) {
                Ok(0) => return Err(SealError::TrailingData),
                Ok(n) => gz = &gz[n..],
                Err(_) => return Err(inflate_error(&self.gz)),
            }
        }
        Ok(())
    }

    /// Ends the gzip stream, checks the plaintext's size and digest, and returns them with
    /// the writer.
    pub fn finish(mut self) -> Result<(Opened, W), SealError> {
        if self.gz.try_finish().is_err() {
            return Err(inflate_error(&self.gz));
        }
        let bounded = self.gz.finish().map_err(SealError::from)?;
        let opened = conclude(
            bounded.written,
            bounded.hasher,
            self.plaintext_size,
            self.plaintext_sha256,
        )?;
        Ok((opened, bounded.inner))
    }
}

/// What an inflater concludes from `written` bytes of plaintext, hashed by `hasher` when no
/// digest was declared: their size and digest, checked against the declared ones.
pub(crate) fn conclude(
    written: u64,
    hasher: Option<Sha256>,
    plaintext_size: Option<u64>,
    plaintext_sha256: Option<Sha256Digest>,
) -> Result<Opened, SealError> {
    if let Some(expected) = plaintext_size
        && expected != written
    {
        return Err(SealError::PlaintextSizeMismatch {
            expected,
            found: written,
        });
    }
    let digest = match (hasher, plaintext_sha256) {
        (Some(h), _) => Sha256Digest::from_bytes(h.finalize().into()),
        (None, Some(declared)) => declared,
        (None, None) => return Err(SealError::PlaintextDigestMismatch),
    };
    if plaintext_sha256.is_some_and(|declared| declared != digest) {
        return Err(SealError::PlaintextDigestMismatch);
    }
    Ok(Opened {
        plaintext_size: written,
        plaintext_sha256: digest,
    })
}

/// Opens a sealed artifact from verified bytes, streaming the plaintext into `W`: the two
/// stages, [`Decrypt`] and [`Inflate`], on the caller's thread.
///
/// Feed [`VerifiedBytes`] in order with [`Opener::push`], then call [`Opener::finish`]:
/// only a successful `finish` means the output is the complete, declared plaintext. On any
/// error the output is incomplete and must be discarded.
pub struct Opener<W: Write> {
    decrypt: Decrypt,
    inflate: Inflate<W>,
}

impl<W: Write> Opener<W> {
    /// An opener for an artifact that must match `expected`; it hashes the whole artifact
    /// and checks its SHA-256 on [`Opener::finish`].
    pub fn new(key: &SealKey, expected: Expected, out: W) -> Self {
        Opener {
            decrypt: Decrypt::whole(key, &expected),
            inflate: Inflate::new(&expected, out),
        }
    }

    /// An opener for bytes each checked against the signed chunk table (see
    /// [`Decrypt::chunked`]).
    pub fn chunked(key: &SealKey, expected: Expected, out: W) -> Self {
        Opener {
            decrypt: Decrypt::chunked(key, &expected),
            inflate: Inflate::new(&expected, out),
        }
    }

    /// How many artifact bytes have been consumed: the offset the next push must start at.
    pub fn consumed(&self) -> u64 {
        self.decrypt.consumed()
    }

    /// How much plaintext has been written.
    pub fn plaintext_written(&self) -> u64 {
        self.inflate.plaintext_written()
    }

    /// Decrypts and decompresses the next verified bytes.
    pub fn push(&mut self, bytes: VerifiedBytes<'_>) -> Result<(), SealError> {
        let inflate = &mut self.inflate;
        self.decrypt.push(bytes, |gz| inflate.write(gz))
    }

    /// Checks that everything declared was received and matches, removes the padding, ends
    /// the gzip stream, and returns the plaintext's size and digest with the writer.
    pub fn finish(mut self) -> Result<(Opened, W), SealError> {
        let last = self.decrypt.finish()?;
        self.inflate.write(&last)?;
        self.inflate.finish()
    }
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

/// Opens a sealed artifact known only by its SHA-256 and size (publish_artifact.py's registration
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
/// digest before decrypting it: one pass, on the caller's thread. `ota_host::pipeline` runs
/// the same stages on two threads.
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

/// The first stage of opening raw bytes in order: each 64 KiB chunk is checked against the
/// signed chunk table as soon as it is complete, and only then decrypted ([`Decrypt`]).
/// Memory stays at one chunk whatever the artifact's size; the table is shared, not copied.
pub struct ChunkedDecrypt {
    chunks: ChunkTable,
    size: u64,
    index: usize,
    buf: Vec<u8>,
    decrypt: Decrypt,
}

impl ChunkedDecrypt {
    /// A first stage for an artifact with this signed chunk table.
    pub fn new(key: &SealKey, chunks: ChunkTable, expected: &Expected) -> Self {
        ChunkedDecrypt {
            chunks,
            size: expected.size_bytes,
            index: 0,
            buf: Vec::with_capacity(crate::chunk::CHUNK_SIZE as usize),
            decrypt: Decrypt::chunked(key, expected),
        }
    }

    /// Takes the next bytes of the artifact, passing the gzip stream of each verified chunk
    /// to `emit`.
    pub fn update(
        &mut self,
        mut data: &[u8],
        mut emit: impl FnMut(&[u8]) -> Result<(), SealError>,
    ) -> Result<(), SealError> {
        while !data.is_empty() {
            let range = ChunkTable::range(self.index, self.size);
            let len = usize::try_from(range.end - range.start).unwrap_or(0);
            if len == 0 {
                return Err(SealError::TooLong {
                    expected: self.size,
                });
            }
            if self.buf.is_empty() && data.len() >= len {
                // A whole chunk in the input: checked where it lies, not copied.
                let verified = self.chunks.verify(self.index, self.size, &data[..len])?;
                self.decrypt.push(verified, &mut emit)?;
                self.index += 1;
                data = &data[len..];
                continue;
            }
            let take = (len - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == len {
                let verified = self.chunks.verify(self.index, self.size, &self.buf)?;
                self.decrypt.push(verified, &mut emit)?;
                self.buf.clear();
                self.index += 1;
            }
        }
        Ok(())
    }

    /// Ends the artifact: checks that it is complete, removes the padding and returns the
    /// last bytes of the gzip stream.
    pub fn finish(self) -> Result<Vec<u8>, SealError> {
        if !self.buf.is_empty() {
            let start = ChunkTable::range(self.index, self.size).start;
            return Err(SealError::Truncated {
                expected: self.size,
                found: start + self.buf.len() as u64,
            });
        }
        self.decrypt.finish()
    }
}

/// Opens a sealed artifact from raw bytes in order: [`ChunkedDecrypt`] then [`Inflate`], on
/// the caller's thread. Memory stays at one chunk plus the decoder's buffers.
pub struct ChunkedOpener<W: Write> {
    decrypt: ChunkedDecrypt,
    inflate: Inflate<W>,
}

impl<W: Write> ChunkedOpener<W> {
    /// An opener for an artifact with this signed chunk table.
    pub fn new(key: &SealKey, chunks: ChunkTable, expected: Expected, out: W) -> Self {
        ChunkedOpener {
            decrypt: ChunkedDecrypt::new(key, chunks, &expected),
            inflate: Inflate::new(&expected, out),
        }
    }

    /// Takes the next bytes of the artifact.
    pub fn update(&mut self, data: &[u8]) -> Result<(), SealError> {
        let inflate = &mut self.inflate;
        self.decrypt.update(data, |gz| inflate.write(gz))
    }

    /// How much plaintext has been written.
    pub fn plaintext_written(&self) -> u64 {
        self.inflate.plaintext_written()
    }

    /// Ends the artifact: see [`Opener::finish`].
    pub fn finish(mut self) -> Result<(Opened, W), SealError> {
        let last = self.decrypt.finish()?;
        self.inflate.write(&last)?;
        self.inflate.finish()
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
mod tests;
