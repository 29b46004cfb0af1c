//! dlib's face ResNet (`model::face_resnet`) as one pass per chip in channels-last (HWC) layout:
//! the stem, the max-pool, every residual block and the pooled dense layer run image by image on
//! one worker, so a chip's activations (at most 72·72·32 floats after the stem) stay in that
//! core's cache instead of going to memory for the whole batch between layers.
//!
//! Why channels-last: a 3x3 "same" convolution then needs no im2col copy at all. Activations
//! are kept zero-bordered (`(h+2) × (w+2)` pixels of `C` channels, [`Padded`]); for kernel row
//! `ky`, the three input pixels an output pixel reads are `3·C` contiguous floats, and output
//! pixel `g = y·(w+2) + x` starts them at pixel `g + ky·(w+2)`: a matrix with row stride `C`
//! (rows overlap) that the GEMM reads in place. Three accumulating GEMMs (`K = 3·C`) make the
//! convolution, over a grid two columns wider than the image (the extra columns are discarded:
//! 2/(w+2) more work, so layers narrower than [`SHIFTED_MIN_WIDTH`] take a per-pixel copy of the
//! nine taps instead, one GEMM with `K = 9·C`). The GEMM starts from the bias (plus the skip),
//! and ReLU goes with the copy into the next bordered buffer.
//!
//! Shapes: chips `[150·150·3]` RGB bytes, row-major HWC; one image's activations `[h·w, c]`;
//! output `[128]` per chip. Weights come folded (batch-norm in the bias) in PyTorch's
//! `[out, in, k, k]` and are stored as `[(ky·k + kx)·in + i, out]`.

use rayon::prelude::*;

use super::buffer::{at_least, fill_rows};
use super::gemm::gemm_strided;
use super::simd::vectorize;

/// Layers narrower than this take the nine-tap copy (the shifted grid's two extra columns would
/// cost more than 2/16 of the work).
pub const SHIFTED_MIN_WIDTH: usize = 16;

/// Output rows of the stem one im2col strip holds (8 rows · 72 pixels · 147 floats ≈ 340 KiB).
const STEM_STRIP_ROWS: usize = 8;

/// A `k × k` convolution + bias (batch-norm folded), weights `[(ky·k + kx)·in + i, out]`.
#[derive(Debug, Clone)]
pub struct ConvHwc {
    pub in_channels: usize,
    pub out_channels: usize,
    pub k: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl ConvHwc {
    /// From PyTorch's `[out, in, k, k]` weight (row-major) and `[out]` bias.
    pub fn from_oihw(weight: &[f32], bias: &[f32], k: usize) -> ConvHwc {
        let out_channels = bias.len();
        let in_channels = weight.len() / (out_channels * k * k).max(1);
        assert_eq!(weight.len(), out_channels * in_channels * k * k);
        let mut w = vec![0.0; weight.len()];
        for o in 0..out_channels {
            for i in 0..in_channels {
                for t in 0..k * k {
                    w[(t * in_channels + i) * out_channels + o] =
                        weight[(o * in_channels + i) * k * k + t];
                }
            }
        }
        ConvHwc {
            in_channels,
            out_channels,
            k,
            weight: w,
            bias: bias.to_vec(),
        }
    }

    /// `dst [m, out] += col [m, k·k·in] · W` (`col` rows `k·k·in` long, contiguous).
    fn accumulate_im2col(&self, col: &[f32], m: usize, dst: &mut [f32]) {
        let (kk, n) = (self.k * self.k * self.in_channels, self.out_channels);
        gemm_strided(
            m,
            n,
            kk,
            &mut dst[..m * n],
            true,
            col,
            (kk, 1),
            &self.weight,
            (n, 1),
        );
    }
}

/// A zero-bordered activation: `(h+2) × (w+2)` pixels of `c` channels, then [`SLACK`] zero
/// pixels (the shifted GEMM's last discarded column reads two pixels past the border).
struct Padded<'a> {
    h: usize,
    w: usize,
    c: usize,
    data: &'a mut [f32],
}

/// Zero pixels after a [`Padded`] buffer's bottom border.
const SLACK: usize = 2;

fn padded_len(h: usize, w: usize, c: usize) -> usize {
    ((h + 2) * (w + 2) + SLACK) * c
}

