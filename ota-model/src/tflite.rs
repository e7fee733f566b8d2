//! TensorFlow Lite: the facts a model flatbuffer declares, read through the reader planus
//! generated from `schema/tflite.fbs`.

use std::collections::BTreeSet;

use ota_core::RuntimeVersion;
use ota_core::manifest::{DType, IoSpec, Precision, Tensor};
use planus::ReadAsRoot;

use crate::error::ModelError;
use crate::tflite_generated::tflite::{ModelRef, SubGraphRef, TensorType};

/// The schema version this reader knows.
const SCHEMA_VERSION: u32 = 3;

/// The metadata entry in which the TFLite converter records the oldest runtime that runs
/// the model.
const MIN_RUNTIME: &str = "min_runtime_version";

/// What a TFLite model declares.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TfliteModel {
    /// The main subgraph's inputs and outputs. `max_batch_size` is 0: the shapes are the full
    /// shapes the model declares, `-1` for a dynamic dimension.
    pub io: IoSpec,
    /// The oldest TFLite runtime that runs it, as the converter recorded it
    /// (`min_runtime_version`); `None` when the model records none.
    pub min_runtime: Option<RuntimeVersion>,
    /// The precisions of the main subgraph's tensors: floating point, and 8- or 4-bit integers
    /// (quantized).
    pub precision: Vec<Precision>,
}

impl TfliteModel {
    /// Reads a TFLite flatbuffer (file identifier `TFL3`); every offset is checked by planus
    /// before it is followed.
    pub fn from_bytes(bytes: &[u8]) -> Result<TfliteModel, ModelError> {
        if bytes.get(4..8) != Some(b"TFL3") {
            return Err(malformed("no TFL3 file identifier at byte 4"));
        }
        let model = ModelRef::read_as_root(bytes).map_err(|e| malformed(e.to_string()))?;
        let version = model.version().map_err(|e| malformed(e.to_string()))?;
        if version != SCHEMA_VERSION {
            return Err(ModelError::field(
                "version",
                format!("schema version {version}; this reader knows {SCHEMA_VERSION}"),
            ));
        }
        let subgraph = model
            .subgraphs()
            .map_err(|e| malformed(e.to_string()))?
            .and_then(|s| s.iter().next())
            .ok_or_else(|| ModelError::field("subgraphs", "absent: the model has no graph"))?
            .map_err(|e| malformed(e.to_string()))?;
        let mut precision = BTreeSet::new();
        let io = io(&subgraph, &mut precision)?;
        Ok(TfliteModel {
            io,
            min_runtime: min_runtime(&model)?,
            precision: precision.into_iter().collect(),
        })
    }
}

fn malformed(detail: impl Into<String>) -> ModelError {
    ModelError::Malformed {
        format: "tflite",
        detail: detail.into(),
    }
}

fn io(sg: &SubGraphRef<'_>, precision: &mut BTreeSet<Precision>) -> Result<IoSpec, ModelError> {
    let bad = |e: planus::Error| malformed(e.to_string());
    let tensors = sg
        .tensors()
        .map_err(bad)?
        .ok_or_else(|| ModelError::field("subgraphs[0].tensors", "absent"))?;
    for t in tensors.iter() {
        if let Some(p) = weight_precision(t.map_err(bad)?.type_().map_err(bad)?) {
            precision.insert(p);
        }
    }
    let mut lists = Vec::with_capacity(2);
    for (what, indices) in [("inputs", sg.inputs()), ("outputs", sg.outputs())] {
        let indices = indices
            .map_err(bad)?
            .ok_or_else(|| ModelError::field(format!("subgraphs[0].{what}"), "absent"))?;
        let mut list = Vec::with_capacity(indices.len());
        for (i, index) in indices.iter().enumerate() {
            let at = format!("subgraphs[0].{what}[{i}]");
            let t = usize::try_from(index)
                .ok()
                .and_then(|k| tensors.get(k))
                .ok_or_else(|| {
                    ModelError::field(&at, format!("tensor index {index} is out of range"))
                })?
                .map_err(bad)?;
            let name = t.name().map_err(bad)?.unwrap_or_default().to_string();
            let at = format!("{at} ({name})");
            let ty = t.type_().map_err(bad)?;
            let dtype = dtype(ty).ok_or_else(|| ModelError::UnsupportedDtype {
                tensor: at.clone(),
                found: format!("{ty:?}").to_ascii_uppercase(),
            })?;
            // shape_signature has -1 where a dimension is dynamic; shape has 1 there.
            let dims = match t.shape_signature().map_err(bad)? {
                Some(sig) if !sig.is_empty() => sig,
                _ => t
                    .shape()
                    .map_err(bad)?
                    .ok_or_else(|| ModelError::UnsupportedShape {
                        tensor: at.clone(),
                        detail: "its rank is unknown (no shape): the manifest needs one".into(),
                    })?,
            };
            if dims.is_empty() {
                return Err(ModelError::UnsupportedShape {
                    tensor: at,
                    detail: "a scalar (rank 0): the manifest's shapes have rank 1 or more".into(),
                });
            }
            let mut shape = Vec::with_capacity(dims.len());
            for d in dims.iter() {
                if d < -1 {
                    return Err(ModelError::UnsupportedShape {
                        tensor: at,
                        detail: format!("dimension {d} is below -1"),
                    });
                }
                shape.push(i64::from(d));
            }
            list.push(Tensor {
                name,
                dtype,
                shape,
                layout: None,
                preprocessing: None,
            });
        }
        lists.push(list);
    }
    let outputs = lists.pop().unwrap_or_default();
    let inputs = lists.pop().unwrap_or_default();
    Ok(IoSpec {
        max_batch_size: 0,
        inputs,
        outputs,
    })
}

