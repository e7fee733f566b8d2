//! Every fixture under `tests/fixtures/{manifests,packages,profiles}`: the valid ones parse and
//! round-trip; each invalid one is rejected with the status and the field path its name
//! promises. A fixture that is not listed here fails the test, so none goes unchecked.

use std::collections::BTreeSet;

use ota_core::{DeviceProfile, ModelManifest, Package, ParseError, Status};
use ota_tests::fixture_dir;

type Parser = fn(&[u8]) -> Result<String, ParseError>;

fn manifest(b: &[u8]) -> Result<String, ParseError> {
    ModelManifest::from_json(b).map(|m| m.to_json())
}
fn package(b: &[u8]) -> Result<String, ParseError> {
    Package::from_json(b).map(|p| p.to_json())
}
fn profile(b: &[u8]) -> Result<String, ParseError> {
    DeviceProfile::from_json(b).map(|p| p.to_json())
}

fn check_valid(dir: &str, parse: Parser) {
    let files = fixture_dir(dir);
    assert!(!files.is_empty(), "{dir} is empty");
    for (name, bytes) in files {
        let json = parse(&bytes).unwrap_or_else(|e| panic!("{dir}/{name}: {e}"));
        // Parsing what we wrote gives the same document, byte for byte.
        assert_eq!(
            parse(json.as_bytes()).unwrap(),
            json,
            "{dir}/{name} does not round-trip"
        );
        // And it is the same JSON value as the input, but for defaults made explicit.
        let original: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let written: serde_json::Value = serde_json::from_str(&json).unwrap();
        if let Some(path) = first_difference(&original, &written, String::new()) {
            panic!("{dir}/{name}: field {path} changed in {json}");
        }
    }
}

/// The path of the first field of `original` that `written` lacks or changes; fields that
/// `written` adds (defaults made explicit) are allowed.
fn first_difference(
    original: &serde_json::Value,
    written: &serde_json::Value,
    path: String,
) -> Option<String> {
    use serde_json::Value::*;
    match (original, written) {
        (Object(a), Object(b)) => a.iter().find_map(|(k, v)| match b.get(k) {
            None => Some(format!("{path}.{k}")),
            Some(w) => first_difference(v, w, format!("{path}.{k}")),
        }),
        (Array(a), Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, format!("{path}[{i}]"))),
        (a, b) if a == b => None,
        _ => Some(path),
    }
}

fn check_invalid(dir: &str, parse: Parser, expected: &[(&str, Status, &str)]) {
    let files = fixture_dir(dir);
    let listed: BTreeSet<String> = expected
        .iter()
        .map(|(f, _, _)| format!("{f}.json"))
        .collect();
    let present: BTreeSet<String> = files.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        listed, present,
        "the table and the fixtures in {dir} differ"
    );
    for (file, status, path) in expected {
        let bytes = &files
            .iter()
            .find(|(n, _)| *n == format!("{file}.json"))
            .unwrap()
            .1;
        let err = parse(bytes).expect_err(file);
        assert_eq!(err.status(), *status, "{dir}/{file}: {err}");
        let faults = err.faults();
        assert!(
            faults.iter().any(|f| f.path == *path),
            "{dir}/{file}: expected a fault at {path}, got {err}"
        );
        let line = err.to_string();
        assert!(
            !line.contains('\n') && !line.ends_with('.'),
            "{dir}/{file}: {line:?}"
        );
    }
}

#[test]
fn valid_manifests_parse_and_round_trip() {
    check_valid("manifests/valid", manifest);
}

#[test]
fn valid_packages_parse_and_round_trip() {
    check_valid("packages/valid", package);
}

#[test]
fn valid_profiles_parse_and_round_trip() {
    check_valid("profiles/valid", profile);
}

