//! Cross-batch memory (XBM, Wang et al. 2020, "Cross-Batch Memory for Embedding Learning"): a
//! FIFO queue of the most recent batches' embeddings (detached host copies) and labels, which
//! the pair and triplet losses mine against besides the batch itself.
//!
//! Each step the batch's anchors are compared with the batch's rows followed by the memory's
//! rows ([`CrossBatchMemory::references`]): row `j < B` of the references is batch row `j`
//! (differentiable), row `B + m` is memory row `m` (a constant, oldest first). After the step the
//! batch is enqueued and the oldest rows beyond the capacity are dropped. Embeddings drift
//! slowly once training has settled, so the stale rows are still informative negatives and
//! positives (the paper's "slow drift"); `start_iteration` holds the memory back while they
//! drift fast (by default the first epoch). The queue is saved in the checkpoint (`xbm.safetensors`), so `--resume` continues
//! with the same memory.

use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The largest memory accepted: 65,536 rows of 64 floats are 16 MiB on the host, and every step
/// compares the batch with all of them.
pub const MAX_XBM_SIZE: usize = 65_536;

/// The `--xbm SIZE` and `--xbm-start-iteration N` settings of a run (stored in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct XbmConfig {
    /// Rows the memory holds: the embeddings of the most recent `size` training images. No
    /// default: the option's value (the paper sizes it near the training set's size for
    /// small sets).
    pub size: usize,
    /// The training step (counted over the whole run, from 0) from which batches are enqueued
    /// and mined against the memory; before it the batch alone is used. Default (`None`): one
    /// epoch's steps, so the memory starts with the second epoch: rows from the first steps of
    /// a network at its random start are nearly all alike, and mining against them drove a
    /// multi-similarity run on Omniglot into a state it did not leave (one-shot 40 %, against
    /// 85 % without the memory). Wang et al. warm up for 1,000 steps on their larger sets.
    #[serde(default)]
    pub start_iteration: Option<usize>,
}

impl XbmConfig {
    /// A memory of `size` rows from the second epoch on.
    pub fn new(size: usize) -> Self {
        XbmConfig {
            size,
            start_iteration: None,
        }
    }

    /// The size is in `1..=MAX_XBM_SIZE`.
    pub fn check(&self) -> Result<()> {
        if self.size == 0 || self.size > MAX_XBM_SIZE {
            return Err(Error::config(
                "--xbm",
                format!("{} rows is not in 1..={MAX_XBM_SIZE}", self.size),
            ));
        }
        Ok(())
    }

    /// Whether the memory takes part in step `step` of a run of `steps_per_epoch` steps an
    /// epoch.
    pub fn active_at(&self, step: usize, steps_per_epoch: usize) -> bool {
        step >= self.start_iteration.unwrap_or(steps_per_epoch)
    }
}

/// The queue: `len ≤ capacity` rows of `dim` floats and their labels, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossBatchMemory {
    capacity: usize,
    dim: usize,
    embeddings: Vec<f32>,
    labels: Vec<u32>,
}

impl CrossBatchMemory {
    /// An empty memory of `capacity` rows of `dim` floats.
    pub fn new(capacity: usize, dim: usize) -> Result<Self> {
        XbmConfig::new(capacity).check()?;
        if dim == 0 {
            return Err(Error::config("embedding dim", "must be at least 1"));
        }
        Ok(CrossBatchMemory {
            capacity,
            dim,
            embeddings: Vec::with_capacity(capacity * dim),
            labels: Vec::with_capacity(capacity),
        })
    }

    /// Rows held now.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether nothing was enqueued yet.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The most rows the memory holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Floats per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The rows, oldest first: `len · dim` floats.
    pub fn embeddings(&self) -> &[f32] {
        &self.embeddings
    }

