//! Online pair mining inside a batch (and against a cross-batch memory) for the pair-based
//! losses: every pair, or the multi-similarity miner (Wang et al. 2019).
//!
//! Input: the batch's host embeddings `[B, D]` (no gradient) and labels; output: a
//! [`PairSet`] of `(anchor, other)` row indices that the loss consumes.

use crate::loss::pairs::PairSet;

pub use crate::loss::pairs::{all_pairs, all_pairs_against};

/// Cosine similarity of two rows (0 when either is all zero).
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// The multi-similarity miner: for each anchor `i`, the negatives `n` with
/// `S_in + ε > min_p S_ip` (closer than its hardest positive, up to ε) and the positives `p`
/// with `S_ip − ε < max_n S_in`. Anchors without a positive or a negative give no pair.
pub fn multi_similarity_pairs(
    embeddings: &[f32],
    labels: &[u32],
    dim: usize,
    epsilon: f32,
) -> PairSet {
    multi_similarity_pairs_against(embeddings, labels, labels.len(), dim, epsilon)
}

/// The multi-similarity miner for the first `anchors` rows of `references` (the batch) against
/// all of them (the batch, then a cross-batch memory's rows): pairs `(anchor, reference row)`.
pub fn multi_similarity_pairs_against(
    references: &[f32],
    labels: &[u32],
    anchors: usize,
    dim: usize,
    epsilon: f32,
) -> PairSet {
    let rows: Vec<&[f32]> = references.chunks_exact(dim).collect();
    let n = labels.len();
    let mut set = PairSet::default();
    for a in 0..anchors.min(n) {
        let sim: Vec<f32> = (0..n).map(|j| cosine(rows[a], rows[j])).collect();
        let (positives, negatives) = super::mining::partners(labels, a);
        if positives.is_empty() || negatives.is_empty() {
            continue;
        }
        let hardest_pos = positives
            .iter()
            .map(|&j| sim[j])
            .fold(f32::INFINITY, f32::min);
        let hardest_neg = negatives
            .iter()
            .map(|&j| sim[j])
            .fold(f32::NEG_INFINITY, f32::max);
        set.negatives.extend(
            negatives
                .iter()
                .filter(|&&j| sim[j] + epsilon > hardest_pos)
                .map(|&j| (a, j)),
        );
        set.positives.extend(
            positives
                .iter()
                .filter(|&&j| sim[j] - epsilon < hardest_neg)
                .map(|&j| (a, j)),
        );
    }
    set
}
