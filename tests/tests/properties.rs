//! Property tests: JSON round trips, a deterministic compatibility verdict in a stable order,
//! and parsers that never panic.

use ota_core::compat;
use ota_core::{DeviceProfile, ModelManifest, Package};
use proptest::prelude::*;
use serde_json::{Value, json};

const BOARDS: &[&str] = &[
    "nvidia-jetson-nano",
    "nvidia-jetson-tx2",
    "nvidia-jetson-xavier-nx",
    "nvidia-jetson-agx-xavier",
    "nvidia-jetson-orin-nano",
    "nvidia-jetson-orin-nx",
    "nvidia-jetson-agx-orin",
    "nvidia-jetson-thor",
    "generic-arm64",
    "generic-x86_64",
    "acme-npu-board",
];
const NAMES: &[&str] = &[
    "yolo-v8n",
    "resnet50",
    "mobilenet-v3",
    "temp-sensor-fw",
    "inference-server",
];
const TYPES: &[&str] = &["line-camera", "temp-sensor", "doorbell"];
const CHANNELS: &[&str] = &["stable", "beta", "canary"];

fn manifests() -> Vec<Value> {
    ota_tests::fixture_dir("manifests/valid")
        .into_iter()
        .map(|(_, b)| serde_json::from_slice(&b).unwrap())
        .collect()
}

fn runtime_version() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u32..12, 0u32..10).prop_map(|(a, b)| format!("{a}.{b}")),
        (1u32..12, 0u32..10, 0u32..5).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        (8u32..11, 0u32..7, 0u32..3, 0u32..30).prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
    ]
}

fn range() -> impl Strategy<Value = String> {
    (1u32..12, 0u32..10, 1u32..4, any::<bool>()).prop_map(|(a, b, span, eq)| {
        if eq {
            format!("={a}.{b}")
        } else {
            format!(">={a}.{b}, <{}", a + span)
        }
    })
}

fn semver() -> impl Strategy<Value = String> {
    (0u32..4, 0u32..10, 0u32..10).prop_map(|(a, b, c)| format!("{a}.{b}.{c}"))
}

fn subset(pool: &'static [&'static str], min: usize) -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(pool, min..=pool.len())
        .prop_map(|v| v.into_iter().map(String::from).collect())
}

fn target() -> impl Strategy<Value = Value> {
    (
        proptest::sample::select(BOARDS),
        proptest::option::of(range()),
        proptest::option::of(range()),
        proptest::option::of(1u64..20_000),
        subset(&["gpu", "dla", "npu"], 0),
    )
        .prop_map(|(board, fw, cuda, mem, acc)| {
            let mut t = json!({"hardware_profile": board, "accelerators": acc});
            if let Some(fw) = fw {
                t["firmware"] = json!(fw);
            }
            if let Some(c) = cuda {
                t["runtimes"] = json!({"cuda": c});
            }
            if let Some(m) = mem {
                t["min_memory_mb"] = json!(m);
            }
            t
        })
}

fn package() -> impl Strategy<Value = Value> {
    let ms = manifests();
    (
        0usize..3,
        proptest::sample::select(NAMES),
        semver(),
        proptest::sample::select(CHANNELS),
        subset(TYPES, 0),
        proptest::option::of((semver(), semver())),
        proptest::sample::select(ms),
        proptest::collection::vec(target(), 1..4),
    )
        .prop_map(
            |(kind, name, version, channel, types, window, mut manifest, targets)| {
                let kind = ["fw", "sw", "model"][kind];
                let mut p = json!({
                    "type": kind, "name": name, "version": version, "channel": channel,
                    "artifact_uri": format!("s3://bucket/{name}-{version}.enc"),
                    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "size_bytes": 4096,
                    "compatibility": {"device_types": types},
                });
                if let Some((a, b)) = window {
                    let (lo, hi) = if semver_le(&a, &b) { (a, b) } else { (b, a) };
                    p["compatibility"]["min_version"] = json!(lo);
                    p["compatibility"]["max_version"] = json!(hi);
                }
                if kind == "model" {
                    manifest["name"] = json!(name);
                    manifest["version"] = json!(version);
                    manifest["targets"] = json!(targets);
                    p["manifest"] = manifest;
                }
                p
            },
        )
}

fn semver_le(a: &str, b: &str) -> bool {
    a.parse::<ota_core::Version>().unwrap() <= b.parse::<ota_core::Version>().unwrap()
}

