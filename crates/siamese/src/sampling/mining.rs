//! Online triplet mining inside a batch of embeddings.
//!
//! Given the batch's embeddings `[B, D]` (host copy, no gradient) and labels, each strategy
//! chooses (anchor, positive, negative) row triples; the trainer then gathers those rows from
//! the differentiable embeddings and applies the triplet loss.
//!
//! - `batch-all` (Hermans et al. 2017): every valid triplet whose loss is positive; the mean
//!   is taken over those active triplets only, so easy triplets do not dilute the gradient.
//! - `batch-hard` (Hermans et al. 2017): per anchor, its farthest positive and closest negative.
//! - `semi-hard` (Schroff et al. 2015, FaceNet): per (anchor, positive) pair, the closest
//!   negative that is still farther than the positive; when none is, the farthest negative.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::distance::Distance;
use crate::loss::triplet::triplet_hinge;
use crate::Error;

/// How triplets are chosen in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MiningStrategy {
    /// All triplets with a positive loss.
    BatchAll,
    /// Hardest positive and hardest negative per anchor.
    BatchHard,
    /// FaceNet's semi-hard negatives per positive pair.
    SemiHard,
}

impl MiningStrategy {
    /// Name used on the command line and in configs.
    pub fn name(&self) -> &'static str {
        match self {
            MiningStrategy::BatchAll => "batch-all",
            MiningStrategy::BatchHard => "batch-hard",
            MiningStrategy::SemiHard => "semi-hard",
        }
    }
}

impl fmt::Display for MiningStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MiningStrategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "batch-all" | "all" => Ok(MiningStrategy::BatchAll),
            "batch-hard" | "hard" => Ok(MiningStrategy::BatchHard),
            "semi-hard" | "semihard" => Ok(MiningStrategy::SemiHard),
            _ => Err(Error::config(
                "mining",
                format!("unknown strategy `{s}` (batch-all, batch-hard, semi-hard)"),
            )),
        }
    }
}

/// Row indices of one triplet inside the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triplet {
    pub anchor: usize,
    pub positive: usize,
    pub negative: usize,
}

/// The `B × B` distance matrix of a batch of `dim`-dimensional embeddings.
pub fn distance_matrix(embeddings: &[f32], dim: usize, distance: Distance) -> Vec<Vec<f32>> {
    let rows: Vec<&[f32]> = embeddings.chunks_exact(dim).collect();
    rows.iter()
        .map(|a| rows.iter().map(|b| distance.between(a, b)).collect())
        .collect()
}

/// Chooses the triplets of one batch. Anchors without a positive or without a negative in the
/// batch give no triplet; an empty result means there is nothing to learn from this batch.
pub fn mine_triplets(
    embeddings: &[f32],
    labels: &[u32],
    dim: usize,
    distance: Distance,
    margin: f32,
    strategy: MiningStrategy,
) -> Vec<Triplet> {
    mine_triplets_against(
        embeddings,
        labels,
        labels.len(),
        dim,
        distance,
        margin,
        strategy,
    )
}

/// [`mine_triplets`] for the first `anchors` rows of `references` (the batch) against every row
/// of it (the batch, then a cross-batch memory's rows, see
/// [`super::cross_batch_memory::CrossBatchMemory::references`]): anchors are batch rows,
/// positives and negatives any reference row; indices are reference rows.
pub fn mine_triplets_against(
    references: &[f32],
    labels: &[u32],
    anchors: usize,
    dim: usize,
    distance: Distance,
    margin: f32,
    strategy: MiningStrategy,
) -> Vec<Triplet> {
    let rows: Vec<&[f32]> = references.chunks_exact(dim).collect();
    let d: Vec<Vec<f32>> = rows[..anchors.min(rows.len())]
        .iter()
        .map(|a| rows.iter().map(|b| distance.between(a, b)).collect())
        .collect();
    let mut out = Vec::new();
    for (a, da) in d.iter().enumerate().take(labels.len()) {
        let (positives, negatives) = partners(labels, a);
        if positives.is_empty() || negatives.is_empty() {
            continue;
        }
        let triplet = |p, n| Triplet {
            anchor: a,
            positive: p,
            negative: n,
        };
        match strategy {
            MiningStrategy::BatchAll => {
                for &p in &positives {
                    for &ng in &negatives {
                        if triplet_hinge(da[p], da[ng], margin) > 0.0 {
                            out.push(triplet(p, ng));
                        }
                    }
                }
            }
            MiningStrategy::BatchHard => {
                let p = argbest(&positives, |j| da[j], |x, y| x > y);
                let ng = argbest(&negatives, |j| da[j], |x, y| x < y);
                out.push(triplet(p, ng));
            }
            MiningStrategy::SemiHard => {
                for &p in &positives {
                    let farther: Vec<usize> = negatives
                        .iter()
                        .copied()
                        .filter(|&j| da[j] > da[p])
                        .collect();
                    let ng = if farther.is_empty() {
                        argbest(&negatives, |j| da[j], |x, y| x > y)
                    } else {
                        argbest(&farther, |j| da[j], |x, y| x < y)
                    };
                    out.push(triplet(p, ng));
                }
            }
        }
    }
    out
}

