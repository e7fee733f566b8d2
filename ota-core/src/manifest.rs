//! The model manifest: what a model is, what it needs and what it was measured to do.
//!
//! It is a superset of what model registries and runtimes describe: the framework and its
//! runtime-specific block (ONNX opsets, a TensorRT engine's build facts, TFLite delegates),
//! the files, the input/output specification (modelled on Triton's model configuration), the
//! metrics, and the hardware targets it is built for. The compatibility engine reads it to
//! refuse a model to hardware it does not fit.
//!
//! Parse with [`ModelManifest::from_json`]: unknown fields are rejected, and every fault is
//! reported with its field path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;
use crate::json::{self, Fault, ParseError, Validate, duplicates, fault, field, index};
use crate::limits::Limits;
use crate::name::Name;
use crate::package::Channel;
use crate::profile::{AcceleratorKind, Arch, ComputeCapability};
use crate::sbom::ManifestSbom;
use crate::version::{RuntimeVersion, Version, VersionRange, serde_via_str};

/// A model manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// The model's name.
    pub name: Name,
    /// The model's semantic version.
    pub version: Version,
    /// The licence, as an SPDX expression (`Apache-2.0`, `MIT OR Apache-2.0`).
    pub license: License,
    /// When the model was produced, RFC 3339 (`2026-04-15T07:32:37Z`).
    pub created_at: Timestamp,
    /// The release channel it was produced for.
    pub channel: Channel,
    /// A one-line human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The runtime the model needs. Exactly the block of the same name must be present.
    pub framework: Framework,
    /// Present exactly when `framework` is `onnx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx: Option<OnnxInfo>,
    /// Present exactly when `framework` is `tensorrt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensorrt: Option<TensorRtInfo>,
    /// Present exactly when `framework` is `tflite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tflite: Option<TfliteInfo>,
    /// The numeric precisions the model computes in (non-empty, no duplicates).
    pub precision: Vec<Precision>,
    /// The files of the model (non-empty, unique relative paths).
    pub files: Vec<ModelFile>,
    /// The input and output specification.
    pub io: IoSpec,
    /// What was measured before shipping.
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// The hardware the model is built for (non-empty).
    pub targets: Vec<Target>,
    /// The model's software bill of materials, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<ManifestSbom>,
}

impl ModelManifest {
    /// Parses and validates a manifest with the default [`Limits`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        Self::from_json_with_limits(bytes, &Limits::DEFAULT)
    }

    /// Parses and validates a manifest.
    pub fn from_json_with_limits(bytes: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        json::parse("manifest", bytes, limits.max_document_bytes)
    }

    /// The manifest as compact JSON; [`ModelManifest::from_json`] reads it back unchanged.
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }

    /// Whether any input or output uses `dtype`.
    pub fn uses_dtype(&self, dtype: DType) -> bool {
        self.io
            .inputs
            .iter()
            .chain(&self.io.outputs)
            .any(|t| t.dtype == dtype)
    }
}

/// The runtime a model needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Framework {
    /// ONNX, run by ONNX Runtime.
    Onnx,
    /// A serialized TensorRT engine.
    Tensorrt,
    /// TensorFlow Lite / LiteRT.
    Tflite,
}

impl Framework {
    /// The name as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Framework::Onnx => "onnx",
            Framework::Tensorrt => "tensorrt",
            Framework::Tflite => "tflite",
        }
    }
}

/// The ONNX block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxInfo {
    /// The model's IR version (at least 1).
    pub ir_version: u32,
    /// The operator sets the model imports; the default domain (`""` or `ai.onnx`) must be
    /// among them, and no domain may appear twice.
    pub opset_imports: Vec<OpsetImport>,
}

impl OnnxInfo {
    /// The version of the default-domain operator set, if imported.
    pub fn default_opset(&self) -> Option<u32> {
        self.opset_imports
            .iter()
            .find(|o| o.is_default_domain())
            .map(|o| o.version)
    }
}

/// An ONNX operator-set import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsetImport {
    /// The domain: `""` or `ai.onnx` for the default domain, or e.g. `com.microsoft`.
    pub domain: String,
    /// The operator-set version (at least 1).
    pub version: u32,
}

impl OpsetImport {
    /// Whether this is the default domain.
    pub fn is_default_domain(&self) -> bool {
        self.domain.is_empty() || self.domain == "ai.onnx"
    }
}

