//! The publisher path end to end: seal, sign, verify, register, check the bytes, open; the
//! catalog's rules; and interoperability with `openssl enc` and `gzip`.

use std::io::Write as _;
use std::process::{Command, Stdio};

use ota_core::catalog::{Catalog, CatalogError, State};
use ota_core::seal::{self, SealError};
use ota_core::sign::{self, TrustedKeys};
use ota_core::{Channel, Limits, Status, UnixMs};
use ota_tests::{firmware_package, noise, seal_into, seal_key, signing_key};

fn trusted(keys: &[u8]) -> TrustedKeys {
    keys.iter().map(|n| signing_key(*n).public_key()).collect()
}

#[test]
fn seal_sign_verify_register_check_and_open() {
    let plaintext = noise(2_000_000, 1);
    let mut package = firmware_package();
    let artifact = seal_into(&mut package, &plaintext);
    let envelope = sign::sign(&package, &[&signing_key(1), &signing_key(2)]).unwrap();
    let verified = sign::verify(
        envelope.to_json().as_bytes(),
        &trusted(&[1, 2, 3]),
        2,
        &Limits::DEFAULT,
    )
    .unwrap();
    assert_eq!(verified.chunks().len(), artifact.len().div_ceil(65536));

    let mut catalog = Catalog::new();
    let id = catalog.register(verified.clone(), UnixMs(1_000));
    assert_eq!(
        catalog.register(verified.clone(), UnixMs(2_000)),
        id,
        "registering twice is idempotent"
    );
    assert_eq!(catalog.get(&id).unwrap().state, State::Pending);
    assert!(matches!(
        catalog.assignable(&id),
        Err(CatalogError::NotAvailable {
            state: "pending",
            ..
        })
    ));
    catalog
        .check_artifact(&id, artifact.as_slice(), UnixMs(3_000))
        .unwrap();
    assert_eq!(
        catalog.get(&id).unwrap().state,
        State::Available {
            checked_at: UnixMs(3_000)
        }
    );
    assert_eq!(catalog.assignable(&id).unwrap().id(), &id);
    assert_eq!(
        catalog
            .latest("temp-sensor-fw", Channel::Stable)
            .unwrap()
            .package
            .id(),
        &id
    );
    let record = &catalog.trust_center()[0];
    assert_eq!(record.signed_by.len(), 2);
    assert!(record.signed_by.contains(&signing_key(1).key_id()));

    let (opened, out) = seal::open_chunked(
        artifact.as_slice(),
        &seal_key(),
        verified.chunks(),
        verified.expected(),
        Vec::new(),
    )
    .unwrap();
    assert_eq!(out, plaintext);
    assert_eq!(opened.plaintext_size, plaintext.len() as u64);
}

#[test]
fn a_mismatched_artifact_is_rejected_for_good() {
    let mut package = firmware_package();
    let artifact = seal_into(&mut package, &noise(100_000, 2));
    let env = sign::sign(&package, &[&signing_key(1)]).unwrap();
    let verified = sign::verify_envelope(env, &trusted(&[1]), 1, &Limits::DEFAULT).unwrap();
    let mut catalog = Catalog::new();
    let id = catalog.register(verified, UnixMs(0));
    let mut tampered = artifact.clone();
    tampered[500] ^= 0x40;
    let err = catalog
        .check_artifact(&id, tampered.as_slice(), UnixMs(10))
        .unwrap_err();
    assert_eq!(
        err,
        CatalogError::ArtifactMismatch {
            id: id.clone(),
            what: "sha256"
        }
    );
    assert_eq!(err.status(), Status::InvalidArgument);
    assert!(matches!(
        catalog.get(&id).unwrap().state,
        State::Rejected { .. }
    ));
    assert!(matches!(
        catalog.assignable(&id),
        Err(CatalogError::NotAvailable {
            state: "rejected",
            ..
        })
    ));
    // The right bytes afterwards do not resurrect it.
    assert!(matches!(
        catalog.check_artifact(&id, artifact.as_slice(), UnixMs(20)),
        Err(CatalogError::AlreadyChecked { .. })
    ));
    assert!(catalog.latest("temp-sensor-fw", Channel::Stable).is_none());
    // A short artifact is a size mismatch.
    let mut other = firmware_package();
    other.version = "2.0.1".parse().unwrap();
    let artifact = seal_into(&mut other, &noise(100_000, 3));
    let env = sign::sign(&other, &[&signing_key(1)]).unwrap();
    let id = catalog.register(
        sign::verify_envelope(env, &trusted(&[1]), 1, &Limits::DEFAULT).unwrap(),
        UnixMs(0),
    );
    let err = catalog
        .check_artifact(&id, &artifact[..artifact.len() - 1], UnixMs(30))
        .unwrap_err();
    assert_eq!(err, CatalogError::ArtifactMismatch { id, what: "size" });
}

