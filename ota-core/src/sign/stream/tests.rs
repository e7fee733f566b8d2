use std::io::Cursor;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::chunk::{CHUNK_SIZE, MemoryTableStore};
use crate::sign::tests::{key, sealed, trusted};
use crate::sign::{sign, verify};

/// A sealed package of `chunks` chunks (several blocks of stored digests).
fn package(chunks: usize) -> Package {
    sealed(
        chunks as u64 * u64::from(CHUNK_SIZE),
        (0..chunks)
            .map(|i| Sha256Digest::of(&i.to_le_bytes()))
            .collect(),
    )
}

fn streamed(
    envelope: &[u8],
    t: &TrustedKeys,
    threshold: usize,
) -> Result<VerifiedPackage, SignError> {
    verify_reader(
        Cursor::new(envelope),
        t,
        threshold,
        &Limits::DEFAULT,
        Box::new(MemoryTableStore::default()),
    )
}

/// Both verifiers on the same bytes: the same package and id, or errors of the same kind.
fn agree(envelope: &[u8], t: &TrustedKeys, threshold: usize) -> Result<VerifiedPackage, SignError> {
    let whole = verify(envelope, t, threshold, &Limits::DEFAULT);
    let stream = streamed(envelope, t, threshold);
    match (&whole, &stream) {
        (Ok(w), Ok(s)) => {
            assert_eq!(w.package(), s.package());
            assert_eq!(w.id(), s.id());
            assert_eq!(w.signed_by(), s.signed_by());
            assert!(s.chunks().sha256.is_stored());
        }
        (Err(w), Err(s)) => assert_eq!(
            w.status(),
            s.status(),
            "whole: {w}\nstreamed: {s}\n{}",
            String::from_utf8_lossy(envelope)
        ),
        _ => panic!(
            "whole: {whole:?}\nstreamed: {stream:?}\n{}",
            String::from_utf8_lossy(envelope)
        ),
    }
    stream
}

#[test]
fn a_streamed_envelope_verifies_as_the_whole_one_with_its_table_in_the_store() {
    let p = package(3 * crate::chunk::BLOCK + 5);
    let env = sign(&p, &[&key(1), &key(2)]).unwrap();
    let v = agree(env.to_json().as_bytes(), &trusted(&[1, 2]), 2).unwrap();
    assert_eq!(v.chunks().len(), 3 * crate::chunk::BLOCK + 5);
    assert!(v.envelope_json().is_none(), "the envelope is not kept");
    assert!(
        matches!(v.provenance(), Provenance::DsseStreamed { signatures, .. } if signatures.len() == 2)
    );
    // Its chunks verify against the stored digests, and no other bytes do.
    let t = v.chunks();
    let size = v.package().size_bytes;
    assert!(t.verify(7, size, &[0; 65536]).is_err());
    assert_eq!(
        t.sha256.get(7).unwrap(),
        Some(Sha256Digest::of(&7usize.to_le_bytes()))
    );
}

#[test]
fn a_payload_in_the_url_safe_alphabet_or_with_escapes_reads_as_the_whole_one_does() {
    let p = package(3);
    let env = sign(&p, &[&key(1)]).unwrap();
    let b64 = base64::Engine::encode(&STANDARD, &env.payload);
    let text = env.to_json();
    // Escaped characters, `\/` and `\u0041`, are the characters they stand for.
    let escaped = text.replacen('/', "\\/", 3).replacen('A', "\\u0041", 2);
    assert_ne!(escaped, text);
    agree(escaped.as_bytes(), &trusted(&[1]), 1).unwrap();
    let url = base64::Engine::encode(&URL_SAFE, &env.payload);
    if url != b64 {
        agree(text.replace(&b64, &url).as_bytes(), &trusted(&[1]), 1).unwrap();
    }
    // Fields in any order, white space anywhere.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pretty = serde_json::to_string_pretty(&serde_json::json!({
        "signatures": v["signatures"], "payload": v["payload"], "payloadType": v["payloadType"],
    }))
    .unwrap();
    agree(pretty.as_bytes(), &trusted(&[1]), 1).unwrap();
}

