//! Convolution + bias + ReLU + 2x2 max-pool, optionally + dropout, fused into one pass per image:
//! the convolution's output of one image lives only in a per-worker scratch buffer (in cache),
//! is pooled right away, and the backward step needs no copy of it.
//!
//! Shapes: input `x [N, C, H, W]`, weight `w [O, C, KH, KW]`, bias `[O]`; the convolution's
//! output `[N, O, OH, OW]` (as in [`super::conv`]) is never stored; the result is
//! `out [N, O, OH/2, OW/2]` (floor mode: an odd last row or column is dropped).
//!
//! What the backward step keeps instead: one byte a pooled element, `index [N, O, OH/2, OW/2]`,
//! the position (0..4, row-major in the window) of the window's first maximum, or
//! [`NO_GRADIENT`] when the gradient stops there (the maximum is ≤ 0, so ReLU zeroed it, or
//! dropout dropped the element). `relu(max(window)) = max(relu(window))` and the first maximum
//! is the same before and after ReLU when it is positive, so this equals ReLU, then the pool,
//! then the dropout, in that order. The dropout mask is [`super::dropout`]'s hash of the pooled
//! element's row-major index, the same mask the separate dropout kernel draws for that seed.

use rayon::prelude::*;

use super::buffer::{assume_filled, unfilled, zeroed};
use super::conv::{conv_backward_from, im2col, ConvReluGrads, ConvShape, Wanted};
use super::dropout::hash;
use super::gemm::gemm_strided;
use super::simd::{self, vectorize};

pub use super::pool::NO_GRADIENT;

/// A dropout mask to fuse in: element `e` is kept when `hash(seed, e) < threshold`, and kept
/// elements are scaled by `scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropMask {
    pub seed: u32,
    pub threshold: u64,
    pub scale: f32,
}

/// Pooled rows and columns of the convolution's output.
fn pooled(s: &ConvShape) -> (usize, usize) {
    (s.out_h() / 2, s.out_w() / 2)
}

/// Elements of one image's pooled output (`O · OH/2 · OW/2`).
pub fn pooled_len(s: &ConvShape) -> usize {
    let (ph, pw) = pooled(s);
    s.out_channels * ph * pw
}

/// `conv(x_img) + b` of one image into `y [O, P]`.
#[inline(always)]
fn conv_image(
    s: &ConvShape,
    x_img: &[f32],
    w: &[f32],
    bias: &[f32],
    col: &mut [f32],
    y: &mut [f32],
) {
    let (k, p, o) = (s.col_rows(), s.pixels(), s.out_channels);
    vectorize(
        #[inline(always)]
        || {
            im2col(s, x_img, col);
            for (row, b) in y.chunks_exact_mut(p).zip(bias) {
                row.fill(*b);
            }
        },
    );
    gemm_strided(o, p, k, y, true, w, (k, 1), col, (p, 1));
}

/// Pools one image's convolution output `y [O, P]` into `out_img` (and `index_img` unless
/// empty); `n` numbers the image for the dropout mask.
#[inline(always)]
fn pool_image(
    s: &ConvShape,
    n: usize,
    y: &[f32],
    drop: Option<DropMask>,
    out_img: &mut [f32],
    index_img: &mut [u8],
) {
    let (p, ow, (ph, pw), per_image) = (s.pixels(), s.out_w(), pooled(s), pooled_len(s));
    let (seed, threshold, scale) = match drop {
        Some(mask) => (mask.seed, mask.threshold, mask.scale),
        None => (0, 1 << 32, 1.0),
    };
    vectorize(
        #[inline(always)]
        || {
            for c in 0..s.out_channels {
                let plane = &y[c * p..(c + 1) * p];
                for i in 0..ph {
                    let first = (c * ph + i) * pw;
                    let rows = (
                        &plane[2 * i * ow..][..2 * pw],
                        &plane[(2 * i + 1) * ow..][..2 * pw],
                    );
                    let e0 = (n * per_image + first) as u32;
                    let index_row = if index_img.is_empty() {
                        None
                    } else {
                        Some(&mut index_img[first..first + pw])
                    };
                    pool_row(
                        rows,
                        &mut out_img[first..first + pw],
                        index_row,
                        e0,
                        (seed, threshold, scale),
                    );
                }
            }
        },
    );
}

