//! CosFace (Wang et al. 2018), additive cosine margin: the softmax cross-entropy of the logits
//! `s·(cos θ_y − m)` for the true class and `s·cos θ_j` for the others, `θ_j` the angle to class
//! vector `j` ([`ClassWeights`]). Shapes: embeddings `[B, D]`, labels `[B]`, weights `[C, D]`
//! → `[1]`. Configured by [`MarginSoftmaxConfig`] (default m = 0.35, s = 30).

use burn::tensor::Tensor;

use super::arcface::{cross_entropy, MarginSoftmaxConfig};
use super::class_weights::{one_hot, ClassWeights};
use super::pairs::cosine_similarity_to;
use crate::Result;

/// The CosFace loss of `emb` (labels `labels`) with class vectors `weights`: `[B, D] → [1]`.
pub fn cosface_loss(
    config: &MarginSoftmaxConfig,
    emb: Tensor<2>,
    labels: &[u32],
    weights: &ClassWeights,
) -> Result<Tensor<1>> {
    weights.check_labels("cosface", labels)?;
    let device = emb.device();
    let target = one_hot(labels, weights.classes(), &device);
    let cos = cosine_similarity_to(emb, weights.vectors());
    let logits = (cos - target.clone().mul_scalar(config.margin)).mul_scalar(config.scale);
    Ok(cross_entropy(logits, target))
}
