//! The pair sampler of classic siamese training (Hadsell et al. 2006, Koch et al. 2015): batches
//! of explicit image pairs drawn from the labels, half of them "same" (two images of one class)
//! and half "different" (images of two classes), for the contrastive loss (`--sampler pairs`).
//!
//! A batch of `P` pairs is the `2P` indices `[first of each pair; second of each pair]`: pair
//! `i` is rows `i` and `P + i`, the first `⌈P/2⌉` pairs "same", the rest "different"
//! ([`fixed_pairs`] turns the batch's labels back into those pairs). A same pair's first image
//! is drawn uniformly among the images whose class has two or more, its partner uniformly among
//! the other images of that class; a different pair's first image uniformly among all, its
//! partner uniformly among the images of the other classes. Every draw comes from a generator
//! seeded by the caller (the trainer seeds it by `(seed, epoch)`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::indices_by_class;
use crate::loss::pairs::PairSet;
use crate::{Error, Result};

/// Default pairs per batch (160 images, as the default P×K batch).
pub const DEFAULT_PAIRS_PER_BATCH: usize = 80;

/// Draws batches of same / different pairs.
pub struct PairSampler {
    labels: Vec<u32>,
    by_class: Vec<Vec<usize>>,
    /// Images whose class has two or more (the first images of same pairs).
    pairable: Vec<usize>,
    pairs_per_batch: usize,
    rng: ChaCha8Rng,
}

