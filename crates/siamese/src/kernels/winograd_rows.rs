//! The Winograd F(2x2, 3x3) tile transforms of [`super::winograd`], one row of tiles at a time so
//! that every inner loop runs over consecutive tiles (contiguous, vectorisable).
//!
//! Planes are held "split": even and odd columns apart (`even[y][k] = p[y][2k]`,
//! `odd[y][k] = p[y][2k + 1]`, `k < TW + 1`), zero-padded to `2·TH + 2` rows, so a tile's four
//! columns `2tx .. 2tx + 3` are `even[tx], odd[tx], even[tx + 1], odd[tx + 1]`.
//! Transformed values of a tile row are written ξ-major: `out[ξ·TW + tx]`, `ξ = 4i + j`.

/// A zero-padded plane split into even and odd columns.
#[derive(Debug, Default)]
pub struct SplitPlane {
    pub even: Vec<f32>,
    pub odd: Vec<f32>,
    /// Row length of `even` and `odd` (`TW + 1`).
    pub half: usize,
}

impl SplitPlane {
    /// Sizes the plane for `rows` rows of `half` even and odd columns, all zero.
    pub fn reset(&mut self, rows: usize, half: usize) {
        self.half = half;
        for v in [&mut self.even, &mut self.odd] {
            v.clear();
            v.resize(rows * half, 0.0);
        }
    }

    /// Loads plane `p [h, w]` (`w ≤ 2·half`), leaving the padding zero.
    pub fn load(&mut self, p: &[f32], h: usize, w: usize) {
        for y in 0..h {
            let row = &p[y * w..(y + 1) * w];
            let (e, o) = (
                &mut self.even[y * self.half..(y + 1) * self.half],
                &mut self.odd[y * self.half..(y + 1) * self.half],
            );
            for (k, pair) in row.chunks(2).enumerate() {
                e[k] = pair[0];
                if pair.len() == 2 {
                    o[k] = pair[1];
                }
            }
        }
    }

    /// Even and odd halves of row `y`.
    pub fn row(&self, y: usize) -> (&[f32], &[f32]) {
        let r = y * self.half..(y + 1) * self.half;
        (&self.even[r.clone()], &self.odd[r])
    }

    /// Adds the top-left `h × w` of the plane onto `p [h, w]`.
    pub fn add_into(&self, p: &mut [f32], h: usize, w: usize) {
        for y in 0..h {
            let (e, o) = self.row(y);
            for (k, pair) in p[y * w..(y + 1) * w].chunks_mut(2).enumerate() {
                pair[0] += e[k];
                if pair.len() == 2 {
                    pair[1] += o[k];
                }
            }
        }
    }
}

/// Row `i` of `Bᵀ [r0; r1; r2; r3]`, element-wise over `out`.
fn bt_rows(i: usize, r: [&[f32]; 4], out: &mut [f32]) {
    let n = out.len();
    let (r0, r1, r2, r3) = (&r[0][..n], &r[1][..n], &r[2][..n], &r[3][..n]);
    match i {
        0 => (0..n).for_each(|k| out[k] = r0[k] - r2[k]),
        1 => (0..n).for_each(|k| out[k] = r1[k] + r2[k]),
        2 => (0..n).for_each(|k| out[k] = r2[k] - r1[k]),
        _ => (0..n).for_each(|k| out[k] = r1[k] - r3[k]),
    }
}

/// `V = Bᵀ d B` of the tiles of tile row `ty` of `plane`, into `out [16, tw]`; `t` is scratch.
pub fn input_row(plane: &SplitPlane, ty: usize, tw: usize, t: &mut Vec<f32>, out: &mut [f32]) {
    let half = tw + 1;
    let rows: [(&[f32], &[f32]); 4] = std::array::from_fn(|i| plane.row(2 * ty + i));
    t.clear();
    t.resize(2 * half, 0.0);
    let (te, to) = t.split_at_mut(half);
    for i in 0..4 {
        // Bᵀ on the rows, for the even and the odd columns.
        bt_rows(i, std::array::from_fn(|r| rows[r].0), te);
        bt_rows(i, std::array::from_fn(|r| rows[r].1), to);
        // · B on the columns: [c0 - c2, c1 + c2, c2 - c1, c1 - c3] with c = (te[tx], to[tx],
        // te[tx + 1], to[tx + 1]).
        let (o0, rest) = out[i * 4 * tw..(i + 1) * 4 * tw].split_at_mut(tw);
        let (o1, rest) = rest.split_at_mut(tw);
        let (o2, o3) = rest.split_at_mut(tw);
        let (e0, e1, d0, d1) = (&te[..tw], &te[1..=tw], &to[..tw], &to[1..=tw]);
        for tx in 0..tw {
            o0[tx] = e0[tx] - e1[tx];
            o1[tx] = d0[tx] + e1[tx];
            o2[tx] = e1[tx] - d0[tx];
            o3[tx] = d0[tx] - d1[tx];
        }
    }
}