impl<'a> Padded<'a> {
    /// Takes `buf` for an `h × w × c` activation and zeroes it (border included).
    fn zeroed(buf: &'a mut Vec<f32>, h: usize, w: usize, c: usize) -> Padded<'a> {
        let data = at_least(buf, padded_len(h, w, c));
        vectorize(
            #[inline(always)]
            || data.iter_mut().for_each(|v| *v = 0.0),
        );
        Padded { h, w, c, data }
    }

    /// Index of interior pixel `(y, x)`'s first channel.
    #[inline(always)]
    fn at(&self, y: usize, x: usize) -> usize {
        ((y + 1) * (self.w + 2) + x + 1) * self.c
    }

    fn pixel(&self, y: usize, x: usize) -> &[f32] {
        let i = self.at(y, x);
        &self.data[i..i + self.c]
    }

    /// Writes every interior pixel `(y, x)` with `f(y, x, channels)`, in code compiled for our
    /// SIMD level ([`vectorize`]).
    #[inline(always)]
    fn fill_interior(&mut self, f: impl Fn(usize, usize, &mut [f32])) {
        let (h, w, c) = (self.h, self.w, self.c);
        vectorize(
            #[inline(always)]
            || {
                for y in 0..h {
                    for x in 0..w {
                        let i = self.at(y, x);
                        f(y, x, &mut self.data[i..i + c]);
                    }
                }
            },
        );
    }
}

/// Where a convolution's outputs sit in its grid buffer: pixel `(y, x)` at row `y·pitch + x`.
#[derive(Debug, Clone, Copy)]
struct Grid {
    h: usize,
    w: usize,
    pitch: usize,
}

impl Grid {
    fn rows(&self) -> usize {
        (self.h - 1) * self.pitch + self.w
    }
}

/// Buffers of one worker, kept from chip to chip.
#[derive(Default)]
struct Scratch {
    input: Vec<f32>,
    stem: Vec<f32>,
    col: Vec<f32>,
    grid: Vec<f32>,
    current: Vec<f32>,
    mid: Vec<f32>,
    next: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The im2col of a channels-last image, one copy per kernel row: row `y·ow + x` of `col`
/// (`oh·ow` rows of `taps·run` floats) is the `taps` runs of `run` contiguous floats of `src`
/// that start at `start(y, x, ky)`, side by side.
fn gather_runs(
    src: &[f32],
    col: &mut [f32],
    (oh, ow): (usize, usize),
    (taps, run): (usize, usize),
    start: impl Fn(usize, usize, usize) -> usize,
) {
    let patch = taps * run;
    for y in 0..oh {
        for x in 0..ow {
            let dst = &mut col[(y * ow + x) * patch..][..patch];
            for ky in 0..taps {
                let from = start(y, x, ky);
                dst[ky * run..(ky + 1) * run].copy_from_slice(&src[from..from + run]);
            }
        }
    }
}

/// A 3x3 "same" convolution (stride 1, padding 1) of `src` into `grid`, whose rows the caller
/// has prefilled (bias, plus the skip) through `prefill(y, x, row)`; returns where the outputs sit.
fn conv3x3_same(
    conv: &ConvHwc,
    src: &Padded,
    col: &mut Vec<f32>,
    grid: &mut Vec<f32>,
    prefill: impl Fn(usize, usize, &mut [f32]),
) -> Grid {
    let (h, w, c, n) = (src.h, src.w, src.c, conv.out_channels);
    debug_assert_eq!((conv.k, conv.in_channels), (3, c));
    let pitch = if w >= SHIFTED_MIN_WIDTH { w + 2 } else { w };
    let g = Grid { h, w, pitch };
    let m = g.rows();
    let grid = at_least(grid, m * n);
    vectorize(
        #[inline(always)]
        || {
            for y in 0..h {
                for x in 0..w {
                    prefill(y, x, &mut grid[(y * pitch + x) * n..][..n]);
                }
            }
        },
    );
    if pitch == w + 2 {
        // The discarded columns (x = w, w+1) get whatever their rows sum to; nobody reads them.
        for ky in 0..3 {
            gemm_strided(
                m,
                n,
                3 * c,
                grid,
                true,
                &src.data[ky * (w + 2) * c..],
                (c, 1),
                &conv.weight[ky * 3 * c * n..(ky + 1) * 3 * c * n],
                (n, 1),
            );
        }
    } else {
        let col = at_least(col, h * w * 9 * c);
        gather_runs(src.data, col, (h, w), (3, 3 * c), |y, x, ky| {
            ((y + ky) * (w + 2) + x) * c
        });
        conv.accumulate_im2col(col, m, grid);
    }
    g
}

/// `dst`'s interior pixel `(y, x)` = ReLU(`grid`'s); `dst` is `g`'s size.
fn relu_into(grid: &[f32], g: Grid, dst: &mut Padded) {
    debug_assert_eq!((dst.h, dst.w), (g.h, g.w));
    let c = dst.c;
    dst.fill_interior(|y, x, out| {
        let from = &grid[(y * g.pitch + x) * c..][..c];
        out.iter_mut().zip(from).for_each(|(d, v)| *d = v.max(0.0));
    });
}

/// A residual block: `conv2(relu(conv1(x)))` plus `x`, ReLU; `down` blocks start with a 3x3/2
/// "valid" convolution and add a 2x2 average pool of `x` (zero channels appended when their
/// number doubles; the convolution branch zero-padded at the bottom/right when it is one short
/// of the pool's side).
#[derive(Debug, Clone)]
pub struct ResidualHwc {
    pub conv1: ConvHwc,
    pub conv2: ConvHwc,
    pub down: bool,
}

/// The network: stem (7x7/2 valid + ReLU), 3x3/2 max-pool, residual blocks, global mean, the
/// dense `[128, 256]` matrix (no bias).
#[derive(Debug, Clone)]
pub struct FusedFaceResNet {
    pub stem: ConvHwc,
    pub blocks: Vec<ResidualHwc>,
    /// `[out, in]` row-major.
    pub fc: Vec<f32>,
    pub rgb_mean: [f32; 3],
    /// Input side (150).
    pub side: usize,
}

impl FusedFaceResNet {
    /// Length of one embedding.
    pub fn dim(&self) -> usize {
        self.fc.len() / self.blocks.last().map_or(1, |b| b.conv2.out_channels)
    }

