//! The openers' tests: sizes, digests, bounds and tampering, on every path.

use std::io::Write as _;

use super::*;
use crate::cbc_stream::tests::encrypt;
use crate::seal::tests::{data, key};
use crate::seal::{Sealed, seal_bytes};

fn open(bytes: &[u8], key: &SealKey, sealed: &Sealed) -> Result<Vec<u8>, SealError> {
    open_chunked(bytes, key, &sealed.chunks, sealed.expected(), Vec::new()).map(|(_, out)| out)
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
            sealed.expected(),
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
                sealed.expected(),
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
            sealed.expected(),
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
    let mut e = sealed.expected();
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
    let mut e = sealed.expected();
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
            segments: None,
        };
        let err = open_checked(std::io::Cursor::new(&bytes), &key(), e, Vec::new()).unwrap_err();
        assert_eq!(err, SealError::TrailingData);
    }
}

#[test]
fn the_two_stages_fed_apart_open_what_the_opener_opens() {
    let pt = data(300_000);
    let (bytes, sealed) = seal_bytes(&key(), [6; 16], &pt).unwrap();
    let e = sealed.expected();
    let mut first = ChunkedDecrypt::new(&key(), sealed.chunks.clone(), &e);
    let mut gz = Vec::new();
    // Odd pieces: partial chunks, whole chunks in place, and runs of several.
    let mut rest = bytes.as_slice();
    for len in [7usize, 65_529, 65_536, 140_000, 3].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(len.min(rest.len()));
        first
            .update(piece, |b| {
                gz.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        rest = tail;
    }
    gz.extend(first.finish().unwrap());
    let mut second = Inflate::new(&e, Vec::new());
    for piece in gz.chunks(1000) {
        second.write(piece).unwrap();
    }
    let (opened, out) = second.finish().unwrap();
    assert_eq!(out, pt);
    assert_eq!(opened.plaintext_sha256, Sha256Digest::of(&pt));
    // Without a declared digest the plaintext is hashed: the same digest.
    let mut e = e;
    e.plaintext_sha256 = None;
    let mut second = Inflate::new(&e, Vec::new());
    second.write(&gz).unwrap();
    assert_eq!(second.finish().unwrap().0, opened);
}

#[test]
fn no_byte_of_a_chunk_that_fails_its_digest_is_decrypted() {
    let pt = data(300_000);
    let (mut bytes, sealed) = seal_bytes(&key(), [7; 16], &pt).unwrap();
    bytes[65_536 + 10] ^= 1;
    let mut first = ChunkedDecrypt::new(&key(), sealed.chunks.clone(), &sealed.expected());
    let mut emitted = 0usize;
    let err = first
        .update(&bytes, |b| {
            emitted += b.len();
            Ok(())
        })
        .unwrap_err();
    assert_eq!(
        err,
        SealError::Chunk(crate::chunk::ChunkError::DigestMismatch { index: 1 })
    );
    // Chunk 0 less its IV and the block held back for the padding; nothing of chunk 1.
    assert_eq!(emitted, 65_536 - 16 - 16);
}

#[test]
fn the_chunk_table_is_shared_not_copied() {
    let (_, sealed) = seal_bytes(&key(), [8; 16], &data(200_000)).unwrap();
    let first = ChunkedDecrypt::new(&key(), sealed.chunks.clone(), &sealed.expected());
    assert!(first.chunks.sha256.ptr_eq(&sealed.chunks.sha256));
}

#[test]
fn bytes_must_come_in_order() {
    let (bytes, sealed) = seal_bytes(&key(), [2; 16], &data(1000)).unwrap();
    let mut opener = Opener::new(&key(), sealed.expected(), Vec::new());
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