impl PairSampler {
    /// Batches of `pairs_per_batch` (≥ 2) pairs over `labels`; needs two classes and one class
    /// with two or more images.
    pub fn new(
        labels: &[u32],
        num_classes: usize,
        pairs_per_batch: usize,
        seed: u64,
    ) -> Result<Self> {
        if pairs_per_batch < 2 {
            return Err(Error::config(
                "--pairs-per-batch",
                format!(
                    "{pairs_per_batch}: a batch needs at least one same and one different pair"
                ),
            ));
        }
        let by_class = indices_by_class(labels, num_classes);
        let classes = by_class.iter().filter(|c| !c.is_empty()).count();
        let pairable: Vec<usize> = (0..labels.len())
            .filter(|&i| by_class[labels[i] as usize].len() >= 2)
            .collect();
        if classes < 2 || pairable.is_empty() {
            return Err(Error::config(
                "pair sampler",
                format!(
                    "{classes} classes, {} images in classes of two or more: different pairs need \
                     two classes, same pairs a class of two images",
                    pairable.len()
                ),
            ));
        }
        Ok(PairSampler {
            labels: labels.to_vec(),
            by_class,
            pairable,
            pairs_per_batch,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// Same pairs in a batch (the rest are different).
    pub fn same_per_batch(&self) -> usize {
        self.pairs_per_batch.div_ceil(2)
    }

    /// One batch: `[first of each pair; second of each pair]`, same pairs first.
    pub fn batch(&mut self) -> Vec<usize> {
        let p = self.pairs_per_batch;
        let mut out = vec![0; 2 * p];
        for i in 0..p {
            let (a, b) = if i < self.same_per_batch() {
                self.same_pair()
            } else {
                self.different_pair()
            };
            out[i] = a;
            out[p + i] = b;
        }
        out
    }

    /// `steps` batches.
    pub fn batches(&mut self, steps: usize) -> Vec<Vec<usize>> {
        (0..steps).map(|_| self.batch()).collect()
    }

    fn same_pair(&mut self) -> (usize, usize) {
        let a = self.pairable[self.rng.random_range(0..self.pairable.len())];
        let class = &self.by_class[self.labels[a] as usize];
        // Uniform among the class's other images: draw from n − 1 slots, skipping `a`'s.
        let at = class
            .iter()
            .position(|&i| i == a)
            .expect("a is in its class");
        let mut j = self.rng.random_range(0..class.len() - 1);
        if j >= at {
            j += 1;
        }
        (a, class[j])
    }

    fn different_pair(&mut self) -> (usize, usize) {
        let a = self.rng.random_range(0..self.labels.len());
        let own = self.labels[a] as usize;
        // Uniform among the images of the other classes: a slot among them, mapped through the
        // classes in order.
        let others = self.labels.len() - self.by_class[own].len();
        let mut r = self.rng.random_range(0..others);
        for (c, images) in self.by_class.iter().enumerate() {
            if c == own {
                continue;
            }
            if r < images.len() {
                return (a, images[r]);
            }
            r -= images.len();
        }
        unreachable!("the slot lies in one of the other classes")
    }
}

/// The pairs of a pair batch from its labels: rows `i` and `P + i` (`P` = half the rows),
/// positive when their labels agree, negative otherwise.
pub fn fixed_pairs(labels: &[u32]) -> PairSet {
    let p = labels.len() / 2;
    let mut set = PairSet::default();
    for i in 0..p {
        if labels[i] == labels[p + i] {
            set.positives.push((i, p + i));
        } else {
            set.negatives.push((i, p + i));
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 classes: 0 has 4 images, 1 has 3, 2 has one (never in a same pair).
    const LABELS: [u32; 8] = [0, 1, 0, 2, 1, 0, 1, 0];

    #[test]
    fn half_the_pairs_are_same_and_they_share_a_label() {
        let mut s = PairSampler::new(&LABELS, 3, 10, 42).unwrap();
        assert_eq!(s.same_per_batch(), 5);
        let mut seen_lonely = false;
        for batch in s.batches(200) {
            assert_eq!(batch.len(), 20);
            let labels: Vec<u32> = batch.iter().map(|&i| LABELS[i]).collect();
            let pairs = fixed_pairs(&labels);
            // Every same pair shares a label and is two distinct images; every different
            // pair's labels differ.
            assert_eq!(pairs.positives.len(), 5, "{labels:?}");
            assert_eq!(pairs.negatives.len(), 5, "{labels:?}");
            for i in 0..10 {
                let (a, b) = (batch[i], batch[10 + i]);
                if i < 5 {
                    assert!(LABELS[a] == LABELS[b] && a != b, "same pair {a}, {b}");
                    assert_ne!(LABELS[a], 2, "class 2 has one image");
                } else {
                    assert_ne!(LABELS[a], LABELS[b], "different pair {a}, {b}");
                    seen_lonely |= a == 3 || b == 3;
                }
            }
        }
        assert!(
            seen_lonely,
            "the one-image class takes part in different pairs"
        );
    }

    #[test]
    fn draws_are_uniform_within_a_class() {
        // Class 0's images are 0, 2, 5, 7: as partners of image 0 in same pairs, 2, 5 and 7
        // each come up about a third of the time.
        let mut s = PairSampler::new(&LABELS, 3, 2, 1).unwrap();
        let mut partners = [0usize; 8];
        let mut with_zero = 0;
        for _ in 0..30_000 {
            let b = s.batch();
            if b[0] == 0 {
                partners[b[2]] += 1;
                with_zero += 1;
            }
        }
        for j in [2, 5, 7] {
            let share = partners[j] as f64 / with_zero as f64;
            assert!((share - 1.0 / 3.0).abs() < 0.03, "{j}: {share}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_pairs() {
        let batches = |seed| PairSampler::new(&LABELS, 3, 6, seed).unwrap().batches(5);
        assert_eq!(batches(7), batches(7));
        assert_ne!(batches(7), batches(8));
    }

    #[test]
    fn data_without_pairs_is_refused() {
        let err = PairSampler::new(&[0, 0, 0], 1, 4, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("1 classes"), "{err}");
        let err = PairSampler::new(&[0, 1, 2], 3, 4, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("0 images in classes of two"), "{err}");
        let err = PairSampler::new(&LABELS, 3, 1, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--pairs-per-batch"), "{err}");
    }
}
