//! ArcFace (Deng et al. 2019), additive angular margin: the softmax cross-entropy of the
//! logits `s·cos(θ_y + m)` for the true class and `s·cos θ_j` for the others, where `θ_j` is
//! the angle between the embedding and class vector `j` ([`ClassWeights`]). When `θ_y + m`
//! would pass π the target logit becomes `s·(cos θ_y − m·sin m)` (insightface's rule, keeping
//! it decreasing in θ). Shapes: embeddings `[B, D]`, labels `[B]`, weights `[C, D]` → `[1]`.

use burn::tensor::activation::log_softmax;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::class_weights::{one_hot, ClassWeights};
use super::pairs::cosine_similarity_to;
use crate::{Error, Result};

/// Configuration of [`arcface_loss`] and of CosFace ([`super::cosface`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MarginSoftmaxConfig {
    /// The margin m: an angle in radians for ArcFace (default `0.5`, 28.6°), a cosine for
    /// CosFace (default `0.35`).
    pub margin: f64,
    /// The scale s of the logits. Default `30` (a 10-class problem saturates the softmax well
    /// below the faces' 64).
    pub scale: f64,
}

impl MarginSoftmaxConfig {
    /// ArcFace's defaults.
    pub fn arcface() -> Self {
        MarginSoftmaxConfig {
            margin: 0.5,
            scale: 30.0,
        }
    }

    /// CosFace's defaults.
    pub fn cosface() -> Self {
        MarginSoftmaxConfig {
            margin: 0.35,
            scale: 30.0,
        }
    }

    /// m in `[0, 1.5)` (below π/2 for ArcFace), s > 0.
    pub fn check(&self) -> Result<()> {
        if !(0.0..1.5).contains(&self.margin) {
            return Err(Error::config(
                "margin",
                format!("{} is not in [0, 1.5)", self.margin),
            ));
        }
        super::circle::check_scale(self.scale)
    }
}

/// Cross-entropy of `logits` `[B, C]` with `target` one-hot rows: `[1]`.
pub fn cross_entropy(logits: Tensor<2>, target: Tensor<2>) -> Tensor<1> {
    let b = logits.dims()[0];
    (log_softmax(logits, 1) * target)
        .sum()
        .neg()
        .div_scalar(b as f64)
}

/// The ArcFace loss of `emb` (labels `labels`) with class vectors `weights`: `[B, D] → [1]`.
pub fn arcface_loss(
    config: &MarginSoftmaxConfig,
    emb: Tensor<2>,
    labels: &[u32],
    weights: &ClassWeights,
) -> Result<Tensor<1>> {
    weights.check_labels("arcface", labels)?;
    let device = emb.device();
    let target = one_hot(labels, weights.classes(), &device);
    let cos = cosine_similarity_to(emb, weights.vectors()).clamp(-1.0 + 1e-6, 1.0 - 1e-6);
    let sin = cos.clone().powi_scalar(2).neg().add_scalar(1.0).sqrt();
    let m = config.margin;
    let shifted = cos.clone().mul_scalar(m.cos()) - sin.mul_scalar(m.sin());
    // θ + m ≤ π exactly when cos θ ≥ cos(π − m).
    let past_pi = cos.clone().lower_elem((std::f64::consts::PI - m).cos());
    let shifted = shifted.mask_where(past_pi, cos.clone().sub_scalar(m * m.sin()));
    let logits = (cos.clone() + (shifted - cos) * target.clone()).mul_scalar(config.scale);
    Ok(cross_entropy(logits, target))
}