#[test]
fn invalid_manifests_are_rejected_naming_the_field() {
    use Status::*;
    let table: &[(&str, Status, &str)] = &[
        ("unknown-key", UnknownField, "colour"),
        ("unknown-key-nested", UnknownField, "io.inputs[0].colour"),
        ("missing-name", MissingField, "name"),
        ("missing-io", MissingField, "io"),
        ("duplicate-key", InvalidValue, "name"),
        ("wrong-type", InvalidValue, "io.max_batch_size"),
        ("not-json", JsonSyntax, "sbom.sha256"),
        ("version-v-prefix", InvalidValue, "version"),
        ("version-leading-zero", InvalidValue, "version"),
        ("version-two-parts", InvalidValue, "version"),
        ("framework-unknown", InvalidValue, "framework"),
        ("framework-without-block", Invalid, "tensorrt"),
        ("framework-with-other-block", Invalid, "onnx"),
        ("channel-unknown", InvalidValue, "channel"),
        ("file-path-absolute", InvalidValue, "files[1].path"),
        ("file-path-dotdot", InvalidValue, "files[1].path"),
        ("file-paths-duplicate", Invalid, "files[1].path"),
        ("file-sha256-uppercase", InvalidValue, "files[0].sha256"),
        ("file-sha256-short", InvalidValue, "files[0].sha256"),
        ("file-size-zero", Invalid, "files[1].size_bytes"),
        ("file-tensor-count-zero", Invalid, "files[1].tensor_count"),
        ("file-dtypes-duplicate", Invalid, "files[1].dtypes[2]"),
        ("file-dtypes-unknown", InvalidValue, "files[1].dtypes[1]"),
        ("license-not-spdx", InvalidValue, "license"),
        ("created-at-not-rfc3339", InvalidValue, "created_at"),
        ("latency-nan", JsonSyntax, "metrics[1].value"),
        ("latency-negative", Invalid, "metrics[1].value"),
        (
            "latency-without-hardware-profile",
            Invalid,
            "metrics[1].hardware_profile",
        ),
        ("io-names-duplicate", Invalid, "io.outputs[0].name"),
        ("io-shape-empty", Invalid, "io.inputs[0].shape"),
        (
            "io-dimension-below-minus-one",
            Invalid,
            "io.outputs[0].shape[1]",
        ),
        (
            "io-normalize-length-mismatch",
            Invalid,
            "io.inputs[0].preprocessing.normalize.std",
        ),
        (
            "io-normalize-std-zero",
            Invalid,
            "io.inputs[0].preprocessing.normalize.std[1]",
        ),
        (
            "io-preprocessing-on-output",
            Invalid,
            "io.outputs[0].preprocessing",
        ),
        ("io-dtype-unknown", InvalidValue, "io.inputs[0].dtype"),
        ("version-range-empty", InvalidValue, "targets[0].firmware"),
        (
            "version-range-malformed",
            InvalidValue,
            "targets[0].runtimes.cuda",
        ),
        ("targets-empty", Invalid, "targets"),
        ("precision-empty", Invalid, "precision"),
        ("sbom-not-among-files", Invalid, "sbom.path"),
        ("onnx-missing-default-domain", Invalid, "onnx.opset_imports"),
        ("tensorrt-version-two-parts", Invalid, "tensorrt.version"),
        (
            "tensorrt-version-compatible-below-8.6",
            Invalid,
            "tensorrt.version_compatible",
        ),
        (
            "tensorrt-ampere-plus-built-below-cc-8.0",
            Invalid,
            "tensorrt.hardware_compat",
        ),
        (
            "tensorrt-dla-with-fp32-only-precision",
            Invalid,
            "tensorrt.dla_core",
        ),
        (
            "tensorrt-hardware-compat-unknown",
            InvalidValue,
            "tensorrt.hardware_compat",
        ),
    ];
    assert!(table.len() >= 25);
    check_invalid("manifests/invalid", manifest, table);
}

