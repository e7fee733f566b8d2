//! YAML manifests, packages and device profiles are read wherever JSON is — by extension
//! (`.yaml`, `.yml`) or by content — and their faults carry the same field paths.

mod common;

use std::path::{Path, PathBuf};

use common::{entry, fixture, keygen, manifest_with, ota, pack_args, s, with};
use serde_json::Value;

/// Writes the JSON fixture `rel` as YAML to `dir/name`.
fn as_yaml(rel: &str, dir: &Path, name: &str) -> PathBuf {
    let v: Value = serde_json::from_slice(&std::fs::read(fixture(rel)).unwrap()).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, serde_norway::to_string(&v).unwrap()).unwrap();
    path
}

#[test]
fn a_yaml_manifest_validates_like_its_json_by_extension_or_by_content() {
    let t = tempfile::tempdir().unwrap();
    let json = ota(&[
        "manifest",
        "validate",
        &s(&fixture("manifests/valid/tensorrt-orin-nx.json")),
        "--json",
    ]);
    json.expect(0);
    for name in ["m.yaml", "m.yml", "manifest"] {
        let yaml = as_yaml("manifests/valid/tensorrt-orin-nx.json", t.path(), name);
        let r = ota(&["manifest", "validate", &s(&yaml), "--json"]);
        r.expect(0);
        for k in ["name", "version", "framework", "targets"] {
            assert_eq!(r.json()[k], json.json()[k], "{name}: {k}");
        }
    }
}

#[test]
fn yaml_faults_name_the_same_field_paths_as_json() {
    let t = tempfile::tempdir().unwrap();
    for rel in [
        "manifests/invalid/file-sha256-short.json",
        "manifests/invalid/io-dtype-unknown.json",
        "manifests/invalid/channel-unknown.json",
        "manifests/invalid/missing-name.json",
    ] {
        let from_json = ota(&["manifest", "validate", &s(&fixture(rel)), "--json"]);
        from_json.expect(1);
        let yaml = as_yaml(rel, t.path(), "bad.yaml");
        let from_yaml = ota(&["manifest", "validate", &s(&yaml), "--json"]);
        from_yaml.expect(1);
        let faults = from_json.json()["faults"].clone();
        assert!(
            faults.as_array().is_some_and(|f| !f.is_empty()),
            "{rel}: {faults}"
        );
        let yaml_faults = from_yaml.json()["faults"].clone();
        let paths = |f: &Value| -> Vec<Value> {
            f.as_array()
                .unwrap()
                .iter()
                .map(|f| f["path"].clone())
                .collect()
        };
        assert_eq!(paths(&yaml_faults), paths(&faults), "{rel}");
        for (y, j) in yaml_faults
            .as_array()
            .unwrap()
            .iter()
            .zip(faults.as_array().unwrap())
        {
            // The same message, without the line and column of the converted JSON.
            let (y, j) = (
                y["message"].as_str().unwrap(),
                j["message"].as_str().unwrap(),
            );
            assert!(
                !y.contains(" at line ") && j.starts_with(y),
                "{rel}: {y} / {j}"
            );
        }
        assert_eq!(
            from_yaml.json()["status"],
            from_json.json()["status"],
            "{rel}"
        );
    }
}

#[test]
fn malformed_yaml_is_refused_naming_the_file_and_the_line() {
    let t = tempfile::tempdir().unwrap();
    let bad = t.path().join("broken.yaml");
    std::fs::write(&bad, "name: yolo\nfiles: [unclosed\nio: {}\n").unwrap();
    let r = ota(&["manifest", "validate", &s(&bad), "--json"]);
    r.expect(1)
        .stderr_has(&["broken.yaml: not a YAML document", "line"]);
    assert_eq!(r.json()["status"], "json_syntax");
    // A YAML manifest whose values have the wrong types names the field, as JSON does.
    let typed = t.path().join("typed.yml");
    let mut m: Value = serde_json::from_slice(
        &std::fs::read(fixture("manifests/valid/tensorrt-orin-nx.json")).unwrap(),
    )
    .unwrap();
    m["files"][0]["size_bytes"] = Value::String("big".into());
    std::fs::write(&typed, serde_norway::to_string(&m).unwrap()).unwrap();
    let r = ota(&["manifest", "validate", &s(&typed), "--json"]);
    r.expect(1);
    let faults = r.json()["faults"].to_string();
    assert!(faults.contains("files[0].size_bytes"), "{faults}");
}

#[test]
fn check_reads_a_yaml_package_and_a_yaml_device() {
    let t = tempfile::tempdir().unwrap();
    let pkg = as_yaml(
        "packages/valid/model-tensorrt-orin-nx.json",
        t.path(),
        "package.yaml",
    );
    let device = as_yaml(
        "profiles/valid/orin-nx-line-camera.json",
        t.path(),
        "device.yml",
    );
    let from_json = ota(&[
        "check",
        "--package",
        &s(&fixture("packages/valid/model-tensorrt-orin-nx.json")),
        "--device",
        &s(&fixture("profiles/valid/orin-nx-line-camera.json")),
        "--json",
    ]);
    let from_yaml = ota(&[
        "check",
        "--package",
        &s(&pkg),
        "--device",
        &s(&device),
        "--json",
    ]);
    assert_eq!(from_yaml.code, from_json.code, "{}", from_yaml.stderr);
    assert_eq!(
        from_yaml.json()["compatible"],
        from_json.json()["compatible"]
    );
    assert_eq!(
        from_yaml.json()["rejections"],
        from_json.json()["rejections"]
    );
}

#[test]
fn pack_signs_a_yaml_manifest_as_the_same_statement() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "keys");
    let engine = ota_tests::noise(40_000, 4);
    std::fs::write(t.path().join("model.engine"), &engine).unwrap();
    let m = manifest_with(vec![entry("model/yolo-v8n.engine", "engine", &engine)]);
    let yaml = t.path().join("manifest.yaml");
    std::fs::write(&yaml, serde_norway::to_string(&m).unwrap()).unwrap();
    let out = t.path().join("out");
    ota(&with(
        pack_args(&key, &out),
        &[
            "--file",
            &s(&t.path().join("model.engine")),
            "--manifest",
            &s(&yaml),
            "--cdn-base",
            "https://cdn.example.com",
        ],
    ))
    .expect(0);
    let r = ota(&["inspect", &s(&out.join("package.json")), "--json"]);
    r.expect(0);
    let signed = &r.json()["package"]["manifest"];
    assert_eq!(signed["name"], m["name"]);
    assert_eq!(signed["files"], m["files"]);
    assert_eq!(signed["io"], m["io"]);
}
