//! Triplet sampling and online mining on hand-made batches whose answers are worked out by hand.

use siamese::distance::Distance;
use siamese::sampling::{
    batch_triplet_stats, mine_triplets, MiningStrategy, PkBatchSampler, RandomTriplets, Triplet,
};

// Four 1-D embeddings, labels [0, 0, 1, 1], values [0.0, 1.0, 0.5, 3.0]. Distances:
// d01 = 1, d02 = 0.5, d03 = 3, d12 = 0.5, d13 = 2, d23 = 2.5.
const EMB: [f32; 4] = [0.0, 1.0, 0.5, 3.0];
const LABELS: [u32; 4] = [0, 0, 1, 1];

fn t(anchor: usize, positive: usize, negative: usize) -> Triplet {
    Triplet {
        anchor,
        positive,
        negative,
    }
}

fn mine(strategy: MiningStrategy) -> Vec<Triplet> {
    mine_triplets(&EMB, &LABELS, 1, Distance::Euclidean, 0.2, strategy)
}

#[test]
fn batch_hard_takes_farthest_positive_and_closest_negative() {
    // Anchor 2: negatives 0 and 1 tie at 0.5 → the earliest (0).
    assert_eq!(
        mine(MiningStrategy::BatchHard),
        vec![t(0, 1, 2), t(1, 0, 2), t(2, 3, 0), t(3, 2, 1)]
    );
}

#[test]
fn semi_hard_takes_closest_negative_farther_than_positive_else_farthest() {
    // Anchor 0 (d_ap = 1): only 3 is farther → 3. Anchor 1 (d_ap = 1): 3 (d = 2).
    // Anchor 2 (d_ap = 2.5): no negative farther → farthest, 0 and 1 tie → 0.
    // Anchor 3 (d_ap = 2.5): 0 (d = 3) is the only one farther.
    assert_eq!(
        mine(MiningStrategy::SemiHard),
        vec![t(0, 1, 3), t(1, 0, 3), t(2, 3, 0), t(3, 2, 0)]
    );
}

#[test]
fn batch_all_keeps_only_triplets_with_positive_loss() {
    assert_eq!(
        mine(MiningStrategy::BatchAll),
        vec![t(0, 1, 2), t(1, 0, 2), t(2, 3, 0), t(2, 3, 1), t(3, 2, 1)]
    );
}

#[test]
fn batch_stats_average_over_all_valid_triplets() {
    // Eight valid triplets; losses 0.7, 0, 0.7, 0, 2.2, 2.2, 0, 0.7 → mean 6.5 / 8.
    let s = batch_triplet_stats(&EMB, &LABELS, 1, Distance::Euclidean, 0.2);
    assert_eq!(s.triplets, 8);
    assert!((s.mean_loss - 6.5 / 8.0).abs() < 1e-6, "{s:?}");
    assert!((s.active_fraction - 5.0 / 8.0).abs() < 1e-9);
}

#[test]
fn random_triplets_respect_labels_and_seed() {
    let labels: Vec<u32> = (0..100).map(|i| (i % 7) as u32).collect();
    let a: Vec<[usize; 3]> = RandomTriplets::new(&labels, 7, 3)
        .unwrap()
        .take(500)
        .collect();
    let b: Vec<[usize; 3]> = RandomTriplets::new(&labels, 7, 3)
        .unwrap()
        .take(500)
        .collect();
    assert_eq!(a, b, "same seed, same stream");
    for [x, p, n] in a {
        assert_ne!(x, p);
        assert_eq!(labels[x], labels[p]);
        assert_ne!(labels[x], labels[n]);
    }
    assert!(
        RandomTriplets::new(&[0, 1, 2], 3, 1).is_err(),
        "no class has two images"
    );
}

#[test]
fn pk_batches_hold_p_classes_of_k_images() {
    let labels: Vec<u32> = (0..1000).map(|i| (i % 10) as u32).collect();
    let mut sampler = PkBatchSampler::new(&labels, 10, 4, 8, 9).unwrap();
    let epoch = sampler.epoch();
    assert_eq!(epoch.len(), 1000 / 32);
    for batch in &epoch {
        assert_eq!(batch.len(), 32);
        let mut classes: Vec<u32> = batch.iter().map(|&i| labels[i]).collect();
        classes.dedup();
        assert_eq!(
            classes.len(),
            4,
            "grouped by class, 4 distinct: {classes:?}"
        );
    }
    // Most images are seen once per epoch.
    let mut seen = vec![0; 1000];
    epoch.iter().flatten().for_each(|&i| seen[i] += 1);
    assert!(seen.iter().filter(|&&c| c == 1).count() > 900);
    assert!(
        PkBatchSampler::new(&labels, 10, 11, 8, 9).is_err(),
        "P > classes"
    );
    assert!(PkBatchSampler::new(&labels, 10, 4, 1, 9).is_err(), "K < 2");
}

#[test]
fn pk_batches_repeat_classes_smaller_than_k() {
    // Three images per class, K = 8: each class's images are repeated to fill the batch.
    let labels: Vec<u32> = (0..12).map(|i| (i % 4) as u32).collect();
    let mut sampler = PkBatchSampler::new(&labels, 4, 2, 8, 1).unwrap();
    for batch in sampler.epoch() {
        assert_eq!(batch.len(), 16);
        assert!(batch.iter().all(|&i| i < 12));
    }
}
