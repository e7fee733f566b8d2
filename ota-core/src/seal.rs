//! Sealing: `IV (16 bytes) || AES-256-CBC-PKCS#7(gzip(plaintext))`, byte-compatible with
//! publish_artifact.py, in one streaming pass with bounded memory.
//!
//! [`Sealer`] is a `Write` for the plaintext. In the same pass it computes the sealed
//! artifact's SHA-256, size and chunk table (IV included), and the plaintext's size and
//! SHA-256. The IV is random ([`Sealer::new`] with an IV from the caller's RNG), or, in
//! reproducible mode ([`Sealer::reproducible`]), derived from the key and the plaintext
//! digest; the gzip header is always fixed (mtime 0, no name, OS 255), so the same input and
//! key give byte-identical output.
//!
//! This module also holds what both directions share: the key ([`SealKey`]), the `seal`
//! field of a package ([`SealInfo`]) and the error ([`SealError`]). Opening is
//! [`crate::open`]; its names are re-exported here.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::cbc_stream::CbcEncrypt;
use crate::chunk::{ChunkHasher, ChunkTable};
use crate::deflate;
use crate::digest::Sha256Digest;
use crate::segment::{GZIP_HEADER, Segments};
use crate::status::Status;

pub use crate::open::{
    ChunkedDecrypt, ChunkedOpener, Decrypt, Expected, Inflate, Opened, Opener, open_checked,
    open_chunked,
};

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
    /// Where the gzip stream's segments start, so a device may inflate them apart on several
    /// cores ([`crate::segment`]); absent for a plaintext of one segment, and in packages
    /// sealed before segments were recorded (which open on one core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<Segments>,
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
    /// Where the gzip stream's segments start; `None` for a plaintext of one segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<Segments>,
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
            segments: self.segments.clone(),
        }
    }

    /// What this artifact must be to open it: its size and digest, and its plaintext's
    /// declared size, digest and segments.
    pub fn expected(&self) -> Expected {
        Expected {
            size_bytes: self.size_bytes,
            sha256: self.sha256,
            plaintext_size: Some(self.plaintext_size),
            plaintext_sha256: Some(self.plaintext_sha256),
            max_plaintext: self.plaintext_size,
            segments: self.segments.clone(),
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
    (size < 32 || !size.is_multiple_of(16)).then(|| {
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
/// (about 300 KiB) whatever the size. The gzip stream is one member made of independent
/// blocks ([`crate::deflate`]): the sealer compresses them in turn, or a host compresses them
/// on several threads and hands them over with [`Sealer::push_block`]; the bytes are the same.
pub struct Sealer<W: Write> {
    cbc: CbcEncrypt<Tally<W>>,
    /// The plaintext of the block being filled.
    pending: Vec<u8>,
    /// The dictionary of that block: the plaintext before it, up to a window.
    window: Vec<u8>,
    /// Compressed bytes on their way to the cipher.
    deflated: Vec<u8>,
    /// A block shorter than [`deflate::BLOCK`] was pushed: it was the last.
    short_pushed: bool,
    /// Blocks compressed so far.
    blocks: u64,
    /// Bytes of the gzip stream so far, header included.
    gz_size: u64,
    /// Where each segment after the first starts in the gzip stream.
    offsets: Vec<u64>,
    crc: crc32fast::Hasher,
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
        let mut cbc = CbcEncrypt::new(key, iv, tally);
        cbc.write_all(&GZIP_HEADER)?;
        Ok(Sealer {
            cbc,
            pending: Vec::with_capacity(deflate::BLOCK),
            window: Vec::with_capacity(deflate::WINDOW),
            deflated: Vec::new(),
            short_pushed: false,
            blocks: 0,
            gz_size: GZIP_HEADER.len() as u64,
            offsets: Vec::new(),
            crc: crc32fast::Hasher::new(),
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

    /// Appends a block that the host compressed: `deflated` must be
    /// [`deflate::compress_block`] of `plain` with the dictionary of the plaintext before it,
    /// and the blocks must come in order, each of [`deflate::BLOCK`] bytes but the last. The
    /// plaintext is hashed here, so the package describes `plain`; a `deflated` that is not
    /// its compression would make an artifact that opens to something else, which the
    /// opener's plaintext checks then refuse. Not to be mixed with `write` in one artifact.
    pub fn push_block(&mut self, plain: &[u8], deflated: &[u8]) -> Result<(), SealError> {
        if !self.pending.is_empty() || self.short_pushed || plain.len() > deflate::BLOCK {
            return Err(SealError::Io {
                message: "push_block: blocks come in order, each of deflate::BLOCK bytes but \
                          the last, and not after write"
                    .into(),
            });
        }
        self.short_pushed = plain.len() < deflate::BLOCK;
        self.absorb(plain);
        self.append_block(plain, deflated)?;
        Ok(())
    }

    /// Sends a compressed block on, recording where a segment starts, and keeps the
    /// dictionary of the block after it.
    fn append_block(&mut self, plain: &[u8], deflated: &[u8]) -> io::Result<()> {
        if plain.is_empty() {
            return Ok(());
        }
        if self.blocks > 0 && self.blocks.is_multiple_of(deflate::SEGMENT_BLOCKS) {
            self.offsets.push(self.gz_size);
        }
        self.cbc.write_all(deflated)?;
        self.gz_size += deflated.len() as u64;
        self.blocks += 1;
        self.window.clear();
        self.window
            .extend_from_slice(deflate::dictionary(self.blocks, plain));
        Ok(())
    }

    /// Hashes and counts plaintext.
    fn absorb(&mut self, plain: &[u8]) {
        self.plain.update(plain);
        self.crc.update(plain);
        self.plain_size += plain.len() as u64;
    }

    /// Compresses the pending block and sends it on.
    fn flush_block(&mut self) -> io::Result<()> {
        deflate::compress_block(&self.window, &self.pending, &mut self.deflated)?;
        let (pending, deflated) = (
            std::mem::take(&mut self.pending),
            std::mem::take(&mut self.deflated),
        );
        let r = self.append_block(&pending, &deflated);
        (self.pending, self.deflated) = (pending, deflated);
        self.pending.clear();
        self.deflated.clear();
        r
    }

    /// Finishes the gzip stream and the padding, and returns what was sealed and the writer.
    pub fn finish(mut self) -> Result<(Sealed, W), SealError> {
        if !self.pending.is_empty() {
            self.flush_block()?;
        }
        self.cbc.write_all(&deflate::FINAL_BLOCK)?;
        let crc = self.crc.clone().finalize();
        self.cbc.write_all(&crc.to_le_bytes())?;
        // ISIZE: the size modulo 2^32, as gzip has it.
        self.cbc
            .write_all(&((self.plain_size & 0xffff_ffff) as u32).to_le_bytes())?;
        let tally = self.cbc.finish()?;
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
                segments: (!self.offsets.is_empty()).then_some(Segments {
                    plaintext_size: deflate::SEGMENT,
                    offsets: self.offsets,
                }),
            },
            tally.inner,
        ))
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.short_pushed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "write after the last pushed block",
            ));
        }
        let n = buf.len().min(deflate::BLOCK - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        self.absorb(&buf[..n]);
        if self.pending.len() == deflate::BLOCK {
            self.flush_block()?;
        }
        Ok(n)
    }

    /// Flushes what was compressed so far to the writer; the pending block stays pending,
    /// so flushing never changes the artifact's bytes.
    fn flush(&mut self) -> io::Result<()> {
        self.cbc.flush()
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::cbc_stream::tests::NIST_KEY;

    pub(crate) fn key() -> SealKey {
        SealKey::from_bytes([7; 32])
    }

    pub(crate) fn data(n: usize) -> Vec<u8> {
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
        let mut d = crate::cbc_stream::CbcDecrypt::new(&key(), a.iv);
        let mut plain = Vec::new();
        d.update(&bytes_a[16..], |p| plain.extend_from_slice(p));
        assert_eq!(&plain[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        // Writing other bytes than the digest promised fails.
        let mut s = Sealer::reproducible(&key(), digest, Vec::new()).unwrap();
        s.write_all(b"something else").unwrap();
        assert_eq!(s.finish().unwrap_err(), SealError::PlaintextDigestMismatch);
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
