//! Pairs of batch rows that the pair-based losses consume, and the tensors they build from them.
//!
//! A miner (see [`crate::sampling::pair_mining`]) returns a [`PairSet`] of `(anchor, other)` row
//! indices into a batch of `B` embeddings (or into the batch followed by a cross-batch memory,
//! `R` rows: [`PairRows`]); the losses turn it into `[B, R]` 0/1 masks and work on the `[B, R]`
//! cosine similarities of the batch to those rows ([`PairRows::similarities`]).

use burn::tensor::{Device, Tensor, TensorData};

/// Keeps the row norms away from zero when normalising (an all-zero embedding).
const NORM_EPS: f64 = 1e-12;

/// Positive (same class) and negative (different class) pairs of batch rows, `(anchor, other)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairSet {
    pub positives: Vec<(usize, usize)>,
    pub negatives: Vec<(usize, usize)>,
}

impl PairSet {
    /// Whether there is no pair to learn from.
    pub fn is_empty(&self) -> bool {
        self.positives.is_empty() && self.negatives.is_empty()
    }
}

/// A `[n, n]` 0/1 mask with ones at `pairs`.
pub fn pair_mask(n: usize, pairs: &[(usize, usize)], device: &Device) -> Tensor<2> {
    pair_mask_of(n, n, pairs, device)
}

/// A `[rows, cols]` 0/1 mask with ones at `pairs`.
pub fn pair_mask_of(
    rows: usize,
    cols: usize,
    pairs: &[(usize, usize)],
    device: &Device,
) -> Tensor<2> {
    let mut values = vec![0.0f32; rows * cols];
    for &(a, b) in pairs {
        values[a * cols + b] = 1.0;
    }
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

/// What a pair loss compares: the batch's embeddings `[B, D]` (the anchors, differentiable) with
/// the reference rows `[R, D]`: the batch itself, then, with a cross-batch memory
/// ([`crate::sampling::cross_batch_memory`]), the memory's rows `[M, D]` as constants. A
/// [`PairSet`]'s pairs are `(batch row, reference row)`.
#[derive(Debug, Clone)]
pub struct PairRows {
    pub batch: Tensor<2>,
    pub memory: Option<Tensor<2>>,
}

impl From<Tensor<2>> for PairRows {
    /// The batch alone.
    fn from(batch: Tensor<2>) -> Self {
        PairRows {
            batch,
            memory: None,
        }
    }
}

impl PairRows {
    /// Anchors (batch rows) B.
    pub fn anchors(&self) -> usize {
        self.batch.dims()[0]
    }

    /// Reference rows R = B + M.
    pub fn references(&self) -> usize {
        self.anchors() + self.memory.as_ref().map_or(0, |m| m.dims()[0])
    }

    /// The reference rows `[R, D]`: the batch, then the memory.
    pub fn reference_rows(&self) -> Tensor<2> {
        match &self.memory {
            None => self.batch.clone(),
            Some(m) => Tensor::cat(vec![self.batch.clone(), m.clone()], 0),
        }
    }

    /// Cosine similarities of the batch rows to the reference rows: `[B, R]` (without a memory,
    /// [`cosine_similarity_matrix`] of the batch).
    pub fn similarities(&self) -> Tensor<2> {
        match &self.memory {
            None => cosine_similarity_matrix(self.batch.clone()),
            Some(m) => {
                let u = unit_rows(self.batch.clone());
                let refs = Tensor::cat(vec![u.clone(), unit_rows(m.clone())], 0);
                u.matmul(refs.transpose())
            }
        }
    }

    /// The `[B, R]` masks of `pairs`' positives and negatives.
    pub fn masks(&self, pairs: &PairSet) -> (Tensor<2>, Tensor<2>) {
        let (b, r, device) = (self.anchors(), self.references(), self.batch.device());
        (
            pair_mask_of(b, r, &pairs.positives, &device),
            pair_mask_of(b, r, &pairs.negatives, &device),
        )
    }
}

/// Rows scaled to unit length: `[N, D] → [N, D]`.
pub fn unit_rows(x: Tensor<2>) -> Tensor<2> {
    let norm = x
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .add_scalar(NORM_EPS)
        .sqrt();
    x / norm
}

/// Cosine similarities of every pair of rows: `[B, D] → [B, B]`.
pub fn cosine_similarity_matrix(x: Tensor<2>) -> Tensor<2> {
    let u = unit_rows(x);
    u.clone().matmul(u.transpose())
}

/// Cosine similarities of rows of `x` to rows of `w`: `[B, D] × [C, D] → [B, C]`.
pub fn cosine_similarity_to(x: Tensor<2>, w: Tensor<2>) -> Tensor<2> {
    unit_rows(x).matmul(unit_rows(w).transpose())
}

/// `log Σ_j mask_ij · exp(x_ij)` per row, stable for large logits: `[B, M] → [B]`. A row whose
/// mask is all zero gives 0 (as if it held one term `exp(0)`); callers leave such rows out.
pub fn masked_logsumexp(x: Tensor<2>, mask: Tensor<2>) -> Tensor<1> {
    // Masked entries are pushed far down so neither the row maximum nor the sum sees them.
    let pushed = x + mask.clone().sub_scalar(1.0).mul_scalar(1e30);
    let row_max = pushed.clone().max_dim(1).detach();
    let sum = ((pushed - row_max.clone()).exp() * mask.clone()).sum_dim(1);
    let empty = mask.sum_dim(1).equal_elem(0.0);
    let row_max = row_max.mask_fill(empty.clone(), 0.0);
    (sum + empty.float()).log().add(row_max).squeeze_dim(1)
}

/// `ln(1 + eˣ)` without overflow for large `x`.
pub fn softplus<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone().clamp_min(0.0) + x.abs().neg().exp().log1p()
}

/// Per-row 0/1 flags `[n]` for the rows listed.
pub fn row_flags(n: usize, rows: impl IntoIterator<Item = usize>, device: &Device) -> Tensor<1> {
    let mut values = vec![0.0f32; n];
    for r in rows {
        values[r] = 1.0;
    }
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// Every pair of distinct rows: same label → positive, different → negative.
pub fn all_pairs(labels: &[u32]) -> PairSet {
    all_pairs_against(labels, labels.len())
}

/// Every pair of one of the first `anchors` rows (the batch) with another row of `labels` (the
/// batch, then a cross-batch memory's rows): same label → positive, different → negative.
pub fn all_pairs_against(labels: &[u32], anchors: usize) -> PairSet {
    let mut set = PairSet::default();
    for (a, &la) in labels.iter().enumerate().take(anchors) {
        for (b, &lb) in labels.iter().enumerate() {
            if a == b {
                continue;
            }
            if la == lb {
                set.positives.push((a, b));
            } else {
                set.negatives.push((a, b));
            }
        }
    }
    set
}
