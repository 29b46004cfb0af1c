//! Multi-similarity loss (Wang et al. 2019) on cosine similarities `S` of mined pairs:
//!
//! `L_i = 1/α · ln(1 + Σ_{p ∈ P_i} e^{−α(S_ip − λ)}) + 1/β · ln(1 + Σ_{n ∈ N_i} e^{β(S_in − λ)})`
//!
//! averaged over the anchors `i` with at least one mined pair. The pairs come from its miner
//! ([`crate::sampling::pair_mining::multi_similarity_pairs`], margin ε). Shapes: embeddings
//! `[B, D]` and a [`PairSet`] → `[1]`. Defaults are the paper's and pytorch-metric-learning's.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::pairs::{PairRows, PairSet};
use crate::{Error, Result};

/// Configuration of [`multi_similarity_loss`] and its miner.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MultiSimilarityConfig {
    /// Weight of the positive pairs α. Default `2`.
    pub alpha: f64,
    /// Weight of the negative pairs β. Default `50`.
    pub beta: f64,
    /// The similarity λ pairs are measured from. Default `0.5`.
    pub base: f64,
    /// The miner's margin ε: a negative is kept when `S_in + ε > min_p S_ip`, a positive when
    /// `S_ip − ε < max_n S_in`. Default `0.1`.
    pub epsilon: f64,
}

impl Default for MultiSimilarityConfig {
    fn default() -> Self {
        MultiSimilarityConfig {
            alpha: 2.0,
            beta: 50.0,
            base: 0.5,
            epsilon: 0.1,
        }
    }
}

impl MultiSimilarityConfig {
    /// α, β > 0, λ in `[-1, 1]`, ε ≥ 0.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [("alpha", self.alpha), ("beta", self.beta)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::config(name, format!("{v} must be a number > 0")));
            }
        }
        if !(-1.0..=1.0).contains(&self.base) {
            return Err(Error::config(
                "base",
                format!("{} is not a similarity in [-1, 1]", self.base),
            ));
        }
        super::triplet::check_margin("epsilon", self.epsilon)
    }
}

/// The multi-similarity loss of the mined `pairs` of `emb`'s rows: `[B, D] → [1]`.
pub fn multi_similarity_loss(
    config: &MultiSimilarityConfig,
    rows: impl Into<PairRows>,
    pairs: &PairSet,
) -> Tensor<1> {
    let rows = rows.into();
    let s = rows.similarities();
    let (pos, neg) = rows.masks(pairs);
    let (a, b, l) = (config.alpha, config.beta, config.base);
    let pos_sum = (s.clone().sub_scalar(l).mul_scalar(-a).exp() * pos).sum_dim(1);
    let neg_sum = (s.sub_scalar(l).mul_scalar(b).exp() * neg).sum_dim(1);
    let per_anchor = pos_sum.log1p().div_scalar(a) + neg_sum.log1p().div_scalar(b);
    let mut anchors: Vec<usize> = pairs
        .positives
        .iter()
        .chain(&pairs.negatives)
        .map(|p| p.0)
        .collect();
    anchors.sort_unstable();
    anchors.dedup();
    per_anchor.sum().div_scalar(anchors.len().max(1) as f64)
}
