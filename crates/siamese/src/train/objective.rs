//! One batch's loss for every loss but the triplet one (whose mining and statistics live in the
//! trainer): the mining that fits the loss (every pair for contrastive, circle, NT-Xent and
//! SupCon; the multi-similarity miner for multi-similarity; none for the class-vector losses),
//! then the loss itself.
//!
//! Shapes: the batch's embeddings `[B, D]` (differentiable), their host copy `B·D` values and
//! `B` labels, and for Proxy-Anchor / ArcFace / CosFace the `[C, D]` class vectors → `[1]`.

use burn::tensor::Tensor;

use crate::distance::Distance;
use crate::loss::arcface::arcface_loss;
use crate::loss::circle::circle_loss;
use crate::loss::contrastive::contrastive_loss;
use crate::loss::cosface::cosface_loss;
use crate::loss::multi_similarity::multi_similarity_loss;
use crate::loss::nt_xent::{nt_xent_loss, supcon_loss};
use crate::loss::pairs::{all_pairs, PairSet};
use crate::loss::proxy_anchor::proxy_anchor_loss;
use crate::loss::{ClassWeights, LossConfig};
use crate::sampling::pair_mining::multi_similarity_pairs;
use crate::{Error, Result};

/// The pairs `loss` trains on in this batch (empty for the class-vector losses).
pub fn mine_pairs(loss: &LossConfig, host: &[f32], labels: &[u32], dim: usize) -> PairSet {
    match loss {
        LossConfig::MultiSimilarity(c) => {
            multi_similarity_pairs(host, labels, dim, c.epsilon as f32)
        }
        LossConfig::Contrastive(_)
        | LossConfig::Circle(_)
        | LossConfig::NtXent(_)
        | LossConfig::Supcon(_) => all_pairs(labels),
        LossConfig::Triplet
        | LossConfig::ProxyAnchor(_)
        | LossConfig::Arcface(_)
        | LossConfig::Cosface(_) => PairSet::default(),
    }
}

/// The loss of one batch, or `None` when the batch holds nothing to learn from (no pair mined).
pub fn batch_loss(
    loss: &LossConfig,
    distance: Distance,
    emb: Tensor<2>,
    host: &[f32],
    labels: &[u32],
    head: Option<&ClassWeights>,
) -> Result<Option<Tensor<1>>> {
    let dim = emb.dims()[1];
    let pairs = mine_pairs(loss, host, labels, dim);
    let head =
        || head.ok_or_else(|| Error::Other(format!("the {loss} loss needs its class-vector head")));
    let pair_loss = |f: &dyn Fn(&PairSet) -> Tensor<1>| {
        if pairs.is_empty() {
            None
        } else {
            Some(f(&pairs))
        }
    };
    Ok(match loss {
        LossConfig::Triplet => {
            return Err(Error::Other(
                "the triplet loss is computed from mined triplets".into(),
            ))
        }
        LossConfig::Contrastive(c) => pair_loss(&|p| contrastive_loss(c, distance, emb.clone(), p)),
        LossConfig::MultiSimilarity(c) => pair_loss(&|p| multi_similarity_loss(c, emb.clone(), p)),
        LossConfig::Circle(c) => pair_loss(&|p| circle_loss(c, emb.clone(), p)),
        LossConfig::NtXent(c) => pair_loss(&|p| nt_xent_loss(c, emb.clone(), p)),
        LossConfig::Supcon(c) => pair_loss(&|p| supcon_loss(c, emb.clone(), p)),
        LossConfig::ProxyAnchor(c) => Some(proxy_anchor_loss(c, emb, labels, head()?)?),
        LossConfig::Arcface(c) => Some(arcface_loss(c, emb, labels, head()?)?),
        LossConfig::Cosface(c) => Some(cosface_loss(c, emb, labels, head()?)?),
    })
}
