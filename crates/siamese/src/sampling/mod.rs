//! Which images go into a training step: the seeds' random triplet stream, P×K class-balanced
//! batches, same/different pair batches, and online mining of triplets (and of pairs, for the
//! pair losses) inside a batch and against a cross-batch memory.

pub mod cross_batch_memory;
pub mod mining;
pub mod pair_batch;
pub mod pair_mining;
pub mod pk_batch;
pub mod random_triplets;

pub use cross_batch_memory::{CrossBatchMemory, XbmConfig};
pub use mining::{batch_triplet_stats, mine_triplets, BatchTripletStats, MiningStrategy, Triplet};
pub use pair_batch::PairSampler;
pub use pk_batch::PkBatchSampler;
pub use random_triplets::RandomTriplets;

/// Image indices grouped by class: `by_class[c]` lists the indices whose label is `c`.
pub fn indices_by_class(labels: &[u32], num_classes: usize) -> Vec<Vec<usize>> {
    let mut by_class = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(v) = by_class.get_mut(l as usize) {
            v.push(i);
        }
    }
    by_class
}