#[test]
fn invalid_packages_are_rejected_naming_the_field() {
    use Status::*;
    check_invalid(
        "packages/invalid",
        package,
        &[
            ("registry-tag-only", InvalidValue, "source.reference"),
            ("registry-bad-digest", InvalidValue, "source.reference"),
            ("source-unknown-field", UnknownField, "source.url"),
            ("model-without-manifest", Invalid, "manifest"),
            ("firmware-with-manifest", Invalid, "manifest"),
            ("manifest-version-differs", Invalid, "manifest.version"),
            (
                "min-version-above-max-version",
                Invalid,
                "compatibility.max_version",
            ),
            ("size-zero", Invalid, "size_bytes"),
            ("artifact-uri-without-scheme", InvalidValue, "artifact_uri"),
            ("type-unknown", InvalidValue, "type"),
            ("signature-field-unknown", UnknownField, "signature"),
            (
                "nested-manifest-shape",
                Invalid,
                "manifest.io.inputs[0].shape[2]",
            ),
            ("sha256-not-hex", InvalidValue, "sha256"),
        ],
    );
}

#[test]
fn tag_only_reference_says_to_pin_the_digest() {
    let bytes = ota_tests::read_fixture("packages/invalid/registry-tag-only.json");
    let e = Package::from_json(&bytes).unwrap_err().to_string();
    assert!(e.contains(":latest") && e.contains("pin the digest"), "{e}");
}

#[test]
fn invalid_profiles_are_rejected_naming_the_field() {
    use Status::*;
    check_invalid(
        "profiles/invalid",
        profile,
        &[
            ("widens-memory", Invalid, "memory_mb"),
            ("widens-dla-cores", Invalid, "accelerators[1].count"),
            ("widens-with-npu", Invalid, "accelerators[0].kind"),
            (
                "contradicts-compute-capability",
                Invalid,
                "accelerators[0].compute_capability",
            ),
            ("contradicts-arch", Invalid, "arch"),
            (
                "custom-gpu-without-compute-capability",
                Invalid,
                "accelerators[0].compute_capability",
            ),
            ("dla-with-fp32", Invalid, "accelerators[1].dtypes"),
            ("channels-empty", Invalid, "allowed_channels"),
            ("unknown-field", UnknownField, "gpu"),
            ("device-id-with-slash", InvalidValue, "device_id"),
            (
                "runtime-version-malformed",
                InvalidValue,
                "runtimes.tensorrt",
            ),
            (
                "installed-version-not-semver",
                InvalidValue,
                "installed.yolo-v8n",
            ),
        ],
    );
}

#[test]
fn every_semantic_fault_is_listed_not_just_the_first() {
    let mut m: serde_json::Value = serde_json::from_slice(&ota_tests::read_fixture(
        "manifests/valid/tensorrt-orin-nx.json",
    ))
    .unwrap();
    m["files"][1]["size_bytes"] = 0.into();
    m["io"]["inputs"][0]["shape"] = serde_json::json!([]);
    m["metrics"][1]["value"] = (-1.0).into();
    let e = ModelManifest::from_json(m.to_string().as_bytes()).unwrap_err();
    let paths: Vec<String> = e.faults().into_iter().map(|f| f.path).collect();
    assert_eq!(
        paths,
        [
            "files[1].size_bytes",
            "io.inputs[0].shape",
            "metrics[1].value"
        ]
    );
}

#[test]
fn documents_are_objects() {
    let e = Package::from_json(b" [\"fw\"]").unwrap_err();
    assert_eq!(e.status(), Status::InvalidValue);
    assert!(e.to_string().contains("a package is a JSON object"), "{e}");
}

#[test]
fn oversized_documents_are_refused_before_parsing() {
    let big = vec![b' '; ota_core::Limits::DEFAULT.max_document_bytes + 1];
    let e = ModelManifest::from_json(&big).unwrap_err();
    assert_eq!(e.status(), Status::TooLarge);
}
