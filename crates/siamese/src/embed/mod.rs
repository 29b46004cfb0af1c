//! Batched inference: images → embeddings (`[N, D]` row-major `f32`), and writing them for
//! other tools (`.npy` float32 N×D plus a labels CSV).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::LabelledImages;
use crate::model::EmbeddingNet;
use crate::{Error, Result};

/// Embeddings of `n` items, row-major `[n, dim]`.
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub values: Vec<f32>,
    pub dim: usize,
}

impl Embeddings {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

/// The pixels of `indices` as one `[B, C, H, W]` tensor on `device`.
pub fn batch_tensor(data: &LabelledImages, indices: &[usize], device: &Device) -> Tensor<4> {
    let mut pixels = Vec::with_capacity(indices.len() * data.image_size());
    for &i in indices {
        pixels.extend_from_slice(data.image(i));
    }
    let shape = [indices.len(), data.channels, data.height, data.width];
    Tensor::<4>::from_data(TensorData::new(pixels, shape), device)
}

/// Copies a `[B, D]` tensor to the host.
pub fn to_host(t: Tensor<2>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| Error::Other(format!("cannot read tensor: {e:?}")))
}

/// Checks that `model` reads images of `data`'s shape ([`EmbeddingNet::input_shape`]): a run
/// trained at another side (`train --side`) given MNIST-style 28 × 28 images is a one-line
/// error, not a shape panic inside the network.
pub fn check_input_shape<M: EmbeddingNet>(model: &M, data: &LabelledImages) -> Result<()> {
    let given = [data.channels, data.height, data.width];
    match model.input_shape() {
        Some(want) if want != given => Err(Error::config(
            "--model",
            format!(
                "the model reads {}×{}×{} images, these are {}×{}×{} (a run trained with \
                 --side reads only drawings converted at its side: eval, embed, oneshot)",
                want[0], want[1], want[2], given[0], given[1], given[2]
            ),
        )),
        _ => Ok(()),
    }
}

/// Embeds every image of `data` in batches of `batch_size` with `model` (which must already be
/// in inference mode, e.g. `model.valid()`), on `device`.
pub fn embed_images<M: EmbeddingNet>(
    model: &M,
    data: &LabelledImages,
    batch_size: usize,
    device: &Device,
) -> Result<Embeddings> {
    check_input_shape(model, data)?;
    let dim = model.dim();
    let mut values = Vec::with_capacity(data.len() * dim);
    let all: Vec<usize> = (0..data.len()).collect();
    for chunk in all.chunks(batch_size.max(1)) {
        let x = batch_tensor(data, chunk, device);
        values.extend(to_host(model.embed(x))?);
    }
    Ok(Embeddings { values, dim })
}

/// Writes `[n, dim]` float32 as a NumPy `.npy` (format 1.0, little-endian, C order).
pub fn write_npy(path: &Path, emb: &Embeddings) -> Result<()> {
    let header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        emb.len(),
        emb.dim
    );
    // Pad so that magic + length + header is a multiple of 64 bytes, ending in '\n'.
    let unpadded = 10 + header.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let header = format!("{header}{}\n", " ".repeat(pad));
    let mut bytes = Vec::with_capacity(10 + header.len() + emb.values.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in &emb.values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    crate::output::write_atomic(path, &bytes)
}

/// Writes `index,label,class` rows for the embeddings' labels.
pub fn write_labels_csv(path: &Path, labels: &[u32], class_names: &[String]) -> Result<()> {
    let mut text = String::from("index,label,class\n");
    for (i, &l) in labels.iter().enumerate() {
        let name = class_names
            .get(l as usize)
            .map(String::as_str)
            .unwrap_or("");
        text.push_str(&format!("{i},{l},{name}\n"));
    }
    crate::output::write_atomic(path, text.as_bytes())
}
