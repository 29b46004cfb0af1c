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

use super::conv::{gemm_strided, ConvReluGrads, ConvShape, Wanted};

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

/// `V [16, C, T]` for the images of `x_run` (`[n, C, H, W]`).
fn transform_input(s: &ConvShape, x_run: &[f32], images: usize, v: &mut [f32]) {
    let (th, tw) = tiles(s);
    let t_n = images * th * tw;
    let (h, w) = (s.height, s.width);
    for n in 0..images {
        for c in 0..s.in_channels {
            let plane = &x_run[(n * s.in_channels + c) * h * w..][..h * w];
            for ty in 0..th {
                for tx in 0..tw {
                    let (y0, x0) = (2 * ty, 2 * tx);
                    let mut d = [[0.0f32; 4]; 4];
                    if y0 + 4 <= h && x0 + 4 <= w {
                        for (i, row) in d.iter_mut().enumerate() {
                            row.copy_from_slice(&plane[(y0 + i) * w + x0..][..4]);
                        }
                    } else {
                        for (i, row) in d.iter_mut().enumerate() {
                            for (j, v) in row.iter_mut().enumerate() {
                                if y0 + i < h && x0 + j < w {
                                    *v = plane[(y0 + i) * w + x0 + j];
                                }
                            }
                        }
                    }
                    // Bᵀ d (rows), then · B (columns).
                    let mut t = [[0.0f32; 4]; 4];
                    for j in 0..4 {
                        t[0][j] = d[0][j] - d[2][j];
                        t[1][j] = d[1][j] + d[2][j];
                        t[2][j] = d[2][j] - d[1][j];
                        t[3][j] = d[1][j] - d[3][j];
                    }
                    let tile = (n * th + ty) * tw + tx;
                    for (i, r) in t.iter().enumerate() {
                        let vals = [r[0] - r[2], r[1] + r[2], r[2] - r[1], r[1] - r[3]];
                        for (j, val) in vals.iter().enumerate() {
                            v[((i * 4 + j) * s.in_channels + c) * t_n + tile] = *val;
                        }
                    }
                }
            }
        }
    }
}

