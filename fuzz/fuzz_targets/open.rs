//! `open` on arbitrary bytes: the input is the gzip layer of a sealed artifact (encrypted here
//! with a fixed key and IV, so the fuzzer explores the decompressor, the padding and the
//! bounds rather than AES). It never panics, never writes more than its bound, and fails
//! whenever the output is not exactly what a gzip decoder makes of the input. The same bytes
//! as one segment inflated apart ([`ota_core::segment::inflate`]) never panic either, and
//! succeed only with the plaintext the segment claims (the last segment: at most that).
#![no_main]

use aes::cipher::{Array, BlockModeEncrypt, KeyIvInit};
use libfuzzer_sys::fuzz_target;
use ota_core::digest::Sha256Digest;
use ota_core::seal::{self, Expected, SealKey};
use ota_core::segment::{self, Segment};

const MAX: u64 = 1 << 20;

/// A writer that fails the target if the opener ever writes past its bound.
struct Bounded(u64);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        assert!(self.0 <= MAX, "wrote past the plaintext bound");
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let key = [9u8; 32];
    let iv = [3u8; 16];
    let mut artifact = iv.to_vec();
    // PKCS#7 padding, then AES-256-CBC.
    let pad = 16 - data.len() % 16;
    let mut body = data.to_vec();
    body.resize(data.len() + pad, pad as u8);
    let (blocks, _) = Array::<u8, aes::cipher::consts::U16>::slice_as_chunks_mut(&mut body);
    cbc::Encryptor::<aes::Aes256>::new(&key.into(), &iv.into()).encrypt_blocks(blocks);
    artifact.extend_from_slice(&body);
    let expected = Expected {
        size_bytes: artifact.len() as u64,
        sha256: Sha256Digest::of(&artifact),
        plaintext_size: None,
        plaintext_sha256: None,
        max_plaintext: MAX,
        segments: None,
    };
    let key = SealKey::from_bytes(key);
    let r = seal::open_checked(std::io::Cursor::new(&artifact), &key, expected.clone(), Bounded(0));
    if let Ok((opened, Bounded(n))) = r {
        assert!(opened.plaintext_size <= MAX);
        assert_eq!(opened.plaintext_size, n);
    }
    // Raw bytes as a whole artifact: never panics either.
    let raw = Expected {
        size_bytes: data.len() as u64,
        sha256: Sha256Digest::of(data),
        ..expected
    };
    let _ = seal::open_checked(std::io::Cursor::new(data), &key, raw, Bounded(0));
    // The same bytes as a segment: the first byte says which and how long.
    let flags = data.first().copied().unwrap_or(0);
    let claimed = usize::from(flags >> 2) * 1024;
    let segment = Segment {
        index: usize::from(flags & 1),
        start: 0,
        data: data.to_vec(),
        plaintext: claimed,
        last: flags & 2 != 0,
    };
    let mut out = Vec::new();
    if segment::inflate(&segment, &mut out).is_ok() {
        assert!(out.len() <= claimed, "a segment inflated past what it claims");
        assert!(segment.last || out.len() == claimed, "a segment gave less than it claims");
    }
});