/// The TensorRT block: the facts of the engine's build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorRtInfo {
    /// The exact TensorRT version the engine was built with (3 or 4 parts, `8.6.1.6`).
    pub version: RuntimeVersion,
    /// Built with the version-compatible flag (TensorRT 8.6 and later): the engine then runs
    /// on the same or a newer runtime of an allowed major.
    pub version_compatible: bool,
    /// For a version-compatible engine, the runtime majors it may run on. Empty means the
    /// major it was built with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_runtime_majors: Vec<u32>,
    /// The hardware-compatibility level the engine was built with.
    pub hardware_compat: HardwareCompat,
    /// Where the engine was built.
    pub built_on: BuiltOn,
    /// The DLA core the engine runs on, if it targets a DLA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dla_core: Option<u32>,
}

impl TensorRtInfo {
    /// The runtime majors a version-compatible engine may run on.
    pub fn runtime_majors(&self) -> Vec<u32> {
        if self.allowed_runtime_majors.is_empty() {
            vec![self.version.major()]
        } else {
            self.allowed_runtime_majors.clone()
        }
    }
}

/// A TensorRT engine's hardware-compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HardwareCompat {
    /// The engine runs only on the compute capability it was built on.
    None,
    /// The engine runs on any Ampere or newer GPU (compute capability 8.0 and up).
    AmperePlus,
    /// The engine runs on any GPU of the same compute capability.
    SameComputeCapability,
}

/// Where a TensorRT engine was built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltOn {
    /// The GPU's compute capability.
    pub compute_capability: ComputeCapability,
    /// The build platform (`jetson-orin-nx`, `x86_64-linux`).
    pub platform: String,
    /// The JetPack release, on Jetson.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetpack: Option<RuntimeVersion>,
}

/// The TFLite block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TfliteInfo {
    /// The oldest TFLite runtime the model runs on.
    pub min_runtime: RuntimeVersion,
    /// The delegates the model uses.
    #[serde(default)]
    pub delegates: Vec<Delegate>,
}

/// A TFLite delegate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delegate {
    /// The delegate (`xnnpack`, `gpu`, `nnapi`, `edgetpu`, ...).
    pub name: Name,
    /// Whether the model fails without it; an optional delegate falls back to the CPU.
    #[serde(default)]
    pub required: bool,
}

/// A numeric precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Precision {
    /// 32-bit float.
    Fp32,
    /// 16-bit float.
    Fp16,
    /// bfloat16.
    Bf16,
    /// 8-bit float.
    Fp8,
    /// 8-bit integer.
    Int8,
    /// 4-bit integer.
    Int4,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(json::to_string(self).trim_matches('"'))
    }
}

/// A file of the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Its path, relative to the model's root.
    pub path: RelativePath,
    /// What the file is.
    pub role: FileRole,
    /// Its size (more than zero).
    pub size_bytes: u64,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
}

/// What a model file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FileRole {
    /// A serialized engine or model graph.
    Engine,
    /// Weights.
    Weights,
    /// Runtime configuration.
    Config,
    /// Class labels.
    Labels,
    /// A tokenizer.
    Tokenizer,
    /// An INT8 calibration cache.
    Calibration,
    /// A model card.
    ModelCard,
    /// Anything else.
    Other,
}

/// The input and output specification, after Triton's model configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoSpec {
    /// The largest batch the model accepts; 0 means the model has no batch dimension.
    pub max_batch_size: u32,
    /// The inputs (non-empty).
    pub inputs: Vec<Tensor>,
    /// The outputs (non-empty).
    pub outputs: Vec<Tensor>,
}

/// One input or output tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tensor {
    /// Its name, unique among inputs and outputs.
    pub name: String,
    /// Its element type.
    pub dtype: DType,
    /// Its shape: rank at least 1, each dimension at least 0, or -1 for dynamic.
    pub shape: Vec<i64>,
    /// Its memory layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    /// How to prepare data for it (inputs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<Preprocessing>,
}

/// A tensor element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DType {
    /// Boolean.
    Bool,
    /// Unsigned 8-bit integer.
    Uint8,
    /// Signed 8-bit integer.
    Int8,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 64-bit integer.
    Int64,
    /// 8-bit float.
    Fp8,
    /// 16-bit float.
    Fp16,
    /// bfloat16.
    Bf16,
    /// 32-bit float.
    Fp32,
    /// 64-bit float.
    Fp64,
    /// Bytes / string.
    String,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(json::to_string(self).trim_matches('"'))
    }
}