/// Adds `B dV Bᵀ` of each tile of `dv [16, C, T]` onto the images' input gradient `gx_run`.
fn scatter_input_grad(s: &ConvShape, dv: &[f32], images: usize, gx_run: &mut [f32]) {
    let (th, tw) = tiles(s);
    let t_n = images * th * tw;
    let (h, w) = (s.height, s.width);
    for n in 0..images {
        for c in 0..s.in_channels {
            let plane = &mut gx_run[(n * s.in_channels + c) * h * w..][..h * w];
            for ty in 0..th {
                for tx in 0..tw {
                    let tile = (n * th + ty) * tw + tx;
                    let at =
                        |i: usize, j: usize| dv[((i * 4 + j) * s.in_channels + c) * t_n + tile];
                    // B applied to the rows: (B v)[0] = v0, [1] = v1 - v2 + v3, [2] = v2 + v1 - v0, [3] = -v3.
                    let mut t = [[0.0f32; 4]; 4];
                    for j in 0..4 {
                        let (v0, v1, v2, v3) = (at(0, j), at(1, j), at(2, j), at(3, j));
                        t[0][j] = v0;
                        t[1][j] = v1 - v2 + v3;
                        t[2][j] = v1 + v2 - v0;
                        t[3][j] = -v3;
                    }
                    let (y0, x0) = (2 * ty, 2 * tx);
                    for (i, r) in t.iter().enumerate() {
                        if y0 + i >= h {
                            break;
                        }
                        let vals = [r[0], r[1] - r[2] + r[3], r[1] + r[2] - r[0], -r[3]];
                        let row = &mut plane[(y0 + i) * w..][..w];
                        for (j, val) in vals.iter().enumerate() {
                            if x0 + j < w {
                                row[x0 + j] += val;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The 16 products `out[ξ] (m×n) = lhs[ξ] · rhs[ξ]` with per-ξ strides.
#[allow(clippy::too_many_arguments)]
fn gemm16(
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) {
    let (ls, rs, os) = (lhs.len() / 16, rhs.len() / 16, m * n);
    for xi in 0..16 {
        gemm_strided(
            m,
            n,
            k,
            &mut out[xi * os..(xi + 1) * os],
            accumulate,
            &lhs[xi * ls..(xi + 1) * ls],
            lhs_strides,
            &rhs[xi * rs..(xi + 1) * rs],
            rhs_strides,
        );
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
            || (Vec::new(), Vec::new()),
            |(v, m), (y_run, x_run)| {
                let images = y_run.len() / s.output_len();
                let t_n = images * th * tw;
                v.resize(16 * c_n * t_n, 0.0);
                m.resize(16 * o_n * t_n, 0.0);
                transform_input(s, x_run, images, v);
                gemm16(o_n, t_n, c_n, m, false, &u, (c_n, 1), v, (t_n, 1));
                // Aᵀ M A per tile, plus bias, ReLU.
                for o in 0..o_n {
                    for n in 0..images {
                        let out = &mut y_run[(n * o_n + o) * oh * ow..][..oh * ow];
                        for ty in 0..th {
                            for tx in 0..tw {
                                let tile = (n * th + ty) * tw + tx;
                                let at =
                                    |i: usize, j: usize| m[((i * 4 + j) * o_n + o) * t_n + tile];
                                let mut r = [[0.0f32; 4]; 2];
                                for j in 0..4 {
                                    let (m0, m1, m2, m3) = (at(0, j), at(1, j), at(2, j), at(3, j));
                                    r[0][j] = m0 + m1 + m2;
                                    r[1][j] = m1 - m2 - m3;
                                }
                                for (i, row) in r.iter().enumerate() {
                                    let oy = 2 * ty + i;
                                    if oy >= oh {
                                        break;
                                    }
                                    let vals = [row[0] + row[1] + row[2], row[1] - row[2] - row[3]];
                                    for (j, val) in vals.iter().enumerate() {
                                        let ox = 2 * tx + j;
                                        if ox < ow {
                                            out[oy * ow + ox] = (val + bias[o]).max(0.0);
                                        }
                                    }
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
        // dM = A dz Aᵀ per tile, dz = gy masked by y > 0.
        for o in 0..o_n {
            for n in 0..images {
                let base = ((first + n) * o_n + o) * oh * ow;
                let (y_p, gy_p) = (&y[base..base + oh * ow], &gy[base..base + oh * ow]);
                for ty in 0..th {
                    for tx in 0..tw {
                        let mut dz = [[0.0f32; 2]; 2];
                        for (i, row) in dz.iter_mut().enumerate() {
                            for (j, v) in row.iter_mut().enumerate() {
                                let (oy, ox) = (2 * ty + i, 2 * tx + j);
                                if oy < oh && ox < ow && y_p[oy * ow + ox] > 0.0 {
                                    *v = gy_p[oy * ow + ox];
                                }
                            }
                        }
                        gb[o] += dz[0][0] + dz[0][1] + dz[1][0] + dz[1][1];
                        // A dz: rows [d0, d0 + d1, d0 - d1, -d1] of each column.
                        let col = |j: usize| {
                            let (a, b) = (dz[0][j], dz[1][j]);
                            [a, a + b, a - b, -b]
                        };
                        let (c0, c1) = (col(0), col(1));
                        let tile = (n * th + ty) * tw + tx;
                        for i in 0..4 {
                            let (a, b) = (c0[i], c1[i]);
                            for (j, val) in [a, a + b, a - b, -b].iter().enumerate() {
                                dm[((i * 4 + j) * o_n + o) * t_n + tile] = *val;
                            }
                        }
                    }
                }
            }
        }
        let mut du = vec![0.0f32; if wanted.weight { 16 * o_n * c_n } else { 0 }];
        let mut buf = vec![0.0f32; 16 * c_n * t_n];
        if wanted.weight {
            let x_run = &x[first * s.input_len()..(first + images) * s.input_len()];
            transform_input(s, x_run, images, &mut buf);
            // dU[ξ] [O, C] = dM[ξ] [O, T] · V[ξ]ᵀ [T, C]
            gemm16(o_n, c_n, t_n, &mut du, false, &dm, (t_n, 1), &buf, (1, t_n));
        }
        if let Some(gx_run) = gx_run {
            // dV[ξ] [C, T] = U[ξ]ᵀ [C, O] · dM[ξ] [O, T]
            gemm16(c_n, t_n, o_n, &mut buf, false, &u, (1, c_n), &dm, (t_n, 1));
            scatter_input_grad(s, &buf, images, gx_run);
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
