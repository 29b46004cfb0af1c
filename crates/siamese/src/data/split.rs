//! Deterministic stratified train/validation split (every class is split in the same
//! proportion) and stratified random subsets, under a `u64` seed (ChaCha8), so the same seed
//! always gives the same indices.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::LabelledImages;
use crate::{Error, Result};

/// Splits image indices `0..labels.len()` into `(train, validation)`, both sorted ascending.
///
/// Each class with `n` images puts `round(n · val_fraction)` of them (chosen at random under
/// `seed`) in validation, but always keeps at least one in training, so a class with a single
/// image stays in training. `val_fraction` must be in `(0, 1)`.
pub fn stratified_split(
    labels: &[u32],
    val_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(val_fraction > 0.0 && val_fraction < 1.0) {
        return Err(Error::config(
            "validation fraction",
            format!("{val_fraction} is not strictly between 0 and 1"),
        ));
    }
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for mut members in by_class {
        if members.is_empty() {
            continue;
        }
        members.shuffle(&mut rng);
        let n = members.len();
        let n_val = ((n as f64 * val_fraction).round() as usize).min(n - 1);
        val.extend_from_slice(&members[..n_val]);
        train.extend_from_slice(&members[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    Ok((train, val))
}

/// A stratified random subset of `n` images (all of them when `n` ≥ the set's size).
pub fn stratified_subset(data: &LabelledImages, n: usize, seed: u64) -> LabelledImages {
    if n >= data.len() {
        return data.clone();
    }
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5ab5e7));
    // Round-robin over classes in shuffled order keeps class proportions.
    let classes = data.class_names.len();
    let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for i in order {
        per_class[data.labels[i] as usize].push(i);
    }
    let mut picked = Vec::with_capacity(n);
    let mut round = 0;
    while picked.len() < n {
        for c in per_class.iter() {
            if let Some(&i) = c.get(round) {
                if picked.len() < n {
                    picked.push(i);
                }
            }
        }
        round += 1;
    }
    picked.sort_unstable();
    data.subset(&picked)
}