/// The fused forward: `out` (`[N, O, OH/2, OW/2]`) and, when `keep_index`, the index bytes of
/// the backward step (else an empty vector).
pub fn conv_relu_pool_forward(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    drop: Option<DropMask>,
    keep_index: bool,
) -> (Vec<f32>, Vec<u8>) {
    let (k, p, o) = (s.col_rows(), s.pixels(), s.out_channels);
    assert_eq!(x.len(), s.batch * s.input_len());
    assert_eq!(w.len(), o * k);
    assert_eq!(bias.len(), o);
    let per_image = pooled_len(s);
    if s.batch * per_image == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut out = unfilled(s.batch * per_image);
    let mut index = vec![0u8; if keep_index { out.len() } else { 0 }];
    let image =
        |n: usize, out_img: &mut [f32], index_img: &mut [u8], col: &mut [f32], y: &mut [f32]| {
            conv_image(
                s,
                &x[n * s.input_len()..(n + 1) * s.input_len()],
                w,
                bias,
                col,
                y,
            );
            pool_image(s, n, y, drop, out_img, index_img);
        };
    let scratch = || (vec![0.0f32; k * p], vec![0.0f32; o * p]);
    if keep_index {
        out.par_chunks_mut(per_image)
            .zip(index.par_chunks_mut(per_image))
            .enumerate()
            .for_each_init(scratch, |(col, y), (n, (out_img, index_img))| {
                image(n, zeroed(out_img), index_img, col, y)
            });
    } else {
        out.par_chunks_mut(per_image)
            .enumerate()
            .for_each_init(scratch, |(col, y), (n, out_img)| {
                image(n, zeroed(out_img), &mut [], col, y)
            });
    }
    // SAFETY: every image's slice went through `zeroed`.
    (unsafe { assume_filled(out) }, index)
}

/// One row of 2x2 windows, through the AVX-512 loop when [`simd::level`] allows it.
#[inline(always)]
fn pool_row(
    rows: (&[f32], &[f32]),
    out: &mut [f32],
    index: Option<&mut [u8]>,
    e0: u32,
    mask: (u32, u64, f32),
) {
    #[cfg(target_arch = "x86_64")]
    if simd::level() == simd::SimdLevel::Avx512 {
        // SAFETY: the level says the CPU has AVX-512 F/BW/VL; the row lengths are the ones
        // the portable loop indexes.
        return unsafe { super::pool_avx512::pool_row(rows, out, index, e0, mask) };
    }
    pool_row_portable(rows, out, index, e0, mask)
}

/// Writes one row pair of the convolution's gradient from a row of pooled gradients and index
/// bytes (every element of `top[..2·len]` and `bottom[..2·len]`), AVX-512 when allowed.
#[inline(always)]
fn unpool_row(codes: &[u8], g: &[f32], scale: f32, top: &mut [f32], bottom: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd::level() == simd::SimdLevel::Avx512 {
        // SAFETY: as in `pool_row`; the lengths are asserted inside.
        return unsafe { super::pool_avx512::unpool_row(codes, g, scale, top, bottom) };
    }
    unpool_row_portable(codes, g, scale, top, bottom)
}

/// The portable [`unpool_row`].
#[inline(always)]
pub(super) fn unpool_row_portable(
    codes: &[u8],
    g: &[f32],
    scale: f32,
    top: &mut [f32],
    bottom: &mut [f32],
) {
    for (j, (&at, &gv)) in codes.iter().zip(g).enumerate() {
        let v = gv * scale;
        let pick = |k: u8| if at == k { v } else { 0.0 };
        top[2 * j] = pick(0);
        top[2 * j + 1] = pick(1);
        bottom[2 * j] = pick(2);
        bottom[2 * j + 1] = pick(3);
    }
}

/// The portable [`pool_row`]: one row of 2x2 windows: `out[j] = kept(e0 + j) ? relu(max(window j)) · scale : 0` and, when
/// asked, the index byte of each window. Branch-free, so the compiler can vectorise it.
#[inline(always)]
pub(super) fn pool_row_portable(
    (top, bottom): (&[f32], &[f32]),
    out: &mut [f32],
    mut index: Option<&mut [u8]>,
    e0: u32,
    (seed, threshold, scale): (u32, u64, f32),
) {
    const CHUNK: usize = 64;
    let pw = out.len();
    let (top, bottom) = (&top[..2 * pw], &bottom[..2 * pw]);
    let mut codes = [NO_GRADIENT; CHUNK];
    for (start, out) in (0..pw).step_by(CHUNK).zip(out.chunks_mut(CHUNK)) {
        for (j, (o, code)) in out.iter_mut().zip(codes.iter_mut()).enumerate() {
            let t = start + j;
            let (a, b, c, d) = (top[2 * t], top[2 * t + 1], bottom[2 * t], bottom[2 * t + 1]);
            let m = a.max(b).max(c.max(d));
            let kept = (hash(seed, e0.wrapping_add(t as u32)) as u64) < threshold;
            *o = if kept { m.max(0.0) * scale } else { 0.0 };
            // The first maximum in row-major window order, as the separate pool; no gradient
            // where ReLU zeroed the window or dropout dropped the element.
            let at = if a == m {
                0
            } else if b == m {
                1
            } else if c == m {
                2
            } else {
                3
            };
            *code = if kept && m > 0.0 { at } else { NO_GRADIENT };
        }
        if let Some(index) = index.as_deref_mut() {
            index[start..start + out.len()].copy_from_slice(&codes[..out.len()]);
        }
    }
}