fn profile(id: usize) -> impl Strategy<Value = Value> {
    (
        proptest::sample::select(BOARDS),
        proptest::sample::select(TYPES),
        proptest::option::of(runtime_version()),
        proptest::option::of(runtime_version()),
        proptest::option::of((runtime_version(), 10u32..22, 5u32..11)),
        proptest::option::of(runtime_version()),
        proptest::option::of(0u64..2),
        subset(CHANNELS, 1),
        proptest::collection::btree_map(proptest::sample::select(NAMES), semver(), 0..3),
        0usize..3,
    )
        .prop_map(move |(board, ty, trt, cuda, ort, fw, narrow, channels, installed, accel)| {
            let builtin = ota_core::profile::HardwareProfile::builtin(board);
            let arch = builtin.map_or("arm64", |b| b.arch.as_str());
            let mut d = json!({
                "device_id": format!("dev-{id}"), "device_type": ty, "hardware_profile": board, "arch": arch,
                "allowed_channels": channels, "installed": installed,
            });
            let mut runtimes = json!({});
            if let Some(v) = trt {
                runtimes["tensorrt"] = json!(v);
            }
            if let Some(v) = cuda {
                runtimes["cuda"] = json!(v);
            }
            if let Some((v, opset, ir)) = ort {
                runtimes["onnxruntime"] = json!({"version": v, "max_opset": opset, "max_ir_version": ir});
            }
            d["runtimes"] = runtimes;
            if let Some(v) = fw {
                d["firmware"] = json!({"name": "jetpack", "version": v});
            }
            match builtin {
                Some(b) => {
                    // Narrow: the smallest memory variant, or fewer accelerators.
                    if narrow == Some(1) {
                        d["memory_mb"] = json!(b.min_memory_mb.max(1));
                    }
                    if accel == 1 {
                        d["accelerators"] = json!([]);
                    }
                }
                None => {
                    d["memory_mb"] = json!(1024);
                    d["accelerators"] = match accel {
                        0 => json!([{"kind": "npu", "dtypes": ["int8"]}]),
                        1 => json!([{"kind": "gpu", "compute_capability": "8.6"}]),
                        _ => json!([]),
                    };
                }
            }
            d
        })
}

fn parse_package(v: &Value) -> Package {
    Package::from_json(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}\n{v}"))
}

fn parse_profile(v: &Value) -> DeviceProfile {
    DeviceProfile::from_json(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}\n{v}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn packages_round_trip_exactly(v in package()) {
        let p = parse_package(&v);
        let json = p.to_json();
        let again = Package::from_json(json.as_bytes()).unwrap();
        prop_assert_eq!(&again, &p);
        prop_assert_eq!(again.to_json(), json);
        if let Some(m) = &p.manifest {
            let mj = m.to_json();
            prop_assert_eq!(&ModelManifest::from_json(mj.as_bytes()).unwrap(), m);
        }
    }

    #[test]
    fn profiles_round_trip_exactly(v in profile(0)) {
        let d = parse_profile(&v);
        let json = d.to_json();
        let again = DeviceProfile::from_json(json.as_bytes()).unwrap();
        prop_assert_eq!(&again, &d);
        prop_assert_eq!(again.to_json(), json);
    }

    #[test]
    fn the_verdict_is_deterministic_and_ordered(
        pv in package(),
        fleet in (profile(0), profile(1), profile(2), profile(3)),
    ) {
        let p = parse_package(&pv);
        let fleet: Vec<DeviceProfile> = [fleet.0, fleet.1, fleet.2, fleet.3].iter().map(parse_profile).collect();
        let p2 = Package::from_json(p.to_json().as_bytes()).unwrap();
        let mut eligible = Vec::new();
        for d in &fleet {
            let r = compat::check(&p, d);
            // The same inputs, or their round-tripped copies, give the same report.
            prop_assert_eq!(&compat::check(&p, d), &r);
            let d2 = DeviceProfile::from_json(d.to_json().as_bytes()).unwrap();
            prop_assert_eq!(&compat::check(&p2, &d2), &r);
            prop_assert_eq!(r.compatible, r.rejections.is_empty());
            prop_assert_eq!(compat::fits(&p, d), r.compatible);
            // Rejections come in rule order: package-wide first, then by target, each group in
            // the order of `Reason`.
            let keys: Vec<(Option<usize>, usize)> = r.rejections.iter()
                .map(|x| (x.target, compat::Reason::ALL.iter().position(|y| *y == x.reason).unwrap()))
                .collect();
            let mut sorted = keys.clone();
            sorted.sort();
            prop_assert_eq!(keys, sorted);
            if r.compatible {
                eligible.push(d.device_id.clone());
            }
        }
        let f = compat::check_fleet(&p, &fleet);
        prop_assert_eq!(f.eligible, eligible);
        prop_assert_eq!(f.total, fleet.len());
    }

    #[test]
    fn parsers_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ModelManifest::from_json(&bytes);
        let _ = Package::from_json(&bytes);
        let _ = DeviceProfile::from_json(&bytes);
    }

    #[test]
    fn parsers_never_panic_on_mutated_documents(
        v in package(),
        path in proptest::collection::vec(0usize..32, 1..6),
        replacement in prop_oneof![
            Just(json!(null)), Just(json!(-1)), Just(json!(0)), Just(json!(1e300)), Just(json!("")),
            Just(json!("../x")), Just(json!([])), Just(json!({})), Just(json!(u64::MAX)), Just(json!("é\u{0}")),
        ],
    ) {
        let mut v = v;
        mutate(&mut v, &path, replacement);
        let bytes = v.to_string();
        if let Ok(p) = Package::from_json(bytes.as_bytes()) {
            // Whatever is accepted round-trips.
            prop_assert_eq!(Package::from_json(p.to_json().as_bytes()).unwrap(), p);
        }
    }
}

/// Replaces the value found by walking `path` (indices into object fields or array items).
fn mutate(v: &mut Value, path: &[usize], replacement: Value) {
    let Some((first, rest)) = path.split_first() else {
        *v = replacement;
        return;
    };
    let child = match v {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(first % m.len()).cloned().unwrap();
            m.get_mut(&key)
        }
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            a.get_mut(first % n)
        }
        _ => None,
    };
    match child {
        Some(c) => mutate(c, rest, replacement),
        None => *v = replacement,
    }
}
