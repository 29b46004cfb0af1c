//! The contrastive pair loss of siamese networks (Hadsell, Chopra & LeCun 2006), with a positive
//! and a negative margin as in pytorch-metric-learning:
//!
//! `L = mean⁺ ½·max(0, d(a, p) − m⁺)² + mean⁻ ½·max(0, m⁻ − d(a, n))²`
//!
//! where each mean is over the pairs of its kind whose term is non-zero (so the many easy
//! negatives of a batch do not dilute the gradient). Shapes: embeddings `[B, D]` and a
//! [`PairSet`] of row pairs → `[1]`.

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::distance::row_distance;
use super::pairs::{PairRows, PairSet};
use crate::distance::Distance;
use crate::Result;

/// Configuration of [`contrastive_loss`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContrastiveConfig {
    /// Same-class pairs closer than this cost nothing. Default `0` (Hadsell et al.).
    pub pos_margin: f64,
    /// Different-class pairs farther than this cost nothing. Default `1` (on unit-length
    /// embeddings the Euclidean distance lies in `[0, 2]`).
    pub neg_margin: f64,
}

impl Default for ContrastiveConfig {
    fn default() -> Self {
        ContrastiveConfig {
            pos_margin: 0.0,
            neg_margin: 1.0,
        }
    }
}

impl ContrastiveConfig {
    /// Both margins finite and ≥ 0, the positive one below the negative one.
    pub fn check(&self) -> Result<()> {
        super::triplet::check_margin("pos margin", self.pos_margin)?;
        super::triplet::check_margin("neg margin", self.neg_margin)?;
        if self.pos_margin >= self.neg_margin {
            return Err(crate::Error::config(
                "pos margin",
                format!(
                    "{} must be below the neg margin {}",
                    self.pos_margin, self.neg_margin
                ),
            ));
        }
        Ok(())
    }
}

/// The contrastive loss of `pairs` of rows (the batch's, or the batch's against a memory's)
/// under `distance`: `[B, D] → [1]`.
pub fn contrastive_loss(
    config: &ContrastiveConfig,
    distance: Distance,
    rows: impl Into<PairRows>,
    pairs: &PairSet,
) -> Tensor<1> {
    let rows = rows.into();
    let device = rows.batch.device();
    let pos = pair_terms(distance, &rows, &pairs.positives, &device)
        .map(|d| d.sub_scalar(config.pos_margin).clamp_min(0.0));
    let neg = pair_terms(distance, &rows, &pairs.negatives, &device)
        .map(|d| d.neg().add_scalar(config.neg_margin).clamp_min(0.0));
    let zero = Tensor::<1>::zeros([1], &device);
    [pos, neg]
        .into_iter()
        .flatten()
        .map(|hinge| mean_nonzero(hinge.powi_scalar(2).mul_scalar(0.5)))
        .fold(zero, |acc, t| acc + t)
}

/// Distances of the listed (batch row, reference row) pairs, `None` for no pairs.
fn pair_terms(
    distance: Distance,
    rows: &PairRows,
    pairs: &[(usize, usize)],
    device: &Device,
) -> Option<Tensor<1>> {
    if pairs.is_empty() {
        return None;
    }
    let index = |f: fn(&(usize, usize)) -> usize| {
        let v: Vec<i64> = pairs.iter().map(|p| f(p) as i64).collect();
        Tensor::<1, Int>::from_data(TensorData::new(v, [pairs.len()]), device)
    };
    let a = rows.batch.clone().select(0, index(|p| p.0));
    let b = rows.reference_rows().select(0, index(|p| p.1));
    Some(row_distance(distance, a, b))
}

/// Mean of the non-zero entries (0 when all are zero): `[N] → [1]`.
pub fn mean_nonzero(x: Tensor<1>) -> Tensor<1> {
    let count: f32 = x.clone().greater_elem(0.0).float().sum().into_scalar();
    x.sum().div_scalar(count.max(1.0))
}
