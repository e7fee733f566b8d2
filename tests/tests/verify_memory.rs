//! Verifying a signature copies nothing of the payload: the signed message (DSSE's
//! pre-authentication encoding around the payload) is hashed where its pieces lie. A verifier
//! that built the message in one buffer held a second copy of the payload, the size of the
//! chunk table's text (about 1.2 MB for a 1 GiB artifact), beside the envelope.
//!
//! The live heap is counted by this process's own allocator, so the count does not depend on
//! timing or on the C library's allocator. This binary holds this one test, so that no other
//! test allocates while it counts.

use std::sync::atomic::Ordering;

use ota_core::Limits;
use ota_core::chunk::{CHUNK_SIZE, ChunkTable};
use ota_core::digest::Sha256Digest;
use ota_core::package::Package;
use ota_core::seal::{Cipher, Compression, SealInfo};
use ota_core::sign::{self, SignError, SigningKey, TrustedKeys};
use ota_tests::counting::{Counting, LIVE, PEAK};

#[global_allocator]
static COUNTING: Counting = Counting;

/// A sealed firmware statement of a 1 GiB artifact: its chunk table is 16,384 digests.
fn package_of_a_gibibyte() -> Package {
    let chunks = (1u64 << 30) / u64::from(CHUNK_SIZE);
    let mut p: Package = serde_json::from_value(serde_json::json!({
        "type": "fw", "name": "gateway-fw", "version": "1.0.0",
        "artifact_uri": "s3://firmware/gateway-fw-1.0.0.enc",
        "sha256": Sha256Digest::of(b"artifact").to_string(),
        "size_bytes": 1u64 << 30,
    }))
    .unwrap();
    p.chunks = Some(ChunkTable {
        chunk_size: CHUNK_SIZE,
        sha256: (0..chunks)
            .map(|i| Sha256Digest::of(&i.to_le_bytes()))
            .collect(),
    });
    p.seal = Some(SealInfo {
        cipher: Cipher::Aes256Cbc,
        compression: Compression::Gzip,
        plaintext_size: 1 << 30,
        plaintext_sha256: Sha256Digest::of(b"plaintext"),
        segments: None,
    });
    p
}

#[test]
fn checking_a_signature_makes_no_copy_of_the_payload() {
    let signer = SigningKey::from_secret([1; 32]);
    let trusted: TrustedKeys = [signer.public_key()].into_iter().collect();
    let mut envelope = sign::sign(&package_of_a_gibibyte(), &[&signer]).unwrap();
    // One bit of the signature's s changed (its R still decodes to a point of large order): the
    // trusted key's signature is hashed over the whole message and refused, so nothing is
    // parsed and what the check allocated is all there is.
    envelope.signatures[0].sig[40] ^= 1;
    let payload = envelope.payload.len() as isize;
    assert!(payload > 1_000_000, "the payload is {payload} bytes");

    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let refused = sign::verify_envelope(envelope, &trusted, 1, &Limits::DEFAULT);
    let peak = PEAK.load(Ordering::SeqCst) - before;

    assert!(
        matches!(refused, Err(SignError::SignatureInvalid { .. })),
        "{refused:?}"
    );
    assert!(
        peak < payload / 8,
        "checking the signature over a {payload}-byte payload allocated {peak} bytes at its peak"
    );
}
