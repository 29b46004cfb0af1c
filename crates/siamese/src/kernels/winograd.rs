//! Winograd F(2x2, 3x3) for the valid 3x3 convolution + bias + ReLU of [`super::conv`]: forward,
//! input gradient and weight gradient all run as 16 small GEMMs in the transformed domain,
//! 2.25x fewer multiplications than im2col + GEMM.
//!
//! Shapes: `x [N, C, H, W]`, `w [O, C, 3, 3]`, `y [N, O, H-2, W-2]`. The output is cut into 2x2
//! tiles (`TH = ceil(OH/2)` by `TW = ceil(OW/2)` per image; a partial edge tile reads zeros past
//! the input and writes only its valid pixels). With `T` tiles in a run of images:
//!
//! ```text
//! V[ξ] [C, T] = (Bᵀ d B)[ξ]      input tiles d (4x4)        U[ξ] [O, C] = (G g Gᵀ)[ξ]
//! M[ξ] [O, T] = U[ξ] · V[ξ]                                  y tile = Aᵀ M A (2x2)
//! backward, from dM = A dy Aᵀ:  dU[ξ] += dM[ξ] · V[ξ]ᵀ,  dV[ξ] = U[ξ]ᵀ · dM[ξ],
//!                               dg = Gᵀ dU G,  dx tile += B dV Bᵀ (overlapping tiles add up)
//! ```
//!
//! Runs of [`IMAGES_PER_RUN`] images are spread over the rayon pool; GEMMs are single-threaded.

// The tile transforms index rows and columns of 4x4 matrices, as the formulas above do.
#![allow(clippy::needless_range_loop)]

use rayon::prelude::*;

use super::conv::{ConvReluGrads, ConvShape, Wanted};
use super::gemm::gemm16;
use super::winograd_rows::{input_grad_row, input_row, output_grad_row, output_row, SplitPlane};

/// Images transformed together: enough tiles for efficient GEMMs, few enough to stay in cache.
const IMAGES_PER_RUN: usize = 2;

/// Whether the Winograd path handles `s` (3x3 kernels with enough channels to pay off).
pub fn applies(s: &ConvShape) -> bool {
    s.kernel_h == 3 && s.kernel_w == 3 && s.in_channels >= 4 && s.height >= 3 && s.width >= 3
}

fn tiles(s: &ConvShape) -> (usize, usize) {
    (s.out_h().div_ceil(2), s.out_w().div_ceil(2))
}

/// `U [16, O, C]` from `w [O, C, 3, 3]`.
fn transform_weights(s: &ConvShape, w: &[f32]) -> Vec<f32> {
    let (o_n, c_n) = (s.out_channels, s.in_channels);
    let mut u = vec![0.0f32; 16 * o_n * c_n];
    for o in 0..o_n {
        for c in 0..c_n {
            let g = &w[(o * c_n + c) * 9..][..9];
            // G g: [4, 3]
            let mut gg = [[0.0f32; 3]; 4];
            for j in 0..3 {
                let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
                gg[0][j] = g0;
                gg[1][j] = 0.5 * (g0 + g1 + g2);
                gg[2][j] = 0.5 * (g0 - g1 + g2);
                gg[3][j] = g2;
            }
            for (i, row) in gg.iter().enumerate() {
                let (a, b, cc) = (row[0], row[1], row[2]);
                let t = [a, 0.5 * (a + b + cc), 0.5 * (a - b + cc), cc];
                for (j, v) in t.iter().enumerate() {
                    u[((i * 4 + j) * o_n + o) * c_n + c] = *v;
                }
            }
        }
    }
    u
}

/// `dg [O, C, 3, 3] = Gᵀ dU G` from `dU [16, O, C]`.
fn weight_grad_from_transformed(s: &ConvShape, du: &[f32]) -> Vec<f32> {
    let (o_n, c_n) = (s.out_channels, s.in_channels);
    let mut gw = vec![0.0f32; o_n * c_n * 9];
    for o in 0..o_n {
        for c in 0..c_n {
            let at = |i: usize, j: usize| du[((i * 4 + j) * o_n + o) * c_n + c];
            // Gᵀ [3, 4] applied to the rows, then G on the columns.
            let mut t = [[0.0f32; 4]; 3];
            for j in 0..4 {
                let (m0, m1, m2, m3) = (at(0, j), at(1, j), at(2, j), at(3, j));
                t[0][j] = m0 + 0.5 * (m1 + m2);
                t[1][j] = 0.5 * (m1 - m2);
                t[2][j] = 0.5 * (m1 + m2) + m3;
            }
            let out = &mut gw[(o * c_n + c) * 9..][..9];
            for (i, row) in t.iter().enumerate() {
                let (m0, m1, m2, m3) = (row[0], row[1], row[2], row[3]);
                out[i * 3] = m0 + 0.5 * (m1 + m2);
                out[i * 3 + 1] = 0.5 * (m1 - m2);
                out[i * 3 + 2] = 0.5 * (m1 + m2) + m3;
            }
        }
    }
    gw
}