#[test]
fn a_broken_envelope_is_refused_as_the_whole_one_is() {
    let p = package(2);
    let env = sign(&p, &[&key(1)]).unwrap();
    let text = env.to_json();
    let b64 = base64::Engine::encode(&STANDARD, &env.payload);
    let t = trusted(&[1]);
    let cases: Vec<(String, Status)> = vec![
        (
            text.replacen(&b64[10..14], "AAAA", 1),
            Status::SignatureInvalid,
        ),
        (
            text.replacen(&b64, &b64[..b64.len() - 4], 1),
            Status::SignatureInvalid,
        ),
        (text.replacen(&b64[8..9], "*", 1), Status::EnvelopeInvalid),
        (
            text.replacen(&b64, &format!("{b64}A"), 1),
            Status::EnvelopeInvalid,
        ),
        // Unused bits set in the last symbol: "AB==" and "AAB=" are not canonical.
        (text.replacen(&b64, "AB==", 1), Status::EnvelopeInvalid),
        (text.replacen(&b64, "AAB=", 1), Status::EnvelopeInvalid),
        (text.replacen(&b64, "AA=A", 1), Status::EnvelopeInvalid),
        (text.replacen(&b64, "A===", 1), Status::EnvelopeInvalid),
        (
            text.replacen("\"payloadType\"", "\"kind\"", 1),
            Status::EnvelopeInvalid,
        ),
        (
            text.replacen("{", "{\"extra\":1,", 1),
            Status::EnvelopeInvalid,
        ),
        (
            text.replacen("{", &format!("{{\"payload\":\"{b64}\","), 1),
            Status::EnvelopeInvalid,
        ),
        (
            text.replacen("application/vnd.ota.package+json", "text/plain", 1),
            Status::EnvelopeInvalid,
        ),
        (format!("{text} x"), Status::EnvelopeInvalid),
        (text[..text.len() - 1].to_string(), Status::EnvelopeInvalid),
        ("[]".to_string(), Status::EnvelopeInvalid),
        (String::new(), Status::EnvelopeInvalid),
        (
            text.replacen("\"signatures\":[", "\"signatures\":[1,", 1),
            Status::EnvelopeInvalid,
        ),
    ];
    for (envelope, status) in cases {
        let err = agree(envelope.as_bytes(), &t, 1).unwrap_err();
        assert_eq!(err.status(), status, "{err}: {envelope}");
        // An envelope is judged before the threshold, in both.
        agree(envelope.as_bytes(), &t, 0).unwrap_err();
    }
    // An unknown signer, a threshold not met, a threshold of 0.
    let err = agree(text.as_bytes(), &trusted(&[9]), 1).unwrap_err();
    assert!(matches!(err, SignError::ThresholdNotMet { .. }), "{err}");
    let err = agree(text.as_bytes(), &t, 2).unwrap_err();
    assert!(matches!(err, SignError::ThresholdNotMet { .. }), "{err}");
    assert!(matches!(
        streamed(text.as_bytes(), &t, 0),
        Err(SignError::InvalidThreshold)
    ));
    // A signed payload that is no package statement.
    let mut bad = env.clone();
    bad.payload = b"{\"type\":\"fw\"}".to_vec();
    bad.signatures.clear();
    crate::sign::cosign(&mut bad, &[&key(1)]);
    let err = agree(bad.to_json().as_bytes(), &t, 1).unwrap_err();
    assert!(matches!(err, SignError::Statement(_)), "{err}");
}

#[test]
fn many_signatures_by_unknown_keys_are_read_as_the_whole_verifier_reads_them() {
    // Over half a megabyte of signatures: `verify` ignores those of unknown keys, and so must
    // the streamed verifier, whatever their number (the envelope's limit bounds them).
    let mut env = sign(&package(2), &[&key(1)]).unwrap();
    let stranger = sign(&package(2), &[&key(7)]).unwrap().signatures[0].clone();
    env.signatures.extend(std::iter::repeat_n(stranger, 6000));
    let text = env.to_json();
    assert!(text.len() > 512 << 10, "{}", text.len());
    agree(text.as_bytes(), &trusted(&[1]), 1).unwrap();
    // A trusted key judged on its first signature, a bad one: refused alike.
    let mut flood = env.clone();
    flood.signatures[0].sig[0] ^= 1;
    let err = agree(flood.to_json().as_bytes(), &trusted(&[1]), 1).unwrap_err();
    assert!(matches!(err, SignError::SignatureInvalid { .. }), "{err}");
}

#[test]
fn a_field_is_named_in_the_error() {
    let env = sign(&package(1), &[&key(1)]).unwrap();
    let text = env.to_json();
    let err = streamed(
        text.replacen("\"sig\":\"", "\"sig\":\"*", 1).as_bytes(),
        &trusted(&[1]),
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("signatures[0].sig"), "{err}");
    let err = streamed(
        text.replacen("\"payload\":\"", "\"payload\":\"*", 1)
            .as_bytes(),
        &trusted(&[1]),
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("payload"), "{err}");
}

/// An envelope that changes between the two passes: the second reads other bytes.
struct Changing {
    first: Cursor<Vec<u8>>,
    second: Vec<u8>,
    seeks: usize,
}

impl Read for Changing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.first.read(buf)
    }
}

impl Seek for Changing {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.seeks += 1;
        if self.seeks == 1 {
            let pos = self.first.position();
            self.first = Cursor::new(std::mem::take(&mut self.second));
            self.first.set_position(pos);
        }
        self.first.seek(to)
    }
}

