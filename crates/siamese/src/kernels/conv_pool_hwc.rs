//! Inference of two valid convolutions + ReLU and a 2x2 max-pool in one pass per image, in
//! pixel-major (HWC) order inside the pass: the GEMMs are `[pixels, K] · [K, channels]`, the
//! orientation the `gemm` crate runs fastest for these shapes (about 200 against 170 GFLOP/s a
//! core for the seeds' conv2 on an AVX-512 Xeon), the second convolution needs no im2col at all
//! (below), and the pool takes the maximum of four channel vectors. Only the pooled result goes
//! back to NCHW.
//!
//! Shapes: `x [N, C, H, W]` → conv1 (`w1 [O1, C, KH1, KW1]`) → `a [H1, W1, O1]` per image →
//! conv2 (`w2 [O2, O1, KH2, KW2]`) → `y [H2, W2, O2]` per image → `out [N, O2, H2/2, W2/2]`.
//! The first convolution's im2col is the usual `[K1, P1]` one (its input is one image plane
//! set in NCHW); its GEMM writes `a` transposed through the destination strides. The second is
//! `KH2` accumulating products, one per kernel row `ky`, over a grid as wide as `a` (`W1`):
//!
//! ```text
//! y [H2·W1, O2] = b2 + Σ_ky a[ky·W1 ..] (rows of KW2·O1 consecutive values, row stride O1) · w2_ky [KW2·O1, O2]
//! ```
//!
//! whose rows overlap in place; each grid row's last `KW2 − 1` columns read into the next row of
//! `a` and are never pooled (5 % faster than copying the `[P2, K2]` im2col matrix first, batch
//! 512 on two Xeon cores).

use rayon::prelude::*;

use super::buffer::{assume_filled, unfilled, zeroed};
use super::conv::{im2col, ConvShape};
use super::gemm::gemm_strided;
use super::simd::vectorize;

/// `w [O, C, KH, KW]` as `[(ky, kx, c), O]`: the right-hand side of a pixel-major convolution.
fn weights_pixel_major(s: &ConvShape, w: &[f32]) -> Vec<f32> {
    let (o_n, c_n, kh, kw) = (s.out_channels, s.in_channels, s.kernel_h, s.kernel_w);
    let mut t = vec![0.0f32; o_n * c_n * kh * kw];
    for o in 0..o_n {
        for c in 0..c_n {
            for ky in 0..kh {
                for kx in 0..kw {
                    t[((ky * kw + kx) * c_n + c) * o_n + o] =
                        w[((o * c_n + c) * kh + ky) * kw + kx];
                }
            }
        }
    }
    t
}

/// `pool(relu(conv2(relu(conv1(x) + b1)) + b2))` for inference (see the module docs); the
/// same result as burn's layers within float rounding (tested in `tests/kernels.rs`).
pub fn two_conv_relu_pool_hwc(
    (first, w1, b1): (&ConvShape, &[f32], &[f32]),
    (second, w2, b2): (&ConvShape, &[f32], &[f32]),
    x: &[f32],
) -> Vec<f32> {
    assert_eq!(x.len(), first.batch * first.input_len());
    assert_eq!(second.input_len(), first.output_len());
    assert_eq!(second.in_channels, first.out_channels);
    assert_eq!(w1.len(), first.out_channels * first.col_rows());
    assert_eq!(w2.len(), second.out_channels * second.col_rows());
    assert_eq!(
        (b1.len(), b2.len()),
        (first.out_channels, second.out_channels)
    );
    let (ph, pw) = (second.out_h() / 2, second.out_w() / 2);
    let (o1, o2) = (first.out_channels, second.out_channels);
    let per_image = o2 * ph * pw;
    if first.batch * per_image == 0 {
        return Vec::new();
    }
    let w2t = weights_pixel_major(second, w2);
    let (k1, p1) = (first.col_rows(), first.pixels());
    // The second convolution runs on shifted rows of `a` over a grid as wide as `a`
    // (`second.width`; its last KW2 − 1 columns are computed and never pooled), so `a` has
    // KW2 − 1 zero pixels after its last row, which only those columns read.
    let (w1_out, kh2, kw2) = (second.width, second.kernel_h, second.kernel_w);
    let (grid, run) = (second.out_h() * w1_out, kw2 * o1);
    let mut out = unfilled(first.batch * per_image);
    let scratch = || {
        (
            vec![0.0f32; k1 * p1],
            vec![0.0f32; (p1 + kw2 - 1) * o1],
            vec![0.0f32; grid * o2],
        )
    };
    out.par_chunks_mut(per_image).enumerate().for_each_init(
        scratch,
        |(col1, a, y), (n, out_img)| {
            let x_img = &x[n * first.input_len()..(n + 1) * first.input_len()];
            vectorize(
                #[inline(always)]
                || {
                    im2col(first, x_img, col1);
                    for px in a.chunks_exact_mut(o1) {
                        px.copy_from_slice(b1);
                    }
                },
            );
            // a [P1, O1] (+)= (w1 [O1, K1] · col1 [K1, P1])ᵀ, written pixel-major.
            gemm_strided(
                p1,
                o1,
                k1,
                &mut a[..p1 * o1],
                true,
                col1,
                (1, p1),
                w1,
                (1, k1),
            );
            vectorize(
                #[inline(always)]
                || {
                    for v in a[..p1 * o1].iter_mut() {
                        *v = v.max(0.0);
                    }
                    super::buffer::fill_rows(y, b2);
                },
            );
            // y [OH2·W1, O2] (+)= Σ_ky a[ky·W1 ..] (rows of KW2·O1 values, stride O1) · w2t_ky
            for ky in 0..kh2 {
                gemm_strided(
                    grid,
                    o2,
                    run,
                    y,
                    true,
                    &a[ky * w1_out * o1..],
                    (o1, 1),
                    &w2t[ky * run * o2..(ky + 1) * run * o2],
                    (o2, 1),
                );
            }
            let out_img = zeroed(out_img);
            vectorize(
                #[inline(always)]
                || {
                    let ow = w1_out;
                    let mut m = vec![0.0f32; o2];
                    for i in 0..ph {
                        for j in 0..pw {
                            let at = |dy: usize, dx: usize| {
                                &y[((2 * i + dy) * ow + 2 * j + dx) * o2..][..o2]
                            };
                            let (a0, a1, a2, a3) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
                            for (c, mc) in m.iter_mut().enumerate() {
                                *mc = a0[c].max(a1[c]).max(a2[c].max(a3[c])).max(0.0);
                            }
                            for (c, v) in m.iter().enumerate() {
                                out_img[(c * ph + i) * pw + j] = *v;
                            }
                        }
                    }
                },
            );
        },
    );
    // SAFETY: every image's slice went through `zeroed`.
    unsafe { assume_filled(out) }
}
