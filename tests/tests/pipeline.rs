//! The device pipeline on two threads (`ota_host::pipeline`) against the core's one-thread
//! path: the same output, the same errors, and nothing decrypted that was not verified.

use ota_core::chunk::ChunkError;
use ota_core::download::{Accepted, Download, DownloadError, Install};
use ota_core::seal::{self, Expected, SealError};
use ota_core::sign::{self, VerifiedPackage};
use ota_core::{Limits, Status};
use ota_host::pipeline;
use ota_tests::{firmware_package, noise, seal_into, seal_key, signing_key};

/// A signed, sealed package of `plaintext`, verified, and its artifact.
fn package(plaintext: &[u8]) -> (VerifiedPackage, Vec<u8>) {
    package_edited(plaintext, |_| {})
}

fn open(v: &VerifiedPackage, artifact: &[u8], threads: usize) -> Result<Vec<u8>, SealError> {
    open_expecting(v, artifact, v.expected(), threads)
}

fn open_expecting(
    v: &VerifiedPackage,
    artifact: &[u8],
    expected: Expected,
    threads: usize,
) -> Result<Vec<u8>, SealError> {
    pipeline::open_chunked(
        artifact,
        &seal_key(),
        v.chunks(),
        expected,
        Vec::new(),
        threads,
    )
    .map(|(_, out)| out)
}

/// Every chunk (last first) accepted into a new staging store.
fn stage(v: &VerifiedPackage, artifact: &[u8]) -> (Download, Vec<u8>) {
    let mut staging = Vec::new();
    let mut d = Download::new(v);
    for req in d.plan(usize::MAX).into_iter().rev() {
        let end = req.offset as usize + req.length as usize;
        d.accept(
            req.offset,
            &artifact[req.offset as usize..end],
            &mut staging,
        )
        .unwrap();
    }
    (d, staging)
}

/// Stages every chunk (last first), then installs on `threads` threads. With `corrupt`, the
/// device restarts after staging (the download resumed from its saved state) and the byte
/// at that offset then changes in storage before the install reads it.
fn stage_and_install(
    v: &VerifiedPackage,
    artifact: &[u8],
    threads: usize,
    corrupt: Option<usize>,
) -> (Result<Vec<u8>, DownloadError>, Download) {
    let (mut d, mut staging) = stage(v, artifact);
    if let Some(at) = corrupt {
        let (resumed, refetch) = Download::resume(v, &d.state(), &mut staging).unwrap();
        assert!(refetch.is_empty());
        d = resumed;
        staging[at] ^= 1;
    }
    let r = pipeline::install(v, &seal_key(), &mut d, &mut staging, Vec::new(), threads)
        .map(|(_, out)| out);
    (r, d)
}

#[test]
fn two_threads_open_what_one_thread_opens_at_every_size() {
    // Around the queue's 128 KiB blocks and the 64 KiB chunks; incompressible, so the
    // artifact is about as long as the plaintext.
    for n in [0, 1, 15, 16, 65_536, 131_071, 131_072, 131_073, 600_001] {
        let plain = noise(n, n as u64 + 1);
        let (v, artifact) = package(&plain);
        for threads in [1, 2] {
            assert_eq!(open(&v, &artifact, threads).unwrap(), plain, "n = {n}");
            let (installed, d) = stage_and_install(&v, &artifact, threads, None);
            assert_eq!(installed.unwrap(), plain, "n = {n}");
            assert!(d.is_complete());
        }
        let (opened, _) = pipeline::open_chunked(
            artifact.as_slice(),
            &seal_key(),
            v.chunks(),
            v.expected(),
            std::io::sink(),
            2,
        )
        .unwrap();
        assert_eq!(opened.plaintext_size, n as u64);
        assert_eq!(opened.plaintext_sha256, v.seal().unwrap().plaintext_sha256);
    }
}

/// A signed, sealed package of `plaintext` whose seal information `edit` changed before it
/// was signed, verified, and its artifact.
fn package_edited(
    plaintext: &[u8],
    edit: impl FnOnce(&mut ota_core::seal::SealInfo),
) -> (VerifiedPackage, Vec<u8>) {
    let mut p = firmware_package();
    let artifact = seal_into(&mut p, plaintext);
    edit(p.seal.as_mut().unwrap());
    let env = sign::sign(&p, &[&signing_key(1)]).unwrap();
    let trusted = [signing_key(1).public_key()].into_iter().collect();
    let v = sign::verify_envelope(env, &trusted, 1, &Limits::DEFAULT).unwrap();
    (v, artifact)
}

