//! The compatibility engine: each reason, its order, the TensorRT rules, and the fleet view.

use ota_core::compat::{self, Reason};
use ota_core::{DeviceProfile, Package};
use ota_tests::read_fixture;
use serde_json::{Value, json};

fn doc(rel: &str) -> Value {
    serde_json::from_slice(&read_fixture(rel)).unwrap()
}

fn package(v: &Value) -> Package {
    Package::from_json(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn profile(v: &Value) -> DeviceProfile {
    DeviceProfile::from_json(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn reasons(p: &Package, d: &DeviceProfile) -> Vec<Reason> {
    let r = compat::check(p, d);
    assert_eq!(r.compatible, r.rejections.is_empty());
    assert_eq!(compat::fits(p, d), r.compatible);
    r.rejections.iter().map(|x| x.reason).collect()
}

fn yolo() -> Value {
    doc("packages/valid/model-tensorrt-orin-nx.json")
}

fn orin() -> Value {
    doc("profiles/valid/orin-nx-line-camera.json")
}

#[test]
fn tensorrt_model_fits_the_device_it_was_built_for() {
    assert_eq!(reasons(&package(&yolo()), &profile(&orin())), []);
}

#[test]
fn each_rule_rejects_with_what_was_needed_and_found() {
    let p = package(&yolo());
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, Reason, &str, &str)> = vec![
        (
            "channel",
            Box::new(|d| d["allowed_channels"] = json!(["beta"])),
            Reason::ChannelNotAllowed,
            "channel stable",
            "allowed beta",
        ),
        (
            "device type",
            Box::new(|d| d["device_type"] = json!("doorbell")),
            Reason::DeviceTypeMismatch,
            "line-camera",
            "doorbell",
        ),
        (
            "runtime",
            Box::new(|d| d["runtimes"]["tensorrt"] = json!("8.6.1.6")),
            Reason::RuntimeVersionMismatch,
            "tensorrt =8.6.2.3",
            "tensorrt 8.6.1.6",
        ),
        (
            "cuda range",
            Box::new(|d| d["runtimes"]["cuda"] = json!("11.4")),
            Reason::RuntimeVersionMismatch,
            "cuda >=12.2, <13",
            "cuda 11.4",
        ),
        (
            "no cuda",
            Box::new(|d| {
                d["runtimes"].as_object_mut().unwrap().remove("cuda");
            }),
            Reason::RuntimeVersionMismatch,
            "cuda >=12.2, <13",
            "cuda not installed",
        ),
        (
            "no tensorrt",
            Box::new(|d| {
                d["runtimes"].as_object_mut().unwrap().remove("tensorrt");
            }),
            Reason::FrameworkUnsupported,
            "tensorrt",
            "no tensorrt runtime",
        ),
        (
            "old firmware",
            Box::new(|d| d["firmware"]["version"] = json!("5.1.2")),
            Reason::FirmwareTooOld,
            ">=6.0, <7",
            "jetpack 5.1.2",
        ),
        (
            "new firmware",
            Box::new(|d| d["firmware"]["version"] = json!("7.0")),
            Reason::FirmwareTooNew,
            ">=6.0, <7",
            "jetpack 7.0",
        ),
        (
            "no firmware",
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("firmware");
            }),
            Reason::FirmwareTooOld,
            ">=6.0, <7",
            "no firmware reported",
        ),
        (
            "memory",
            Box::new(|d| d["memory_mb"] = json!(2048)),
            Reason::InsufficientMemory,
            "4096 MiB",
            "2048 MiB",
        ),
        (
            "no gpu",
            Box::new(|d| d["accelerators"] = json!([])),
            Reason::AcceleratorMissing,
            "gpu",
            "no gpu",
        ),
        (
            "other board",
            Box::new(|d| {
                d["hardware_profile"] = json!("nvidia-jetson-agx-orin");
                d["memory_mb"] = json!(32768);
            }),
            Reason::NoMatchingTarget,
            "nvidia-jetson-orin-nx",
            "nvidia-jetson-agx-orin",
        ),
    ];
    for (what, mutate, reason, needed, found) in cases {
        let mut d = orin();
        mutate(&mut d);
        let r = compat::check(&p, &profile(&d));
        assert!(!r.compatible, "{what}");
        let hit = r
            .rejections
            .iter()
            .find(|x| x.reason == reason)
            .unwrap_or_else(|| panic!("{what}: no {reason} in {:?}", r.rejections));
        assert_eq!(
            (hit.needed.as_str(), hit.found.as_str()),
            (needed, found),
            "{what}"
        );
    }
}

#[test]
fn every_reason_is_reported_at_once_in_rule_order() {
    let p = package(&yolo());
    let mut d = orin();
    d["allowed_channels"] = json!(["canary"]);
    d["device_type"] = json!("doorbell");
    d["runtimes"] = json!({"tensorrt": "8.6.1.6"});
    d["firmware"]["version"] = json!("5.1");
    d["memory_mb"] = json!(1024);
    let got = reasons(&p, &profile(&d));
    assert_eq!(
        got,
        [
            Reason::ChannelNotAllowed,
            Reason::DeviceTypeMismatch,
            Reason::RuntimeVersionMismatch,
            Reason::RuntimeVersionMismatch,
            Reason::FirmwareTooOld,
            Reason::InsufficientMemory,
        ]
    );
    let r = compat::check(&p, &profile(&d));
    assert!(r.rejections[2..].iter().all(|x| x.target == Some(0)));
    // The report is JSON a C or Python caller can read.
    let v: Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["rejections"][0]["reason"], "channel_not_allowed");
    assert_eq!(v["compatible"], false);
}