/// The `min_runtime_version` the converter recorded: a NUL-padded string in a buffer.
fn min_runtime(model: &ModelRef<'_>) -> Result<Option<RuntimeVersion>, ModelError> {
    let bad = |e: planus::Error| malformed(e.to_string());
    let Some(metadata) = model.metadata().map_err(bad)? else {
        return Ok(None);
    };
    for m in metadata.iter() {
        let m = m.map_err(bad)?;
        if m.name().map_err(bad)? != Some(MIN_RUNTIME) {
            continue;
        }
        let at = || format!("metadata ({MIN_RUNTIME})");
        let index = m.buffer().map_err(bad)?;
        let data = model
            .buffers()
            .map_err(bad)?
            .and_then(|b| b.get(index as usize))
            .ok_or_else(|| ModelError::field(at(), format!("buffer {index} is out of range")))?
            .map_err(bad)?
            .data()
            .map_err(bad)?
            .ok_or_else(|| ModelError::field(at(), format!("buffer {index} is empty")))?;
        let text: Vec<u8> = data.iter().copied().take_while(|b| *b != 0).collect();
        let text =
            std::str::from_utf8(&text).map_err(|_| ModelError::field(at(), "not UTF-8 text"))?;
        return text
            .parse()
            .map(Some)
            .map_err(|e| ModelError::field(at(), format!("{e}")));
    }
    Ok(None)
}

fn dtype(t: TensorType) -> Option<DType> {
    Some(match t {
        TensorType::Float32 => DType::Fp32,
        TensorType::Float16 => DType::Fp16,
        TensorType::Int32 => DType::Int32,
        TensorType::Uint8 => DType::Uint8,
        TensorType::Int64 => DType::Int64,
        TensorType::String => DType::String,
        TensorType::Bool => DType::Bool,
        TensorType::Int16 => DType::Int16,
        TensorType::Int8 => DType::Int8,
        TensorType::Float64 => DType::Fp64,
        TensorType::Bfloat16 => DType::Bf16,
        _ => return None,
    })
}

fn weight_precision(t: TensorType) -> Option<Precision> {
    Some(match t {
        TensorType::Float32 => Precision::Fp32,
        TensorType::Float16 => Precision::Fp16,
        TensorType::Bfloat16 => Precision::Bf16,
        TensorType::Int8 | TensorType::Uint8 => Precision::Int8,
        TensorType::Int4 => Precision::Int4,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_without_the_identifier_are_refused() {
        let e = TfliteModel::from_bytes(b"\0\0\0\0ONNX and more").unwrap_err();
        assert!(
            matches!(
                e,
                ModelError::Malformed {
                    format: "tflite",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_truncated_model_is_refused_not_a_panic() {
        let e = TfliteModel::from_bytes(b"\x10\0\0\0TFL3").unwrap_err();
        assert!(
            matches!(
                e,
                ModelError::Malformed {
                    format: "tflite",
                    ..
                }
            ),
            "{e}"
        );
    }
}
