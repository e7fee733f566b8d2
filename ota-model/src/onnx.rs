//! ONNX: the facts a `ModelProto` declares, decoded with prost from ONNX's own
//! `onnx-ml.proto` (ONNX 1.23.2).

use std::collections::BTreeSet;

use ota_core::manifest::{DType, IoSpec, OnnxInfo, OpsetImport, Precision, Tensor};
use prost::Message;

use crate::error::ModelError;

/// The messages of ONNX's `onnx-ml.proto` (package `onnx`), as prost generates them.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use proto::tensor_proto::{DataLocation, DataType};
use proto::tensor_shape_proto::dimension::Value as Dim;
use proto::type_proto::Value as TypeValue;

/// What an ONNX model declares.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OnnxModel {
    /// The manifest's `onnx` block: IR version and operator-set imports, as declared.
    pub info: OnnxInfo,
    /// The graph's inputs (its initializers excluded) and outputs. `max_batch_size` is 0: the
    /// shapes are the full shapes the model declares.
    pub io: IoSpec,
    /// The precisions of its weights and floating-point inputs and outputs, in the manifest's
    /// order (may be empty, for a model of integers alone).
    pub precision: Vec<Precision>,
    /// The files holding its external weights (`external_data` locations), relative to the
    /// model's directory, in order of first use.
    pub external_data: Vec<String>,
}

impl OnnxModel {
    /// Reads a serialized `ModelProto`.
    pub fn from_bytes(bytes: &[u8]) -> Result<OnnxModel, ModelError> {
        let model = proto::ModelProto::decode(bytes).map_err(|e| ModelError::Malformed {
            format: "onnx",
            detail: e.to_string(),
        })?;
        Self::from_proto(&model)
    }

    /// Reads a decoded `ModelProto`.
    pub fn from_proto(model: &proto::ModelProto) -> Result<OnnxModel, ModelError> {
        let ir_version = match model.ir_version {
            None => return Err(ModelError::field("ir_version", "absent")),
            Some(v) => u32::try_from(v)
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| ModelError::field("ir_version", format!("{v} is not at least 1")))?,
        };
        let mut opset_imports = Vec::with_capacity(model.opset_import.len());
        for (i, o) in model.opset_import.iter().enumerate() {
            let domain = o.domain().to_string();
            let version = u32::try_from(o.version())
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| {
                    ModelError::field(
                        format!("opset_import[{i}] ({domain:?}).version"),
                        format!("{} is not at least 1", o.version()),
                    )
                })?;
            opset_imports.push(OpsetImport { domain, version });
        }
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| ModelError::field("graph", "absent"))?;

        // Before IR version 4, initializers were also listed among the inputs.
        let initialized: BTreeSet<&str> = graph
            .initializer
            .iter()
            .map(|t| t.name())
            .chain(
                graph
                    .sparse_initializer
                    .iter()
                    .filter_map(|s| s.values.as_ref().map(|v| v.name())),
            )
            .collect();
        let mut precision = BTreeSet::new();
        let mut inputs = Vec::new();
        for (i, v) in graph.input.iter().enumerate() {
            if initialized.contains(v.name()) {
                continue;
            }
            inputs.push(tensor(v, &format!("graph.input[{i}]"), &mut precision)?);
        }
        let mut outputs = Vec::with_capacity(graph.output.len());
        for (i, v) in graph.output.iter().enumerate() {
            outputs.push(tensor(v, &format!("graph.output[{i}]"), &mut precision)?);
        }

        let mut external_data: Vec<String> = Vec::new();
        for t in &graph.initializer {
            if let Ok(ty) = DataType::try_from(t.data_type())
                && let Some(p) = weight_precision(ty)
            {
                precision.insert(p);
            }
            if t.data_location() == DataLocation::External {
                let location = t
                    .external_data
                    .iter()
                    .find(|e| e.key() == "location")
                    .map(|e| e.value().to_string())
                    .ok_or_else(|| {
                        ModelError::field(
                            format!("graph.initializer ({}).external_data", t.name()),
                            "an external tensor without a location",
                        )
                    })?;
                if !external_data.contains(&location) {
                    external_data.push(location);
                }
            }
        }

        Ok(OnnxModel {
            info: OnnxInfo {
                ir_version,
                opset_imports,
            },
            io: IoSpec {
                max_batch_size: 0,
                inputs,
                outputs,
            },
            precision: precision.into_iter().collect(),
            external_data,
        })
    }
}