/// Half noise, half a repeated pattern: it compresses, so segments differ in size.
fn mixed(n: usize, seed: u64) -> Vec<u8> {
    let mut v = noise(n, seed);
    for (i, b) in v.iter_mut().enumerate().filter(|(i, _)| i % 2 == 1) {
        *b = (i % 13) as u8;
    }
    v
}

#[test]
fn segments_inflated_on_every_thread_open_what_one_thread_opens() {
    let seg = ota_core::deflate::SEGMENT as usize;
    for n in [seg + 1, 2 * seg, 3 * seg + 4321] {
        let plain = mixed(n, n as u64);
        let (v, artifact) = package(&plain);
        let segments = v.seal().unwrap().segments.as_ref().unwrap();
        assert_eq!(segments.offsets.len(), n.div_ceil(seg) - 1, "n = {n}");
        for threads in [1, 2, 3] {
            assert_eq!(open(&v, &artifact, threads).unwrap(), plain, "n = {n}");
            let (installed, d) = stage_and_install(&v, &artifact, threads, None);
            assert_eq!(installed.unwrap(), plain, "n = {n}, {threads} threads");
            assert!(d.is_complete());
        }
    }
}

#[test]
fn segments_refuse_a_tampered_truncated_or_long_artifact_as_one_thread_does() {
    let plain = mixed(3 << 20, 4);
    let (v, artifact) = package(&plain);
    assert!(v.seal().unwrap().segments.is_some());
    let mut flipped = artifact.clone();
    flipped[2 << 20] ^= 1;
    let mut long = artifact.clone();
    long.extend_from_slice(b"endless");
    let short = &artifact[..artifact.len() - 16];
    for bad in [flipped.as_slice(), long.as_slice(), short] {
        let one = open(&v, bad, 1).unwrap_err();
        assert_eq!(open(&v, bad, 2).unwrap_err(), one);
    }
}

#[test]
fn a_declared_size_that_differs_is_refused_on_every_thread_count() {
    // One byte more or less than sealed, in the same three segments.
    let plain = mixed((2 << 20) + 5000, 6);
    for declared in [plain.len() as u64 + 1, plain.len() as u64 - 1] {
        let (v, artifact) = package_edited(&plain, |s| s.plaintext_size = declared);
        assert!(v.seal().unwrap().segments.is_some());
        let one = open(&v, &artifact, 1).unwrap_err();
        assert_eq!(
            open(&v, &artifact, 2).unwrap_err(),
            one,
            "declared {declared}"
        );
    }
    let (v, artifact) = package_edited(&plain, |s| s.plaintext_size += 1);
    assert!(v.seal().unwrap().segments.is_some());
    let one = open(&v, &artifact, 1).unwrap_err();
    assert!(
        matches!(one, SealError::PlaintextSizeMismatch { .. }),
        "{one:?}"
    );
    assert_eq!(open(&v, &artifact, 2).unwrap_err(), one);
}

#[test]
fn a_signed_offset_that_is_not_where_a_segment_starts_does_not_open_on_several_threads() {
    let plain = mixed(3 << 20, 8);
    for shift in [1u64, 1000] {
        let (v, artifact) = package_edited(&plain, |s| {
            s.segments.as_mut().unwrap().offsets[0] += shift;
        });
        assert_eq!(
            open(&v, &artifact, 2).unwrap_err(),
            SealError::DecryptionFailed,
            "shifted by {shift}"
        );
        // One thread does not read the offsets: the stream is one gzip member all the same.
        assert_eq!(open(&v, &artifact, 1).unwrap(), plain);
    }
}

#[test]
fn two_threads_refuse_a_tampered_truncated_or_long_artifact_as_one_does() {
    let plain = noise(300_000, 9);
    let (v, artifact) = package(&plain);
    let mut flipped = artifact.clone();
    flipped[200_000] ^= 1;
    let mut long = artifact.clone();
    long.extend_from_slice(b"endless");
    let short = &artifact[..artifact.len() - 16];
    for bad in [flipped.as_slice(), long.as_slice(), short] {
        let one = open(&v, bad, 1).unwrap_err();
        assert_eq!(open(&v, bad, 2).unwrap_err(), one);
    }
    assert_eq!(
        open(&v, &flipped, 2).unwrap_err().status(),
        Status::ChunkDigestMismatch
    );
    assert!(matches!(
        open(&v, short, 2).unwrap_err(),
        SealError::Truncated { .. }
    ));
}