/// A set of triplets' mean loss as a weighted sum of (anchor, reference) pair distances:
/// `L = (Σ_k w_k · d(pairs_k) + α · active) / triplets`, where each triplet whose hinge is
/// positive on the host adds 1 to its (anchor, positive) pair and −1 to its (anchor, negative)
/// pair. Within the active set this is the mean hinge exactly, value and gradient; it lets a
/// batch mined against a cross-batch memory (millions of triplets) cost one distance per pair.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TripletPairWeights {
    pub pairs: Vec<(usize, usize)>,
    pub weights: Vec<f32>,
    /// Triplets with a positive hinge.
    pub active: usize,
    /// Triplets mined (the mean's denominator).
    pub triplets: usize,
}

/// [`TripletPairWeights`] of the triplets `strategy` mines among the first `anchors` rows of
/// `references` against all of them (batch-all without listing its triplets).
pub fn triplet_pair_weights(
    references: &[f32],
    labels: &[u32],
    anchors: usize,
    dim: usize,
    distance: Distance,
    margin: f32,
    strategy: MiningStrategy,
) -> TripletPairWeights {
    let rows: Vec<&[f32]> = references.chunks_exact(dim).collect();
    let r = rows.len();
    let anchors = anchors.min(r);
    let d: Vec<Vec<f32>> = rows[..anchors]
        .iter()
        .map(|a| rows.iter().map(|b| distance.between(a, b)).collect())
        .collect();
    let mut w = vec![0.0f32; anchors * r];
    let (mut active, mut triplets) = (0usize, 0usize);
    if strategy == MiningStrategy::BatchAll {
        for (a, da) in d.iter().enumerate() {
            let (positives, negatives) = partners(labels, a);
            for &p in &positives {
                for &n in &negatives {
                    if triplet_hinge(da[p], da[n], margin) > 0.0 {
                        w[a * r + p] += 1.0;
                        w[a * r + n] -= 1.0;
                        active += 1;
                    }
                }
            }
        }
        triplets = active;
    } else {
        for t in mine_triplets_against(references, labels, anchors, dim, distance, margin, strategy)
        {
            triplets += 1;
            let da = &d[t.anchor];
            if triplet_hinge(da[t.positive], da[t.negative], margin) > 0.0 {
                w[t.anchor * r + t.positive] += 1.0;
                w[t.anchor * r + t.negative] -= 1.0;
                active += 1;
            }
        }
    }
    let mut out = TripletPairWeights {
        active,
        triplets,
        ..TripletPairWeights::default()
    };
    for (k, &weight) in w.iter().enumerate() {
        if weight != 0.0 {
            out.pairs.push((k / r, k % r));
            out.weights.push(weight);
        }
    }
    out
}

/// The candidate whose key is best under `better`; ties keep the earliest (deterministic).
fn argbest(
    candidates: &[usize],
    key: impl Fn(usize) -> f32,
    better: impl Fn(f32, f32) -> bool,
) -> usize {
    let mut best = candidates[0];
    for &c in &candidates[1..] {
        if better(key(c), key(best)) {
            best = c;
        }
    }
    best
}

/// Statistics over every valid triplet of a batch: the mean triplet loss and the fraction of
/// triplets whose loss is positive. Independent of the mining strategy, so validation curves of
/// different strategies are comparable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchTripletStats {
    pub mean_loss: f64,
    pub active_fraction: f64,
    pub triplets: usize,
}

/// [`BatchTripletStats`] of a batch of `dim`-dimensional embeddings.
pub fn batch_triplet_stats(
    embeddings: &[f32],
    labels: &[u32],
    dim: usize,
    distance: Distance,
    margin: f32,
) -> BatchTripletStats {
    let d = distance_matrix(embeddings, dim, distance);
    let n = labels.len();
    BatchTripletStats::from_losses((0..n).flat_map(|a| {
        let d = &d;
        (0..n)
            .filter(move |&p| p != a && labels[p] == labels[a])
            .flat_map(move |p| {
                (0..n)
                    .filter(move |&ng| labels[ng] != labels[a])
                    .map(move |ng| triplet_hinge(d[a][p], d[a][ng], margin))
            })
    }))
}

impl BatchTripletStats {
    /// Mean, active fraction and count of these per-triplet losses (all zero for none).
    pub fn from_losses(losses: impl IntoIterator<Item = f32>) -> Self {
        let (mut sum, mut active, mut count) = (0.0f64, 0usize, 0usize);
        for l in losses {
            count += 1;
            if l > 0.0 {
                sum += l as f64;
                active += 1;
            }
        }
        let per = |x: f64| if count == 0 { 0.0 } else { x / count as f64 };
        BatchTripletStats {
            mean_loss: per(sum),
            active_fraction: per(active as f64),
            triplets: count,
        }
    }
}

/// The rows sharing `a`'s label (without `a`) and the rows of other labels, in row order: the
/// positives and negatives every miner draws from.
pub(crate) fn partners(labels: &[u32], a: usize) -> (Vec<usize>, Vec<usize>) {
    let same = |j: &usize| labels[*j] == labels[a];
    let positives = (0..labels.len()).filter(|j| *j != a && same(j)).collect();
    let negatives = (0..labels.len()).filter(|j| !same(j)).collect();
    (positives, negatives)
}