#[test]
fn a_tensorrt_engine_needs_its_exact_compute_capability() {
    // Built for Orin (8.7) without hardware compatibility; a Thor target entry that points at
    // the same engine must still be refused on CC 11.0.
    let mut p = yolo();
    p["manifest"]["targets"][0]["hardware_profile"] = json!("nvidia-jetson-thor");
    let mut d = orin();
    d["hardware_profile"] = json!("nvidia-jetson-thor");
    d["memory_mb"] = json!(131072);
    let r = compat::check(&package(&p), &profile(&d));
    let cc = r
        .rejections
        .iter()
        .find(|x| x.reason == Reason::ComputeCapabilityMismatch)
        .unwrap();
    assert_eq!((cc.needed.as_str(), cc.found.as_str()), ("=8.7", "11.0"));
}

#[test]
fn version_and_hardware_compatible_engines() {
    let p = package(&json!({
        "type": "model", "name": "yolo-v8s", "version": "1.0.0",
        "artifact_uri": "s3://m/yolo-v8s.enc",
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "size_bytes": 10,
        "manifest": doc("manifests/valid/tensorrt-version-compatible-ampere-plus.json"),
    }));
    let dev = |board: &str, trt: &str, jetpack: &str| {
        profile(&json!({
            "device_id": "d", "device_type": "cam", "hardware_profile": board, "arch": "arm64",
            "runtimes": {"tensorrt": trt}, "firmware": {"name": "jetpack", "version": jetpack},
        }))
    };
    // Same or newer runtime of major 10, on any Ampere-or-later GPU it targets.
    assert_eq!(
        reasons(&p, &dev("nvidia-jetson-orin-nano", "10.3.0.26", "6.1")),
        []
    );
    assert_eq!(
        reasons(&p, &dev("nvidia-jetson-agx-orin", "10.7.0", "6.2")),
        []
    );
    assert_eq!(
        reasons(&p, &dev("nvidia-jetson-thor", "10.13.3", "7.0")),
        []
    );
    assert_eq!(
        reasons(&p, &dev("nvidia-jetson-orin-nano", "10.2.0", "6.1")),
        [Reason::RuntimeVersionMismatch]
    );
    assert_eq!(
        reasons(&p, &dev("nvidia-jetson-orin-nano", "11.0.0", "6.1")),
        [Reason::RuntimeVersionMismatch]
    );
    // Volta is below Ampere, and no target names it anyway.
    assert_eq!(
        reasons(&p, &dev("nvidia-jetson-xavier-nx", "10.3.0", "6.1")),
        [Reason::NoMatchingTarget]
    );
}

#[test]
fn dla_engines_need_their_core_and_dla_types() {
    let mut p = json!({
        "type": "model", "name": "peoplenet", "version": "2.6.0",
        "artifact_uri": "s3://m/peoplenet.enc",
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "size_bytes": 10,
        "manifest": doc("manifests/valid/tensorrt-dla-xavier-nx.json"),
    });
    let two_dla = json!({
        "device_id": "x", "device_type": "cam", "hardware_profile": "nvidia-jetson-xavier-nx", "arch": "arm64",
        "runtimes": {"tensorrt": "8.5.2.2"}, "firmware": {"name": "jetpack", "version": "5.1.2"},
    });
    assert_eq!(reasons(&package(&p), &profile(&two_dla)), []);
    // The fixture device kept one DLA core; the engine runs on core 1.
    let one = profile(&doc("profiles/valid/xavier-nx-one-dla.json"));
    let r = compat::check(&package(&p), &one);
    assert_eq!(r.rejections.len(), 1, "{:?}", r.rejections);
    assert_eq!(r.rejections[0].reason, Reason::AcceleratorMissing);
    assert_eq!(r.rejections[0].needed, "dla core 1");
    // An fp32 input cannot go to a DLA.
    p["manifest"]["io"]["inputs"][0]["dtype"] = json!("fp32");
    assert_eq!(
        reasons(&package(&p), &profile(&two_dla)),
        [Reason::InputDtypeUnsupported]
    );
}