/// Per-worker buffers of the tile transforms.
#[derive(Debug, Default)]
struct Scratch {
    plane: SplitPlane,
    masked: Vec<f32>,
    t: Vec<f32>,
    row: Vec<f32>,
}

/// `V [16, C, T]` for the images of `x_run` (`[n, C, H, W]`).
fn transform_input(s: &ConvShape, x_run: &[f32], images: usize, v: &mut [f32], sc: &mut Scratch) {
    let (th, tw) = tiles(s);
    let (c_n, t_n) = (s.in_channels, images * th * tw);
    let (h, w) = (s.height, s.width);
    sc.row.clear();
    sc.row.resize(16 * tw, 0.0);
    for n in 0..images {
        for c in 0..c_n {
            sc.plane.reset(2 * th + 2, tw + 1);
            sc.plane
                .load(&x_run[(n * c_n + c) * h * w..][..h * w], h, w);
            for ty in 0..th {
                input_row(&sc.plane, ty, tw, &mut sc.t, &mut sc.row);
                let base = c * t_n + (n * th + ty) * tw;
                for xi in 0..16 {
                    v[xi * c_n * t_n + base..][..tw].copy_from_slice(&sc.row[xi * tw..][..tw]);
                }
            }
        }
    }
}

/// Adds `B dV Bᵀ` of each tile of `dv [16, C, T]` onto the images' input gradient `gx_run`.
fn scatter_input_grad(
    s: &ConvShape,
    dv: &[f32],
    images: usize,
    gx_run: &mut [f32],
    sc: &mut Scratch,
) {
    let (th, tw) = tiles(s);
    let (c_n, t_n) = (s.in_channels, images * th * tw);
    let (h, w) = (s.height, s.width);
    for n in 0..images {
        for c in 0..c_n {
            sc.plane.reset(2 * th + 2, tw + 1);
            for ty in 0..th {
                let base = c * t_n + (n * th + ty) * tw;
                let rows: [&[f32]; 16] =
                    std::array::from_fn(|xi| &dv[xi * c_n * t_n + base..][..tw]);
                input_grad_row(&rows, ty, tw, &mut sc.t, &mut sc.plane);
            }
            sc.plane
                .add_into(&mut gx_run[(n * c_n + c) * h * w..][..h * w], h, w);
        }
    }
}

/// Forward: `y = relu(conv3x3(x, w) + b)`, `[N, O, OH, OW]`.
pub fn forward(s: &ConvShape, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
    let (o_n, c_n) = (s.out_channels, s.in_channels);
    let (th, tw) = tiles(s);
    let (oh, ow) = (s.out_h(), s.out_w());
    let u = transform_weights(s, w);
    let mut y = vec![0.0f32; s.batch * s.output_len()];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(IMAGES_PER_RUN * s.output_len())
        .zip(x.par_chunks(IMAGES_PER_RUN * s.input_len()))
        .for_each_init(
            || (Vec::new(), Vec::new(), Vec::new(), Scratch::default()),
            |(v, m, row, sc), (y_run, x_run)| {
                let images = y_run.len() / s.output_len();
                let t_n = images * th * tw;
                v.resize(16 * c_n * t_n, 0.0);
                m.resize(16 * o_n * t_n, 0.0);
                transform_input(s, x_run, images, v, sc);
                gemm16(o_n, t_n, c_n, m, false, &u, (c_n, 1), v, (t_n, 1));
                // Aᵀ M A per tile, plus bias, ReLU.
                row.clear();
                row.resize(4 * tw, 0.0);
                for o in 0..o_n {
                    for n in 0..images {
                        let out = &mut y_run[(n * o_n + o) * oh * ow..][..oh * ow];
                        for ty in 0..th {
                            let base = (n * th + ty) * tw;
                            let tiles: [&[f32]; 16] =
                                std::array::from_fn(|xi| &m[(xi * o_n + o) * t_n + base..][..tw]);
                            let (top, bottom) = row.split_at_mut(2 * tw);
                            output_row(&tiles, tw, bias[o], top, bottom);
                            for (i, r) in [&*top, &*bottom].into_iter().enumerate() {
                                if 2 * ty + i < oh {
                                    out[(2 * ty + i) * ow..][..ow].copy_from_slice(&r[..ow]);
                                }
                            }
                        }
                    }
                }
            },
        );
    y
}

