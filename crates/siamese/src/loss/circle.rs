//! Circle loss (Sun et al. 2020) on the cosine similarities `S` of every pair in the batch:
//!
//! `L_i = softplus( ln Σ_n e^{γ·α_n·(S_in − m)} + ln Σ_p e^{−γ·α_p·(S_ip − (1 − m))} )`
//!
//! with the self-paced weights `α_p = max(0, 1 + m − S_ip)`, `α_n = max(0, S_in + m)` held
//! constant in the gradient (as the paper), averaged over the anchors that have both a positive
//! and a negative. Shapes: embeddings `[B, D]` and a [`PairSet`] → `[1]`.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::pairs::{masked_logsumexp, softplus, PairRows, PairSet};
use crate::{Error, Result};

/// Configuration of [`circle_loss`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CircleConfig {
    /// The relaxation margin m. Default `0.25` (the paper's for fine-grained retrieval).
    pub margin: f64,
    /// The scale γ. Default `80` (pytorch-metric-learning's; the paper uses 80 to 256).
    pub scale: f64,
}

impl Default for CircleConfig {
    fn default() -> Self {
        CircleConfig {
            margin: 0.25,
            scale: 80.0,
        }
    }
}

impl CircleConfig {
    /// m in `[0, 1)`, γ > 0.
    pub fn check(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.margin) {
            return Err(Error::config(
                "margin",
                format!("{} is not in [0, 1) for circle", self.margin),
            ));
        }
        check_scale(self.scale)
    }
}

/// A scale (γ, s) is a finite number > 0.
pub fn check_scale(scale: f64) -> Result<()> {
    if scale.is_finite() && scale > 0.0 {
        Ok(())
    } else {
        Err(Error::config(
            "scale",
            format!("{scale} must be a number > 0"),
        ))
    }
}

/// The circle loss of `pairs` of `emb`'s rows: `[B, D] → [1]`.
pub fn circle_loss(config: &CircleConfig, rows: impl Into<PairRows>, pairs: &PairSet) -> Tensor<1> {
    let rows = rows.into();
    let s = rows.similarities();
    let (pos, neg) = rows.masks(pairs);
    let (m, gamma) = (config.margin, config.scale);
    let alpha_p = s.clone().neg().add_scalar(1.0 + m).clamp_min(0.0).detach();
    let alpha_n = s.clone().add_scalar(m).clamp_min(0.0).detach();
    let logit_p = (alpha_p * s.clone().sub_scalar(1.0 - m)).mul_scalar(-gamma);
    let logit_n = (alpha_n * s.sub_scalar(m)).mul_scalar(gamma);
    let both = pos.clone().sum_dim(1).greater_elem(0.0).float()
        * neg.clone().sum_dim(1).greater_elem(0.0).float();
    let both = both.squeeze_dim::<1>(1);
    let per_anchor = softplus(masked_logsumexp(logit_n, neg) + masked_logsumexp(logit_p, pos));
    let count: f32 = both.clone().sum().into_scalar();
    (per_anchor * both).sum().div_scalar(count.max(1.0))
}