/// A tensor memory layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Layout {
    /// Batch, channels, height, width.
    Nchw,
    /// Batch, height, width, channels.
    Nhwc,
    /// Channels, height, width.
    Chw,
    /// Height, width, channels.
    Hwc,
    /// Batch, channels.
    Nc,
    /// A flat vector.
    Linear,
}

impl Layout {
    /// The index of the channel dimension, if the layout has one.
    pub fn channel_axis(self, rank: usize) -> Option<usize> {
        match self {
            Layout::Nchw | Layout::Nc => Some(1),
            Layout::Chw => Some(0),
            Layout::Nhwc | Layout::Hwc => rank.checked_sub(1),
            Layout::Linear => None,
        }
    }
}

/// How to prepare an input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessing {
    /// The colour space the model expects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color_space: Option<ColorSpace>,
    /// The size to resize to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<Resize>,
    /// Per-channel normalization: `(x - mean) / std`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Normalize>,
}

/// A colour space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ColorSpace {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red.
    Bgr,
    /// One grey channel.
    Gray,
    /// YUV.
    Yuv,
}

impl ColorSpace {
    /// The number of channels.
    pub fn channels(self) -> usize {
        match self {
            ColorSpace::Gray => 1,
            ColorSpace::Rgb | ColorSpace::Bgr | ColorSpace::Yuv => 3,
        }
    }
}

/// A resize step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    /// Target height in pixels (more than zero).
    pub height: u32,
    /// Target width in pixels (more than zero).
    pub width: u32,
    /// How the aspect ratio is handled.
    #[serde(default)]
    pub mode: ResizeMode,
}

/// How a resize handles the aspect ratio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResizeMode {
    /// Stretch to the target size.
    #[default]
    Stretch,
    /// Keep the aspect ratio and pad.
    Letterbox,
    /// Keep the aspect ratio and crop the centre.
    CenterCrop,
}

/// Per-channel normalization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    /// The mean per channel (or one value for all).
    pub mean: Vec<f64>,
    /// The standard deviation per channel (or one value for all); never zero.
    pub std: Vec<f64>,
}

/// A measured figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    /// What was measured (`top1_accuracy`, `map50`, `latency_p99`, `fps`).
    pub name: String,
    /// The value (finite; not negative for a latency or rate).
    pub value: f64,
    /// Its unit (`percent`, `ratio`, `ms`, `us`, `s`, `fps`).
    pub unit: String,
    /// The data set it was measured on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The hardware profile it was measured on; required for a latency or rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_profile: Option<Name>,
}

impl Metric {
    /// Whether this is a latency or rate, which depends on the hardware it was measured on.
    pub fn is_timing(&self) -> bool {
        let name = self.name.to_ascii_lowercase();
        matches!(self.unit.as_str(), "ms" | "us" | "s" | "fps")
            || name.contains("latency")
            || name.contains("fps")
            || name.contains("throughput")
    }
}

/// A hardware target and what the model needs there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The hardware profile (`nvidia-jetson-orin-nx`, `generic-arm64`). A `generic-*` target
    /// matches every device of its architecture.
    pub hardware_profile: Name,
    /// The CPU architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    /// The accelerators the model needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<AcceleratorKind>,
    /// The GPU compute capability the model needs: the minimum, except for a TensorRT engine,
    /// whose `hardware_compat` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<ComputeCapability>,
    /// Ranges of runtime versions the model needs.
    #[serde(default, skip_serializing_if = "RuntimeRanges::is_empty")]
    pub runtimes: RuntimeRanges,
    /// The range of firmware (JetPack) versions the model needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<VersionRange>,
    /// The memory the model needs, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_memory_mb: Option<u64>,
}

/// Ranges of runtime versions a target needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeRanges {
    /// TensorRT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensorrt: Option<VersionRange>,
    /// ONNX Runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnxruntime: Option<VersionRange>,
    /// TFLite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tflite: Option<VersionRange>,
    /// CUDA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda: Option<VersionRange>,
}

impl RuntimeRanges {
    /// Whether no range is given.
    pub fn is_empty(&self) -> bool {
        self.tensorrt.is_none()
            && self.onnxruntime.is_none()
            && self.tflite.is_none()
            && self.cuda.is_none()
    }
}

