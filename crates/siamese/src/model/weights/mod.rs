//! Pretrained weights from files other frameworks wrote: PyTorch checkpoints (legacy and zip
//! `.pth`, read by our own pickle machine in [`pickle`]) and safetensors. Every tensor is
//! converted to `f32` and kept with its shape (PyTorch layout: conv `[out, in/groups, kh, kw]`,
//! linear `[out, in]`), so architecture code takes what it needs by name with shape checks.

pub mod pickle;
pub mod pyvalue;
pub mod torch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One tensor: shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// The named tensors of one weights file.
#[derive(Debug, Clone)]
pub struct Weights {
    /// The file they came from (for error messages).
    pub path: PathBuf,
    pub tensors: BTreeMap<String, WeightTensor>,
}

impl Weights {
    /// Reads a torch checkpoint (legacy or zip) or a safetensors file, recognised by content.
    /// A `module.` prefix (from `DataParallel`) is removed from every name.
    pub fn load(path: &Path) -> Result<Weights> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let tensors = if bytes.starts_with(b"PK\x03\x04") {
            torch::read_zip(&bytes, path)?
        } else if torch::is_legacy(&bytes) {
            torch::read_legacy(&bytes, path)?
        } else if looks_like_safetensors(&bytes) {
            read_safetensors(&bytes, path)?
        } else {
            return Err(Error::format(
                path,
                "not a torch checkpoint (legacy or zip) nor a safetensors file",
            ));
        };
        if tensors.is_empty() {
            return Err(Error::format(path, "the file holds no tensors"));
        }
        let tensors = tensors
            .into_iter()
            .map(|(k, v)| {
                (
                    k.strip_prefix("module.").map(str::to_string).unwrap_or(k),
                    v,
                )
            })
            .collect();
        Ok(Weights {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// Removes and returns tensor `name`, checking that its shape is `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.tensors.remove(name).ok_or_else(|| {
            Error::format(
                &self.path,
                format!("missing tensor `{name}` (shape {shape:?})"),
            )
        })?;
        if t.shape != shape {
            return Err(Error::format(
                &self.path,
                format!(
                    "tensor `{name}` has shape {:?}, expected {shape:?}",
                    t.shape
                ),
            ));
        }
        Ok(t.values)
    }

    /// Names of tensors not taken yet, ignoring BatchNorm's `num_batches_tracked` counters.
    pub fn leftover(&self) -> Vec<&str> {
        self.tensors
            .keys()
            .filter(|k| !k.ends_with("num_batches_tracked"))
            .map(String::as_str)
            .collect()
    }
}

fn looks_like_safetensors(bytes: &[u8]) -> bool {
    bytes.len() > 9 && bytes[8] == b'{'
}

fn read_safetensors(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, WeightTensor>> {
    use safetensors::Dtype;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| Error::format(path, format!("invalid safetensors: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::I64 => data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            Dtype::I32 => data
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                .collect(),
            other => {
                return Err(Error::format(
                    path,
                    format!("tensor `{name}` has unsupported dtype {other:?}"),
                ))
            }
        };
        out.insert(
            name.to_string(),
            WeightTensor {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    Ok(out)
}

/// Writes `tensors` as an `f32` safetensors file (atomically).
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, WeightTensor>) -> Result<()> {
    let bytes_of: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| {
            let b: Vec<u8> = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (k.clone(), b, t.shape.clone())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes_of
        .iter()
        .map(|(k, b, s)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| Error::format(path, format!("tensor `{k}`: {e}")))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, None)
        .map_err(|e| Error::format(path, format!("cannot serialise: {e}")))?;
    crate::output::write_atomic(path, &bytes)
}
