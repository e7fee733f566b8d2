//! The model rules of the compatibility engine (rule 5): which targets of a model manifest
//! match a device, and whether one of them fits its arch, accelerators, compute capability,
//! runtimes, firmware, input types and memory.

use super::{Mask, Reason, Sink, list};
use crate::manifest::{Framework, HardwareCompat, ModelManifest, Target};
use crate::name::Name;
use crate::profile::{
    AcceleratorKind, Capabilities, ComputeCapability, DeviceProfile, HardwareProfile,
};
use crate::version::{RuntimeVersion, VersionRange};

fn target_matches(t: &Target, profile: &DeviceProfile) -> bool {
    let id = t.hardware_profile.as_str();
    if id == profile.hardware_profile.as_str() {
        return true;
    }
    HardwareProfile::is_generic(id)
        && HardwareProfile::builtin(id).is_some_and(|g| g.arch == profile.arch)
}

pub(super) fn evaluate_model(m: &ModelManifest, profile: &DeviceProfile, sink: &mut impl Sink) {
    let caps = profile.capabilities();
    let candidates = || {
        m.targets
            .iter()
            .enumerate()
            .filter(|(_, t)| target_matches(t, profile))
    };
    if candidates().next().is_none() {
        sink.reject(Reason::NoMatchingTarget, None, || {
            let ids: Vec<&Name> = m.targets.iter().map(|t| &t.hardware_profile).collect();
            (list(&ids), profile.hardware_profile.to_string())
        });
        return;
    }
    // The model fits when any matching target fits.
    let fits = candidates().any(|(i, t)| {
        let mut mask = Mask(0);
        evaluate_target(m, i, t, profile, &caps, &mut mask);
        mask.0 == 0
    });
    if !fits {
        for (i, t) in candidates() {
            evaluate_target(m, i, t, profile, &caps, sink);
        }
    }
}

fn gpu_cc(caps: &Capabilities<'_>) -> String {
    caps.gpu.map_or("no gpu".into(), |(cc, _)| cc.to_string())
}

fn check_range(
    sink: &mut impl Sink,
    target: usize,
    runtime: &str,
    range: Option<&VersionRange>,
    installed: Option<&RuntimeVersion>,
    framework_runtime: bool,
) {
    let Some(range) = range else { return };
    match installed {
        // A missing framework runtime is reported as FrameworkUnsupported already.
        None if framework_runtime => {}
        None => sink.reject(Reason::RuntimeVersionMismatch, Some(target), || {
            (
                format!("{runtime} {range}"),
                format!("{runtime} not installed"),
            )
        }),
        Some(v) if !range.contains(v) => {
            sink.reject(Reason::RuntimeVersionMismatch, Some(target), || {
                (format!("{runtime} {range}"), format!("{runtime} {v}"))
            })
        }
        Some(_) => {}
    }
}

