//! What one training step needs in memory, estimated before the first step, and the refusal of a
//! configuration that cannot fit (`train --k 1000` would otherwise grow until the kernel kills it).
//!
//! The estimate counts, for a batch of `n = P·K` images: the seeds' CNN's activations per image
//! (both convolutions, the pooled map, the dense layer, the embedding) kept for the backward pass
//! and their gradients; the `n × n` distance matrix of the host-side miner; and per mined triplet
//! its index triple and the three gathered embedding rows with their gradients. Batch-all keeps
//! every valid triplet: `n · (K − 1) · (n − K)`, cubic in the batch. Against a cross-batch
//! memory of `M` rows (at most `n · ((n − 1 + M) / 2)²` triplets) the triplets are weights of
//! the `n · (n + M)` (anchor, reference) pairs, so the memory grows with the pairs.

use crate::memory::{gib, memory_limit};
use crate::{Error, Result};

use super::config::{Sampling, TrainConfig};
use crate::sampling::MiningStrategy;

/// Bytes of one step's peak memory under `config` (an upper-bound estimate), and the number of
/// triplets a step can hold.
pub fn step_memory(config: &TrainConfig) -> (u64, u64) {
    let s = config.model.image_size as u64;
    let c = config.model.channels as u64;
    let dim = config.model.dim as u64;
    // Activations of one image, in floats: input, conv 32 (s−2)², conv 64 (s−4)², pooled, dense
    // 128, embedding; ×3 for what autodiff keeps, the gradients and the kernels' buffers.
    let conv1 = 32 * s.saturating_sub(2).pow(2);
    let conv2 = 64 * s.saturating_sub(4).pow(2);
    let per_image = 3 * (c * s * s + conv1 + conv2 + conv2 / 4 + 128 + dim) * 4;
    let memory = config.xbm.map_or(0, |x| x.size as u64);
    let (n, triplets) = match config.sampling {
        Sampling::Random { triplets_per_batch } => {
            (3 * triplets_per_batch as u64, triplets_per_batch as u64)
        }
        Sampling::Pairs { pairs_per_batch } => (2 * pairs_per_batch as u64, 0),
        Sampling::Pk {
            classes_per_batch,
            images_per_class,
            mining,
        } => {
            let (p, k) = (classes_per_batch as u64, images_per_class as u64);
            let n = p * k;
            // With a memory of M rows, an anchor's positives and negatives together are at most
            // the other n − 1 + M rows, so their product is at most ((n − 1 + M) / 2)².
            let (pos, neg) = if memory == 0 {
                (k.saturating_sub(1), n - k)
            } else {
                let half = (n - 1 + memory).div_ceil(2);
                (half.min(k - 1 + memory), half)
            };
            let triplets = match mining {
                MiningStrategy::BatchAll => n * pos * neg,
                MiningStrategy::SemiHard => n * pos,
                _ => n,
            };
            (n, triplets)
        }
    };
    // Per triplet: three indices (24 bytes) and three gathered rows with their gradients. With
    // a memory the triplets become weights of the (anchor, reference) pairs, whose distances
    // are computed once (two gathered rows each): batch-all lists no triplet at all, the other
    // miners theirs at 24 bytes.
    let bytes = match (memory, config.sampling) {
        (0, _) => n * per_image + n * n * 4 + triplets * (24 + 2 * 3 * dim * 4),
        (m, sampling) => {
            let listed = match sampling {
                Sampling::Pk {
                    mining: MiningStrategy::BatchAll,
                    ..
                } => 0,
                _ => triplets,
            };
            n * per_image + n * (n + m) * (4 * 4 + 2 * 2 * dim * 4) + listed * 24
        }
    };
    (bytes, triplets)
}

/// Refuses `config` when one step's estimated memory exceeds what is available, with the numbers
/// and what to change.
pub fn check_step_memory(config: &TrainConfig) -> Result<()> {
    let Some(limit) = memory_limit()? else {
        return Ok(());
    };
    let (need, triplets) = step_memory(config);
    if need <= limit {
        return Ok(());
    }
    let batch = match config.sampling {
        Sampling::Random { triplets_per_batch } => {
            format!("{triplets_per_batch} random triplets a batch")
        }
        Sampling::Pk {
            classes_per_batch,
            images_per_class,
            mining,
        } => format!("P×K = {classes_per_batch}×{images_per_class} with {mining} mining"),
        Sampling::Pairs { pairs_per_batch } => format!("{pairs_per_batch} pairs a batch"),
    };
    let batch = match config.xbm {
        Some(x) => format!("{batch} against a cross-batch memory of {} rows", x.size),
        None => batch,
    };
    Err(Error::config(
        "batch",
        format!(
            "{batch} needs about {} for one training step ({triplets} triplets), more than the {} \
             available; use a smaller --p, --k or --xbm, or --mining semi-hard (SIAMESE_MAX_MEMORY \
             sets the limit)",
            gib(need),
            gib(limit)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::parse_bytes;

    #[test]
    fn sizes_parse_and_batch_all_grows_with_the_cube_of_the_batch() {
        assert_eq!(parse_bytes("8G"), Some(8 << 30));
        assert_eq!(parse_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes("lots"), None);
        let mut config = TrainConfig::default();
        let (default_bytes, default_triplets) = step_memory(&config);
        // 160 images, K = 16: 160 · 15 · 144 valid triplets.
        assert_eq!(default_triplets, 345_600);
        assert!(default_bytes < 2 << 30, "{default_bytes}");
        config.sampling = Sampling::Pk {
            classes_per_batch: 10,
            images_per_class: 100,
            mining: MiningStrategy::BatchAll,
        };
        let (big, triplets) = step_memory(&config);
        assert_eq!(triplets, 1000 * 99 * 900);
        assert!(big > 100 << 30, "{big}");
        // A memory of 1,024 rows: anchors' partners are at most 159 + 1,024 rows, 592 of each
        // kind; semi-hard keeps one triplet per positive.
        let mut config = TrainConfig {
            xbm: Some(crate::sampling::XbmConfig::new(1024)),
            ..TrainConfig::default()
        };
        let (bytes, triplets) = step_memory(&config);
        assert_eq!(triplets, 160 * 592 * 592);
        assert!(bytes < 1 << 30, "{bytes}");
        config.sampling = Sampling::Pk {
            classes_per_batch: 10,
            images_per_class: 16,
            mining: MiningStrategy::SemiHard,
        };
        let (bytes, triplets) = step_memory(&config);
        assert_eq!(triplets, 160 * 592);
        assert!(bytes < 1 << 30, "{bytes}");
    }
}
