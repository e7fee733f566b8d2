//! Validation of a model manifest: the rules serde cannot express (framework blocks that
//! match the framework, TensorRT compatibility modes, unique names, tensor shapes and
//! preprocessing that fit), each fault reported with its field path.

use std::fmt;

use super::{ColorSpace, Framework, HardwareCompat, IoSpec, ModelManifest, Precision, Tensor};
use crate::hardware::ComputeCapability;
use crate::json::{Fault, Validate, duplicates, fault, field, index};
use crate::name::Name;
use crate::version::RuntimeVersion;

/// The oldest TensorRT that builds version- or hardware-compatible engines.
const TRT_COMPAT_MIN: RuntimeVersion = RuntimeVersion::new2(8, 6);

impl Validate for ModelManifest {
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        self.validate_framework(path, faults);

        let p = field(path, "precision");
        if self.precision.is_empty() {
            fault(faults, p.clone(), "at least one precision is required");
        }
        duplicates(faults, &p, None, &self.precision);

        let p = field(path, "files");
        if self.files.is_empty() {
            fault(faults, p.clone(), "at least one file is required");
        }
        for (i, f) in self.files.iter().enumerate() {
            let at = index(&p, i);
            if f.size_bytes == 0 {
                fault(
                    faults,
                    field(&at, "size_bytes"),
                    "a file's size must be more than 0",
                );
            }
            if f.tensor_count == Some(0) {
                fault(
                    faults,
                    field(&at, "tensor_count"),
                    "must be more than 0 when given",
                );
            }
            duplicates(faults, &field(&at, "dtypes"), None, &f.dtypes);
        }
        duplicates(faults, &p, Some("path"), self.files.iter().map(|f| &f.path));

        self.io.validate_at(&field(path, "io"), faults);

        let p = field(path, "metrics");
        for (i, m) in self.metrics.iter().enumerate() {
            let at = index(&p, i);
            if m.name.trim().is_empty() {
                fault(faults, field(&at, "name"), "a metric needs a name");
            }
            if m.unit.trim().is_empty() {
                fault(faults, field(&at, "unit"), "a metric needs a unit");
            }
            if !m.value.is_finite() {
                fault(
                    faults,
                    field(&at, "value"),
                    "a metric's value must be finite",
                );
            }
            if m.is_timing() {
                if m.value < 0.0 {
                    fault(
                        faults,
                        field(&at, "value"),
                        format!("a latency or rate cannot be negative, found {}", m.value),
                    );
                }
                if m.hardware_profile.is_none() {
                    fault(
                        faults,
                        field(&at, "hardware_profile"),
                        "a latency or rate must name the hardware profile it was measured on",
                    );
                }
            }
        }
        let keys: Vec<MetricKey<'_>> = self
            .metrics
            .iter()
            .map(|m| MetricKey(&m.name, m.hardware_profile.as_ref(), m.dataset.as_ref()))
            .collect();
        duplicates(faults, &p, Some("name"), &keys);

        let p = field(path, "targets");
        if self.targets.is_empty() {
            fault(
                faults,
                p.clone(),
                "at least one hardware target is required",
            );
        }
        for (i, t) in self.targets.iter().enumerate() {
            let at = index(&p, i);
            duplicates(faults, &field(&at, "accelerators"), None, &t.accelerators);
            if t.min_memory_mb == Some(0) {
                fault(
                    faults,
                    field(&at, "min_memory_mb"),
                    "must be more than 0 when given",
                );
            }
        }

        if let Some(sbom) = &self.sbom
            && !self.files.iter().any(|f| f.path == sbom.path)
        {
            fault(
                faults,
                field(&field(path, "sbom"), "path"),
                format!("{} is not among the manifest's files", sbom.path),
            );
        }
    }
}

/// A metric's identity for duplicate detection: name, hardware profile and data set.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct MetricKey<'a>(&'a String, Option<&'a Name>, Option<&'a String>);

