//! Tamper fixtures: one directory each under `tests/fixtures/tamper/`, each rejected with its
//! own error. A directory holds the signed `envelope.json`, the sealed `artifact.enc`, the
//! `encryption-key.hex`, the `trusted-keys.txt` (one public key per line), the `threshold`,
//! and `expect`: the status name and a phrase of the message (`ok` for the control).
//!
//! `OTA_BLESS=1 cargo test -p ota-tests --test tamper` regenerates them (deterministically).

use std::path::Path;

use ota_core::seal;
use ota_core::sign::{self, TrustedKeys};
use ota_core::{Limits, Status};
use ota_tests::{firmware_package, fixture, noise, seal_into, seal_key, signing_key};

/// Verifies and opens a fixture directory: the plaintext, or the status and message.
fn open(dir: &Path) -> Result<Vec<u8>, (Status, String)> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()))
    };
    let text = |name: &str| String::from_utf8(read(name)).unwrap();
    let trusted: TrustedKeys = text("trusted-keys.txt")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| sign::PublicKey::parse(l).unwrap())
        .collect();
    let threshold: usize = text("threshold").trim().parse().unwrap();
    let key: seal::SealKey = text("encryption-key.hex").trim().parse().unwrap();
    let fail = |status: Status, message: String| (status, message);
    let verified = sign::verify(
        &read("envelope.json"),
        &trusted,
        threshold,
        &Limits::DEFAULT,
    )
    .map_err(|e| fail(e.status(), e.to_string()))?;
    let artifact = read("artifact.enc");
    let one = seal::open_chunked(
        artifact.as_slice(),
        &key,
        verified.chunks(),
        verified.expected(),
        Vec::new(),
    )
    .map(|(_, out)| out);
    // The two-thread driver refuses every fixture exactly as the core's one-thread path does.
    let two = ota_host::pipeline::open_chunked(
        artifact.as_slice(),
        &key,
        verified.chunks(),
        verified.expected(),
        Vec::new(),
        2,
    )
    .map(|(_, out)| out);
    assert_eq!(one, two, "{}: two threads differ from one", dir.display());
    one.map_err(|e| fail(e.status(), e.to_string()))
}

struct Case {
    name: &'static str,
    expect: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "valid",
        expect: "ok",
    },
    Case {
        name: "iv-byte-flipped",
        expect: "chunk_digest_mismatch: chunk 0 does not match",
    },
    Case {
        name: "middle-byte-flipped",
        expect: "chunk_digest_mismatch: chunk 1 does not match",
    },
    Case {
        name: "last-block-byte-flipped",
        expect: "chunk_digest_mismatch: chunk 2 does not match",
    },
    Case {
        name: "truncated",
        expect: "truncated: the artifact is truncated",
    },
    Case {
        name: "appended-bytes",
        expect: "too_long: the artifact is longer than its declared",
    },
    Case {
        name: "wrong-key",
        expect: "decryption_failed: the artifact does not open with this key",
    },
    Case {
        name: "untrusted-signer",
        expect: "threshold_not_met: 1 valid signature(s) by distinct trusted keys needed, 0 found",
    },
    Case {
        name: "payload-edited",
        expect: "signature_invalid: the signature by trusted key",
    },
    Case {
        name: "threshold-not-met",
        expect: "threshold_not_met: 2 valid signature(s) by distinct trusted keys needed, 1 found",
    },
];

fn generate(root: &Path) {
    let plaintext = noise(150_000, 77);
    let mut package = firmware_package();
    let artifact = seal_into(&mut package, &plaintext);
    let signer = signing_key(1);
    let envelope = sign::sign(&package, &[&signer]).unwrap();
    for case in CASES {
        let dir = root.join(case.name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut artifact = artifact.clone();
        let mut envelope = envelope.clone();
        let mut key = seal_key().to_hex();
        let mut trusted = vec![signer.public_key().to_hex()];
        let mut threshold = 1;
        match case.name {
            "valid" => {}
            "iv-byte-flipped" => artifact[3] ^= 0x01,
            "middle-byte-flipped" => artifact[70_000] ^= 0x80,
            "last-block-byte-flipped" => {
                let n = artifact.len();
                artifact[n - 5] ^= 0x10;
            }
            "truncated" => artifact.truncate(artifact.len() - 16),
            "appended-bytes" => artifact.extend_from_slice(&[0u8; 32]),
            "wrong-key" => key = "ab".repeat(32),
            "untrusted-signer" => envelope = sign::sign(&package, &[&signing_key(9)]).unwrap(),
            "payload-edited" => {
                let text = String::from_utf8(envelope.payload.clone()).unwrap();
                envelope.payload = text
                    .replace("Fix sensor drift", "Fix sensor drift; add telnetd")
                    .into_bytes();
            }
            "threshold-not-met" => {
                trusted.push(signing_key(2).public_key().to_hex());
                threshold = 2;
            }
            other => panic!("no recipe for {other}"),
        }
        std::fs::write(dir.join("envelope.json"), envelope.to_json()).unwrap();
        std::fs::write(dir.join("artifact.enc"), &artifact).unwrap();
        std::fs::write(dir.join("encryption-key.hex"), format!("{key}\n")).unwrap();
        std::fs::write(dir.join("trusted-keys.txt"), trusted.join("\n") + "\n").unwrap();
        std::fs::write(dir.join("threshold"), format!("{threshold}\n")).unwrap();
        std::fs::write(dir.join("expect"), format!("{}\n", case.expect)).unwrap();
    }
}

#[test]
fn each_tamper_fixture_is_rejected_with_its_own_error() {
    let root = fixture("tamper");
    if std::env::var_os("OTA_BLESS").is_some() {
        generate(&root);
    }
    let mut seen = std::collections::BTreeSet::new();
    for case in CASES {
        let dir = root.join(case.name);
        let expect = std::fs::read_to_string(dir.join("expect")).unwrap();
        assert_eq!(
            expect.trim(),
            case.expect,
            "{}: the expect file is stale",
            case.name
        );
        match open(&dir) {
            Ok(plaintext) => {
                assert_eq!(case.expect, "ok", "{} was accepted", case.name);
                assert_eq!(plaintext, noise(150_000, 77));
            }
            Err((status, message)) => {
                let got = format!("{}: {message}", status.name());
                assert!(got.starts_with(case.expect), "{}: got {got:?}", case.name);
                assert!(
                    seen.insert(got),
                    "{}: same error as another fixture",
                    case.name
                );
            }
        }
    }
    let dirs = std::fs::read_dir(&root).unwrap().count();
    assert_eq!(dirs, CASES.len(), "a fixture directory has no case here");
}