    /// The rows' labels, oldest first.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Appends a batch (`labels.len()` rows of `dim` floats) and drops the oldest rows beyond
    /// the capacity (a batch larger than the memory keeps its last `capacity` rows).
    pub fn enqueue(&mut self, embeddings: &[f32], labels: &[u32]) -> Result<()> {
        if embeddings.len() != labels.len() * self.dim {
            return Err(Error::config(
                "cross-batch memory",
                format!(
                    "{} floats for {} labels of dimension {}",
                    embeddings.len(),
                    labels.len(),
                    self.dim
                ),
            ));
        }
        self.embeddings.extend_from_slice(embeddings);
        self.labels.extend_from_slice(labels);
        let excess = self.labels.len().saturating_sub(self.capacity);
        if excess > 0 {
            self.labels.drain(..excess);
            self.embeddings.drain(..excess * self.dim);
        }
        Ok(())
    }

    /// The rows a batch is mined against: the batch's own rows (`batch` / `labels`), then the
    /// memory's, oldest first. Anchor `i` of the batch is reference row `i`.
    pub fn references(&self, batch: &[f32], labels: &[u32]) -> (Vec<f32>, Vec<u32>) {
        let mut rows = Vec::with_capacity(batch.len() + self.embeddings.len());
        rows.extend_from_slice(batch);
        rows.extend_from_slice(&self.embeddings);
        let mut all = Vec::with_capacity(labels.len() + self.labels.len());
        all.extend_from_slice(labels);
        all.extend_from_slice(&self.labels);
        (rows, all)
    }

    /// Writes the queue as safetensors: `embeddings` F32 `[len, dim]` and `labels` U32 `[len]`,
    /// oldest first (an empty memory is a `[0, dim]` tensor).
    pub fn save(&self, path: &Path) -> Result<()> {
        let emb: Vec<u8> = self
            .embeddings
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let labels: Vec<u8> = self.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bad = |e: safetensors::SafeTensorError| Error::format(path, e.to_string());
        let emb = TensorView::new(Dtype::F32, vec![self.len(), self.dim], &emb).map_err(bad)?;
        let labels = TensorView::new(Dtype::U32, vec![self.len()], &labels).map_err(bad)?;
        let bytes =
            safetensors::serialize([("embeddings", emb), ("labels", labels)], None).map_err(bad)?;
        std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
    }

