//! `--json`: every command, usage errors included, prints exactly one object of one shape
//! (`schema_version`, `command`, `ok`, `exit_code`, `error`, `status`) beside its own fields.

mod common;

use common::{entry, fixture, keygen, manifest_with, ota, pack_args, s, with};
use serde_json::Value;

/// Asserts the common shape and gives the object.
fn shaped(args: &[String], command: &str, code: i32) -> Value {
    let r = ota(args);
    r.expect(code);
    let lines: Vec<&str> = r.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line on stdout: {}", r.stdout);
    let j = r.json();
    assert_eq!(j["schema_version"], 1, "{args:?}: {j}");
    assert_eq!(j["command"], command, "{args:?}: {j}");
    assert_eq!(j["exit_code"], code, "{args:?}: {j}");
    assert_eq!(j["ok"], code == 0, "{args:?}: {j}");
    assert!(
        j["status"].is_null() || j["status"].is_string(),
        "{args:?}: {j}"
    );
    if code == 0 {
        assert!(j["error"].is_null(), "{args:?}: {j}");
    } else {
        let e = j["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{args:?}: no error: {j}"));
        assert!(!e.is_empty() && !e.contains('\n'), "{args:?}: {e}");
    }
    j
}

fn v(args: &[&str]) -> Vec<String> {
    args.iter().map(ToString::to_string).collect()
}