/// Backward of [`conv_relu_pool_forward`] from its input, weight, index bytes, the dropout
/// scale (1 without dropout) and the gradient `g_out` of `out`.
pub fn conv_relu_pool_backward(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    index: &[u8],
    scale: f32,
    g_out: &[f32],
    wanted: Wanted,
) -> ConvReluGrads {
    let per_image = pooled_len(s);
    assert_eq!(index.len(), s.batch * per_image);
    assert_eq!(g_out.len(), index.len());
    let (p, ow, (ph, pw)) = (s.pixels(), s.out_w(), pooled(s));
    // Called inside the backward's `vectorize` block.
    let (oh, odd) = (s.out_h(), s.out_h() % 2 == 1 || ow % 2 == 1);
    // Called inside the backward's `vectorize` block; every element of `gz` is written.
    let fill_gz = |n: usize, gz: &mut [f32]| {
        if odd {
            // The pool dropped the last row or column: no gradient reaches it.
            gz.fill(0.0);
        }
        let index_img = &index[n * per_image..(n + 1) * per_image];
        let g_img = &g_out[n * per_image..(n + 1) * per_image];
        for c in 0..s.out_channels {
            let plane = &mut gz[c * p..(c + 1) * p];
            for i in 0..ph {
                let first = (c * ph + i) * pw;
                let (top, bottom) = plane[2 * i * ow..(2 * i + 2) * ow].split_at_mut(ow);
                unpool_row(
                    &index_img[first..first + pw],
                    &g_img[first..first + pw],
                    scale,
                    top,
                    bottom,
                );
            }
        }
        debug_assert!(oh >= 2 * ph);
    };
    conv_backward_from(s, x, w, wanted, fill_gz)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows with many ties and non-positive windows, from a fixed linear congruential generator.
    fn rows(len: usize, seed: u32) -> (Vec<f32>, Vec<f32>) {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((state >> 24) % 5) as f32 - 2.0
        };
        let top = (0..2 * len).map(|_| next()).collect();
        let bottom = (0..2 * len).map(|_| next()).collect();
        (top, bottom)
    }

    #[test]
    fn the_avx512_rows_equal_the_portable_rows() {
        if simd::cpu_level() < simd::SimdLevel::Avx512 {
            println!("no AVX-512 on this CPU: only the portable rows run here");
            return;
        }
        for len in [1, 2, 7, 12, 15, 16, 17, 31, 40] {
            for mask in [
                (0, 1 << 32, 1.0),
                (99, 3 << 30, 4.0 / 3.0),
                (7, 1 << 31, 2.0),
            ] {
                let (top, bottom) = rows(len, len as u32 * 31 + mask.0);
                let (mut out_p, mut code_p) = (vec![9.0; len], vec![9u8; len]);
                let (mut out_v, mut code_v) = (vec![9.0; len], vec![9u8; len]);
                pool_row_portable((&top, &bottom), &mut out_p, Some(&mut code_p), 1000, mask);
                // SAFETY: the CPU has AVX-512 (checked above); the lengths match.
                unsafe {
                    crate::kernels::pool_avx512::pool_row(
                        (&top, &bottom),
                        &mut out_v,
                        Some(&mut code_v),
                        1000,
                        mask,
                    )
                };
                assert_eq!(out_p, out_v, "len {len} mask {mask:?}");
                assert_eq!(code_p, code_v, "len {len} mask {mask:?}");
                assert!(code_p.iter().all(|c| *c <= NO_GRADIENT));
                let g: Vec<f32> = (0..len).map(|j| j as f32 + 0.5).collect();
                let (mut tp, mut bp) = (vec![9.0; 2 * len], vec![9.0; 2 * len]);
                let (mut tv, mut bv) = (vec![9.0; 2 * len], vec![9.0; 2 * len]);
                unpool_row_portable(&code_p, &g, mask.2, &mut tp, &mut bp);
                // SAFETY: as above.
                unsafe {
                    crate::kernels::pool_avx512::unpool_row(&code_p, &g, mask.2, &mut tv, &mut bv)
                };
                assert_eq!((&tp, &bp), (&tv, &bv), "unpool len {len}");
                // Each window passes back exactly its code's gradient, nothing else.
                let passed = tp.iter().chain(&bp).filter(|v| **v != 0.0).count();
                assert_eq!(passed, code_p.iter().filter(|c| **c < NO_GRADIENT).count());
            }
        }
    }

    #[test]
    fn the_portable_row_picks_the_first_maximum_and_stops_at_relu_and_dropout() {
        // Windows (a, b / c, d): ties go to the earlier element; all ≤ 0 passes nothing.
        let top = [1.0, 5.0, -1.0, -2.0, 3.0, 3.0];
        let bottom = [5.0, 0.0, -3.0, 0.0, 3.0, 1.0];
        let (mut out, mut codes) = ([0.0; 3], [0u8; 3]);
        pool_row_portable(
            (&top, &bottom),
            &mut out,
            Some(&mut codes),
            0,
            (0, 1 << 32, 1.0),
        );
        assert_eq!(out, [5.0, 0.0, 3.0]);
        assert_eq!(codes, [1, NO_GRADIENT, 0]);
        // Threshold 0 drops everything.
        pool_row_portable((&top, &bottom), &mut out, Some(&mut codes), 0, (5, 0, 2.0));
        assert_eq!(out, [0.0; 3]);
        assert_eq!(codes, [NO_GRADIENT; 3]);
    }
}
