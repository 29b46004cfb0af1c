//! Proxy-Anchor loss (Kim et al. 2020): one learnable proxy per class ([`ClassWeights`]) and
//! the cosine similarities `S(x, p)` of the batch's embeddings to them:
//!
//! `L = 1/|P⁺| Σ_{p ∈ P⁺} ln(1 + Σ_{x ∈ X_p⁺} e^{−α(S(x,p) − δ)})
//!    + 1/|P| Σ_{p ∈ P} ln(1 + Σ_{x ∈ X_p⁻} e^{α(S(x,p) + δ)})`
//!
//! where `P⁺` are the proxies of the classes in the batch, `X_p⁺` the embeddings of `p`'s class
//! and `X_p⁻` the others. No mining: every embedding meets every proxy. Shapes: embeddings
//! `[B, D]`, labels `[B]`, proxies `[C, D]` → `[1]`.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::class_weights::{one_hot, ClassWeights};
use super::pairs::cosine_similarity_to;
use crate::{Error, Result};

/// Configuration of [`proxy_anchor_loss`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProxyAnchorConfig {
    /// The scale α. Default `32` (the paper's).
    pub alpha: f64,
    /// The margin δ. Default `0.1` (the paper's).
    pub margin: f64,
}

impl Default for ProxyAnchorConfig {
    fn default() -> Self {
        ProxyAnchorConfig {
            alpha: 32.0,
            margin: 0.1,
        }
    }
}

impl ProxyAnchorConfig {
    /// α > 0, δ in `[0, 1)`.
    pub fn check(&self) -> Result<()> {
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(Error::config(
                "alpha",
                format!("{} must be a number > 0", self.alpha),
            ));
        }
        if !(0.0..1.0).contains(&self.margin) {
            return Err(Error::config(
                "margin",
                format!("{} is not in [0, 1) for proxy-anchor", self.margin),
            ));
        }
        Ok(())
    }
}

/// The Proxy-Anchor loss of `emb` (labels `labels`) against `proxies`: `[B, D] → [1]`.
pub fn proxy_anchor_loss(
    config: &ProxyAnchorConfig,
    emb: Tensor<2>,
    labels: &[u32],
    proxies: &ClassWeights,
) -> Result<Tensor<1>> {
    proxies.check_labels("proxy-anchor", labels)?;
    let device = emb.device();
    let classes = proxies.classes();
    let s = cosine_similarity_to(emb, proxies.vectors());
    let pos = one_hot(labels, classes, &device);
    let neg = pos.clone().neg().add_scalar(1.0);
    let (a, d) = (config.alpha, config.margin);
    let pos_sum = (s.clone().sub_scalar(d).mul_scalar(-a).exp() * pos).sum_dim(0);
    let neg_sum = (s.add_scalar(d).mul_scalar(a).exp() * neg).sum_dim(0);
    let mut present = labels.to_vec();
    present.sort_unstable();
    present.dedup();
    let pos_term = pos_sum
        .log1p()
        .sum()
        .div_scalar(present.len().max(1) as f64);
    let neg_term = neg_sum.log1p().sum().div_scalar(classes as f64);
    Ok(pos_term + neg_term)
}
