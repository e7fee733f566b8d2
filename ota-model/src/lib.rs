//! What a model file declares, read into the parts of an ota model manifest.
//!
//! `ota manifest init --from MODEL` starts a manifest from the model itself instead of from
//! memory: the framework block, the input and output specification, the precisions and the
//! files are read from the model, and the user completes what no model file says (licence,
//! metrics, hardware targets). This crate does the reading. Like `ota-core`, it does no I/O:
//! it takes bytes and returns manifest parts, so the caller decides how files are read.
//!
//! - [`OnnxModel::from_bytes`]: an ONNX `ModelProto` (protobuf, decoded by prost from ONNX's
//!   own `onnx-ml.proto`): IR version, operator-set imports, the graph's inputs (initializers
//!   excluded) and outputs with dtypes and shapes (a symbolic or unknown dimension is `-1`),
//!   and the weights it keeps in external files.
//! - [`TfliteModel::from_bytes`]: a TensorFlow Lite flatbuffer (schema version 3): the main
//!   subgraph's inputs and outputs (dynamic dimensions from `shape_signature`) and the
//!   minimum runtime the converter recorded (`min_runtime_version` metadata).
//! - [`SafetensorsFile::from_header`]: a safetensors file's header: its tensor count and
//!   dtypes, for the file's entry in `files[]`.
//! - [`Draft`]: assembles them, with the files' sizes and digests, into a manifest document
//!   and lists what is left to complete.
//!
//! Every refusal is a [`ModelError`] naming the tensor or field, for example a tensor type the
//! manifest's dtypes cannot express (`uint32`), a scalar (the manifest's shapes have rank 1
//! or more), or a non-tensor input (an ONNX sequence or map).
//!
//! ```
//! use ota_core::manifest::{FileRole, ModelFile};
//! use ota_core::Sha256Digest;
//! use ota_model::{Draft, DraftMeta, OnnxModel};
//!
//! // A tiny ONNX model: `y = Relu(x)`, x and y float tensors of shape [N, 3].
//! # use ota_model::onnx::proto::{self, tensor_shape_proto::{Dimension, dimension::Value as D}};
//! # use prost::Message;
//! # let t = |name: &str| proto::ValueInfoProto {
//! #     name: Some(name.into()),
//! #     r#type: Some(proto::TypeProto {
//! #         value: Some(proto::type_proto::Value::TensorType(proto::type_proto::Tensor {
//! #             elem_type: Some(proto::tensor_proto::DataType::Float as i32),
//! #             shape: Some(proto::TensorShapeProto { dim: vec![
//! #                 Dimension { value: Some(D::DimParam("N".into())), denotation: None },
//! #                 Dimension { value: Some(D::DimValue(3)), denotation: None },
//! #             ] }),
//! #         })),
//! #         denotation: None,
//! #     }),
//! #     ..Default::default()
//! # };
//! # let bytes = proto::ModelProto {
//! #     ir_version: Some(10),
//! #     opset_import: vec![proto::OperatorSetIdProto { domain: Some(String::new()), version: Some(21) }],
//! #     graph: Some(proto::GraphProto { input: vec![t("x")], output: vec![t("y")], ..Default::default() }),
//! #     ..Default::default()
//! # }.encode_to_vec();
//! let model = OnnxModel::from_bytes(&bytes)?;
//! assert_eq!(model.info.default_opset(), Some(21));
//! assert_eq!(model.io.inputs[0].shape, vec![-1, 3]);
//!
//! let file = ModelFile {
//!     path: "relu.onnx".parse()?,
//!     role: FileRole::Engine,
//!     size_bytes: bytes.len() as u64,
//!     sha256: Sha256Digest::of(&bytes),
//!     tensor_count: None,
//!     dtypes: Vec::new(),
//! };
//! let draft = Draft::from_onnx(file, model);
//! let mut meta = DraftMeta::new("relu".parse()?, "0.1.0".parse()?, "2026-04-15T07:32:37Z".parse()?);
//! // No licence and no target yet: the draft says so.
//! let left: Vec<String> = draft.to_complete(&meta).into_iter().map(|t| t.field).collect();
//! assert_eq!(left, ["license", "targets"]);
//!
//! meta.license = Some("Apache-2.0".parse()?);
//! meta.targets.push(serde_json::from_str(r#"{"hardware_profile": "generic-arm64"}"#)?);
//! let manifest = draft.into_manifest(&meta)?;
//! assert_eq!(manifest.onnx.unwrap().ir_version, 10);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(unsafe_code)]
#![deny(missing_docs)]

mod draft;
mod error;
pub mod onnx;
mod safetensors;
mod tflite;
// planus's generated reader: its only `unsafe` reads values whose bounds planus checked.
#[allow(
    unsafe_code,
    missing_docs,
    clippy::all,
    clippy::pedantic,
    dead_code,
    unused_imports,
    non_camel_case_types
)]
mod tflite_generated;

pub use draft::{Document, Draft, DraftMeta, ToComplete};
pub use error::ModelError;
pub use onnx::OnnxModel;
pub use safetensors::SafetensorsFile;
pub use tflite::TfliteModel;

/// The kinds of model file this crate reads, told apart by their contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A TensorFlow Lite flatbuffer (identifier `TFL3` at byte 4).
    Tflite,
    /// A safetensors file (a little-endian header length, then a JSON object).
    Safetensors,
    /// Anything else; an `.onnx` file is recognized by its name, since a protobuf carries no
    /// magic number.
    Other,
}

impl FileKind {
    /// The kind of a file, from its first bytes (16 are enough).
    pub fn sniff(prefix: &[u8]) -> FileKind {
        if prefix.get(4..8) == Some(b"TFL3") {
            FileKind::Tflite
        } else if prefix.len() >= 9 && prefix[8] == b'{' {
            FileKind::Safetensors
        } else {
            FileKind::Other
        }
    }
}
