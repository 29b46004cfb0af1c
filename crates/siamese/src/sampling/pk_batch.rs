//! P×K batches (Hermans, Beyer, Leibe 2017): P classes, K images each, so every image in the
//! batch has K − 1 positives and (P − 1)·K negatives for online mining.
//!
//! One epoch visits (nearly) every image once: classes are drawn in proportion to their
//! remaining images, and images within a class without replacement; a class with fewer than K
//! images left is drawn only when it must be, and then topped up with reshuffled images.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::indices_by_class;
use crate::{Error, Result};

/// Produces P×K batches of dataset indices.
pub struct PkBatchSampler {
    by_class: Vec<Vec<usize>>,
    classes_per_batch: usize,
    images_per_class: usize,
    rng: ChaCha8Rng,
}

impl PkBatchSampler {
    /// `p` classes × `k` images per batch over `labels`. Needs `p ≥ 2` usable classes and `k ≥ 2`.
    pub fn new(labels: &[u32], num_classes: usize, p: usize, k: usize, seed: u64) -> Result<Self> {
        if k < 2 {
            return Err(Error::config(
                "k",
                "a P×K batch needs k ≥ 2 images per class",
            ));
        }
        let by_class: Vec<Vec<usize>> = indices_by_class(labels, num_classes)
            .into_iter()
            .filter(|v| v.len() >= 2)
            .collect();
        if p < 2 || by_class.len() < p {
            return Err(Error::config(
                "p",
                format!(
                    "{p} classes per batch requested, {} classes have two or more images",
                    by_class.len()
                ),
            ));
        }
        Ok(PkBatchSampler {
            by_class,
            classes_per_batch: p,
            images_per_class: k,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// Images in one batch (P·K).
    pub fn batch_size(&self) -> usize {
        self.classes_per_batch * self.images_per_class
    }

    /// The batches of one epoch (about `n / (P·K)` of them), each P·K indices grouped by class.
    pub fn epoch(&mut self) -> Vec<Vec<usize>> {
        let k = self.images_per_class;
        let mut pools: Vec<Vec<usize>> = self.by_class.clone();
        for pool in &mut pools {
            pool.shuffle(&mut self.rng);
        }
        let total: usize = pools.iter().map(Vec::len).sum();
        let n_batches = (total / self.batch_size()).max(1);
        let mut batches = Vec::with_capacity(n_batches);
        for _ in 0..n_batches {
            let classes = self.draw_classes(&pools);
            let mut batch = Vec::with_capacity(self.batch_size());
            for c in classes {
                // A class smaller than K is repeated (its images appear more than once).
                while pools[c].len() < k {
                    // Top up from the whole class, reshuffled: keeps every batch P×K exactly.
                    let mut refill = self.by_class[c].clone();
                    refill.shuffle(&mut self.rng);
                    pools[c].extend(refill);
                }
                let at = pools[c].len() - k;
                batch.extend(pools[c].drain(at..));
            }
            batches.push(batch);
        }
        batches
    }

    /// P distinct classes, drawn with probability proportional to their remaining images among
    /// the classes that still have K left; only when fewer than P such classes remain are
    /// exhausted classes (to be topped up) drawn, uniformly.
    fn draw_classes(&mut self, pools: &[Vec<usize>]) -> Vec<usize> {
        let k = self.images_per_class;
        let mut full: Vec<f64> = pools
            .iter()
            .map(|p| if p.len() >= k { p.len() as f64 } else { 0.0 })
            .collect();
        let mut rest: Vec<f64> = full
            .iter()
            .map(|&w| if w > 0.0 { 0.0 } else { 1.0 })
            .collect();
        let mut chosen = Vec::with_capacity(self.classes_per_batch);
        for _ in 0..self.classes_per_batch {
            let weights = if full.iter().any(|&w| w > 0.0) {
                &mut full
            } else {
                &mut rest
            };
            let pick = weighted_pick(weights, &mut self.rng);
            chosen.push(pick);
            full[pick] = 0.0;
            rest[pick] = 0.0;
        }
        chosen
    }
}

/// Index drawn with probability proportional to `weights` (not all zero).
fn weighted_pick(weights: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut r = rng.random_range(0.0..total);
    let mut pick = weights.len() - 1;
    for (c, w) in weights.iter().enumerate() {
        if *w > 0.0 && r < *w {
            pick = c;
            break;
        }
        r -= w;
    }
    while weights[pick] <= 0.0 {
        pick -= 1;
    }
    pick
}