/// Backward of [`forward`] from `x`, `w`, the output `y` (ReLU's mask) and its gradient `gy`.
pub fn backward(
    s: &ConvShape,
    x: &[f32],
    w: &[f32],
    y: &[f32],
    gy: &[f32],
    wanted: Wanted,
) -> ConvReluGrads {
    let (o_n, c_n) = (s.out_channels, s.in_channels);
    let (th, tw) = tiles(s);
    let (oh, ow) = (s.out_h(), s.out_w());
    let u = transform_weights(s, w);
    let mut gx = vec![0.0f32; if wanted.x { s.batch * s.input_len() } else { 0 }];
    let runs = s.batch.div_ceil(IMAGES_PER_RUN);
    // One run per task; each task returns its partial dU and bias gradient.
    let work = |r: usize, gx_run: Option<&mut [f32]>| -> (Vec<f32>, Vec<f32>) {
        let first = r * IMAGES_PER_RUN;
        let images = IMAGES_PER_RUN.min(s.batch - first);
        let t_n = images * th * tw;
        let mut gb = vec![0.0f32; o_n];
        let mut dm = vec![0.0f32; 16 * o_n * t_n];
        let mut sc = Scratch::default();
        sc.row.resize(16 * tw, 0.0);
        // dM = A dz Aᵀ per tile, dz = gy masked by y > 0.
        for o in 0..o_n {
            for n in 0..images {
                let at = ((first + n) * o_n + o) * oh * ow..((first + n) * o_n + o + 1) * oh * ow;
                sc.masked.clear();
                sc.masked
                    .extend(
                        y[at.clone()]
                            .iter()
                            .zip(&gy[at])
                            .map(|(&yv, &g)| if yv > 0.0 { g } else { 0.0 }),
                    );
                gb[o] += sc.masked.iter().sum::<f32>();
                sc.plane.reset(2 * th, tw);
                sc.plane.load(&sc.masked, oh, ow);
                for ty in 0..th {
                    output_grad_row(&sc.plane, ty, tw, &mut sc.row);
                    let base = (n * th + ty) * tw;
                    for xi in 0..16 {
                        dm[(xi * o_n + o) * t_n + base..][..tw]
                            .copy_from_slice(&sc.row[xi * tw..][..tw]);
                    }
                }
            }
        }
        let mut du = vec![0.0f32; if wanted.weight { 16 * o_n * c_n } else { 0 }];
        let mut buf = vec![0.0f32; 16 * c_n * t_n];
        if wanted.weight {
            let x_run = &x[first * s.input_len()..(first + images) * s.input_len()];
            transform_input(s, x_run, images, &mut buf, &mut sc);
            // dU[ξ] [O, C] = dM[ξ] [O, T] · V[ξ]ᵀ [T, C]
            gemm16(o_n, c_n, t_n, &mut du, false, &dm, (t_n, 1), &buf, (1, t_n));
        }
        if let Some(gx_run) = gx_run {
            // dV[ξ] [C, T] = U[ξ]ᵀ [C, O] · dM[ξ] [O, T]
            gemm16(c_n, t_n, o_n, &mut buf, false, &u, (1, c_n), &dm, (t_n, 1));
            scatter_input_grad(s, &buf, images, gx_run, &mut sc);
        }
        (du, gb)
    };
    let partials: Vec<(Vec<f32>, Vec<f32>)> = if wanted.x {
        gx.par_chunks_mut(IMAGES_PER_RUN * s.input_len())
            .enumerate()
            .map(|(r, chunk)| work(r, Some(chunk)))
            .collect()
    } else {
        (0..runs).into_par_iter().map(|r| work(r, None)).collect()
    };
    let mut du = vec![0.0f32; 16 * o_n * c_n];
    let mut gb = vec![0.0f32; o_n];
    for (pu, pb) in &partials {
        du.iter_mut().zip(pu).for_each(|(a, b)| *a += b);
        gb.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
    ConvReluGrads {
        x: wanted.x.then_some(gx),
        weight: wanted.weight.then(|| weight_grad_from_transformed(s, &du)),
        bias: wanted.bias.then_some(gb),
    }
}