#[test]
fn an_envelope_that_changes_between_the_passes_is_refused() {
    let t = trusted(&[1]);
    let a = sign(&package(4), &[&key(1)]).unwrap().to_json();
    // The second pass reads another statement signed by the same key: its length differs,
    // or its bytes do not match the signature that was read in the first pass.
    let mut other = package(4);
    other.release_notes = "changed".into();
    let b = sign(&other, &[&key(1)]).unwrap();
    let mut b = b.clone();
    b.signatures = serde_json::from_str::<crate::dsse::Envelope>(&a)
        .unwrap()
        .signatures;
    for second in [
        b.to_json(),
        a.replacen("\"payload\":\"ey", "\"payload\":\"fy", 1),
    ] {
        let source = Changing {
            first: Cursor::new(a.clone().into_bytes()),
            second: second.into_bytes(),
            seeks: 0,
        };
        let r = verify_reader(
            source,
            &t,
            1,
            &Limits::DEFAULT,
            Box::new(MemoryTableStore::default()),
        );
        assert!(r.is_err(), "{r:?}");
    }
}

struct Failing;

impl TableStore for Failing {
    fn write_at(&self, _: u64, _: &[u8]) -> io::Result<()> {
        Err(io::Error::other("the disk is full"))
    }
    fn read_at(&self, _: u64, _: &mut [u8]) -> io::Result<()> {
        Err(io::Error::other("unreadable"))
    }
}

#[test]
fn a_store_that_cannot_be_written_fails_the_verification_as_an_io_error() {
    let env = sign(&package(2), &[&key(1)]).unwrap().to_json();
    let err = verify_reader(
        Cursor::new(env),
        &trusted(&[1]),
        1,
        &Limits::DEFAULT,
        Box::new(Failing),
    )
    .unwrap_err();
    assert!(
        matches!(&err, SignError::Read { message } if message.contains("the disk is full")),
        "{err}"
    );
    assert_eq!(err.status(), Status::Io);
    // Nothing unsigned is parsed or stored: an envelope its signers did not sign never
    // reaches the store (which would fail), so the signature error is what is reported.
    let err = verify_reader(
        Cursor::new(sign(&package(2), &[&key(1)]).unwrap().to_json()),
        &trusted(&[2]),
        1,
        &Limits::DEFAULT,
        Box::new(Failing),
    )
    .unwrap_err();
    assert!(matches!(err, SignError::ThresholdNotMet { .. }), "{err}");
    let mut forged = sign(&package(2), &[&key(1)]).unwrap();
    forged.payload = package(3).to_json().into_bytes();
    let err = verify_reader(
        Cursor::new(forged.to_json()),
        &trusted(&[1]),
        1,
        &Limits::DEFAULT,
        Box::new(Failing),
    )
    .unwrap_err();
    assert!(matches!(err, SignError::SignatureInvalid { .. }), "{err}");
}

#[test]
fn an_envelope_or_payload_over_the_limits_is_refused() {
    let env = sign(&package(40), &[&key(1)]).unwrap().to_json();
    let mut small = Limits::DEFAULT;
    small.max_package_bytes = 1000;
    let err = verify_reader(
        Cursor::new(&env),
        &trusted(&[1]),
        1,
        &small,
        Box::new(MemoryTableStore::default()),
    )
    .unwrap_err();
    assert!(
        matches!(err, SignError::Statement(ParseError::TooLarge { .. })),
        "{err}"
    );
    let padded = format!("{env}{}", " ".repeat(Limits::DEFAULT.max_envelope_bytes()));
    let err = streamed(padded.as_bytes(), &trusted(&[1]), 1).unwrap_err();
    assert_eq!(err.status(), Status::TooLarge, "{err}");
    assert!(
        err.to_string().contains(&format!("{} bytes", padded.len())),
        "{err}"
    );
}

#[test]
fn the_stored_table_is_shared_by_clones_and_a_changed_block_fails_the_chunk() {
    let store = Arc::new(MemoryTableStore::default());
    let env = sign(&package(3), &[&key(1)]).unwrap().to_json();
    let v = verify_reader(
        Cursor::new(env),
        &trusted(&[1]),
        1,
        &Limits::DEFAULT,
        Box::new(store.clone()),
    )
    .unwrap();
    let clone = v.clone();
    assert!(clone.chunks().sha256.ptr_eq(&v.chunks().sha256));
    store.corrupt(40);
    let err = v
        .chunks()
        .verify(1, v.package().size_bytes, &[0; 65536])
        .unwrap_err();
    assert!(
        matches!(err, crate::chunk::ChunkError::Table { index: 1, .. }),
        "{err}"
    );
    assert_eq!(err.status(), Status::Io);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever is done to an envelope's bytes, both verifiers come to the same verdict.
    #[test]
    fn both_verifiers_agree_on_a_mangled_envelope(
        at in 0usize..10_000,
        edit in 0u8..3,
        byte in any::<u8>(),
    ) {
        let env = sign(&package(2), &[&key(1)]).unwrap().to_json().into_bytes();
        let at = at % (env.len() + 1);
        let mut mangled = env.clone();
        match edit {
            0 if at < env.len() => mangled[at] = byte,
            1 => mangled.insert(at, byte),
            _ if at < env.len() => { mangled.remove(at); }
            _ => {}
        }
        agree(&mangled, &trusted(&[1]), 1).ok();
    }
}
