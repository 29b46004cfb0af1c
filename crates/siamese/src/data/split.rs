//! Deterministic stratified train/validation split: every class is split in the same
//! proportion, under a `u64` seed (ChaCha8), so the same seed always gives the same indices.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

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