#[test]
fn latest_is_the_highest_available_version_on_the_channel() {
    let mut catalog = Catalog::new();
    let mut ids = Vec::new();
    for (version, channel) in [
        ("2.0.0", Channel::Stable),
        ("2.1.0", Channel::Stable),
        ("3.0.0-rc.1", Channel::Beta),
        ("2.2.0", Channel::Stable),
    ] {
        let mut p = firmware_package();
        p.version = version.parse().unwrap();
        p.channel = channel;
        let artifact = seal_into(&mut p, version.as_bytes());
        let env = sign::sign(&p, &[&signing_key(1)]).unwrap();
        let id = catalog.register(
            sign::verify_envelope(env, &trusted(&[1]), 1, &Limits::DEFAULT).unwrap(),
            UnixMs(0),
        );
        if version != "2.2.0" {
            catalog
                .check_artifact(&id, artifact.as_slice(), UnixMs(1))
                .unwrap();
        }
        ids.push(id);
    }
    let latest = |c| {
        catalog
            .latest("temp-sensor-fw", c)
            .map(|e| e.package.package().version.to_string())
    };
    // 2.2.0 is still pending, so 2.1.0 is the latest stable.
    assert_eq!(latest(Channel::Stable).as_deref(), Some("2.1.0"));
    assert_eq!(latest(Channel::Beta).as_deref(), Some("3.0.0-rc.1"));
    assert_eq!(latest(Channel::Canary), None);
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        || Command::new(tool)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
}

#[test]
fn openssl_and_gzip_open_what_ota_seals() {
    assert!(
        have("openssl") && have("gzip"),
        "openssl and gzip are needed (CI installs them)"
    );
    let plaintext = noise(300_000, 4);
    let (artifact, sealed) = seal::seal_bytes(&seal_key(), [0x42; 16], &plaintext).unwrap();
    let mut openssl = Command::new("openssl")
        .args([
            "enc",
            "-d",
            "-aes-256-cbc",
            "-K",
            &seal_key().to_hex(),
            "-iv",
            &hex_of(&sealed.iv),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = openssl.stdin.take().unwrap();
    let body = artifact[16..].to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let gunzip = Command::new("gzip")
        .arg("-dc")
        .stdin(openssl.stdout.take().unwrap())
        .output()
        .unwrap();
    writer.join().unwrap().unwrap();
    assert!(openssl.wait().unwrap().success());
    assert!(gunzip.status.success());
    assert!(
        gunzip.stdout == plaintext,
        "openssl | gzip -d did not give the plaintext back"
    );
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn opening_needs_the_right_key() {
    let mut package = firmware_package();
    let artifact = seal_into(&mut package, b"firmware image");
    let env = sign::sign(&package, &[&signing_key(1)]).unwrap();
    let v = sign::verify_envelope(env, &trusted(&[1]), 1, &Limits::DEFAULT).unwrap();
    let wrong = ota_core::seal::SealKey::from_bytes([1; 32]);
    let err = seal::open_chunked(
        artifact.as_slice(),
        &wrong,
        v.chunks(),
        v.expected(),
        Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err, SealError::DecryptionFailed);
}

/// `openssl` runs `args` with `stdin`, and must succeed: its standard output.
fn openssl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The private key `ota keygen` writes (`SigningKey::to_pkcs8_pem`) is one OpenSSL reads, with
/// the same public key; and a key OpenSSL makes is one ota reads, with the same public key.
#[test]
fn openssl_reads_the_private_keys_ota_writes_and_ota_reads_those_openssl_writes() {
    assert!(have("openssl"), "openssl is needed (CI installs it)");
    let ours = signing_key(7);
    let public = openssl(
        &["pkey", "-in", "/dev/stdin", "-pubout"],
        ours.to_pkcs8_pem().as_bytes(),
    );
    assert_eq!(
        String::from_utf8(public).unwrap().trim(),
        ours.public_key().to_pem().trim()
    );
    let theirs = openssl(&["genpkey", "-algorithm", "ed25519"], b"");
    let key = ota_core::sign::SigningKey::from_pkcs8(&theirs).unwrap();
    let public = openssl(&["pkey", "-in", "/dev/stdin", "-pubout"], &theirs);
    assert_eq!(
        String::from_utf8(public).unwrap().trim(),
        key.public_key().to_pem().trim()
    );
}