/// `Y = Aᵀ M A` of one tile row: `m[ξ]` holds `tw` tiles; writes `relu(Y + bias)` into the
/// two output rows `top`, `bottom` (each `2·tw` long).
pub fn output_row(m: &[&[f32]; 16], tw: usize, bias: f32, top: &mut [f32], bottom: &mut [f32]) {
    let m: [&[f32]; 16] = std::array::from_fn(|xi| &m[xi][..tw]);
    let (top, bottom) = (&mut top[..2 * tw], &mut bottom[..2 * tw]);
    for tx in 0..tw {
        let v = |xi: usize| m[xi][tx];
        // Aᵀ on the rows: r0 = m0 + m1 + m2, r1 = m1 - m2 - m3 (per column j).
        let r0: [f32; 4] = std::array::from_fn(|j| v(j) + v(4 + j) + v(8 + j));
        let r1: [f32; 4] = std::array::from_fn(|j| v(4 + j) - v(8 + j) - v(12 + j));
        top[2 * tx] = (r0[0] + r0[1] + r0[2] + bias).max(0.0);
        top[2 * tx + 1] = (r0[1] - r0[2] - r0[3] + bias).max(0.0);
        bottom[2 * tx] = (r1[0] + r1[1] + r1[2] + bias).max(0.0);
        bottom[2 * tx + 1] = (r1[1] - r1[2] - r1[3] + bias).max(0.0);
    }
}

/// `dM = A dZ Aᵀ` of tile row `ty` of the split output gradient `dz`, into `out [16, tw]`.
pub fn output_grad_row(dz: &SplitPlane, ty: usize, tw: usize, out: &mut [f32]) {
    let (a0, a1) = dz.row(2 * ty);
    let (b0, b1) = dz.row(2 * ty + 1);
    let (a0, a1, b0, b1) = (&a0[..tw], &a1[..tw], &b0[..tw], &b1[..tw]);
    let mut chunks = out.chunks_exact_mut(tw);
    let mut next = || chunks.next().expect("out holds 16 rows of tw");
    // A on the rows: p_j = [z0j, z0j + z1j, z0j - z1j, -z1j]; then Aᵀ on the columns:
    // dM[i] = [p0, p0 + p1, p0 - p1, -p1].
    for i in 0..4 {
        let p = |z0: f32, z1: f32| match i {
            0 => z0,
            1 => z0 + z1,
            2 => z0 - z1,
            _ => -z1,
        };
        let (o0, o1, o2, o3) = (next(), next(), next(), next());
        for tx in 0..tw {
            let (p0, p1) = (p(a0[tx], b0[tx]), p(a1[tx], b1[tx]));
            o0[tx] = p0;
            o1[tx] = p0 + p1;
            o2[tx] = p0 - p1;
            o3[tx] = -p1;
        }
    }
}

/// Adds `B dV Bᵀ` of one tile row (`dv[ξ]` holds `tw` tiles) onto rows `2ty .. 2ty + 3` of the
/// split input gradient `gx` (neighbouring tiles overlap by two rows and columns); `q` is scratch.
pub fn input_grad_row(
    dv: &[&[f32]; 16],
    ty: usize,
    tw: usize,
    q: &mut Vec<f32>,
    gx: &mut SplitPlane,
) {
    let dv: [&[f32]; 16] = std::array::from_fn(|xi| &dv[xi][..tw]);
    let half = gx.half;
    q.clear();
    q.resize(4 * tw, 0.0);
    let (q0, rest) = q.split_at_mut(tw);
    let (q1, rest) = rest.split_at_mut(tw);
    let (q2, q3) = rest.split_at_mut(tw);
    for i in 0..4 {
        // B on the rows: t_j = [v0j, v1j - v2j + v3j, v1j + v2j - v0j, -v3j][i]; then Bᵀ on the
        // columns: q = [t0, t1 - t2 + t3, t1 + t2 - t0, -t3], added at columns 2tx .. 2tx + 3.
        let t = |j: usize, tx: usize| match i {
            0 => dv[j][tx],
            1 => dv[4 + j][tx] - dv[8 + j][tx] + dv[12 + j][tx],
            2 => dv[4 + j][tx] + dv[8 + j][tx] - dv[j][tx],
            _ => -dv[12 + j][tx],
        };
        for tx in 0..tw {
            let (t0, t1, t2, t3) = (t(0, tx), t(1, tx), t(2, tx), t(3, tx));
            q0[tx] = t0;
            q1[tx] = t1 - t2 + t3;
            q2[tx] = t1 + t2 - t0;
            q3[tx] = -t3;
        }
        let y = 2 * ty + i;
        let r = y * half..y * half + tw + 1;
        let (e, o) = (&mut gx.even[r.clone()], &mut gx.odd[r]);
        for tx in 0..tw {
            e[tx] += q0[tx];
            o[tx] += q1[tx];
        }
        for tx in 0..tw {
            e[tx + 1] += q2[tx];
            o[tx + 1] += q3[tx];
        }
    }
}
