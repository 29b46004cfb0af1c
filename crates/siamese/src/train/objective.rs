//! One batch's objective, the same for training and validation ([`batch_objective`]): the
//! mining that fits the loss (triplets by the run's strategy, the batch's fixed triplets or
//! pairs for the seeds' random triplets and the pair sampler, every pair for contrastive,
//! circle, NT-Xent and SupCon, the multi-similarity miner, none for the class-vector losses),
//! against a cross-batch memory when the run has one, then the loss, and the value the epoch
//! reports (for triplet: the mean over every valid triplet of the batch, whatever the mining,
//! so curves of different strategies compare).
//!
//! Shapes: the batch's embeddings `[B, D]` (differentiable in training), their host copy `B·D`
//! values and `B` labels, the memory's `M` constant rows, and for Proxy-Anchor / ArcFace /
//! CosFace the `[C, D]` class vectors → `[1]`.

use burn::tensor::{Int, Tensor, TensorData};

use super::config::{Sampling, TrainConfig};
use crate::loss::arcface::arcface_loss;
use crate::loss::circle::circle_loss;
use crate::loss::contrastive::contrastive_loss;
use crate::loss::cosface::cosface_loss;
use crate::loss::multi_similarity::multi_similarity_loss;
use crate::loss::nt_xent::{nt_xent_loss, supcon_loss};
use crate::loss::pairs::{all_pairs_against, PairRows, PairSet};
use crate::loss::proxy_anchor::proxy_anchor_loss;
use crate::loss::triplet::triplet_hinge;
use crate::loss::{ClassWeights, LossConfig, TripletLossConfig};
use crate::sampling::cross_batch_memory::CrossBatchMemory;
use crate::sampling::mining::{mine_triplets_against, triplet_pair_weights};
use crate::sampling::pair_batch::fixed_pairs;
use crate::sampling::pair_mining::multi_similarity_pairs_against;
use crate::sampling::{batch_triplet_stats, BatchTripletStats, Triplet};
use crate::{Error, Result};

/// What the objective of a batch needs besides the batch.
#[derive(Clone, Copy)]
pub struct Objective<'a> {
    pub config: &'a TrainConfig,
    /// The class vectors of Proxy-Anchor / ArcFace / CosFace.
    pub head: Option<&'a ClassWeights>,
    /// The cross-batch memory to mine against (training steps from the run's
    /// `--xbm-start-iteration` on; never in validation).
    pub memory: Option<&'a CrossBatchMemory>,
    /// Whether the loss tensor is wanted (training), or only the reported value (validation).
    pub backward: bool,
}

/// One batch's result.
pub struct BatchObjective {
    /// The loss to back-propagate; `None` when the batch holds nothing to learn from (or
    /// in validation of the triplet loss, which only reports).
    pub loss: Option<Tensor<1>>,
    /// The value averaged into the epoch's loss: for triplet the mean over every valid triplet
    /// of the batch (memory left out), else the loss itself (0 without a pair).
    pub reported: f64,
    /// For triplet, the fraction of valid triplets with a positive loss; else 1 when the batch
    /// gave a loss.
    pub active: f64,
}