#[test]
fn a_decompression_bomb_stops_at_its_bound_on_two_threads() {
    let plain = vec![0u8; 4 << 20];
    let (v, artifact) = package(&plain);
    let mut e = v.expected();
    e.plaintext_size = Some(1 << 20);
    e.max_plaintext = 1 << 20;
    for threads in [1, 2] {
        assert_eq!(
            open_expecting(&v, &artifact, e.clone(), threads).unwrap_err(),
            SealError::PlaintextTooLarge { max: 1 << 20 }
        );
    }
}

/// A slot that fails after `room` bytes.
struct FullDisk {
    room: usize,
}

impl std::io::Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.room {
            return Err(std::io::Error::other("no space left on device"));
        }
        self.room -= buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_slot_writers_error_is_the_one_reported_on_two_threads() {
    let plain = noise(2 << 20, 3);
    let (v, artifact) = package(&plain);
    let err = pipeline::open_chunked(
        artifact.as_slice(),
        &seal_key(),
        v.chunks(),
        v.expected(),
        FullDisk { room: 100_000 },
        2,
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, SealError::Io { message } if message.contains("no space left")),
        "{err:?}"
    );
}

#[test]
fn a_staged_chunk_corrupted_in_storage_is_found_and_refetched_on_two_threads() {
    let plain = noise(400_000, 5);
    let (v, artifact) = package(&plain);
    for threads in [1, 2] {
        let (r, d) = stage_and_install(&v, &artifact, threads, Some(70_000));
        assert_eq!(
            r.unwrap_err(),
            DownloadError::StoredChunkCorrupt { index: 1 }
        );
        assert!(!d.is_verified(1), "chunk 1 must be fetched again");
        assert_eq!(d.plan(usize::MAX).len(), 1);
    }
}

#[test]
fn a_staged_chunk_verified_in_this_session_is_not_hashed_again_at_install_but_one_read_back_after_a_restart_is()
 {
    let plain = noise(400_000, 12);
    let (v, artifact) = package(&plain);
    for threads in [1, 2] {
        // Accepted in this session: trusted as staged, not hashed again. A byte changed in
        // storage behind the download's back is not found by a hash, yet the install still
        // fails (gzip's CRC-32 and sizes), so nothing is reported installed.
        let (mut d, mut staging) = stage(&v, &artifact);
        assert!((0..d.chunk_count()).all(|i| d.is_verified_in_session(i)));
        staging[70_000] ^= 1;
        let err = pipeline::install(&v, &seal_key(), &mut d, &mut staging, Vec::new(), threads)
            .unwrap_err();
        assert!(matches!(err, DownloadError::Seal(_)), "{threads}: {err:?}");
        assert!(d.is_verified(1), "chunk 1 was not hashed again");

        // After a restart every staged chunk came back from storage: each is checked as the
        // install reads it, so a byte changed there is found, and that chunk fetched again.
        staging[70_000] ^= 1;
        let (mut d, refetch) = Download::resume(&v, &d.state(), &mut staging).unwrap();
        assert!(refetch.is_empty());
        assert!((0..d.chunk_count()).all(|i| !d.is_verified_in_session(i)));
        staging[70_000] ^= 1;
        let mut install = Install::new(&v, &seal_key(), Vec::new());
        assert_eq!(
            install.advance(&mut d, &mut staging).unwrap_err(),
            DownloadError::StoredChunkCorrupt { index: 1 }
        );
        assert_eq!(install.installed(), 1);
        assert_eq!(d.plan(usize::MAX).len(), 1);
        // Fetched again, it is verified on its way in and installed without a second hash.
        d.accept(65_536, &artifact[65_536..131_072], &mut staging)
            .unwrap();
        assert!(d.is_verified_in_session(1) && !d.is_verified_in_session(2));
        install.advance(&mut d, &mut staging).unwrap();
        assert_eq!(install.finish().unwrap().1, plain);
    }
}

#[test]
fn an_install_refuses_the_download_of_another_package() {
    let (v, artifact) = package(&noise(200_000, 13));
    let (other, other_artifact) = package(&noise(200_000, 14));
    assert_ne!(v.id(), other.id());
    let (mut d, mut staging) = stage(&other, &other_artifact);
    for threads in [1, 2] {
        let err = pipeline::install(&v, &seal_key(), &mut d, &mut staging, Vec::new(), threads)
            .unwrap_err();
        assert_eq!(err.status(), Status::DownloadStateMismatch, "{err:?}");
        assert!(
            matches!(&err, DownloadError::PackageMismatch { expected, found }
                if expected == v.id() && found == other.id()),
            "{err:?}"
        );
    }
    // Its own download installs.
    let (mut d, mut staging) = stage(&v, &artifact);
    assert!(pipeline::install(&v, &seal_key(), &mut d, &mut staging, Vec::new(), 2).is_ok());
}