impl fmt::Display for MetricKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl ModelManifest {
    fn validate_framework(&self, path: &str, faults: &mut Vec<Fault>) {
        let blocks = [
            (Framework::Onnx, self.onnx.is_some()),
            (Framework::Tensorrt, self.tensorrt.is_some()),
            (Framework::Tflite, self.tflite.is_some()),
        ];
        for (fw, present) in blocks {
            if fw == self.framework && !present {
                fault(
                    faults,
                    field(path, fw.as_str()),
                    format!("framework {} needs its {} block", fw.as_str(), fw.as_str()),
                );
            }
            if fw != self.framework && present {
                fault(
                    faults,
                    field(path, fw.as_str()),
                    format!(
                        "the {} block does not belong to a {} model",
                        fw.as_str(),
                        self.framework.as_str()
                    ),
                );
            }
        }
        if let Some(onnx) = &self.onnx {
            let p = field(path, "onnx");
            if onnx.ir_version == 0 {
                fault(
                    faults,
                    field(&p, "ir_version"),
                    "ir_version must be at least 1",
                );
            }
            let imports = field(&p, "opset_imports");
            if onnx.default_opset().is_none() {
                fault(
                    faults,
                    imports.clone(),
                    "the default domain (\"\" or \"ai.onnx\") must be imported",
                );
            }
            for (i, o) in onnx.opset_imports.iter().enumerate() {
                if o.version == 0 {
                    fault(
                        faults,
                        field(&index(&imports, i), "version"),
                        "an opset version is at least 1",
                    );
                }
            }
            let domains: Vec<&str> = onnx
                .opset_imports
                .iter()
                .map(|o| {
                    if o.is_default_domain() {
                        ""
                    } else {
                        o.domain.as_str()
                    }
                })
                .collect();
            duplicates(faults, &imports, Some("domain"), &domains);
        }
        if let Some(trt) = &self.tensorrt {
            let p = field(path, "tensorrt");
            let parts = trt.version.parts().len();
            if !(3..=4).contains(&parts) {
                fault(
                    faults,
                    field(&p, "version"),
                    format!(
                        "the exact TensorRT version has 3 or 4 parts (like 8.6.1.6), found {}",
                        trt.version
                    ),
                );
            }
            if trt.version_compatible && trt.version < TRT_COMPAT_MIN {
                fault(
                    faults,
                    field(&p, "version_compatible"),
                    format!(
                        "version-compatible engines need TensorRT 8.6 or later, built with {}",
                        trt.version
                    ),
                );
            }
            if !trt.version_compatible && !trt.allowed_runtime_majors.is_empty() {
                fault(
                    faults,
                    field(&p, "allowed_runtime_majors"),
                    "only a version-compatible engine can allow other runtime majors",
                );
            }
            for (i, m) in trt.allowed_runtime_majors.iter().enumerate() {
                if *m < trt.version.major() {
                    fault(
                        faults,
                        index(&field(&p, "allowed_runtime_majors"), i),
                        format!(
                            "an engine cannot run on a major ({m}) older than it was built with ({})",
                            trt.version.major()
                        ),
                    );
                }
            }
            if trt.hardware_compat != HardwareCompat::None && trt.version < TRT_COMPAT_MIN {
                fault(
                    faults,
                    field(&p, "hardware_compat"),
                    format!(
                        "hardware-compatible engines need TensorRT 8.6 or later, built with {}",
                        trt.version
                    ),
                );
            }
            if trt.hardware_compat == HardwareCompat::AmperePlus
                && trt.built_on.compute_capability < ComputeCapability::AMPERE
            {
                fault(
                    faults,
                    field(&p, "hardware_compat"),
                    format!(
                        "ampere_plus needs an engine built on compute capability 8.0 or later, built on {}",
                        trt.built_on.compute_capability
                    ),
                );
            }
            if trt.built_on.platform.trim().is_empty() {
                fault(
                    faults,
                    field(&field(&p, "built_on"), "platform"),
                    "the build platform must not be empty",
                );
            }
            if trt.dla_core.is_some() {
                if !self
                    .precision
                    .iter()
                    .any(|p| matches!(p, Precision::Fp16 | Precision::Int8))
                {
                    fault(
                        faults,
                        field(&p, "dla_core"),
                        "a DLA runs only fp16 or int8, but the precision is fp32-only",
                    );
                }
                if trt.hardware_compat != HardwareCompat::None {
                    fault(
                        faults,
                        field(&p, "dla_core"),
                        "a DLA engine cannot be hardware-compatible",
                    );
                }
            }
        }
        if let Some(tfl) = &self.tflite {
            let p = field(path, "tflite");
            duplicates(
                faults,
                &field(&p, "delegates"),
                Some("name"),
                tfl.delegates.iter().map(|d| &d.name),
            );
        }
    }
}

