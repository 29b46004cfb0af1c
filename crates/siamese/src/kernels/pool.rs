//! 2x2 max-pool with stride 2 (floor mode, no padding) on raw `f32` slices, forward and backward.
//!
//! Shapes: `x [N, C, H, W] → y [N, C, H/2, W/2]` (an odd last row or column is dropped).
//! The backward pass recomputes each window's arg-max from `x` instead of storing indices: the
//! first maximum in row-major window order takes the gradient. Both loops are branch-free over
//! a row of windows.

use rayon::prelude::*;

/// The index byte of a fused pool's element that passes no gradient back (see
/// [`super::conv_pool`]; positions in a 2x2 window are 0..4).
pub const NO_GRADIENT: u8 = 4;

/// `(planes, height, width)` of the input, `planes = N·C`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    pub planes: usize,
    pub height: usize,
    pub width: usize,
}

impl PoolShape {
    pub fn out_h(&self) -> usize {
        self.height / 2
    }
    pub fn out_w(&self) -> usize {
        self.width / 2
    }
}

/// Planes handed to one rayon task (keeps the task count modest on small planes).
const PLANES_PER_TASK: usize = 16;

/// Forward: the maximum of each 2x2 window.
pub fn max_pool2x2_forward(s: &PoolShape, x: &[f32]) -> Vec<f32> {
    let (h, w, oh, ow) = (s.height, s.width, s.out_h(), s.out_w());
    assert_eq!(x.len(), s.planes * h * w);
    let mut y = vec![0.0f32; s.planes * oh * ow];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(oh * ow * PLANES_PER_TASK)
        .zip(x.par_chunks(h * w * PLANES_PER_TASK))
        .for_each(|(y_run, x_run)| {
            for (y_plane, x_plane) in y_run
                .chunks_exact_mut(oh * ow)
                .zip(x_run.chunks_exact(h * w))
            {
                for (i, out) in y_plane.chunks_exact_mut(ow).enumerate() {
                    let top = &x_plane[2 * i * w..][..2 * ow];
                    let bottom = &x_plane[(2 * i + 1) * w..][..2 * ow];
                    for j in 0..ow {
                        out[j] = top[2 * j]
                            .max(top[2 * j + 1])
                            .max(bottom[2 * j].max(bottom[2 * j + 1]));
                    }
                }
            }
        });
    y
}

/// Backward: routes each output gradient `gy [N, C, H/2, W/2]` to its window's arg-max in `x`
/// (the first element, in row-major window order, equal to the window's maximum).
pub fn max_pool2x2_backward(s: &PoolShape, x: &[f32], gy: &[f32]) -> Vec<f32> {
    let (h, w, oh, ow) = (s.height, s.width, s.out_h(), s.out_w());
    assert_eq!(x.len(), s.planes * h * w);
    assert_eq!(gy.len(), s.planes * oh * ow);
    let mut gx = vec![0.0f32; x.len()];
    if gy.is_empty() {
        return gx;
    }
    gx.par_chunks_mut(h * w * PLANES_PER_TASK)
        .zip(x.par_chunks(h * w * PLANES_PER_TASK))
        .zip(gy.par_chunks(oh * ow * PLANES_PER_TASK))
        .for_each(|((gx_run, x_run), gy_run)| {
            for ((gx_plane, x_plane), gy_plane) in gx_run
                .chunks_exact_mut(h * w)
                .zip(x_run.chunks_exact(h * w))
                .zip(gy_run.chunks_exact(oh * ow))
            {
                for (i, g) in gy_plane.chunks_exact(ow).enumerate() {
                    let top = &x_plane[2 * i * w..][..2 * ow];
                    let bottom = &x_plane[(2 * i + 1) * w..][..2 * ow];
                    let (g_top, g_bottom) = gx_plane[2 * i * w..].split_at_mut(w);
                    let (g_top, g_bottom) = (&mut g_top[..2 * ow], &mut g_bottom[..2 * ow]);
                    for j in 0..ow {
                        let (a, b, c, d) =
                            (top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1]);
                        let m = a.max(b).max(c.max(d));
                        // Branch-free first match; an all-NaN window sends it to the last.
                        let is_a = a == m;
                        let is_b = !is_a && b == m;
                        let is_c = !is_a && !is_b && c == m;
                        let is_d = !(is_a || is_b || is_c);
                        let pick = |hit: bool| if hit { g[j] } else { 0.0 };
                        g_top[2 * j] = pick(is_a);
                        g_top[2 * j + 1] = pick(is_b);
                        g_bottom[2 * j] = pick(is_c);
                        g_bottom[2 * j + 1] = pick(is_d);
                    }
                }
            }
        });
    gx
}

/// Inference max-pool with a `k × k` window and stride `stride` (floor mode, no padding) over
/// `x [planes, H, W]`: for each output row, the column-wise maximum of its `k` input rows
/// (contiguous, vectorised), then the maximum of each window of that row. Maxima follow
/// `f32::max` (a NaN loses to a number).
pub fn max_pool_forward(s: &PoolShape, k: usize, stride: usize, x: &[f32]) -> Vec<f32> {
    let (h, w) = (s.height, s.width);
    assert_eq!(x.len(), s.planes * h * w);
    assert!(k > 0 && stride > 0);
    let (oh, ow) = if h < k || w < k {
        (0, 0)
    } else {
        ((h - k) / stride + 1, (w - k) / stride + 1)
    };
    let mut y = vec![0.0f32; s.planes * oh * ow];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(h * w))
        .for_each_init(
            || vec![0.0f32; w],
            |column_max, (y_plane, x_plane)| {
                super::simd::vectorize(
                    #[inline(always)]
                    || {
                        for (oy, out) in y_plane.chunks_exact_mut(ow).enumerate() {
                            let top = oy * stride;
                            column_max.copy_from_slice(&x_plane[top * w..(top + 1) * w]);
                            for r in 1..k {
                                let row = &x_plane[(top + r) * w..(top + r + 1) * w];
                                for (m, v) in column_max.iter_mut().zip(row) {
                                    *m = m.max(*v);
                                }
                            }
                            for (ox, o) in out.iter_mut().enumerate() {
                                let window = &column_max[ox * stride..ox * stride + k];
                                *o = window.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                            }
                        }
                    },
                )
            },
        );
    y
}
