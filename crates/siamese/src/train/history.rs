//! Per-epoch losses and timings of a run, and the embedding-collapse check.

use serde::{Deserialize, Serialize};

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over every valid triplet of each step's batch (same measure as
    /// `val_loss`, but with dropout on and before the step's update).
    pub train_loss: f64,
    /// Mean loss over the triplets the mining strategy chose (what the gradient came from).
    pub mined_loss: f64,
    /// Validation loss (fixed batches, no dropout).
    pub val_loss: f64,
    /// Fraction of mined triplets with a positive loss (how much is still to learn).
    pub active_fraction: f64,
    /// Mean distance between validation embeddings of different images; near 0 = collapse.
    pub val_mean_distance: f64,
    /// Wall time of the epoch, seconds.
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
}

/// The whole run so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
}

impl History {
    /// Training losses, one per epoch.
    pub fn train_losses(&self) -> Vec<f64> {
        self.epochs.iter().map(|e| e.train_loss).collect()
    }

    /// Validation losses, one per epoch.
    pub fn val_losses(&self) -> Vec<f64> {
        self.epochs.iter().map(|e| e.val_loss).collect()
    }

    /// Describes an embedding collapse in the last epoch, if there is one: every embedding
    /// (nearly) equal, so every triplet's loss is the margin and nothing is learnt.
    pub fn collapse_warning(&self, margin: f64) -> Option<String> {
        let last = self.epochs.last()?;
        let stuck_at_margin = margin > 0.0 && (last.val_loss - margin).abs() < 0.02 * margin;
        let all_equal = last.val_mean_distance < 1e-4_f64.max(1e-3 * margin);
        (stuck_at_margin && all_equal).then(|| {
            format!(
                "embedding collapse: validation loss {:.4} ≈ margin {margin} and embeddings are \
                 all equal (mean distance {:.2e}); lower the learning rate, use semi-hard or \
                 batch-all mining, or L2-normalise the embeddings",
                last.val_loss, last.val_mean_distance
            )
        })
    }
}