/// A relative path inside an artifact: no leading `/`, no `\`, no `.` or `..` component, no
/// empty component, no control character, at most 4096 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelativePath(String);

/// A path that is not a safe [`RelativePath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsafe path {path:?}: {why}")]
pub struct PathError {
    /// The path.
    pub path: String,
    /// Why it is refused.
    pub why: &'static str,
}

impl RelativePath {
    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RelativePath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| PathError {
            path: s.to_string(),
            why,
        };
        if s.is_empty() {
            return Err(err("it is empty"));
        }
        if s.len() > 4096 {
            return Err(err("it is longer than 4096 bytes"));
        }
        if s.starts_with('/') {
            return Err(err("it is absolute"));
        }
        if s.contains('\\') {
            return Err(err("it contains a backslash"));
        }
        if s.chars().any(char::is_control) {
            return Err(err("it contains a control character"));
        }
        if s.len() >= 2 && s.as_bytes()[1] == b':' {
            return Err(err("it starts with a drive letter"));
        }
        for part in s.split('/') {
            match part {
                "" => return Err(err("it has an empty component")),
                "." => return Err(err("it has a '.' component")),
                ".." => return Err(err("it has a '..' component")),
                _ => {}
            }
        }
        Ok(RelativePath(s.to_string()))
    }
}

impl fmt::Display for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An SPDX license expression (`Apache-2.0`, `MIT OR Apache-2.0`, `LicenseRef-acme-eula`),
/// checked against the SPDX license list.
#[derive(Clone, PartialEq, Eq)]
pub struct License(String);

/// A licence that is not a valid SPDX expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not a valid SPDX license expression: {why}")]
pub struct LicenseError {
    /// The text.
    pub found: String,
    /// What the SPDX parser said.
    pub why: String,
}

impl License {
    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for License {
    type Err = LicenseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        spdx::Expression::parse(s).map_err(|e| LicenseError {
            found: s.to_string(),
            why: e.reason.to_string(),
        })?;
        Ok(License(s.to_string()))
    }
}

impl fmt::Display for License {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for License {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "License({:?})", self.0)
    }
}

/// An RFC 3339 timestamp (`2026-04-15T07:32:37Z`), kept as written.
#[derive(Clone, PartialEq, Eq)]
pub struct Timestamp(String);

/// A timestamp that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not an RFC 3339 timestamp (like 2026-04-15T07:32:37Z)")]
pub struct TimestampError {
    /// The text.
    pub found: String,
}

impl Timestamp {
    /// The timestamp as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(&self) -> i128 {
        time::OffsetDateTime::parse(&self.0, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(0)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(
            |_| TimestampError {
                found: s.to_string(),
            },
        )?;
        Ok(Timestamp(s.to_string()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({:?})", self.0)
    }
}

serde_via_str!(RelativePath);
serde_via_str!(License);
serde_via_str!(Timestamp);

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
            if f.size_bytes == 0 {
                fault(
                    faults,
                    field(&index(&p, i), "size_bytes"),
                    "a file's size must be more than 0",
                );
            }
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
        if let Some(r) = &pre.resize {
            if r.height == 0 || r.width == 0 {
                fault(
                    faults,
                    field(&pp, "resize"),
                    "resize height and width must be more than 0",
                );
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in ["model.engine", "a/b/c.bin", "weights..bak", ".hidden"] {
            assert!(ok.parse::<RelativePath>().is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/./b",
            "a\\b",
            "C:x",
            "a\n",
        ] {
            assert!(bad.parse::<RelativePath>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn licenses() {
        for ok in [
            "Apache-2.0",
            "MIT OR Apache-2.0",
            "LicenseRef-acme-eula",
            "GPL-2.0-only WITH Classpath-exception-2.0",
        ] {
            assert!(ok.parse::<License>().is_ok(), "{ok:?}");
        }
        for bad in ["", "Apache 2", "proprietary", "MIT AND"] {
            assert!(bad.parse::<License>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timestamps() {
        assert!("2026-04-15T07:32:37Z".parse::<Timestamp>().is_ok());
        assert!("2026-04-15T07:32:37.5+03:00".parse::<Timestamp>().is_ok());
        assert!("2026-04-15".parse::<Timestamp>().is_err());
        assert!("yesterday".parse::<Timestamp>().is_err());
    }
}