#[test]
fn every_command_prints_one_shape_on_success_failure_and_usage_error() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let key = keygen(d, "keys");
    let other = keygen(d, "other");
    let ok_manifest = s(&fixture("manifests/valid/tensorrt-orin-nx.json"));
    let pkg = s(&fixture("packages/valid/model-tensorrt-orin-nx.json"));

    shaped(
        &v(&["keygen", "--out", &s(&d.join("k2")), "--json"]),
        "keygen",
        0,
    );
    let j = shaped(
        &v(&["keygen", "--out", &s(&d.join("k2")), "--json"]),
        "keygen",
        2,
    );
    assert!(j["error"].as_str().unwrap().contains("--force"), "{j}");

    shaped(
        &v(&["manifest", "validate", &ok_manifest, "--json"]),
        "manifest validate",
        0,
    );
    let j = shaped(
        &v(&[
            "manifest",
            "validate",
            &s(&fixture("manifests/invalid/missing-name.json")),
            "--json",
        ]),
        "manifest validate",
        1,
    );
    assert_eq!(j["status"], "missing_field");
    assert_eq!(j["faults"][0]["path"], "name");
    shaped(
        &v(&["manifest", "validate", "/nonexistent.json", "--json"]),
        "manifest validate",
        2,
    );

    shaped(
        &v(&[
            "check",
            "--package",
            &pkg,
            "--device",
            &s(&fixture("profiles/valid/orin-nx-line-camera.json")),
            "--json",
        ]),
        "check",
        0,
    );
    let j = shaped(
        &v(&[
            "check",
            "--package",
            &pkg,
            "--device",
            &s(&fixture("profiles/valid/xavier-nx-one-dla.json")),
            "--json",
        ]),
        "check",
        1,
    );
    assert!(j["error"].as_str().unwrap().contains("does not fit"), "{j}");
    // clap's usage errors: the missing target group, an unknown flag, an unknown command.
    let j = shaped(&v(&["check", "--package", &pkg, "--json"]), "check", 2);
    assert!(j["error"].as_str().unwrap().contains("required"), "{j}");
    let j = shaped(&v(&["verify", "--bogus", "--json"]), "verify", 2);
    assert!(j["error"].as_str().unwrap().contains("--bogus"), "{j}");
    shaped(&v(&["--json", "frobnicate"]), "", 2);
    shaped(&v(&["demo", "--canary", "0", "--json"]), "demo", 2);

    // pack, verify, inspect, sign, unpack, publish on a real package.
    let engine = ota_tests::noise(70_000, 11);
    std::fs::write(d.join("m.engine"), &engine).unwrap();
    let manifest = d.join("m.json");
    std::fs::write(
        &manifest,
        manifest_with(vec![entry("model/yolo-v8n.engine", "engine", &engine)]).to_string(),
    )
    .unwrap();
    let out = d.join("out");
    let j = shaped(
        &with(
            pack_args(&key, &out),
            &[
                "--file",
                &s(&d.join("m.engine")),
                "--manifest",
                &s(&manifest),
                "--cdn-base",
                "https://cdn.example.com",
                "--json",
            ],
        ),
        "pack",
        0,
    );
    let artifact = s(&out.join(j["object_key"].as_str().unwrap()));
    let j = shaped(
        &with(
            pack_args(&key, &d.join("out-x")),
            &[
                "--file",
                &ok_manifest,
                "--manifest",
                &s(&manifest),
                "--json",
            ],
        ),
        "pack",
        1,
    );
    assert_eq!(j["status"], "digest_mismatch");
    let envelope = s(&out.join("package.json"));
    let public = s(&d.join("keys/public.pem"));
    let other_public = s(&d.join("other/public.pem"));
    shaped(
        &v(&[
            "verify",
            "--package",
            &envelope,
            "--artifact",
            &artifact,
            "--trusted-key",
            &public,
            "--json",
        ]),
        "verify",
        0,
    );
    let j = shaped(
        &v(&[
            "verify",
            "--package",
            &envelope,
            "--artifact",
            &artifact,
            "--trusted-key",
            &other_public,
            "--json",
        ]),
        "verify",
        1,
    );
    assert_eq!(j["status"], "threshold_not_met");
    shaped(&v(&["inspect", &envelope, "--json"]), "inspect", 0);
    shaped(
        &v(&["sign", "--add", &envelope, "--key", &s(&other), "--json"]),
        "sign",
        0,
    );
    shaped(
        &v(&["sign", "--add", &envelope, "--key", &s(&other), "--json"]),
        "sign",
        2,
    );
    shaped(
        &v(&[
            "unpack",
            "--registration",
            &s(&out.join("registration.json")),
            "--artifact",
            &artifact,
            "--out",
            &s(&d.join("plain.bin")),
            "--json",
        ]),
        "unpack",
        0,
    );
    shaped(
        &v(&[
            "unpack",
            "--registration",
            "/nonexistent.json",
            "--artifact",
            &artifact,
            "--out",
            &s(&d.join("p2.bin")),
            "--json",
        ]),
        "unpack",
        2,
    );
    shaped(
        &v(&[
            "publish",
            "--dir",
            &s(&out),
            "--store",
            &s(&d.join("store")),
            "--json",
        ]),
        "publish",
        0,
    );
    shaped(
        &v(&["publish", "--dir", "/nonexistent", "--store", "x", "--json"]),
        "publish",
        2,
    );
    shaped(
        &v(&["audit", "verify", "/nonexistent.jsonl", "--json"]),
        "audit verify",
        2,
    );

    // ota tuf keeps its client contract: 1 for any failure, usage included.
    let j = shaped(
        &v(&["tuf", "refresh", "--bogus", "--json"]),
        "tuf refresh",
        1,
    );
    assert!(j["error"].as_str().unwrap().contains("--bogus"), "{j}");

    let j = shaped(&v(&["completions", "bash", "--json"]), "completions", 0);
    assert!(j["script"].as_str().unwrap().contains("ota"), "{j}");
    let j = shaped(&v(&["man", "--json"]), "man", 0);
    assert!(j["page"].as_str().unwrap().contains(".TH ota"), "{j}");
}

#[test]
fn an_error_object_carries_the_same_line_as_stderr() {
    let r = ota(&[
        "manifest",
        "validate",
        "/nonexistent/manifest.json",
        "--json",
    ]);
    r.expect(2);
    let e = r.json()["error"].as_str().unwrap().to_string();
    assert!(e.starts_with("/nonexistent/manifest.json: "), "{e}");
    assert!(
        r.stderr.contains(&format!("ota: error: {e}")),
        "{}",
        r.stderr
    );
}