#[test]
fn onnx_opset_and_ir_version() {
    let p = package(&doc("packages/valid/model-onnx-from-registry.json"));
    let mut d = doc("profiles/valid/generic-arm64-onnx.json");
    d["allowed_channels"] = json!(["beta"]);
    assert_eq!(reasons(&p, &profile(&d)), []);
    // A Jetson is arm64 too, so the generic target matches it.
    let mut j = orin();
    j["runtimes"] = d["runtimes"].clone();
    assert_eq!(reasons(&p, &profile(&j)), []);
    d["runtimes"]["onnxruntime"]["max_opset"] = json!(16);
    d["runtimes"]["onnxruntime"]["max_ir_version"] = json!(7);
    d["runtimes"]["onnxruntime"]["version"] = json!("1.15.1");
    assert_eq!(
        reasons(&p, &profile(&d)),
        [
            Reason::RuntimeVersionMismatch,
            Reason::OpsetUnsupported,
            Reason::IrVersionUnsupported
        ]
    );
    let x86 = json!({"device_id": "x", "device_type": "pc", "hardware_profile": "generic-x86_64", "arch": "x86_64",
                     "allowed_channels": ["beta"], "runtimes": d["runtimes"].clone()});
    assert_eq!(reasons(&p, &profile(&x86)), [Reason::NoMatchingTarget]);
}

#[test]
fn tflite_delegates_and_npu_types() {
    let p = package(&json!({
        "type": "model", "name": "mobilenet-v3", "version": "3.0.1",
        "artifact_uri": "s3://m/mnv3.enc",
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "size_bytes": 10,
        "manifest": doc("manifests/valid/tflite-npu-board.json"),
    }));
    let mut d = doc("profiles/valid/custom-npu-board.json");
    assert_eq!(reasons(&p, &profile(&d)), []);
    d["runtimes"]["tflite"]["delegates"] = json!(["xnnpack"]);
    d["runtimes"]["tflite"]["version"] = json!("2.13");
    assert_eq!(
        reasons(&p, &profile(&d)),
        [
            Reason::FrameworkUnsupported,
            Reason::RuntimeVersionMismatch,
            Reason::RuntimeVersionMismatch
        ]
    );
    let mut d = doc("profiles/valid/custom-npu-board.json");
    d["accelerators"][0]["dtypes"] = json!(["fp16"]);
    assert_eq!(reasons(&p, &profile(&d)), [Reason::InputDtypeUnsupported]);
    d.as_object_mut().unwrap().remove("accelerators");
    assert_eq!(reasons(&p, &profile(&d)), [Reason::AcceleratorMissing]);
}

#[test]
fn installed_version_window_of_seed_004() {
    let p = package(&doc("packages/valid/software-with-version-window.json"));
    let mut d = orin();
    d["allowed_channels"] = json!(["canary"]);
    let with = |v: Option<&str>| {
        let mut d = d.clone();
        match v {
            Some(v) => d["installed"] = json!({"inference-server": v}),
            None => d["installed"] = json!({}),
        }
        reasons(&p, &profile(&d))
    };
    assert_eq!(with(Some("3.1.0")), []);
    assert_eq!(with(Some("3.0.0")), []);
    assert_eq!(with(Some("3.2.0")), []);
    assert_eq!(with(Some("2.9.9")), [Reason::InstalledVersionTooOld]);
    assert_eq!(with(None), [Reason::InstalledVersionTooOld]);
    assert_eq!(with(Some("3.2.1")), [Reason::InstalledVersionTooNew]);
    let seed = package(&doc("packages/valid/seed-004-firmware.json"));
    let sensor = json!({"device_id": "dev_8f3a", "device_type": "temp-sensor", "hardware_profile": "acme-sensor", "arch": "armv7",
                        "installed": {"temp-sensor-fw": "1.2.0"}});
    assert_eq!(reasons(&seed, &profile(&sensor)), []);
}

#[test]
fn fleet_counts_each_reason_once_per_device() {
    let p = package(&yolo());
    let mut fleet = Vec::new();
    for i in 0..10 {
        let mut d = orin();
        d["device_id"] = json!(format!("dev-{i}"));
        if i % 2 == 1 {
            d["runtimes"] = json!({"tensorrt": "8.6.1.6"}); // two runtime rejections, one device
        }
        if i % 5 == 0 {
            d["device_type"] = json!("doorbell");
        }
        fleet.push(profile(&d));
    }
    let r = compat::check_fleet(&p, &fleet);
    assert_eq!(r.total, 10);
    let ids: Vec<&str> = r.eligible.iter().map(|n| n.as_str()).collect();
    assert_eq!(ids, ["dev-2", "dev-4", "dev-6", "dev-8"]);
    assert_eq!(r.rejected, 6);
    assert_eq!(r.reasons.get(&Reason::RuntimeVersionMismatch), Some(&5));
    assert_eq!(r.reasons.get(&Reason::DeviceTypeMismatch), Some(&2));
    // The fleet verdict agrees with the per-device one.
    for d in &fleet {
        assert_eq!(compat::fits(&p, d), r.eligible.contains(&d.device_id));
    }
}

#[test]
fn fleet_documents_parse_with_unique_ids() {
    let one = orin();
    let bytes = json!([one, one]).to_string();
    let e =
        DeviceProfile::fleet_from_json(bytes.as_bytes(), &ota_core::Limits::DEFAULT).unwrap_err();
    assert!(
        e.to_string().contains("[1].device_id: duplicate value"),
        "{e}"
    );
}
