//! Arbitrary chunk sequences against one download: offsets, lengths, duplicates,
//! corruptions, rot in staging and restarts. Never panics; a verified chunk always matches
//! its table; an install that finishes always holds the exact plaintext.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ota_core::download::{Download, Install};
use ota_core::sign::{self, VerifiedPackage};
use ota_core::Limits;

struct Fixture {
    package: VerifiedPackage,
    artifact: Vec<u8>,
    plaintext: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let plaintext = ota_tests::noise(300_000, 7);
        let mut p = ota_tests::firmware_package();
        let artifact = ota_tests::seal_into(&mut p, &plaintext);
        let key = ota_tests::signing_key(1);
        let env = sign::sign(&p, &[&key]).unwrap();
        let trusted = [key.public_key()].into_iter().collect();
        let package = sign::verify_envelope(env, &trusted, 1, &Limits::DEFAULT).unwrap();
        Fixture { package, artifact, plaintext }
    })
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Chunk `index % count`, maybe corrupted, truncated or extended.
    Chunk { index: u8, flip: Option<(u16, u8)>, cut: u16, extra: u8 },
    /// Raw bytes at an arbitrary place.
    Raw { offset: u32, len: u16 },
    /// A byte of staging rots.
    Rot { at: u32 },
    /// Save the state and resume from it.
    Restart,
    /// Install what can be installed.
    Install,
}

fuzz_target!(|ops: Vec<Op>| {
    let f = fixture();
    let size = f.artifact.len();
    let mut staging: Vec<u8> = Vec::new();
    let mut d = Download::new(&f.package);
    let mut install = Install::new(&f.package, &ota_tests::seal_key(), Vec::new());
    // Whether a byte of a chunk verified in this session rotted in staging.
    let mut rotted_in_session = false;
    for op in ops.into_iter().take(200) {
        match op {
            Op::Chunk { index, flip, cut, extra } => {
                let i = usize::from(index) % d.chunk_count();
                let start = i * 65536;
                let end = (start + 65536).min(size);
                let mut data = f.artifact[start..end].to_vec();
                if let Some((at, x)) = flip {
                    let n = data.len();
                    data[usize::from(at) % n] ^= x;
                }
                data.truncate(data.len().saturating_sub(usize::from(cut) % 4));
                data.extend(std::iter::repeat_n(0u8, usize::from(extra) % 3));
                let same = data == f.artifact[start..end];
                let r = d.accept(start as u64, &data, &mut staging);
                // Only the exact chunk is ever accepted.
                assert_eq!(r.is_ok(), same, "chunk {i}: {r:?}");
            }
            Op::Raw { offset, len } => {
                // No run of one byte value is a chunk of this artifact.
                let data = vec![0xa5; usize::from(len) % 70_000];
                assert!(d.accept(u64::from(offset), &data, &mut staging).is_err());
            }
            Op::Rot { at } => {
                if !staging.is_empty() {
                    let n = staging.len();
                    let at = at as usize % n;
                    staging[at] ^= 1;
                    rotted_in_session |= d.is_verified_in_session(at / 65536);
                }
            }
            Op::Restart => {
                let state = d.state();
                let (again, _) = Download::resume(&f.package, &state, &mut staging).unwrap();
                d = again;
                install = Install::new(&f.package, &ota_tests::seal_key(), Vec::new());
            }
            Op::Install => {
                let _ = install.advance(&mut d, &mut staging);
            }
        }
        assert!(d.verified_count() <= d.chunk_count());
    }
    if d.is_complete() && install.advance(&mut d, &mut staging).is_ok() && install.installed() == d.chunk_count() {
        // A chunk back from storage after a restart was checked again as it left staging; one
        // accepted in this session was not hashed twice, so rot there fails the install (gzip's
        // CRC-32 and the sizes) instead: a finished install is always the plaintext.
        match install.finish() {
            Ok((_, out)) => assert_eq!(out, f.plaintext),
            Err(_) => assert!(rotted_in_session, "only in-session rot may fail a complete install"),
        }
    }
});
