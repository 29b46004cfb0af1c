//! 2x2 max-pool with stride 2 (floor mode, no padding) on raw `f32` slices, forward and backward.
//!
//! Shapes: `x [N, C, H, W] → y [N, C, H/2, W/2]` (an odd last row or column is dropped).
//! The backward pass recomputes each window's arg-max from `x` instead of storing indices: the
//! first maximum in row-major window order takes the gradient, as in burn's own kernel.

use rayon::prelude::*;

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

/// Index (0..4) of the first maximum of a window `[a, b; c, d]`, and that maximum.
#[inline]
fn window_argmax(a: f32, b: f32, c: f32, d: f32) -> (usize, f32) {
    let (mut best, mut at) = (a, 0);
    for (i, v) in [(1, b), (2, c), (3, d)] {
        if v > best || best.is_nan() && !v.is_nan() {
            best = v;
            at = i;
        }
    }
    (at, best)
}

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
                for i in 0..oh {
                    let top = &x_plane[2 * i * w..];
                    let bottom = &x_plane[(2 * i + 1) * w..];
                    for (j, out) in y_plane[i * ow..(i + 1) * ow].iter_mut().enumerate() {
                        let (_, m) = window_argmax(
                            top[2 * j],
                            top[2 * j + 1],
                            bottom[2 * j],
                            bottom[2 * j + 1],
                        );
                        *out = m;
                    }
                }
            }
        });
    y
}

/// Backward: routes each output gradient `gy [N, C, H/2, W/2]` to its window's arg-max in `x`.
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
                for i in 0..oh {
                    for j in 0..ow {
                        let at = [
                            2 * i * w + 2 * j,
                            2 * i * w + 2 * j + 1,
                            (2 * i + 1) * w + 2 * j,
                            (2 * i + 1) * w + 2 * j + 1,
                        ];
                        let (k, _) = window_argmax(
                            x_plane[at[0]],
                            x_plane[at[1]],
                            x_plane[at[2]],
                            x_plane[at[3]],
                        );
                        gx_plane[at[k]] += gy_plane[i * ow + j];
                    }
                }
            }
        });
    gx
}
