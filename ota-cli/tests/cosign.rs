//! `ota sign`: `--add` co-signs an envelope so that a threshold of signers verifies; a sealed
//! statement is signed into an envelope.

mod common;

use std::path::Path;

use common::{entry, keygen, manifest_with, ota, pack_args, s, with};

/// Packs a small model with `key` into `dir/out`; gives (envelope, artifact).
fn packed(dir: &Path, key: &Path) -> (String, String) {
    let engine = ota_tests::noise(90_000, 21);
    std::fs::write(dir.join("m.engine"), &engine).unwrap();
    let manifest = dir.join("m.json");
    std::fs::write(
        &manifest,
        manifest_with(vec![entry("model/yolo-v8n.engine", "engine", &engine)]).to_string(),
    )
    .unwrap();
    let out = dir.join("out");
    let r = ota(&with(
        pack_args(key, &out),
        &[
            "--file",
            &s(&dir.join("m.engine")),
            "--manifest",
            &s(&manifest),
            "--cdn-base",
            "https://cdn.example.com",
            "--json",
        ],
    ));
    r.expect(0);
    let artifact = out.join(r.json()["object_key"].as_str().unwrap());
    (s(&out.join("package.json")), s(&artifact))
}

#[test]
fn sign_add_meets_a_threshold_of_two_signers() {
    let t = tempfile::tempdir().unwrap();
    let (k1, k2) = (keygen(t.path(), "k1"), keygen(t.path(), "k2"));
    let (p1, p2) = (
        s(&t.path().join("k1/public.pem")),
        s(&t.path().join("k2/public.pem")),
    );
    let (envelope, artifact) = packed(t.path(), &k1);
    let verify = || {
        ota(&[
            "verify",
            "--package",
            &envelope,
            "--artifact",
            &artifact,
            "--trusted-key",
            &p1,
            "--trusted-key",
            &p2,
            "--threshold",
            "2",
            "--json",
        ])
    };
    let r = verify();
    r.expect(1).stderr_has(&["2 valid signature(s)", "1 found"]);
    assert_eq!(r.json()["status"], "threshold_not_met");

    let r = ota(&["sign", "--add", &envelope, "--key", &s(&k2), "--json"]);
    r.expect(0);
    assert_eq!(r.json()["signatures"].as_array().map(Vec::len), Some(2));
    let r = verify();
    r.expect(0);
    assert_eq!(r.json()["signed_by"].as_array().map(Vec::len), Some(2));

    // The same key twice is refused, naming it; the envelope is unchanged.
    let before = std::fs::read(&envelope).unwrap();
    let k2_id = std::fs::read_to_string(t.path().join("k2/keyid")).unwrap();
    ota(&["sign", "--add", &envelope, "--key", &s(&k2)])
        .expect(2)
        .stderr_has(&[k2_id.trim(), "already signed"]);
    assert!(before == std::fs::read(&envelope).unwrap(), "unchanged");
}

#[test]
fn sign_add_to_another_file_keeps_the_original() {
    let t = tempfile::tempdir().unwrap();
    let (k1, k2) = (keygen(t.path(), "k1"), keygen(t.path(), "k2"));
    let (envelope, _) = packed(t.path(), &k1);
    let before = std::fs::read(&envelope).unwrap();
    let co = t.path().join("cosigned.json");
    ota(&[
        "sign",
        "--add",
        &envelope,
        "--key",
        &s(&k2),
        "--out",
        &s(&co),
    ])
    .expect(0);
    assert!(
        before == std::fs::read(&envelope).unwrap(),
        "the original is untouched"
    );
    let r = ota(&["inspect", &s(&co), "--json"]);
    assert_eq!(r.json()["signatures"].as_array().map(Vec::len), Some(2));
}

#[test]
fn sign_refuses_the_wrong_kind_of_file_and_signs_a_sealed_statement() {
    let t = tempfile::tempdir().unwrap();
    let (k1, k2) = (keygen(t.path(), "k1"), keygen(t.path(), "k2"));
    let (envelope, artifact) = packed(t.path(), &k1);
    // Without --add, an envelope is refused.
    ota(&[
        "sign",
        &envelope,
        "--key",
        &s(&k2),
        "--out",
        &s(&t.path().join("x.json")),
    ])
    .expect(2)
    .stderr_has(&["already an envelope", "--add"]);
    // The statement inside, signed again by another key alone.
    let statement = ota(&["inspect", &envelope, "--json"]).json()["package"].clone();
    let bare = t.path().join("statement.json");
    std::fs::write(&bare, statement.to_string()).unwrap();
    ota(&["sign", "--add", &s(&bare), "--key", &s(&k2)])
        .expect(2)
        .stderr_has(&["statement.json", "not an envelope"]);
    ota(&["sign", &s(&bare), "--key", &s(&k2)])
        .expect(2)
        .stderr_has(&["--out"]);
    let env2 = t.path().join("env2.json");
    ota(&["sign", &s(&bare), "--key", &s(&k2), "--out", &s(&env2)]).expect(0);
    ota(&[
        "verify",
        "--package",
        &s(&env2),
        "--artifact",
        &artifact,
        "--trusted-key",
        &s(&t.path().join("k2/public.pem")),
    ])
    .expect(0);
    // A statement that is not sealed cannot be signed.
    let mut unsealed = statement.clone();
    unsealed.as_object_mut().unwrap().remove("chunks");
    std::fs::write(&bare, unsealed.to_string()).unwrap();
    let r = ota(&[
        "sign",
        &s(&bare),
        "--key",
        &s(&k2),
        "--out",
        &s(&env2),
        "--json",
    ]);
    r.expect(1);
    assert_eq!(r.json()["status"], "not_sealed");
}
