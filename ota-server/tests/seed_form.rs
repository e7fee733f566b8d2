//! Seed 004's own package form: an Ed25519 signature by a trusted publisher over the plain
//! artifact's SHA-256. The server checks the signature and the artifact, seals it and signs
//! the statement with its own key; a device verifies the assignment against that key and
//! opens what it downloaded.

mod common;

use std::io::Cursor;

use base64::Engine as _;
use common::{Srv, assert_error, config, publisher, tmp};
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
    let dir = tmp("seedform");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
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
        501,
        "UNIMPLEMENTED",
        "signature",
    );
    // A declared digest, validly signed, that the artifact does not have: rejected for good.
    let mut wrong = seed_body(&path, b"something else", &publisher());
    wrong["size_bytes"] = json!(plain.len());
    let got = s
        .call("POST", "/api/v1/ota/packages", &admin, Some(&wrong))
        .await;
    assert_error(&got, 400, "INVALID_ARGUMENT", "sha256");
    let (_, list) = s.call("GET", "/api/v1/ota/packages", &admin, None).await;
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
    let (_, keys) = s.call("GET", "/api/v1/ota/keys", &admin, None).await;
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
    s.call("PUT", "/api/v1/ota/profiles/p", &admin, Some(&json!({})))
        .await;
    let (_, d) = s
        .call(
            "PUT",
            "/api/v1/devices/dev-1",
            &admin,
            Some(&json!({
            "profile_id": "p", "device_type": "temp-sensor", "hardware_profile": "acme-sensor-v2",
            "arch": "armv7", "installed": {"temp-sensor-fw": "1.2.0"}})),
        )
        .await;
    let cred = d["credential"].as_str().unwrap().to_string();
    let (code, r) = s
        .call(
            "POST",
            "/api/v1/ota/rollouts",
            &admin,
            Some(&json!({
            "package_id": pkg, "target_profile_id": "p", "canary_percent": 100})),
        )
        .await;
    assert_eq!((code, &r["scheduled_count"]), (201, &json!(1)), "{r}");
    let (code, a) = s
        .call("GET", "/api/v1/devices/dev-1/ota", &cred, None)
        .await;
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
    let (code, _) = s
        .call("GET", "/api/v1/devices/dev-1/ota", &cred, None)
        .await;
    assert_eq!(code, 200);
    s.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
