//! Why a model file could not be read into manifest parts.

/// Why a model file could not be read into manifest parts. Each message is one line naming
/// the tensor or field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The bytes are not a model of the format (the decoder's own message).
    #[error("not a valid {format} model: {detail}")]
    Malformed {
        /// `onnx`, `tflite` or `safetensors`.
        format: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// A field the manifest needs is absent or out of range.
    #[error("{field}: {detail}")]
    Field {
        /// The field, as the format names it (`ir_version`, `graph.input[0] (x).type`).
        field: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A tensor's element type has no manifest dtype.
    #[error(
        "{tensor}: element type {found} has no manifest dtype (bool, uint8, int8, int16, int32, int64, fp8, fp16, bf16, fp32, fp64, string)"
    )]
    UnsupportedDtype {
        /// The tensor (`graph.input[0] (x)`, `subgraphs[0].inputs[1] (image)`).
        tensor: String,
        /// The format's name for the type (`UINT32`, `COMPLEX64`).
        found: String,
    },
    /// A tensor whose shape the manifest cannot express: a scalar, or an unknown rank.
    #[error("{tensor}: {detail}")]
    UnsupportedShape {
        /// The tensor.
        tensor: String,
        /// Why.
        detail: String,
    },
}

impl ModelError {
    pub(crate) fn field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ModelError::Field {
            field: field.into(),
            detail: detail.into(),
        }
    }
}
