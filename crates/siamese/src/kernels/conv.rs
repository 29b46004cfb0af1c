//! Valid (unpadded, stride 1) 2-D convolution fused with bias and ReLU, forward and backward, on
//! raw `f32` slices: im2col per image into a reused buffer, then one packed GEMM per image.
//!
//! Shapes: input `x [N, C, H, W]`, weight `w [O, C, KH, KW]`, bias `[O]`,
//! output `y = relu(conv(x, w) + b)` `[N, O, OH, OW]` with `OH = H - KH + 1`, `OW = W - KW + 1`.
//! Inside one image the im2col matrix is `col [K, P]` with `K = C·KH·KW`, `P = OH·OW`, so the
//! output of one image is the row-major product `w [O, K] · col [K, P]` — already NCHW.
//! Images are spread over the rayon pool; each GEMM runs single-threaded (no nested parallelism).

use rayon::prelude::*;

use super::conv_infer::{conv_forward, Epilogue, InferConvShape};
use std::mem::MaybeUninit;

use super::buffer::{assume_filled, unfilled, zeroed};
use super::gemm::gemm_strided;
use super::simd::vectorize;

/// Geometry of one convolution call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
}

impl ConvShape {
    pub fn out_h(&self) -> usize {
        self.height + 1 - self.kernel_h
    }
    pub fn out_w(&self) -> usize {
        self.width + 1 - self.kernel_w
    }
    /// Rows of the im2col matrix (`C·KH·KW`).
    pub fn col_rows(&self) -> usize {
        self.in_channels * self.kernel_h * self.kernel_w
    }
    /// Columns of the im2col matrix: output pixels of one image (`OH·OW`).
    pub fn pixels(&self) -> usize {
        self.out_h() * self.out_w()
    }
    pub fn input_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }
    pub fn output_len(&self) -> usize {
        self.out_channels * self.pixels()
    }
}

/// Unfolds one image `x [C, H, W]` into `col [K, P]` (row `(c·KH + ky)·KW + kx`, column `oy·OW + ox`).
/// Inlined into its callers' [`vectorize`] blocks; rows are copied by a plain loop, not
/// `copy_from_slice`, whose `memmove` call cost more than the copy for rows this short.
#[inline(always)]
pub(super) fn im2col(s: &ConvShape, x: &[f32], col: &mut [f32]) {
    let (oh, ow, p) = (s.out_h(), s.out_w(), s.pixels());
    let mut row = 0;
    for c in 0..s.in_channels {
        let plane = &x[c * s.height * s.width..(c + 1) * s.height * s.width];
        for ky in 0..s.kernel_h {
            for kx in 0..s.kernel_w {
                let dst = &mut col[row * p..(row + 1) * p];
                for oy in 0..oh {
                    let src = &plane[(oy + ky) * s.width + kx..][..ow];
                    for (d, v) in dst[oy * ow..(oy + 1) * ow].iter_mut().zip(src) {
                        *d = *v;
                    }
                }
                row += 1;
            }
        }
    }
}

/// Adds `col [K, P]` back onto one image's gradient `gx [C, H, W]` (the adjoint of [`im2col`]).
#[inline(always)]
fn col2im_add(s: &ConvShape, col: &[f32], gx: &mut [f32]) {
    let (oh, ow, p) = (s.out_h(), s.out_w(), s.pixels());
    let mut row = 0;
    for c in 0..s.in_channels {
        let plane = &mut gx[c * s.height * s.width..(c + 1) * s.height * s.width];
        for ky in 0..s.kernel_h {
            for kx in 0..s.kernel_w {
                let src = &col[row * p..(row + 1) * p];
                for oy in 0..oh {
                    let dst = &mut plane[(oy + ky) * s.width + kx..][..ow];
                    for (d, v) in dst.iter_mut().zip(&src[oy * ow..(oy + 1) * ow]) {
                        *d += v;
                    }
                }
                row += 1;
            }
        }
    }
}

/// Forward: `y = relu(conv(x, w) + b)`, returned as a new `[N, O, OH, OW]` buffer (the
/// inference convolution of [`super::conv_infer`] with stride 1, no padding and ReLU).
pub fn conv_relu_forward(s: &ConvShape, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
    let shape = InferConvShape {
        batch: s.batch,
        in_channels: s.in_channels,
        height: s.height,
        width: s.width,
        out_channels: s.out_channels,
        kernel: [s.kernel_h, s.kernel_w],
        stride: [1, 1],
        padding: [0, 0],
    };
    conv_forward(&shape, x, w, bias, Epilogue::Relu)
}

/// Gradients of [`conv_relu_forward`]; each is computed only when asked for.
#[derive(Debug, Default)]
pub struct ConvReluGrads {
    pub x: Option<Vec<f32>>,
    pub weight: Option<Vec<f32>>,
    pub bias: Option<Vec<f32>>,
}

/// Which gradients [`conv_relu_backward`] computes.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub x: bool,
    pub weight: bool,
    pub bias: bool,
}

