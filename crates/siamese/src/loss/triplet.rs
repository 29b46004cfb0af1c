//! Triplet margin loss: `L = max(0, d(a, p) − d(a, n) + α)`, averaged over the triplets.
//!
//! Shapes: anchor, positive, negative `[N, D]` → `[N]` ([`TripletLoss::forward_no_reduction`])
//! or `[1]` ([`TripletLoss::forward`]). FaceNet (Schroff et al. 2015) uses the squared
//! Euclidean distance with α = 0.2 on unit-norm embeddings; the seeds use the Euclidean one.

use burn::config::Config;
use burn::tensor::{Int, Tensor, TensorData};

use super::distance::row_distance;
use crate::distance::Distance;
use crate::{Error, Result};

/// Configuration of [`TripletLoss`].
#[derive(Config, Debug, PartialEq)]
pub struct TripletLossConfig {
    /// The margin α by which a negative must be farther than the positive. Default: `0.2`.
    #[config(default = 0.2)]
    pub margin: f64,
    /// The distance between embeddings. Default: Euclidean.
    #[config(default = "Distance::Euclidean")]
    pub distance: Distance,
}

impl TripletLossConfig {
    /// Checks the margin ([`check_margin`]) and builds the loss.
    pub fn init(&self) -> Result<TripletLoss> {
        check_margin("margin", self.margin)?;
        Ok(TripletLoss {
            margin: self.margin,
            distance: self.distance,
        })
    }
}

/// Checks a margin α: a finite number ≥ 0. The one check behind every configuration that holds a
/// margin (training, the triplet head, the margin sweep); `name` is the value's name in the error.
pub fn check_margin(name: &str, margin: f64) -> Result<()> {
    if margin.is_finite() && margin >= 0.0 {
        Ok(())
    } else {
        Err(Error::config(
            name,
            format!("{margin} must be a finite number ≥ 0"),
        ))
    }
}

/// One triplet's loss from its two distances on the host, `max(0, d(a, p) − d(a, n) + α)`: the
/// formula of [`TripletLoss::forward_no_reduction`] for mining and batch statistics, which work
/// on host copies of the embeddings.
pub fn triplet_hinge(d_ap: f32, d_an: f32, margin: f32) -> f32 {
    (d_ap - d_an + margin).max(0.0)
}

/// The triplet margin loss with a configurable distance.
#[derive(Debug, Clone, Copy)]
pub struct TripletLoss {
    /// Margin α.
    pub margin: f64,
    /// Distance d.
    pub distance: Distance,
}

impl TripletLoss {
    /// Mean loss over the batch: `[N, D]` ×3 → `[1]`.
    pub fn forward(
        &self,
        anchor: Tensor<2>,
        positive: Tensor<2>,
        negative: Tensor<2>,
    ) -> Tensor<1> {
        self.forward_no_reduction(anchor, positive, negative).mean()
    }

    /// The mean loss of `triplets` triplets written as weighted (anchor row, reference row)
    /// distances (see [`crate::sampling::mining::TripletPairWeights`]):
    /// `(Σ_k weights_k · d(anchors[i_k], references[j_k]) + α · active) / triplets`, anchors
    /// `[B, D]`, references `[R, D]` (the batch, then a cross-batch memory) → `[1]`.
    pub fn forward_weighted(
        &self,
        anchors: Tensor<2>,
        references: Tensor<2>,
        pairs: &[(usize, usize)],
        weights: &[f32],
        active: usize,
        triplets: usize,
    ) -> Tensor<1> {
        let device = anchors.device();
        let int = |v: Vec<i64>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), &device)
        };
        let d = row_distance(
            self.distance,
            anchors.select(0, int(pairs.iter().map(|p| p.0 as i64).collect())),
            references.select(0, int(pairs.iter().map(|p| p.1 as i64).collect())),
        );
        let w = Tensor::<1>::from_data(TensorData::new(weights.to_vec(), [weights.len()]), &device);
        (d * w)
            .sum()
            .add_scalar(self.margin * active as f64)
            .div_scalar(triplets.max(1) as f64)
    }

    /// Loss of each triplet: `[N, D]` ×3 → `[N]`.
    pub fn forward_no_reduction(
        &self,
        anchor: Tensor<2>,
        positive: Tensor<2>,
        negative: Tensor<2>,
    ) -> Tensor<1> {
        let d_ap = row_distance(self.distance, anchor.clone(), positive);
        let d_an = row_distance(self.distance, anchor, negative);
        (d_ap - d_an).add_scalar(self.margin).clamp_min(0.0)
    }
}