    /// Embeds `chips` (each `side·side·3` RGB bytes, HWC) into `out` (`dim` values a chip),
    /// one chip per rayon job.
    pub fn embed_chips(&self, chips: &[u8], out: &mut [f32]) {
        let per_chip = self.side * self.side * 3;
        let dim = self.dim();
        assert_eq!(chips.len() % per_chip, 0);
        assert_eq!(out.len(), chips.len() / per_chip * dim);
        chips
            .par_chunks_exact(per_chip)
            .zip(out.par_chunks_exact_mut(dim))
            .for_each(|(chip, out)| {
                SCRATCH.with(|s| self.embed_one(chip, out, &mut s.borrow_mut()));
            });
    }

    fn embed_one(&self, chip: &[u8], out: &mut [f32], s: &mut Scratch) {
        let side = self.side;
        let input = at_least(&mut s.input, side * side * 3);
        for (px, dst) in chip.chunks_exact(3).zip(input.chunks_exact_mut(3)) {
            for ch in 0..3 {
                dst[ch] = (px[ch] as f32 - self.rgb_mean[ch]) / 256.0;
            }
        }
        // Stem: 7x7/2 valid, in strips of output rows through an im2col buffer.
        let stem = &self.stem;
        let (k, sc) = (stem.k, stem.out_channels);
        let so = (side - k) / 2 + 1;
        let kk = k * k * 3;
        let stem_out = at_least(&mut s.stem, so * so * sc);
        let mut oy = 0;
        while oy < so {
            let end = (oy + STEM_STRIP_ROWS).min(so);
            let m = (end - oy) * so;
            let col = at_least(&mut s.col, m * kk);
            gather_runs(input, col, (end - oy, so), (k, k * 3), |y, x, ky| {
                ((2 * (oy + y) + ky) * side + 2 * x) * 3
            });
            let dst = &mut stem_out[oy * so * sc..end * so * sc];
            vectorize(
                #[inline(always)]
                || fill_rows(dst, &stem.bias),
            );
            stem.accumulate_im2col(col, m, dst);
            vectorize(
                #[inline(always)]
                || dst.iter_mut().for_each(|v| *v = v.max(0.0)),
            );
            oy = end;
        }
        // 3x3/2 max-pool, valid, into the first bordered activation.
        let ph = (so - 3) / 2 + 1;
        let (mut cur_buf, mut next_buf) =
            (std::mem::take(&mut s.current), std::mem::take(&mut s.next));
        let mut current = Padded::zeroed(&mut cur_buf, ph, ph, sc);
        current.fill_interior(|y, x, dst| {
            dst.copy_from_slice(&stem_out[((2 * y) * so + 2 * x) * sc..][..sc]);
            for t in 1..9 {
                let (dy, dx) = (t / 3, t % 3);
                let src = &stem_out[((2 * y + dy) * so + 2 * x + dx) * sc..][..sc];
                dst.iter_mut().zip(src).for_each(|(d, v)| *d = d.max(*v));
            }
        });
        let (mut h, mut c) = (ph, sc);
        for block in &self.blocks {
            let src = Padded {
                h,
                w: h,
                c,
                data: &mut cur_buf[..padded_len(h, h, c)],
            };
            let (oh, oc) = block.forward(&src, s, &mut next_buf);
            std::mem::swap(&mut cur_buf, &mut next_buf);
            (h, c) = (oh, oc);
        }
        // Global mean, then the dense layer.
        let last = Padded {
            h,
            w: h,
            c,
            data: &mut cur_buf[..padded_len(h, h, c)],
        };
        let mut mean = vec![0.0f32; c];
        for y in 0..h {
            for x in 0..h {
                mean.iter_mut()
                    .zip(last.pixel(y, x))
                    .for_each(|(m, v)| *m += v);
            }
        }
        let scale = 1.0 / (h * h) as f32;
        for (o, row) in out.iter_mut().zip(self.fc.chunks_exact(c)) {
            *o = row.iter().zip(&mean).map(|(w, m)| w * m).sum::<f32>() * scale;
        }
        s.current = cur_buf;
        s.next = next_buf;
    }
}

impl ResidualHwc {
    /// The block on `x` into `next`; returns the output's side and channels.
    fn forward(&self, x: &Padded, s: &mut Scratch, next: &mut Vec<f32>) -> (usize, usize) {
        if self.down {
            self.down_block(x, s, next)
        } else {
            self.same_block(x, s, next)
        }
    }

