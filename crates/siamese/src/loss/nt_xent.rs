//! Temperature-scaled cross-entropy losses on the cosine similarities `S` of the batch, with
//! `t` the temperature τ:
//!
//! - NT-Xent (Chen et al. 2020, SimCLR; with labels as in pytorch-metric-learning): per positive
//!   pair `(i, p)`, `−ln( e^{S_ip/t} / (e^{S_ip/t} + Σ_{n ∈ N_i} e^{S_in/t}) )`, averaged over
//!   the positive pairs.
//! - SupCon (Khosla et al. 2020): per anchor `i`,
//!   `−1/|P_i| Σ_{p ∈ P_i} ln( e^{S_ip/t} / Σ_{a ≠ i} e^{S_ia/t} )`, averaged over the anchors
//!   that have a positive.
//!
//! Shapes: embeddings `[B, D]` (or [`PairRows`]: the batch and a memory) and a [`PairSet`] →
//! `[1]`. Since `S ≤ 1`, every exponent is
//! shifted by `−1/t`, which cancels in the ratios and keeps `exp` finite.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::pairs::{PairRows, PairSet};
use crate::{Error, Result};

/// Configuration of [`nt_xent_loss`] and [`supcon_loss`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TemperatureConfig {
    /// The temperature τ. Default `0.1` (SupCon's; pytorch-metric-learning's NT-Xent uses 0.07).
    pub temperature: f64,
}

impl Default for TemperatureConfig {
    fn default() -> Self {
        TemperatureConfig { temperature: 0.1 }
    }
}

impl TemperatureConfig {
    /// τ in `(0, 10]`: below ~0.02 the exponents of unit vectors overflow `f32`.
    pub fn check(&self) -> Result<()> {
        if !(self.temperature >= 0.02 && self.temperature <= 10.0) {
            return Err(Error::config(
                "temperature",
                format!("{} is not in [0.02, 10]", self.temperature),
            ));
        }
        Ok(())
    }
}

/// `e^{(S − 1)/τ}` of the batch and its positive / negative masks.
fn scaled(
    config: &TemperatureConfig,
    rows: PairRows,
    pairs: &PairSet,
) -> (Tensor<2>, Tensor<2>, Tensor<2>, Tensor<2>) {
    let logits = rows
        .similarities()
        .sub_scalar(1.0)
        .div_scalar(config.temperature);
    let (pos, neg) = rows.masks(pairs);
    (logits.clone().exp(), logits, pos, neg)
}

/// NT-Xent over the positive pairs of `pairs`: `[B, D] → [1]`.
pub fn nt_xent_loss(
    config: &TemperatureConfig,
    rows: impl Into<PairRows>,
    pairs: &PairSet,
) -> Tensor<1> {
    let (exp, logits, pos, neg) = scaled(config, rows.into(), pairs);
    let neg_sum = (exp.clone() * neg).sum_dim(1);
    let per_pair = (exp + neg_sum).log() - logits;
    (per_pair * pos)
        .sum()
        .div_scalar(pairs.positives.len().max(1) as f64)
}

/// SupCon over the anchors of `pairs` (the denominator holds every other row in `pairs`):
/// `[B, D] → [1]`.
pub fn supcon_loss(
    config: &TemperatureConfig,
    rows: impl Into<PairRows>,
    pairs: &PairSet,
) -> Tensor<1> {
    let (exp, logits, pos, neg) = scaled(config, rows.into(), pairs);
    let others = pos.clone() + neg;
    let log_denominator = (exp * others).sum_dim(1).add_scalar(1e-30).log();
    let per_pair = (log_denominator - logits) * pos.clone();
    let positives_per_anchor = pos.sum_dim(1);
    let has_positive = positives_per_anchor.clone().greater_elem(0.0).float();
    let per_anchor = per_pair.sum_dim(1) / positives_per_anchor.clamp_min(1.0);
    let anchors: f32 = has_positive.clone().sum().into_scalar();
    (per_anchor * has_positive)
        .sum()
        .div_scalar(anchors.max(1.0))
}