    /// Reads a queue written by [`CrossBatchMemory::save`] into a memory of `capacity` rows of
    /// `dim` floats; a file of another shape, or with more rows than the capacity, is an error
    /// naming it.
    pub fn load(path: &Path, capacity: usize, dim: usize) -> Result<Self> {
        let bytes = crate::input::read_file(path)?;
        let bad = |msg: String| Error::format(path, msg);
        let tensors = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a cross-batch memory file: {e}")))?;
        let get = |name: &str| {
            tensors
                .tensor(name)
                .map_err(|e| bad(format!("no `{name}`: {e}")))
        };
        let (emb, labels) = (get("embeddings")?, get("labels")?);
        let (shape, lshape) = (emb.shape().to_vec(), labels.shape().to_vec());
        if emb.dtype() != Dtype::F32
            || labels.dtype() != Dtype::U32
            || shape.len() != 2
            || shape[1] != dim
            || lshape != [shape[0]]
            || shape[0] > capacity
        {
            return Err(bad(format!(
                "expected F32 embeddings [≤ {capacity}, {dim}] and U32 labels of as many rows, \
                 found {:?} {shape:?} and {:?} {lshape:?}",
                emb.dtype(),
                labels.dtype()
            )));
        }
        let words = |data: &[u8]| -> Vec<[u8; 4]> {
            data.chunks_exact(4)
                .map(|b| [b[0], b[1], b[2], b[3]])
                .collect()
        };
        let mut memory = CrossBatchMemory::new(capacity, dim)?;
        memory.embeddings = words(emb.data())
            .into_iter()
            .map(f32::from_le_bytes)
            .collect();
        memory.labels = words(labels.data())
            .into_iter()
            .map(u32::from_le_bytes)
            .collect();
        Ok(memory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::Distance;
    use crate::loss::pairs::all_pairs_against;
    use crate::sampling::mining::mine_triplets_against;
    use crate::sampling::pair_mining::multi_similarity_pairs_against;
    use crate::sampling::{MiningStrategy, Triplet};

    #[test]
    fn the_queue_keeps_the_newest_rows_oldest_first() {
        let mut m = CrossBatchMemory::new(5, 2).unwrap();
        assert!(m.is_empty());
        m.enqueue(&[1.0, 1.5, 2.0, 2.5], &[10, 20]).unwrap();
        m.enqueue(&[3.0, 3.5, 4.0, 4.5], &[30, 40]).unwrap();
        assert_eq!(m.labels(), &[10, 20, 30, 40]);
        // Three more rows: the two oldest are dropped, the order kept.
        m.enqueue(&[5.0, 5.5, 6.0, 6.5, 7.0, 7.5], &[50, 60, 70])
            .unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m.labels(), &[30, 40, 50, 60, 70]);
        assert_eq!(m.embeddings()[..4], [3.0, 3.5, 4.0, 4.5]);
        assert_eq!(m.embeddings()[8..], [7.0, 7.5]);
        // A batch larger than the memory keeps its last rows.
        let big: Vec<f32> = (0..14).map(|i| i as f32).collect();
        m.enqueue(&big, &[1, 2, 3, 4, 5, 6, 7]).unwrap();
        assert_eq!(m.labels(), &[3, 4, 5, 6, 7]);
        assert_eq!(m.embeddings()[0], 4.0);
        // The batch comes first in the references, then the memory.
        let (refs, labels) = m.references(&[-1.0, -2.0], &[9]);
        assert_eq!(labels, vec![9, 3, 4, 5, 6, 7]);
        assert_eq!(refs[..3], [-1.0, -2.0, 4.0]);
        assert_eq!(refs.len(), 12);
    }

    #[test]
    fn bad_settings_and_shapes_are_refused() {
        for size in [0, MAX_XBM_SIZE + 1] {
            let err = XbmConfig::new(size).check().unwrap_err().to_string();
            assert!(
                err.contains("--xbm") && err.contains(&size.to_string()),
                "{err}"
            );
        }
        let mut m = CrossBatchMemory::new(4, 3).unwrap();
        let err = m.enqueue(&[1.0, 2.0], &[0]).unwrap_err().to_string();
        assert!(
            err.contains("2 floats for 1 labels of dimension 3"),
            "{err}"
        );
        let warm = XbmConfig {
            size: 8,
            start_iteration: Some(100),
        };
        assert!(!warm.active_at(99, 10) && warm.active_at(100, 10));
        // By default from the second epoch.
        let default = XbmConfig::new(8);
        assert!(!default.active_at(9, 10) && default.active_at(10, 10));
    }

    #[test]
    fn triplets_are_mined_against_the_memory_by_index() {
        // Batch: rows 0 (label 0, at 0.0) and 1 (label 1, at 1.0). Memory: row 2 (label 0, at
        // 0.9), row 3 (label 1, at 0.1), row 4 (label 0, at 5.0).
        let mut m = CrossBatchMemory::new(3, 1).unwrap();
        m.enqueue(&[0.9, 0.1, 5.0], &[0, 1, 0]).unwrap();
        let (refs, labels) = m.references(&[0.0, 1.0], &[0, 1]);
        let mine = |strategy| {
            mine_triplets_against(&refs, &labels, 2, 1, Distance::Euclidean, 0.2, strategy)
        };
        let t = |anchor, positive, negative| Triplet {
            anchor,
            positive,
            negative,
        };
        // Anchor 0's positives: memory rows 2 (0.9) and 4 (5.0); negatives: batch row 1 (1.0)
        // and memory row 3 (0.1). Anchor 1 (1.0) has only the negatives 0, 2, 4 and its
        // positive 3 (0.1). Batch-hard: the farthest positive, the closest negative.
        assert_eq!(
            mine(MiningStrategy::BatchHard),
            vec![t(0, 4, 3), t(1, 3, 2)]
        );
        // Batch-all: every triplet with a positive hinge d(a,p) − d(a,n) + 0.2 > 0.
        // Anchor 0: (p 2: 0.9, n 1: 1.0 → 0.1 > 0), (p 2, n 3: 0.1 → 1.0), (p 4, n 1),
        // (p 4, n 3). Anchor 1: (p 3: 0.9, n 0: 1.0 → 0.1), (p 3, n 2: 0.1 → 1.0), (p 3,
        // n 4: 4.0 → −2.9, inactive).
        assert_eq!(
            mine(MiningStrategy::BatchAll),
            vec![
                t(0, 2, 1),
                t(0, 2, 3),
                t(0, 4, 1),
                t(0, 4, 3),
                t(1, 3, 0),
                t(1, 3, 2),
            ]
        );
        // No anchor among the memory rows: every triplet's anchor is a batch row.
        assert!(mine(MiningStrategy::SemiHard).iter().all(|t| t.anchor < 2));
    }

    #[test]
    fn pairs_are_mined_against_the_memory_by_index() {
        let mut m = CrossBatchMemory::new(2, 2).unwrap();
        // Memory: row 2 = label 0 pointing along x, row 3 = label 1 along y.
        m.enqueue(&[1.0, 0.0, 0.0, 1.0], &[0, 1]).unwrap();
        let (refs, labels) = m.references(&[1.0, 0.1, 0.1, 1.0], &[0, 1]);
        let pairs = all_pairs_against(&labels, 2);
        assert_eq!(pairs.positives, vec![(0, 2), (1, 3)]);
        assert_eq!(pairs.negatives, vec![(0, 1), (0, 3), (1, 0), (1, 2)]);
        // The multi-similarity miner (ε = 0.1): anchor 0's only positive (row 2) has S = 0.995,
        // its negatives S(0,1) = 0.198 and S(0,3) = 0.0995 stay below 0.995 − 0.1: no negative
        // is kept, and the positive is kept only when S − ε < the hardest negative (0.198): no.
        let ms = multi_similarity_pairs_against(&refs, &labels, 2, 2, 0.1);
        assert!(ms.is_empty(), "{ms:?}");
        // A memory positive that points away from the anchor is kept with the negatives that
        // are closer than it.
        let mut far = CrossBatchMemory::new(2, 2).unwrap();
        far.enqueue(&[-1.0, 0.0, 1.0, 0.0], &[0, 1]).unwrap();
        let (refs, labels) = far.references(&[1.0, 0.1, 0.1, 1.0], &[0, 1]);
        let ms = multi_similarity_pairs_against(&refs, &labels, 2, 2, 0.1);
        assert!(ms.positives.contains(&(0, 2)), "{ms:?}");
        assert!(
            ms.negatives.contains(&(0, 3)) && ms.negatives.contains(&(0, 1)),
            "{ms:?}"
        );
    }

    #[test]
    fn the_queue_is_saved_and_loaded_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("xbm.safetensors");
        let mut m = CrossBatchMemory::new(3, 2).unwrap();
        m.enqueue(&[0.1, -0.2, 0.3, f32::MIN_POSITIVE], &[7, 8])
            .unwrap();
        m.save(&path).unwrap();
        assert_eq!(CrossBatchMemory::load(&path, 3, 2).unwrap(), m);
        let err = CrossBatchMemory::load(&path, 3, 4).unwrap_err().to_string();
        assert!(
            err.contains("xbm.safetensors") && err.contains("[2, 2]"),
            "{err}"
        );
        let err = CrossBatchMemory::load(&path, 1, 2).unwrap_err().to_string();
        assert!(err.contains("≤ 1"), "{err}");
        std::fs::write(&path, b"garbage").unwrap();
        let err = CrossBatchMemory::load(&path, 3, 2).unwrap_err().to_string();
        assert!(err.contains("not a cross-batch memory file"), "{err}");
    }
}