/// The objective of one batch: its embeddings `emb`, their host copy `host` and `labels`.
pub fn batch_objective(
    o: &Objective,
    emb: Tensor<2>,
    host: &[f32],
    labels: &[u32],
) -> Result<BatchObjective> {
    let config = o.config;
    let dim = emb.dims()[1];
    let memory = o.memory.filter(|m| !m.is_empty());
    if config.loss == LossConfig::Triplet {
        let stats = triplet_stats(config, host, labels, dim);
        let mut out = BatchObjective {
            loss: None,
            reported: stats.mean_loss,
            active: stats.active_fraction,
        };
        if o.backward {
            out.loss = triplet_loss(config, emb, host, labels, memory)?;
        }
        return Ok(out);
    }
    let (pairs, rows) = match memory {
        None => (
            mine_pairs(config, host, labels, labels.len(), dim),
            PairRows::from(emb.clone()),
        ),
        Some(m) => {
            let (refs, ref_labels) = m.references(host, labels);
            let rows = PairRows {
                memory: Some(memory_rows(m, &emb)),
                batch: emb.clone(),
            };
            (
                mine_pairs(config, &refs, &ref_labels, labels.len(), dim),
                rows,
            )
        }
    };
    let loss = pair_or_class_loss(config, rows, &pairs, labels, o.head)?;
    let reported = match &loss {
        Some(l) => l.clone().into_scalar::<f32>() as f64,
        None => 0.0,
    };
    Ok(BatchObjective {
        active: if loss.is_some() { 1.0 } else { 0.0 },
        loss,
        reported,
    })
}

/// The memory's rows as a constant tensor on `like`'s device.
fn memory_rows(memory: &CrossBatchMemory, like: &Tensor<2>) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(memory.embeddings().to_vec(), [memory.len(), memory.dim()]),
        &like.device(),
    )
}

/// The pairs the run's loss trains on: the first `anchors` rows of `references` (the batch)
/// against all of them (the batch, then the memory's rows). Empty for the class-vector losses.
pub fn mine_pairs(
    config: &TrainConfig,
    references: &[f32],
    labels: &[u32],
    anchors: usize,
    dim: usize,
) -> PairSet {
    if let Sampling::Pairs { .. } = config.sampling {
        return fixed_pairs(&labels[..anchors]);
    }
    match &config.loss {
        LossConfig::MultiSimilarity(c) => {
            multi_similarity_pairs_against(references, labels, anchors, dim, c.epsilon as f32)
        }
        LossConfig::Contrastive(_)
        | LossConfig::Circle(_)
        | LossConfig::NtXent(_)
        | LossConfig::Supcon(_) => all_pairs_against(labels, anchors),
        LossConfig::Triplet
        | LossConfig::ProxyAnchor(_)
        | LossConfig::Arcface(_)
        | LossConfig::Cosface(_) => PairSet::default(),
    }
}

/// Every loss but triplet on its `pairs` (or, for the class-vector losses, the labels and the
/// head); `None` when no pair was mined.
fn pair_or_class_loss(
    config: &TrainConfig,
    rows: PairRows,
    pairs: &PairSet,
    labels: &[u32],
    head: Option<&ClassWeights>,
) -> Result<Option<Tensor<1>>> {
    let loss = &config.loss;
    let head =
        || head.ok_or_else(|| Error::Other(format!("the {loss} loss needs its class-vector head")));
    let pair_loss =
        |f: &dyn Fn(PairRows) -> Tensor<1>| (!pairs.is_empty()).then(|| f(rows.clone()));
    Ok(match loss {
        LossConfig::Triplet => {
            return Err(Error::Other(
                "the triplet loss is computed from mined triplets".into(),
            ))
        }
        LossConfig::Contrastive(c) => {
            pair_loss(&|r| contrastive_loss(c, config.distance, r, pairs))
        }
        LossConfig::MultiSimilarity(c) => pair_loss(&|r| multi_similarity_loss(c, r, pairs)),
        LossConfig::Circle(c) => pair_loss(&|r| circle_loss(c, r, pairs)),
        LossConfig::NtXent(c) => pair_loss(&|r| nt_xent_loss(c, r, pairs)),
        LossConfig::Supcon(c) => pair_loss(&|r| supcon_loss(c, r, pairs)),
        LossConfig::ProxyAnchor(c) => Some(proxy_anchor_loss(c, rows.batch, labels, head()?)?),
        LossConfig::Arcface(c) => Some(arcface_loss(c, rows.batch, labels, head()?)?),
        LossConfig::Cosface(c) => Some(cosface_loss(c, rows.batch, labels, head()?)?),
    })
}