    /// `relu(conv2(relu(conv1(x))) + x)`; returns the output's side and channels.
    fn same_block(&self, x: &Padded, s: &mut Scratch, next: &mut Vec<f32>) -> (usize, usize) {
        let (h, c) = (x.h, x.c);
        let (b1, b2) = (&self.conv1.bias, &self.conv2.bias);
        let g = conv3x3_same(&self.conv1, x, &mut s.col, &mut s.grid, |_, _, row| {
            fill_rows(row, b1)
        });
        let mut mid = Padded::zeroed(&mut s.mid, h, h, c);
        relu_into(&s.grid, g, &mut mid);
        let g = conv3x3_same(&self.conv2, &mid, &mut s.col, &mut s.grid, |y, xx, row| {
            row.iter_mut()
                .zip(b2.iter().zip(x.pixel(y, xx)))
                .for_each(|(d, (b, v))| *d = b + v)
        });
        let mut out = Padded::zeroed(next, h, h, c);
        relu_into(&s.grid, g, &mut out);
        (h, c)
    }

    /// The down block (3x3/2 valid, then 3x3 same, plus the pooled input).
    fn down_block(&self, x: &Padded, s: &mut Scratch, next: &mut Vec<f32>) -> (usize, usize) {
        let (h, c) = (x.h, x.c);
        let (c1, oc) = (&self.conv1, self.conv1.out_channels);
        let ho = (h - 3) / 2 + 1;
        // conv1 through a nine-tap copy: pixel (oy, ox) reads x's interior from (2·oy, 2·ox).
        let col = at_least(&mut s.col, ho * ho * 9 * c);
        gather_runs(x.data, col, (ho, ho), (3, 3 * c), |oy, ox, ky| {
            x.at(2 * oy + ky, 2 * ox)
        });
        let grid = at_least(&mut s.grid, ho * ho * oc);
        vectorize(
            #[inline(always)]
            || fill_rows(grid, &c1.bias),
        );
        c1.accumulate_im2col(col, ho * ho, grid);
        let mut mid = Padded::zeroed(&mut s.mid, ho, ho, oc);
        relu_into(
            &s.grid,
            Grid {
                h: ho,
                w: ho,
                pitch: ho,
            },
            &mut mid,
        );
        let b2 = &self.conv2.bias;
        let g = conv3x3_same(&self.conv2, &mid, &mut s.col, &mut s.grid, |_, _, row| {
            fill_rows(row, b2)
        });
        // The pooled input's side; the convolution branch is zero beyond its own.
        let hp = h / 2;
        let mut out = Padded::zeroed(next, hp, hp, oc);
        let grid = &s.grid;
        out.fill_interior(|y, xx, dst| {
            if y < ho && xx < ho {
                dst.copy_from_slice(&grid[(y * g.pitch + xx) * oc..][..oc]);
            }
            let p = [
                x.pixel(2 * y, 2 * xx),
                x.pixel(2 * y, 2 * xx + 1),
                x.pixel(2 * y + 1, 2 * xx),
                x.pixel(2 * y + 1, 2 * xx + 1),
            ];
            for (ch, d) in dst[..c].iter_mut().enumerate() {
                *d += (p[0][ch] + p[1][ch] + p[2][ch] + p[3][ch]) * 0.25;
            }
            dst.iter_mut().for_each(|v| *v = v.max(0.0));
        });
        (hp, oc)
    }
}
