//! The seeds' triplet generator: an endless stream of (anchor, positive, negative) indices where
//! anchor and positive share a label and the negative's label differs.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::indices_by_class;
use crate::{Error, Result};

/// Endless iterator of random triplets `[anchor, positive, negative]` (dataset indices).
pub struct RandomTriplets {
    by_class: Vec<Vec<usize>>,
    /// Classes with at least two images: the only ones that can supply an anchor and a positive.
    anchor_classes: Vec<usize>,
    rng: ChaCha8Rng,
}

impl RandomTriplets {
    /// A stream over `labels` (values `< num_classes`), deterministic under `seed`.
    pub fn new(labels: &[u32], num_classes: usize, seed: u64) -> Result<Self> {
        let by_class = indices_by_class(labels, num_classes);
        let anchor_classes: Vec<usize> = (0..num_classes)
            .filter(|&c| by_class[c].len() >= 2)
            .collect();
        let nonempty = by_class.iter().filter(|v| !v.is_empty()).count();
        if anchor_classes.is_empty() || nonempty < 2 {
            return Err(Error::config(
                "labels",
                "triplets need a class with two images and at least two classes",
            ));
        }
        Ok(RandomTriplets {
            by_class,
            anchor_classes,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }
}

impl Iterator for RandomTriplets {
    type Item = [usize; 3];

    fn next(&mut self) -> Option<[usize; 3]> {
        let c = self.anchor_classes[self.rng.random_range(0..self.anchor_classes.len())];
        let members = &self.by_class[c];
        let a = self.rng.random_range(0..members.len());
        // Draw the positive among the other members so it is never the anchor itself.
        let mut p = self.rng.random_range(0..members.len() - 1);
        if p >= a {
            p += 1;
        }
        let negative = loop {
            let nc = self.rng.random_range(0..self.by_class.len());
            if nc != c && !self.by_class[nc].is_empty() {
                let m = &self.by_class[nc];
                break m[self.rng.random_range(0..m.len())];
            }
        };
        Some([members[a], members[p], negative])
    }
}