/// `Σ values`, in 16 interleaved partial sums so that it vectorises (a single running sum is
/// one dependent add an element).
#[inline(always)]
pub(super) fn lane_sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut chunks = values.chunks_exact(16);
    for chunk in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(chunk) {
            *l += v;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Backward of [`conv_relu_forward`] from its input `x`, weight `w`, output `y` and the output's
/// gradient `gy`. ReLU's mask is `y > 0`.
pub fn conv_relu_backward(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    y: &[f32],
    gy: &[f32],
    wanted: Wanted,
) -> ConvReluGrads {
    let (p, o) = (s.pixels(), s.out_channels);
    assert_eq!(y.len(), s.batch * s.output_len());
    assert_eq!(gy.len(), y.len());
    let fill_gz = |n: usize, gz: &mut [f32]| {
        let y_img = &y[n * o * p..(n + 1) * o * p];
        let gy_img = &gy[n * o * p..(n + 1) * o * p];
        for ((g, &yv), &gv) in gz.iter_mut().zip(y_img).zip(gy_img) {
            *g = if yv > 0.0 { gv } else { 0.0 };
        }
    };
    conv_backward_from(s, x, w, wanted, fill_gz)
}

/// The convolution's backward from the gradient of its pre-activation output: `fill_gz(n, gz)`
/// writes image `n`'s `gz [O, P]` (every element), then the bias gradient sums it, the weight
/// gradient is `gz · colᵀ` and the input gradient `wᵀ · gz` folded back by col2im. Shared by the
/// fused conv + ReLU and conv + ReLU + pool (+ dropout) kernels, which differ only in `gz`.
pub(super) fn conv_backward_from(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    wanted: Wanted,
    fill_gz: impl Fn(usize, &mut [f32]) + Sync + Copy,
) -> ConvReluGrads {
    let (k, p, o) = (s.col_rows(), s.pixels(), s.out_channels);
    assert_eq!(x.len(), s.batch * s.input_len());
    let need_col = wanted.weight;
    let need_params = wanted.weight || wanted.bias;
    // Images are split into one contiguous run per worker, so each worker keeps one partial sum
    // of the weight and bias gradients and the reduction touches only `threads` partials.
    let threads = rayon::current_num_threads().max(1);
    let per_run = s.batch.div_ceil(threads).max(1);
    let runs = s.batch.div_ceil(per_run);
    // Each worker zeroes its images' slices of `gx` just before adding onto them.
    let mut gx = unfilled(if wanted.x { s.batch * s.input_len() } else { 0 });
    let gx_chunk = (per_run * s.input_len()).max(1);
    // Each run returns its partial weight gradient as gwᵀ [K, O] and its bias gradient.
    let run = |r: usize, mut gx_run: Option<&mut [MaybeUninit<f32>]>| -> (Vec<f32>, Vec<f32>) {
        let mut gw = if wanted.weight {
            vec![0.0f32; o * k]
        } else {
            Vec::new()
        };
        let mut gb = vec![0.0f32; if wanted.bias { o } else { 0 }];
        let mut col = vec![0.0f32; if need_col || wanted.x { k * p } else { 0 }];
        let mut gz = vec![0.0f32; o * p];
        let first = r * per_run;
        let last = (first + per_run).min(s.batch);
        for n in first..last {
            vectorize(
                #[inline(always)]
                || {
                    fill_gz(n, &mut gz);
                    if wanted.bias {
                        for (b, row) in gb.iter_mut().zip(gz.chunks_exact(p)) {
                            *b += lane_sum(row);
                        }
                    }
                    if need_col {
                        im2col(s, &x[n * s.input_len()..(n + 1) * s.input_len()], &mut col);
                    }
                },
            );
            if need_col {
                // gwᵀ [K, O] += col [K, P] · gzᵀ [P, O]: the same product, transposed, in the
                // orientation the `gemm` crate runs faster here (174 against 127 GFLOP/s a core
                // for conv2's shape on an AVX-512 Xeon; never slower on the shapes measured).
                gemm_strided(k, o, p, &mut gw, true, &col, (p, 1), &gz, (1, p));
            }
            if let Some(gx_run) = gx_run.as_deref_mut() {
                // gcol [K, P] = wᵀ [K, O] · gz [O, P], folded back onto the image.
                gemm_strided(k, p, o, &mut col, false, w, (1, k), &gz, (p, 1));
                let local = n - first;
                let gx_img =
                    zeroed(&mut gx_run[local * s.input_len()..(local + 1) * s.input_len()]);
                vectorize(
                    #[inline(always)]
                    || col2im_add(s, &col, gx_img),
                );
            }
        }
        (gw, gb)
    };
    let partials: Vec<(Vec<f32>, Vec<f32>)> = if wanted.x && !gx.is_empty() {
        gx.par_chunks_mut(gx_chunk)
            .enumerate()
            .map(|(r, chunk)| run(r, Some(chunk)))
            .collect()
    } else {
        (0..runs).into_par_iter().map(|r| run(r, None)).collect()
    };
    // SAFETY: the runs cover every image, and each image's slice went through `zeroed`.
    let gx = unsafe { assume_filled(gx) };
    let mut grads = ConvReluGrads {
        x: wanted.x.then_some(gx),
        ..Default::default()
    };
    if need_params {
        let mut gw = vec![0.0f32; if wanted.weight { o * k } else { 0 }];
        let mut gb = vec![0.0f32; if wanted.bias { o } else { 0 }];
        for (pw, pb) in &partials {
            gw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
            gb.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
        }
        // The partials were summed as gwᵀ [K, O]; the gradient is [O, K].
        grads.weight = wanted.weight.then(|| {
            let mut t = vec![0.0f32; gw.len()];
            for (kk, row) in gw.chunks_exact(o).enumerate() {
                for (oo, v) in row.iter().enumerate() {
                    t[oo * k + kk] = *v;
                }
            }
            t
        });
        grads.bias = wanted.bias.then_some(gb);
    }
    grads
}