impl Validate for IoSpec {
    fn validate_at(&self, path: &str, faults: &mut Vec<Fault>) {
        for (list, what) in [(&self.inputs, "inputs"), (&self.outputs, "outputs")] {
            let p = field(path, what);
            if list.is_empty() {
                fault(
                    faults,
                    p.clone(),
                    format!("at least one of the {what} is required"),
                );
            }
            for (i, t) in list.iter().enumerate() {
                t.validate(&index(&p, i), what == "inputs", faults);
            }
        }
        // Names are unique across inputs and outputs.
        let mut seen = std::collections::BTreeSet::new();
        for (what, list) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            for (i, t) in list.iter().enumerate() {
                if !seen.insert(t.name.as_str()) {
                    fault(
                        faults,
                        field(&index(&field(path, what), i), "name"),
                        format!("duplicate io name {:?}", t.name),
                    );
                }
            }
        }
    }
}

impl Tensor {
    fn validate(&self, path: &str, is_input: bool, faults: &mut Vec<Fault>) {
        if self.name.trim().is_empty() {
            fault(faults, field(path, "name"), "a tensor needs a name");
        }
        let shape = field(path, "shape");
        if self.shape.is_empty() {
            fault(faults, shape.clone(), "the shape must have rank 1 or more");
        }
        for (i, d) in self.shape.iter().enumerate() {
            if *d < -1 {
                fault(
                    faults,
                    index(&shape, i),
                    format!("a dimension is at least 0, or -1 for dynamic, found {d}"),
                );
            }
        }
        let Some(pre) = &self.preprocessing else {
            return;
        };
        let pp = field(path, "preprocessing");
        if !is_input {
            fault(faults, pp.clone(), "only inputs are preprocessed");
        }
        if let Some(r) = &pre.resize
            && (r.height == 0 || r.width == 0)
        {
            fault(
                faults,
                field(&pp, "resize"),
                "resize height and width must be more than 0",
            );
        }
        if let Some(n) = &pre.normalize {
            let np = field(&pp, "normalize");
            if n.mean.is_empty() || n.std.is_empty() {
                fault(faults, np.clone(), "mean and std must not be empty");
            }
            if n.mean.len() != n.std.len() {
                fault(
                    faults,
                    field(&np, "std"),
                    format!(
                        "mean has {} values but std has {}",
                        n.mean.len(),
                        n.std.len()
                    ),
                );
            }
            for (i, s) in n.std.iter().enumerate() {
                if *s == 0.0 || !s.is_finite() || *s < 0.0 {
                    fault(
                        faults,
                        index(&field(&np, "std"), i),
                        format!("a standard deviation must be positive and finite, found {s}"),
                    );
                }
            }
            for (i, m) in n.mean.iter().enumerate() {
                if !m.is_finite() {
                    fault(
                        faults,
                        index(&field(&np, "mean"), i),
                        "a mean must be finite",
                    );
                }
            }
            // One value broadcasts; otherwise there is one per channel.
            let channels = pre.color_space.map(ColorSpace::channels).or_else(|| {
                let axis = self.layout?.channel_axis(self.shape.len())?;
                let d = *self.shape.get(axis)?;
                usize::try_from(d).ok().filter(|_| d > 0)
            });
            if let Some(c) = channels
                && n.mean.len() > 1
                && n.mean.len() != c
            {
                fault(
                    faults,
                    field(&np, "mean"),
                    format!("{} values for {c} channels", n.mean.len()),
                );
            }
        }
    }
}