/// One graph input or output as a manifest tensor.
fn tensor(
    v: &proto::ValueInfoProto,
    at: &str,
    precision: &mut BTreeSet<Precision>,
) -> Result<Tensor, ModelError> {
    let at = format!("{at} ({})", v.name());
    let value = v.r#type.as_ref().and_then(|t| t.value.as_ref());
    let t = match value {
        Some(TypeValue::TensorType(t)) => t,
        None => {
            return Err(ModelError::field(
                format!("{at}.type"),
                "absent: the model does not declare the tensor's type",
            ));
        }
        Some(other) => {
            let kind = match other {
                TypeValue::SequenceType(_) => "a sequence",
                TypeValue::MapType(_) => "a map",
                TypeValue::OptionalType(_) => "an optional",
                TypeValue::SparseTensorType(_) => "a sparse tensor",
                TypeValue::OpaqueType(_) => "an opaque value",
                TypeValue::TensorType(_) => "a tensor",
            };
            return Err(ModelError::field(
                format!("{at}.type"),
                format!("{kind}: the manifest describes dense tensors only"),
            ));
        }
    };
    let ty = DataType::try_from(t.elem_type()).map_err(|_| ModelError::UnsupportedDtype {
        tensor: at.clone(),
        found: format!("{}", t.elem_type()),
    })?;
    let dtype = dtype(ty).ok_or_else(|| ModelError::UnsupportedDtype {
        tensor: at.clone(),
        found: ty.as_str_name().to_string(),
    })?;
    if let Some(p) = float_precision(ty) {
        precision.insert(p);
    }
    let dims = &t
        .shape
        .as_ref()
        .ok_or_else(|| ModelError::UnsupportedShape {
            tensor: at.clone(),
            detail: "its rank is unknown (no shape): the manifest needs one".into(),
        })?
        .dim;
    if dims.is_empty() {
        return Err(ModelError::UnsupportedShape {
            tensor: at,
            detail: "a scalar (rank 0): the manifest's shapes have rank 1 or more".into(),
        });
    }
    let mut shape = Vec::with_capacity(dims.len());
    for (i, d) in dims.iter().enumerate() {
        shape.push(match &d.value {
            Some(Dim::DimValue(n)) if *n >= 0 => *n,
            Some(Dim::DimValue(n)) => {
                return Err(ModelError::UnsupportedShape {
                    tensor: at,
                    detail: format!("dimension {i} is {n}, below 0"),
                });
            }
            // A named (symbolic) or unknown dimension.
            Some(Dim::DimParam(_)) | None => -1,
        });
    }
    Ok(Tensor {
        name: v.name().to_string(),
        dtype,
        shape,
        layout: None,
        preprocessing: None,
    })
}

/// The manifest dtype of an ONNX element type, if it has one.
fn dtype(t: DataType) -> Option<DType> {
    Some(match t {
        DataType::Float => DType::Fp32,
        DataType::Uint8 => DType::Uint8,
        DataType::Int8 => DType::Int8,
        DataType::Int16 => DType::Int16,
        DataType::Int32 => DType::Int32,
        DataType::Int64 => DType::Int64,
        DataType::String => DType::String,
        DataType::Bool => DType::Bool,
        DataType::Float16 => DType::Fp16,
        DataType::Double => DType::Fp64,
        DataType::Bfloat16 => DType::Bf16,
        DataType::Float8e4m3fn
        | DataType::Float8e4m3fnuz
        | DataType::Float8e5m2
        | DataType::Float8e5m2fnuz => DType::Fp8,
        _ => return None,
    })
}

/// The precision a floating-point tensor computes in.
fn float_precision(t: DataType) -> Option<Precision> {
    Some(match t {
        DataType::Float => Precision::Fp32,
        DataType::Float16 => Precision::Fp16,
        DataType::Bfloat16 => Precision::Bf16,
        DataType::Float8e4m3fn
        | DataType::Float8e4m3fnuz
        | DataType::Float8e5m2
        | DataType::Float8e5m2fnuz => Precision::Fp8,
        _ => return None,
    })
}

