//! Signing keys on a PKCS#11 token: SoftHSM2 (Debian's `softhsm2`), in a token directory of
//! the test's own. Skipped, saying why, when SoftHSM2 is missing, unless `OTA_REQUIRE_TOOLS=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Run, entry, keygen, manifest_with, ota_env, pack_args, s, with};

const MODULES: [&str; 3] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
];

/// A fresh SoftHSM2 token labelled `ota` (user PIN 1234) in `dir`; None (with the reason
/// printed) when SoftHSM2 is not installed.
fn token(dir: &Path) -> Option<(String, PathBuf)> {
    let module = MODULES.iter().find(|m| Path::new(m).is_file());
    let util = Command::new("softhsm2-util")
        .arg("--version")
        .output()
        .is_ok();
    let Some(module) = module.filter(|_| util) else {
        let why = "softhsm2 is not installed (apt-get install softhsm2)";
        assert!(
            std::env::var("OTA_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{why}"
        );
        println!("skipped: {why}");
        return None;
    };
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let out = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "ota",
            "--pin",
            "1234",
            "--so-pin",
            "5678",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((module.to_string(), conf))
}

#[test]
fn a_key_made_on_a_token_signs_packages_and_co_signs() {
    let t = tempfile::tempdir().unwrap();
    let Some((module, conf)) = token(t.path()) else {
        return;
    };
    let env = [("SOFTHSM2_CONF", s(&conf))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ota = |args: &[String]| -> Run { ota_env(args, &env) };
    let uri = |object: &str, pin: &str| {
        format!("pkcs11:token=ota;object={object}?module-path={module}&pin-value={pin}")
    };
    let v = |a: &[&str]| -> Vec<String> { a.iter().map(ToString::to_string).collect() };

    // The pair is made on the token; only the public half is written.
    let keys = t.path().join("hsm");
    let r = ota(&v(&[
        "keygen",
        "--pkcs11",
        &uri("release", "1234"),
        "--out",
        &s(&keys),
        "--json",
    ]));
    r.expect(0);
    assert!(keys.join("public.pem").is_file() && !keys.join("private.pem").exists());
    let key_id = r.json()["key_id"].as_str().unwrap().to_string();
    ota(&v(&[
        "keygen",
        "--pkcs11",
        &uri("release", "1234"),
        "--out",
        &s(&t.path().join("hsm-again")),
    ]))
    .expect(2)
    .stderr_has(&["a key labelled release is already there"]);
    // Another label into the same directory: its public.pem is not replaced without --force.
    ota(&v(&[
        "keygen",
        "--pkcs11",
        &uri("other", "1234"),
        "--out",
        &s(&keys),
    ]))
    .expect(2)
    .stderr_has(&["public.pem: a key is already there"]);
    // The text answer names the token, never its PIN.
    let r = ota(&v(&[
        "keygen",
        "--pkcs11",
        &uri("spare", "1234"),
        "--out",
        &s(&t.path().join("hsm-spare")),
    ]));
    r.expect(0);
    assert!(
        r.stdout.contains("pin-value=***") && !r.stdout.contains("pin-value=1234"),
        "{}",
        r.stdout
    );

    // ota pack signs with it; verify trusts its public key.
    let engine = ota_tests::noise(60_000, 31);
    std::fs::write(t.path().join("m.engine"), &engine).unwrap();
    let manifest = t.path().join("m.json");
    std::fs::write(
        &manifest,
        manifest_with(vec![entry("model/yolo-v8n.engine", "engine", &engine)]).to_string(),
    )
    .unwrap();
    let out = t.path().join("out");
    let r = ota(&with(
        pack_args(Path::new(&uri("release", "1234")), &out),
        &[
            "--file",
            &s(&t.path().join("m.engine")),
            "--manifest",
            &s(&manifest),
            "--cdn-base",
            "https://cdn.example.com",
            "--json",
        ],
    ));
    r.expect(0);
    assert_eq!(r.json()["signed_by"], serde_json::json!([key_id]));
    let envelope = s(&out.join("package.json"));
    let artifact = s(&out.join(r.json()["object_key"].as_str().unwrap()));
    let public = s(&keys.join("public.pem"));
    ota(&v(&[
        "verify",
        "--package",
        &envelope,
        "--artifact",
        &artifact,
        "--trusted-key",
        &public,
    ]))
    .expect(0);

    // A file key co-signs, then a threshold of two verifies.
    let file_key = keygen(t.path(), "file");
    ota(&v(&["sign", "--add", &envelope, "--key", &s(&file_key)])).expect(0);
    ota(&v(&[
        "verify",
        "--package",
        &envelope,
        "--artifact",
        &artifact,
        "--trusted-key",
        &public,
        "--trusted-key",
        &s(&t.path().join("file/public.pem")),
        "--threshold",
        "2",
    ]))
    .expect(0);

    // And the token co-signs an envelope a file key signed.
    let r = ota(&with(
        pack_args(&file_key, &t.path().join("out2")),
        &[
            "--file",
            &s(&t.path().join("m.engine")),
            "--manifest",
            &s(&manifest),
            "--cdn-base",
            "https://cdn.example.com",
            "--json",
        ],
    ));
    r.expect(0);
    let env2 = s(&t.path().join("out2/package.json"));
    let artifact2 = s(&t
        .path()
        .join("out2")
        .join(r.json()["object_key"].as_str().unwrap()));
    ota(&v(&[
        "sign",
        "--add",
        &env2,
        "--key",
        &uri("release", "1234"),
    ]))
    .expect(0);
    ota(&v(&[
        "verify",
        "--package",
        &env2,
        "--artifact",
        &artifact2,
        "--trusted-key",
        &public,
        "--trusted-key",
        &s(&t.path().join("file/public.pem")),
        "--threshold",
        "2",
    ]))
    .expect(0);

    // The refusals name what is wrong, and never show the PIN.
    let r = ota(&v(&[
        "sign",
        "--add",
        &env2,
        "--key",
        &uri("release", "9999"),
    ]));
    r.expect(2).stderr_has(&["logging in"]);
    assert!(!r.stderr.contains("9999"), "{}", r.stderr);
    ota(&v(&[
        "sign",
        "--add",
        &env2,
        "--key",
        &uri("absent", "1234"),
    ]))
    .expect(2)
    .stderr_has(&["no Ed25519 key labelled absent"]);
    ota(&v(&[
        "sign",
        "--add",
        &env2,
        "--key",
        &format!("pkcs11:token=nosuch;object=release?module-path={module}&pin-value=1234"),
    ]))
    .expect(2)
    .stderr_has(&["no token has this label"]);
}
