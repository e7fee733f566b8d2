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

use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::digest::Sha256Digest;
use crate::hardware::{AcceleratorKind, Arch, ComputeCapability};
use crate::json::{self, ParseError};
use crate::limits::Limits;
use crate::name::Name;
use crate::sbom::ManifestSbom;
use crate::version::{RuntimeVersion, Version, VersionRange};

pub use crate::hardware::DType;
pub use crate::text::{License, LicenseError, PathError, RelativePath, Timestamp, TimestampError};

mod validate;

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
    /// Parses and validates a manifest with [`Limits::DEFAULT`]; see [`Self::from_json_with_limits`].
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
    /// For a file of named tensors (safetensors): how many tensors it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor_count: Option<u64>,
    /// For a file of named tensors: the element types of its tensors (no duplicates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dtypes: Vec<DType>,
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
