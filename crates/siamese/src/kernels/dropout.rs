//! Dropout masks from a counter-based hash: element `i` of a tensor is kept when
//! `hash(seed, i) < threshold` (`threshold = keep · 2³²`) and scaled by `1 / keep`; the backward
//! pass recomputes the same mask from `(seed, i)` instead of storing it.
//!
//! Shapes: any; the mask follows the row-major element order.

use rayon::prelude::*;

use super::simd::vectorize;

/// Elements handed to one rayon task.
const CHUNK: usize = 1 << 15;

/// The mask's keep threshold for a keep probability in (0, 1].
pub fn keep_threshold(keep: f64) -> u64 {
    ((keep.clamp(0.0, 1.0) * 4_294_967_296.0) as u64).min(1 << 32)
}

/// A 32-bit integer hash of `(seed, i)` (a multiply-xorshift finaliser).
#[inline(always)]
pub(super) fn hash(seed: u32, i: u32) -> u32 {
    let mut x = i.wrapping_mul(0x9E37_79B9) ^ seed;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^ (x >> 16)
}

/// `out[i] = x[i] · scale` where element `i` is kept, else 0 (forward and backward alike).
pub fn apply_mask(seed: u32, threshold: u64, scale: f32, x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .enumerate()
        .for_each(|(c, (o, x))| {
            let first = (c * CHUNK) as u32;
            vectorize(
                #[inline(always)]
                || {
                    for (k, (o, v)) in o.iter_mut().zip(x).enumerate() {
                        let keep = (hash(seed, first.wrapping_add(k as u32)) as u64) < threshold;
                        *o = if keep { v * scale } else { 0.0 };
                    }
                },
            )
        });
    out
}