/// The precision weights of this type are stored in: floats, and 8- or 4-bit integers
/// (quantized weights).
fn weight_precision(t: DataType) -> Option<Precision> {
    float_precision(t).or(match t {
        DataType::Int8 | DataType::Uint8 => Some(Precision::Int8),
        DataType::Int4 | DataType::Uint4 => Some(Precision::Int4),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::proto::*;
    use super::*;

    fn value(name: &str, elem: DataType, dims: Option<Vec<Dim>>) -> ValueInfoProto {
        ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(TypeProto {
                value: Some(TypeValue::TensorType(type_proto::Tensor {
                    elem_type: Some(elem as i32),
                    shape: dims.map(|d| TensorShapeProto {
                        dim: d
                            .into_iter()
                            .map(|v| tensor_shape_proto::Dimension {
                                value: Some(v),
                                denotation: None,
                            })
                            .collect(),
                    }),
                })),
                denotation: None,
            }),
            ..Default::default()
        }
    }

    fn model(inputs: Vec<ValueInfoProto>, initializers: Vec<TensorProto>) -> Vec<u8> {
        ModelProto {
            ir_version: Some(10),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(21),
            }],
            graph: Some(GraphProto {
                input: inputs,
                output: vec![value("y", DataType::Float, Some(vec![Dim::DimValue(1)]))],
                initializer: initializers,
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn initializers_listed_as_inputs_are_not_inputs() {
        let w = TensorProto {
            name: Some("w".into()),
            data_type: Some(DataType::Int8 as i32),
            ..Default::default()
        };
        let bytes = model(
            vec![
                value("x", DataType::Float, Some(vec![Dim::DimParam("N".into())])),
                value("w", DataType::Int8, Some(vec![Dim::DimValue(4)])),
            ],
            vec![w],
        );
        let m = OnnxModel::from_bytes(&bytes).unwrap();
        let names: Vec<&str> = m.io.inputs.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["x"]);
        assert_eq!(m.io.inputs[0].shape, [-1]);
        assert_eq!(m.precision, [Precision::Fp32, Precision::Int8]);
    }

    #[test]
    fn an_unknown_dimension_is_dynamic() {
        let mut x = value("x", DataType::Float, Some(vec![Dim::DimValue(2)]));
        if let Some(TypeValue::TensorType(t)) = x.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            t.shape.as_mut().unwrap().dim.push(Default::default());
        }
        let m = OnnxModel::from_bytes(&model(vec![x], vec![])).unwrap();
        assert_eq!(m.io.inputs[0].shape, [2, -1]);
    }

    #[test]
    fn a_uint32_input_is_refused_naming_it() {
        let bytes = model(
            vec![value("ids", DataType::Uint32, Some(vec![Dim::DimValue(2)]))],
            vec![],
        );
        let e = OnnxModel::from_bytes(&bytes).unwrap_err().to_string();
        assert!(
            e.starts_with("graph.input[0] (ids): element type UINT32 has no manifest dtype"),
            "{e}"
        );
    }

    #[test]
    fn a_scalar_input_is_refused_naming_it() {
        let bytes = model(vec![value("s", DataType::Float, Some(vec![]))], vec![]);
        let e = OnnxModel::from_bytes(&bytes).unwrap_err().to_string();
        assert!(e.starts_with("graph.input[0] (s): a scalar"), "{e}");
    }

    #[test]
    fn an_input_without_a_shape_is_refused_naming_it() {
        let bytes = model(vec![value("s", DataType::Float, None)], vec![]);
        let e = OnnxModel::from_bytes(&bytes).unwrap_err().to_string();
        assert!(
            e.starts_with("graph.input[0] (s): its rank is unknown"),
            "{e}"
        );
    }

    #[test]
    fn external_weights_are_listed_once() {
        let ext = |name: &str| TensorProto {
            name: Some(name.into()),
            data_type: Some(DataType::Float as i32),
            data_location: Some(DataLocation::External as i32),
            external_data: vec![StringStringEntryProto {
                key: Some("location".into()),
                value: Some("weights.bin".into()),
            }],
            ..Default::default()
        };
        let bytes = model(
            vec![value("x", DataType::Float, Some(vec![Dim::DimValue(1)]))],
            vec![ext("a"), ext("b")],
        );
        let m = OnnxModel::from_bytes(&bytes).unwrap();
        assert_eq!(m.external_data, ["weights.bin"]);
    }

    #[test]
    fn garbage_is_refused_as_malformed() {
        let e = OnnxModel::from_bytes(b"\xff\xff\xff").unwrap_err();
        assert!(
            matches!(e, ModelError::Malformed { format: "onnx", .. }),
            "{e}"
        );
    }

    #[test]
    fn a_model_without_ir_version_is_refused() {
        let e = OnnxModel::from_bytes(&ModelProto::default().encode_to_vec()).unwrap_err();
        assert_eq!(e.to_string(), "ir_version: absent");
    }
}