/// The triplet loss of the batch's mined (or, for random batches, fixed) triplets; with a
/// memory, mined against the batch and the memory
/// ([`crate::loss::TripletLoss::forward_weighted`]).
fn triplet_loss(
    config: &TrainConfig,
    emb: Tensor<2>,
    host: &[f32],
    labels: &[u32],
    memory: Option<&CrossBatchMemory>,
) -> Result<Option<Tensor<1>>> {
    let loss_fn = TripletLossConfig::new()
        .with_margin(config.margin)
        .with_distance(config.distance)
        .init()?;
    let dim = emb.dims()[1];
    let (m, mining) = match (memory, config.sampling) {
        (Some(m), Sampling::Pk { mining, .. }) => (m, mining),
        _ => {
            let triplets = select_triplets(config, host, labels, labels.len(), dim);
            return Ok((!triplets.is_empty()).then(|| {
                let (a, p, n) = gather(emb, &triplets);
                loss_fn.forward(a, p, n)
            }));
        }
    };
    let (refs, ref_labels) = m.references(host, labels);
    let w = triplet_pair_weights(
        &refs,
        &ref_labels,
        labels.len(),
        dim,
        config.distance,
        config.margin as f32,
        mining,
    );
    if w.pairs.is_empty() {
        // No triplet with a positive loss: nothing to learn from.
        return Ok(None);
    }
    let references = Tensor::cat(vec![emb.clone(), memory_rows(m, &emb)], 0);
    Ok(Some(loss_fn.forward_weighted(
        emb, references, &w.pairs, &w.weights, w.active, w.triplets,
    )))
}

/// The triplets to train on: a random batch's fixed `[anchors; positives; negatives]`, else
/// mined among the first `anchors` rows of `references` against all of them.
fn select_triplets(
    config: &TrainConfig,
    references: &[f32],
    labels: &[u32],
    anchors: usize,
    dim: usize,
) -> Vec<Triplet> {
    match config.sampling {
        Sampling::Pk { mining, .. } => mine_triplets_against(
            references,
            labels,
            anchors,
            dim,
            config.distance,
            config.margin as f32,
            mining,
        ),
        Sampling::Random { .. } | Sampling::Pairs { .. } => {
            let t = anchors / 3;
            (0..t)
                .map(|i| Triplet {
                    anchor: i,
                    positive: t + i,
                    negative: 2 * t + i,
                })
                .collect()
        }
    }
}

/// Loss statistics over every valid triplet of the batch (for random batches: over the
/// batch's fixed triplets).
fn triplet_stats(
    config: &TrainConfig,
    host: &[f32],
    labels: &[u32],
    dim: usize,
) -> BatchTripletStats {
    let (margin, distance) = (config.margin as f32, config.distance);
    match config.sampling {
        Sampling::Pk { .. } => batch_triplet_stats(host, labels, dim, distance, margin),
        Sampling::Random { .. } | Sampling::Pairs { .. } => {
            let t = labels.len() / 3;
            let row = |i: usize| &host[i * dim..(i + 1) * dim];
            BatchTripletStats::from_losses((0..t).map(|i| {
                let dp = distance.between(row(i), row(t + i));
                let dn = distance.between(row(i), row(2 * t + i));
                triplet_hinge(dp, dn, margin)
            }))
        }
    }
}

/// Rows of `emb` for the anchors, positives and negatives of `triplets`.
fn gather(emb: Tensor<2>, triplets: &[Triplet]) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
    let device = emb.device();
    let idx = |f: fn(&Triplet) -> usize| {
        let v: Vec<i64> = triplets.iter().map(|t| f(t) as i64).collect();
        Tensor::<1, Int>::from_data(TensorData::new(v, [triplets.len()]), &device)
    };
    let a = emb.clone().select(0, idx(|t| t.anchor));
    let p = emb.clone().select(0, idx(|t| t.positive));
    let n = emb.select(0, idx(|t| t.negative));
    (a, p, n)
}