#[test]
fn chunks_staged_on_two_threads_are_each_checked_and_stored_as_accept_does_one_by_one() {
    let plain = noise(700_000, 15);
    let (v, artifact) = package(&plain);
    let piece = |i: usize| {
        let start = i * 65_536;
        (
            start as u64,
            &artifact[start..(start + 65_536).min(artifact.len())],
        )
    };
    let mut bad = piece(3).1.to_vec();
    bad[9] ^= 1;
    for threads in [1, 2] {
        let mut staging = Vec::new();
        let mut d = Download::new(&v);
        // Chunk 0 came earlier; in this batch: the rest last first, chunk 0 again, a bad
        // copy of chunk 3, a misaligned piece and one past the end.
        d.accept(0, piece(0).1, &mut staging).unwrap();
        let mut batch: Vec<(u64, &[u8])> = (1..d.chunk_count()).rev().map(piece).collect();
        batch.push(piece(0));
        batch.push((3 * 65_536, &bad));
        batch.push((7, &artifact[..100]));
        batch.push((artifact.len() as u64, &artifact[..100]));
        let results = pipeline::stage(&mut d, &batch, &mut staging, threads);
        let one_by_one: Vec<_> = {
            let mut again = Download::new(&v);
            let mut staging = Vec::new();
            again.accept(0, piece(0).1, &mut staging).unwrap();
            batch
                .iter()
                .map(|(o, data)| again.accept(*o, data, &mut staging))
                .collect()
        };
        assert_eq!(results, one_by_one, "{threads} thread(s)");
        assert!(matches!(
            results[results.len() - 3],
            Err(DownloadError::Chunk(ChunkError::DigestMismatch {
                index: 3
            }))
        ));
        assert!(d.is_complete());
        assert!((0..d.chunk_count()).all(|i| d.is_verified_in_session(i)));
        let (_, out) =
            pipeline::install(&v, &seal_key(), &mut d, &mut staging, Vec::new(), threads).unwrap();
        assert_eq!(out, plain);
    }
}

#[test]
fn a_chunk_checked_for_another_download_is_not_stored() {
    let (v, artifact) = package(&noise(200_000, 16));
    let (other, _) = package(&noise(200_000, 18));
    assert_ne!(v.id(), other.id());
    let checked = Download::new(&v)
        .checker()
        .check(0, &artifact[..65_536])
        .unwrap();
    let mut d = Download::new(&other);
    let mut staging = Vec::new();
    let err = d.store(checked.clone(), &mut staging).unwrap_err();
    assert!(
        matches!(&err, DownloadError::PackageMismatch { expected, found }
            if expected == other.id() && found == v.id()),
        "{err:?}"
    );
    assert!(staging.is_empty() && d.verified_count() == 0);
    // Its own download stores it.
    let mut d = Download::new(&v);
    assert_eq!(
        d.store(checked, &mut staging).unwrap(),
        Accepted::New { index: 0 }
    );
}

#[test]
fn the_chunk_table_is_shared_with_the_package_not_copied() {
    let (v, artifact) = package(&noise(200_000, 8));
    let table = v.chunks().clone();
    assert!(table.sha256.ptr_eq(&v.chunks().sha256));
    // The core's one-thread install and the two-thread driver open the same bytes.
    let mut staging = Vec::new();
    let mut d = Download::new(&v);
    for req in d.plan(usize::MAX) {
        let end = req.offset as usize + req.length as usize;
        d.accept(
            req.offset,
            &artifact[req.offset as usize..end],
            &mut staging,
        )
        .unwrap();
    }
    let mut install = Install::new(&v, &seal_key(), Vec::new());
    install.advance(&mut d, &mut staging).unwrap();
    let (_, one) = install.finish().unwrap();
    let (two, _) = stage_and_install(&v, &artifact, 2, None);
    assert_eq!(one, two.unwrap());
    assert_eq!(
        seal::open_chunked(
            artifact.as_slice(),
            &seal_key(),
            v.chunks(),
            v.expected(),
            Vec::new()
        )
        .unwrap()
        .1,
        one
    );
}
