//! safetensors: the header's facts for a file's entry in `files[]`.

use std::collections::BTreeSet;

use ota_core::manifest::{DType, Precision};
use safetensors::Dtype;
use safetensors::tensor::Metadata;

use crate::error::ModelError;

/// The length of the header-size prefix of a safetensors file.
const PREFIX: usize = 8;

/// What a safetensors file holds: its tensor count and their element types.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SafetensorsFile {
    /// How many tensors it holds.
    pub tensor_count: u64,
    /// Their element types, sorted, without duplicates.
    pub dtypes: Vec<DType>,
    /// The precisions of its floating-point and 8- or 4-bit integer tensors.
    pub precision: Vec<Precision>,
}

impl SafetensorsFile {
    /// How many bytes of the file [`Self::from_header`] needs: the 8-byte length prefix (the
    /// first 8 bytes of the file) and the header it announces.
    pub fn header_len(first8: &[u8]) -> Result<usize, ModelError> {
        let n: [u8; PREFIX] = first8
            .get(..PREFIX)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("shorter than its 8-byte header length"))?;
        usize::try_from(u64::from_le_bytes(n))
            .ok()
            .and_then(|n| n.checked_add(PREFIX))
            .ok_or_else(|| malformed("its header length does not fit in memory"))
    }

    /// Reads a file's header: `head` holds at least its first [`Self::header_len`] bytes, and
    /// `file_size` is the whole file's size, which the header's tensors must fill exactly.
    /// The header is decoded and validated by the `safetensors` crate (offsets contiguous, sizes
    /// matching shapes and dtypes).
    pub fn from_header(head: &[u8], file_size: u64) -> Result<SafetensorsFile, ModelError> {
        let end = Self::header_len(head)?;
        let json = head
            .get(PREFIX..end)
            .ok_or_else(|| malformed("the file ends inside its header"))?;
        let metadata: Metadata =
            serde_json::from_slice(json).map_err(|e| malformed(e.to_string()))?;
        let data = u64::try_from(metadata.data_len())
            .ok()
            .and_then(|d| d.checked_add(end as u64));
        if data != Some(file_size) {
            return Err(malformed(format!(
                "its tensors end at byte {}, but the file has {file_size}",
                data.map_or("(overflow)".into(), |d| d.to_string())
            )));
        }
        let tensors = metadata.tensors();
        let mut dtypes = BTreeSet::new();
        let mut precision = BTreeSet::new();
        // In name order, so the first refusal is the same every time.
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        for name in names {
            let found = tensors[name].dtype;
            let dtype = dtype(found).ok_or_else(|| ModelError::UnsupportedDtype {
                tensor: format!("tensor {name}"),
                found: found.to_string(),
            })?;
            dtypes.insert(dtype);
            if let Some(p) = weight_precision(found) {
                precision.insert(p);
            }
        }
        Ok(SafetensorsFile {
            tensor_count: tensors.len() as u64,
            dtypes: dtypes.into_iter().collect(),
            precision: precision.into_iter().collect(),
        })
    }
}

fn malformed(detail: impl Into<String>) -> ModelError {
    ModelError::Malformed {
        format: "safetensors",
        detail: detail.into(),
    }
}

fn dtype(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::BOOL => DType::Bool,
        Dtype::U8 => DType::Uint8,
        Dtype::I8 => DType::Int8,
        Dtype::I16 => DType::Int16,
        Dtype::I32 => DType::Int32,
        Dtype::I64 => DType::Int64,
        Dtype::F16 => DType::Fp16,
        Dtype::BF16 => DType::Bf16,
        Dtype::F32 => DType::Fp32,
        Dtype::F64 => DType::Fp64,
        Dtype::F8_E5M2 | Dtype::F8_E4M3 | Dtype::F8_E4M3FNUZ | Dtype::F8_E5M2FNUZ => DType::Fp8,
        _ => return None,
    })
}

fn weight_precision(d: Dtype) -> Option<Precision> {
    Some(match d {
        Dtype::F32 => Precision::Fp32,
        Dtype::F16 => Precision::Fp16,
        Dtype::BF16 => Precision::Bf16,
        Dtype::F8_E5M2 | Dtype::F8_E4M3 | Dtype::F8_E4M3FNUZ | Dtype::F8_E5M2FNUZ => Precision::Fp8,
        Dtype::I8 | Dtype::U8 => Precision::Int8,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file written by the `safetensors` crate itself.
    fn file(tensors: &[(&str, Dtype, usize)]) -> Vec<u8> {
        let data: Vec<(String, Vec<u8>, Dtype, usize)> = tensors
            .iter()
            .map(|(n, d, len)| (n.to_string(), vec![0u8; len * d.bitsize() / 8], *d, *len))
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
            .iter()
            .map(|(n, b, d, len)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(*d, vec![*len], b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    #[test]
    fn counts_tensors_and_their_dtypes() {
        let bytes = file(&[
            ("a", Dtype::F16, 4),
            ("b", Dtype::F16, 2),
            ("c", Dtype::I64, 1),
        ]);
        let n = SafetensorsFile::header_len(&bytes).unwrap();
        let f = SafetensorsFile::from_header(&bytes[..n], bytes.len() as u64).unwrap();
        assert_eq!(f.tensor_count, 3);
        assert_eq!(f.dtypes, [DType::Int64, DType::Fp16]);
        assert_eq!(f.precision, [Precision::Fp16]);
    }

    #[test]
    fn a_truncated_file_is_refused() {
        let bytes = file(&[("a", Dtype::F32, 4)]);
        let n = SafetensorsFile::header_len(&bytes).unwrap();
        let e = SafetensorsFile::from_header(&bytes[..n], bytes.len() as u64 - 1).unwrap_err();
        assert!(e.to_string().contains("its tensors end at byte"), "{e}");
    }

    #[test]
    fn a_uint32_tensor_is_refused_naming_it() {
        let bytes = file(&[("ids", Dtype::U32, 2)]);
        let n = SafetensorsFile::header_len(&bytes).unwrap();
        let e = SafetensorsFile::from_header(&bytes[..n], bytes.len() as u64).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("tensor ids: element type U32 has no manifest dtype"),
            "{e}"
        );
    }
}