fn evaluate_target(
    m: &ModelManifest,
    ti: usize,
    t: &Target,
    profile: &DeviceProfile,
    caps: &Capabilities<'_>,
    sink: &mut impl Sink,
) {
    let at = Some(ti);
    let trt = m.tensorrt.as_ref();

    // Architecture.
    let arch = t
        .arch
        .or_else(|| HardwareProfile::builtin(t.hardware_profile.as_str()).map(|b| b.arch));
    if let Some(a) = arch
        && a != caps.arch
    {
        sink.reject(Reason::ArchMismatch, at, || {
            (a.to_string(), caps.arch.to_string())
        });
    }

    // Accelerators.
    for kind in &t.accelerators {
        if caps.count(*kind) == 0 {
            sink.reject(Reason::AcceleratorMissing, at, || {
                (kind.to_string(), format!("no {kind}"))
            });
        }
    }
    if let Some(trt) = trt {
        if caps.gpu.is_none() && !t.accelerators.contains(&AcceleratorKind::Gpu) {
            sink.reject(Reason::AcceleratorMissing, at, || {
                ("gpu (TensorRT engine)".into(), "no gpu".into())
            });
        }
        if let Some(core) = trt.dla_core
            && caps.dla_cores <= core
        {
            sink.reject(Reason::AcceleratorMissing, at, || {
                (
                    format!("dla core {core}"),
                    format!("{} dla cores", caps.dla_cores),
                )
            });
        }
    }

    // Compute capability.
    let device_cc = caps.gpu.map(|(cc, _)| cc);
    if let Some(trt) = trt {
        if let Some(cc) = device_cc {
            let built = t
                .compute_capability
                .unwrap_or(trt.built_on.compute_capability);
            let ampere_plus = match trt.hardware_compat {
                HardwareCompat::AmperePlus => true,
                HardwareCompat::None | HardwareCompat::SameComputeCapability => false,
            };
            let ok = if ampere_plus {
                cc >= ComputeCapability::AMPERE
            } else {
                cc == built
            };
            if !ok {
                // Worded only for a rejection: at a million devices, formatting it for every
                // device that fits was an eighth of a rollout's creation.
                sink.reject(Reason::ComputeCapabilityMismatch, at, || {
                    let needed = if ampere_plus {
                        ">=8.0 (ampere_plus)".to_string()
                    } else {
                        format!("={built}")
                    };
                    (needed, cc.to_string())
                });
            }
        }
    } else if let Some(min) = t.compute_capability
        && device_cc.is_none_or(|cc| cc < min)
    {
        sink.reject(Reason::ComputeCapabilityMismatch, at, || {
            (format!(">={min}"), gpu_cc(caps))
        });
    }

    // Framework runtime and delegates.
    let rt = &profile.runtimes;
    let has_runtime = match m.framework {
        Framework::Tensorrt => rt.tensorrt.is_some(),
        Framework::Onnx => rt.onnxruntime.is_some(),
        Framework::Tflite => rt.tflite.is_some(),
    };
    if !has_runtime {
        sink.reject(Reason::FrameworkUnsupported, at, || {
            (
                m.framework.as_str().to_string(),
                format!("no {} runtime", m.framework.as_str()),
            )
        });
    }
    if let (Some(tfl), Some(dev)) = (&m.tflite, &rt.tflite) {
        for d in tfl.delegates.iter().filter(|d| d.required) {
            if !dev.delegates.contains(&d.name) {
                sink.reject(Reason::FrameworkUnsupported, at, || {
                    (
                        format!("tflite delegate {}", d.name),
                        format!("delegates {}", list(&dev.delegates)),
                    )
                });
            }
        }
    }

    // Runtime versions.
    let mut engine_runtime_failed = false;
    if let (Some(trt), Some(v)) = (trt, &rt.tensorrt) {
        let ok = if trt.version_compatible {
            *v >= trt.version && trt.runtime_majors().contains(&v.major())
        } else {
            *v == trt.version
        };
        if !ok {
            engine_runtime_failed = true;
            sink.reject(Reason::RuntimeVersionMismatch, at, || {
                let needed = if trt.version_compatible {
                    format!(
                        "tensorrt >={} of major {}",
                        trt.version,
                        list(&trt.runtime_majors())
                    )
                } else {
                    format!("tensorrt ={}", trt.version)
                };
                (needed, format!("tensorrt {v}"))
            });
        }
    }
    if let (Some(tfl), Some(dev)) = (&m.tflite, &rt.tflite)
        && dev.version < tfl.min_runtime
    {
        sink.reject(Reason::RuntimeVersionMismatch, at, || {
            (
                format!("tflite >={}", tfl.min_runtime),
                format!("tflite {}", dev.version),
            )
        });
    }
    let fw = m.framework;
    // The engine rule above already reports a TensorRT that does not fit: say it once.
    if !engine_runtime_failed {
        check_range(
            sink,
            ti,
            "tensorrt",
            t.runtimes.tensorrt.as_ref(),
            rt.tensorrt.as_ref(),
            fw == Framework::Tensorrt,
        );
    }
    check_range(
        sink,
        ti,
        "onnxruntime",
        t.runtimes.onnxruntime.as_ref(),
        rt.onnxruntime.as_ref().map(|o| &o.version),
        fw == Framework::Onnx,
    );
    check_range(
        sink,
        ti,
        "tflite",
        t.runtimes.tflite.as_ref(),
        rt.tflite.as_ref().map(|o| &o.version),
        fw == Framework::Tflite,
    );
    check_range(
        sink,
        ti,
        "cuda",
        t.runtimes.cuda.as_ref(),
        rt.cuda.as_ref(),
        false,
    );

    // ONNX opset and IR version.
    if let (Some(onnx), Some(ort)) = (&m.onnx, &rt.onnxruntime) {
        if let Some(opset) = onnx.default_opset()
            && opset > ort.max_opset
        {
            sink.reject(Reason::OpsetUnsupported, at, || {
                (
                    format!("opset {opset}"),
                    format!("max opset {}", ort.max_opset),
                )
            });
        }
        if onnx.ir_version > ort.max_ir_version {
            sink.reject(Reason::IrVersionUnsupported, at, || {
                (
                    format!("ir version {}", onnx.ir_version),
                    format!("max ir version {}", ort.max_ir_version),
                )
            });
        }
    }

    // Firmware.
    if let Some(range) = &t.firmware {
        match &profile.firmware {
            None => sink.reject(Reason::FirmwareTooOld, at, || {
                (range.to_string(), "no firmware reported".into())
            }),
            Some(f) => match range.position(&f.version) {
                std::cmp::Ordering::Less => sink.reject(Reason::FirmwareTooOld, at, || {
                    (range.to_string(), format!("{} {}", f.name, f.version))
                }),
                std::cmp::Ordering::Greater => sink.reject(Reason::FirmwareTooNew, at, || {
                    (range.to_string(), format!("{} {}", f.name, f.version))
                }),
                std::cmp::Ordering::Equal => {}
            },
        }
    }

    // Input types on the accelerators the model runs on.
    let dla = trt.and_then(|x| x.dla_core).map(|_| AcceleratorKind::Dla);
    let dla = dla.filter(|k| !t.accelerators.contains(k));
    for kind in t.accelerators.iter().copied().chain(dla) {
        let Some(allowed) = caps.dtypes(kind) else {
            continue;
        };
        if caps.count(kind) == 0 {
            continue;
        }
        if let Some(input) = m.io.inputs.iter().find(|i| !allowed.contains(&i.dtype)) {
            sink.reject(Reason::InputDtypeUnsupported, at, || {
                (
                    format!("input {} as {} on {kind}", input.name, input.dtype),
                    format!("{kind} takes {}", list(allowed)),
                )
            });
        }
    }

    // Memory.
    if let Some(need) = t.min_memory_mb
        && caps.memory_mb.is_none_or(|have| have < need)
    {
        sink.reject(Reason::InsufficientMemory, at, || {
            (
                format!("{need} MiB"),
                caps.memory_mb
                    .map_or("unknown".into(), |m| format!("{m} MiB")),
            )
        });
    }
}
