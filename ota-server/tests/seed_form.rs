//! Seed 004's own package form: an Ed25519 or ECDSA P-256 (DER) signature by a trusted
//! publisher over the plain artifact's SHA-256. The server checks the signature and the artifact, seals it and signs
//! the statement with its own key; a device verifies the assignment against that key and
//! opens what it downloaded.

mod common;

use std::io::Cursor;

use base64::Engine as _;
use common::{Srv, assert_error, config, publisher, registration, tmp, tmp_with_input};
use ota_core::Limits;
use ota_core::assignment::{Assignment, Proof};
use ota_core::sign::{self, PublicKey, SigningKey};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn seed_body(path: &std::path::Path, bytes: &[u8], key: &SigningKey) -> Value {
    let digest = ota_core::Sha256Digest::of(bytes);
    json!({
        "type": "fw", "version": "2.0.0",
        "artifact_uri": format!("file://{}", path.display()),
        "sha256": digest.to_hex(),
        "signature": b64(&key.sign(digest.as_bytes())),
        "size_bytes": bytes.len(),
        "compatibility": {"device_type": "temp-sensor", "min_version": "1.0.0"},
        "release_notes": "Fix sensor drift above 60C; reduce idle current.",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_form_is_checked_sealed_and_served() {
    let (dir, input) = tmp_with_input("seedform");
    let plain: Vec<u8> = (0..150_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let path = input.join("fw-2.0.0.bin");
    std::fs::write(&path, &plain).unwrap();
    let s = Srv::start(config(&dir)).await;
    let admin = s.token("acme", "admin");

    // Refusals before anything is kept: a signature by an unknown key, an ECDSA signature.
    let mut body = seed_body(&path, &plain, &SigningKey::from_secret([9; 32]));
    assert_error(
        &s.call("POST", "/api/v1/ota/packages", &admin, Some(&body))
            .await,
        400,
        "INVALID_ARGUMENT",
        "signature",
    );
    body["signature"] = json!(b64(&[0x30; 71]));
    assert_error(
        &s.call("POST", "/api/v1/ota/packages", &admin, Some(&body))
            .await,
        400,
        "INVALID_ARGUMENT",
        "signature",
    );
    // A declared digest, validly signed, that the artifact does not have: rejected for good.
    let mut wrong = seed_body(&path, b"something else", &publisher());
    wrong["size_bytes"] = json!(plain.len());
    let got = s
        .call("POST", "/api/v1/ota/packages", &admin, Some(&wrong))
        .await;
    assert_error(&got, 400, "INVALID_ARGUMENT", "sha256");
    let (_, list) = s.get("/api/v1/ota/packages", &admin).await;
    assert_eq!(list["packages"][0]["status"], "rejected", "{list}");
    // An unknown field is named.
    let mut extra = seed_body(&path, &plain, &publisher());
    extra["colour"] = json!("red");
    assert_error(
        &s.call("POST", "/api/v1/ota/packages", &admin, Some(&extra))
            .await,
        400,
        "INVALID_ARGUMENT",
        "colour",
    );

    // The seed's body as written: available, checksum verified, signed by both.
    let (code, v) = s
        .call(
            "POST",
            "/api/v1/ota/packages",
            &admin,
            Some(&seed_body(&path, &plain, &publisher())),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["status"], "available");
    assert_eq!(v["checksum_verified"], true);
    assert_eq!(v["name"], "temp-sensor-fw");
    let (_, keys) = s.get("/api/v1/ota/keys", &admin).await;
    let server_key = PublicKey::parse(keys["server_key"]["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        v["signed_by"],
        json!([
            publisher().key_id().to_string(),
            server_key.key_id().to_string()
        ])
    );
    let pkg = v["package_id"].as_str().unwrap().to_string();

    // A device assigned the package verifies its envelope with the server's key and opens
    // the sealed bytes back into the publisher's artifact.
    s.empty_profile(&admin, "p").await;
    let cred = s.register(&admin, "dev-1", &registration("p")).await;
    let r = s
        .create_rollout(
            &admin,
            &json!({
            "package_id": pkg, "target_profile_id": "p", "canary_percent": 100}),
        )
        .await;
    assert_eq!(r["scheduled_count"], json!(1), "{r}");
    let (code, a) = s.get("/api/v1/devices/dev-1/ota", &cred).await;
    assert_eq!(code, 200, "{a}");
    let a = Assignment::from_json(a.to_string().as_bytes(), &Limits::DEFAULT).unwrap();
    let Proof::Dsse(env) = &a.proof else {
        panic!("a DSSE assignment")
    };
    let trusted = [server_key].into_iter().collect();
    let verified = sign::verify_envelope(env.clone(), &trusted, 1, &Limits::DEFAULT).unwrap();
    let mut sealed = Vec::new();
    loop {
        let r = s
            .http
            .get(format!(
                "{}/api/v1/devices/dev-1/ota/chunk?package_id={pkg}&offset={}",
                s.base,
                sealed.len()
            ))
            .bearer_auth(&cred)
            .send()
            .await
            .unwrap();
        let done = r.headers()["ota-complete"] == "true";
        sealed.extend_from_slice(&r.bytes().await.unwrap());
        if done {
            break;
        }
        assert!(sealed.len() < 1 << 20, "bounded");
    }
    let (_, opened) = ota_core::seal::open_checked(
        Cursor::new(sealed),
        &a.encryption_key,
        verified.expected(),
        Vec::new(),
    )
    .unwrap();
    assert_eq!(opened, plain);

    // After a restart the package is still available (its envelope verifies again).
    let cfg = s.running.state.config.clone();
    s.stop();
    let s = Srv::start(cfg).await;
    let (code, _) = s.get("/api/v1/devices/dev-1/ota", &cred).await;
    assert_eq!(code, 200);
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The ECDSA P-256 publisher of the tests, and its public key as PEM.
fn ecdsa_publisher() -> (p256::ecdsa::SigningKey, String) {
    use p256::pkcs8::EncodePublicKey;
    let key = p256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap();
    let pem = key
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    (key, pem)
}

/// A DER ECDSA signature whose hash is `digest` (`openssl dgst -sha256 -sign`'s form).
fn ecdsa_sign_prehash(key: &p256::ecdsa::SigningKey, digest: &[u8]) -> Vec<u8> {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    let sig: p256::ecdsa::Signature = key.sign_prehash(digest).unwrap();
    sig.to_der().as_bytes().to_vec()
}

/// A DER ECDSA-SHA256 signature of `message`.
fn ecdsa_sign(key: &p256::ecdsa::SigningKey, message: &[u8]) -> Vec<u8> {
    use p256::ecdsa::signature::Signer;
    let sig: p256::ecdsa::Signature = key.sign(message);
    sig.to_der().as_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecdsa_p256_der_signature_by_a_trusted_pem_key_is_accepted() {
    let (dir, input) = tmp_with_input("seedform-ecdsa");
    let plain: Vec<u8> = (0..70_000u32).map(|i| (i * 13 + i / 97) as u8).collect();
    let path = input.join("fw-2.0.0.bin");
    std::fs::write(&path, &plain).unwrap();
    let (key, pem) = ecdsa_publisher();
    // The PEM key given in a file, as `--trusted-key /etc/ota/publisher.pem` would.
    let pem_file = dir.join("publisher.pem");
    std::fs::write(&pem_file, &pem).unwrap();
    let mut cfg = config(&dir);
    cfg.trusted_keys.push(pem_file.display().to_string());
    let s = Srv::start(cfg).await;
    let admin = s.token("acme", "admin");
    let digest = ota_core::Sha256Digest::of(&plain);
    let mut body = seed_body(&path, &plain, &publisher());

    // The key is listed with its algorithm.
    let (_, keys) = s.get("/api/v1/ota/keys", &admin).await;
    let listed = keys["publisher_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["algorithm"] == "ecdsa-p256")
        .cloned()
        .unwrap_or_else(|| panic!("no P-256 key in {keys}"));
    assert_eq!(listed["public_key"].as_str().unwrap().trim(), pem.trim());
    let key_id = listed["key_id"].as_str().unwrap().to_string();

    // A DER signature over another digest is refused, naming the field, and nothing is kept.
    let other = ota_core::Sha256Digest::of(b"another artifact");
    body["signature"] = json!(b64(&ecdsa_sign_prehash(&key, other.as_bytes())));
    assert_error(
        &s.call("POST", "/api/v1/ota/packages", &admin, Some(&body))
            .await,
        400,
        "INVALID_ARGUMENT",
        "signature",
    );
    // So is a valid signature by an untrusted P-256 key.
    let stranger = p256::ecdsa::SigningKey::from_slice(&[6; 32]).unwrap();
    body["signature"] = json!(b64(&ecdsa_sign_prehash(&stranger, digest.as_bytes())));
    assert_error(
        &s.call("POST", "/api/v1/ota/packages", &admin, Some(&body))
            .await,
        400,
        "INVALID_ARGUMENT",
        "signature",
    );
    // And a DER signature whose bytes were altered.
    let mut bad = ecdsa_sign_prehash(&key, digest.as_bytes());
    let last = bad.len() - 1;
    bad[last] ^= 1;
    body["signature"] = json!(b64(&bad));
    assert_error(
        &s.call("POST", "/api/v1/ota/packages", &admin, Some(&body))
            .await,
        400,
        "INVALID_ARGUMENT",
        "signature",
    );
    let (_, list) = s.get("/api/v1/ota/packages", &admin).await;
    assert_eq!(list["packages"], json!([]), "{list}");

    // The seed's form: `MEUCIQD...`-like base64 DER, the digest as the ECDSA hash.
    let der = ecdsa_sign_prehash(&key, digest.as_bytes());
    assert_eq!(der[0], 0x30, "a DER SEQUENCE");
    body["signature"] = json!(b64(&der));
    let v = s.upload(&admin, &body).await;
    assert_eq!(v["status"], "available");
    assert_eq!(v["checksum_verified"], true);
    assert_eq!(v["signed_by"][0], json!(key_id), "{v}");

    // ECDSA-SHA256 over the 32 digest bytes, hex-encoded, for another build.
    let plain2: Vec<u8> = plain.iter().map(|b| b ^ 0x5a).collect();
    let path2 = input.join("fw-2.0.1.bin");
    std::fs::write(&path2, &plain2).unwrap();
    let digest2 = ota_core::Sha256Digest::of(&plain2);
    let mut body2 = seed_body(&path2, &plain2, &publisher());
    body2["version"] = json!("2.0.1");
    body2["signature"] = json!(hex::encode(ecdsa_sign(&key, digest2.as_bytes())));
    let v = s.upload(&admin, &body2).await;
    assert_eq!(v["signed_by"][0], json!(key_id), "{v}");
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_key_that_is_neither_ed25519_nor_p256_stops_the_start() {
    let dir = tmp("seedform-badkey");
    let mut cfg = config(&dir);
    cfg.trusted_keys
        .push("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into());
    let err = ota_server::open(cfg).await.err().expect("refused");
    assert!(err.starts_with("--trusted-key"), "{err}");
    assert!(err.contains("P-256"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
