//! MobileNetV2's feature extractor as one pass per image in channels-last (HWC) layout: the
//! stem, every inverted residual block (expand 1x1 → depthwise 3x3 → project 1x1, plus the skip)
//! and the head 1x1 with global average pooling, each block in strips of output rows so that
//! its expanded activations (6x the block's channels) live only in a strip-sized buffer in the
//! worker's cache instead of going to memory for the whole batch and back.
//!
//! Why channels-last: the 1x1 convolutions are then plain products of row-major matrices
//! (`[pixels, C_in] · [C_in, C_out]`), and the depthwise filter runs across the channels of a
//! pixel in vector registers (every channel count of MobileNetV2 is a multiple of 16), with no
//! bordered copy of each plane and no even/odd split at stride 2: a tap outside the image is
//! skipped. What the layer-by-layer path ([`super::conv_infer`], [`super::depthwise`]) spent on
//! memory traffic, zero fills and copies is gone; the products are the same GEMMs.
//!
//! Shapes: input images `[N, 3, H, W]` (NCHW, as everywhere else); inside one image every
//! activation is `[h·w, c]`; output `[N, F]` pooled features. Weights are folded (BatchNorm in
//! the bias) and stored transposed, `[C_in, C_out]`, at construction.

use rayon::prelude::*;

use super::gemm::gemm_strided;
use super::simd::vectorize;

/// Bytes of expanded activations one strip may hold (with its depthwise output, it stays in a
/// core's L2 cache next to the weights).
const STRIP_BYTES: usize = 192 * 1024;

/// A 1x1 convolution + bias, `[pixels, in] → [pixels, out]`.
#[derive(Debug, Clone)]
pub struct Pointwise {
    in_channels: usize,
    out_channels: usize,
    /// `[in, out]`, row-major.
    weight_t: Vec<f32>,
    bias: Vec<f32>,
}

impl Pointwise {
    /// From PyTorch's `[out, in, 1, 1]` weight (row-major) and `[out]` bias.
    pub fn from_oihw(weight: &[f32], bias: &[f32]) -> Pointwise {
        let out_channels = bias.len();
        let in_channels = weight.len() / out_channels.max(1);
        assert_eq!(weight.len(), in_channels * out_channels);
        let mut weight_t = vec![0.0; weight.len()];
        for o in 0..out_channels {
            for i in 0..in_channels {
                weight_t[i * out_channels + o] = weight[o * in_channels + i];
            }
        }
        Pointwise {
            in_channels,
            out_channels,
            weight_t,
            bias: bias.to_vec(),
        }
    }

    /// `dst [pixels, out] = start + src [pixels, in] · W` where `dst` already holds `start`
    /// (the bias, or bias + skip).
    fn accumulate(&self, src: &[f32], pixels: usize, dst: &mut [f32]) {
        let (k, n) = (self.in_channels, self.out_channels);
        gemm_strided(
            pixels,
            n,
            k,
            &mut dst[..pixels * n],
            true,
            src,
            (k, 1),
            &self.weight_t,
            (n, 1),
        );
    }

    /// `dst [pixels, out] = src · W + b`, then ReLU6 when `relu6`.
    fn forward(&self, src: &[f32], pixels: usize, dst: &mut [f32], relu6: bool) {
        let dst = &mut dst[..pixels * self.out_channels];
        vectorize(
            #[inline(always)]
            || fill_rows(dst, &self.bias),
        );
        self.accumulate(src, pixels, dst);
        if relu6 {
            vectorize(
                #[inline(always)]
                || clamp6(dst),
            );
        }
    }
}

/// A depthwise 3x3 convolution + bias + ReLU6 with padding 1, stride 1 or 2.
#[derive(Debug, Clone)]
pub struct Depthwise3x3 {
    channels: usize,
    stride: usize,
    /// `[9, C]`: tap `ky·3 + kx` of every channel, side by side.
    taps: Vec<f32>,
    bias: Vec<f32>,
}

impl Depthwise3x3 {
    /// From PyTorch's `[C, 1, 3, 3]` weight and `[C]` bias.
    pub fn from_c1kk(weight: &[f32], bias: &[f32], stride: usize) -> Depthwise3x3 {
        let channels = bias.len();
        assert_eq!(weight.len(), channels * 9);
        assert!(stride == 1 || stride == 2, "stride {stride}");
        let mut taps = vec![0.0; weight.len()];
        for c in 0..channels {
            for t in 0..9 {
                taps[t * channels + c] = weight[c * 9 + t];
            }
        }
        Depthwise3x3 {
            channels,
            stride,
            taps,
            bias: bias.to_vec(),
        }
    }

    fn out_len(&self, n: usize) -> usize {
        (n + 2 - 3) / self.stride + 1
    }

    /// Output rows `rows` of the filter (inlined into [`vectorize`]'s closure, so compiled for
    /// the CPU's vector level): `src` holds input rows `first..` of an
    /// `in_h × in_w × C` activation; `dst` receives `rows.len() × out_w × C`.
    #[inline(always)]
    fn rows(
        &self,
        src: &[f32],
        first: usize,
        (in_h, in_w): (usize, usize),
        rows: std::ops::Range<usize>,
        dst: &mut [f32],
    ) {
        let (c, s) = (self.channels, self.stride);
        let out_w = self.out_len(in_w);
        let fma = super::simd::level() >= super::simd::SimdLevel::Avx2;
        if c % 16 == 0 {
            let shape = RowShape {
                first,
                in_h,
                in_w,
                out_w,
            };
            return if fma {
                self.rows_by_16::<true>(src, shape, rows, dst)
            } else {
                self.rows_by_16::<false>(src, shape, rows, dst)
            };
        }
        // The taps that land inside the image, with where their input pixel starts in `src`.
        let mut valid = [(0usize, 0usize); 9];
        for (r, oy) in rows.clone().enumerate() {
            for ox in 0..out_w {
                let mut n = 0;
                for ky in 0..3 {
                    let iy = (oy * s + ky) as isize - 1;
                    if iy < 0 || iy as usize >= in_h {
                        continue;
                    }
                    let row = (iy as usize - first) * in_w;
                    for kx in 0..3 {
                        let ix = (ox * s + kx) as isize - 1;
                        if ix < 0 || ix as usize >= in_w {
                            continue;
                        }
                        valid[n] = (ky * 3 + kx, (row + ix as usize) * c);
                        n += 1;
                    }
                }
                let out = &mut dst[(r * out_w + ox) * c..][..c];
                depthwise_pixel(&self.taps, &self.bias, src, &valid[..n], out, fma);
            }
        }
    }
}

/// `acc += w · x[..L]`, lane by lane: a fused multiply-add when `FMA` (the AVX2 and AVX-512
/// paths), else a multiply and an add (`mul_add` without the instruction is a library call).
#[inline(always)]
fn madd<const L: usize, const FMA: bool>(acc: &mut [f32; L], w: &[f32; L], x: &[f32]) {
    let x: &[f32; L] = x[..L].try_into().unwrap();
    for j in 0..L {
        acc[j] = if FMA {
            w[j].mul_add(x[j], acc[j])
        } else {
            acc[j] + w[j] * x[j]
        };
    }
}

/// Where a strip's rows sit: `src` holds input rows `first..` of an `in_h × in_w` activation,
/// and the output is `out_w` wide.
#[derive(Debug, Clone, Copy)]
struct RowShape {
    first: usize,
    in_h: usize,
    in_w: usize,
    out_w: usize,
}

impl Depthwise3x3 {
    /// [`Depthwise3x3::rows`] when the channels are a multiple of 16 (all of MobileNetV2's):
    /// 16 channels at a time across a whole output row, so the nine taps' weights for those
    /// channels stay in registers and each tap of a pixel is one load and one multiply-add.
    #[inline(always)]
    fn rows_by_16<const FMA: bool>(
        &self,
        src: &[f32],
        RowShape {
            first,
            in_h,
            in_w,
            out_w,
        }: RowShape,
        rows: std::ops::Range<usize>,
        dst: &mut [f32],
    ) {
        const L: usize = 16;
        let (c, s) = (self.channels, self.stride);
        for (r, oy) in rows.enumerate() {
            // The kernel rows inside the image and where their input rows start in `src`.
            let mut ky_rows = [(0usize, 0usize); 3];
            let mut n = 0;
            for ky in 0..3 {
                let iy = (oy * s + ky) as isize - 1;
                if iy >= 0 && (iy as usize) < in_h {
                    ky_rows[n] = (ky, (iy as usize - first) * in_w * c);
                    n += 1;
                }
            }
            let ky_rows = &ky_rows[..n];
            let out_row = &mut dst[r * out_w * c..(r + 1) * out_w * c];
            for c0 in (0..c).step_by(L) {
                let w: [[f32; L]; 9] =
                    std::array::from_fn(|t| self.taps[t * c + c0..][..L].try_into().unwrap());
                let b: [f32; L] = self.bias[c0..c0 + L].try_into().unwrap();
                for ox in 0..out_w {
                    let mut acc = b;
                    // Input column of tap kx: ox·s + kx − 1; all three inside away from the edges.
                    let x0 = (ox * s) as isize - 1;
                    let interior = x0 >= 0 && (x0 as usize) + 2 < in_w;
                    if interior && n == 3 {
                        // Most pixels: all nine taps, straight-line.
                        let at = x0 as usize * c + c0;
                        let r0 = &src[ky_rows[0].1 + at..][..2 * c + L];
                        let r1 = &src[ky_rows[1].1 + at..][..2 * c + L];
                        let r2 = &src[ky_rows[2].1 + at..][..2 * c + L];
                        for kx in 0..3 {
                            madd::<L, FMA>(&mut acc, &w[kx], &r0[kx * c..]);
                            madd::<L, FMA>(&mut acc, &w[3 + kx], &r1[kx * c..]);
                            madd::<L, FMA>(&mut acc, &w[6 + kx], &r2[kx * c..]);
                        }
                        let out: &mut [f32; L] =
                            (&mut out_row[ox * c + c0..][..L]).try_into().unwrap();
                        for j in 0..L {
                            out[j] = acc[j].clamp(0.0, 6.0);
                        }
                        continue;
                    }
                    for &(ky, base) in ky_rows {
                        for kx in 0..3 {
                            let ix = x0 + kx as isize;
                            if !interior && (ix < 0 || ix as usize >= in_w) {
                                continue;
                            }
                            let x = &src[base + ix as usize * c + c0..];
                            madd::<L, FMA>(&mut acc, &w[ky * 3 + kx], x);
                        }
                    }
                    let out: &mut [f32; L] = (&mut out_row[ox * c + c0..][..L]).try_into().unwrap();
                    for j in 0..L {
                        out[j] = acc[j].clamp(0.0, 6.0);
                    }
                }
            }
        }
    }
}

/// One output pixel of the depthwise filter over all `out.len()` channels: the bias plus each
/// valid tap's weights times its input pixel, then ReLU6. Channels go 64, then 16, at a time in
/// registers (four or one vector of independent sums), the rest one by one. With `fma` (the
/// AVX2 and AVX-512 paths) each tap is one fused multiply-add; without, `mul_add` would be a
/// library call, so it is a multiply and an add.
#[inline(always)]
fn depthwise_pixel(
    taps: &[f32],
    bias: &[f32],
    src: &[f32],
    valid: &[(usize, usize)],
    out: &mut [f32],
    fma: bool,
) {
    #[inline(always)]
    fn chunk<const N: usize, const FMA: bool>(
        c0: usize,
        taps: &[f32],
        bias: &[f32],
        src: &[f32],
        valid: &[(usize, usize)],
        out: &mut [f32],
    ) {
        let c = bias.len();
        let mut acc: [f32; N] = bias[c0..c0 + N].try_into().unwrap();
        for &(t, at) in valid {
            let w: &[f32; N] = taps[t * c + c0..][..N].try_into().unwrap();
            madd::<N, FMA>(&mut acc, w, &src[at + c0..]);
        }
        for j in 0..N {
            out[c0 + j] = acc[j].clamp(0.0, 6.0);
        }
    }
    #[inline(always)]
    fn all<const FMA: bool>(
        taps: &[f32],
        bias: &[f32],
        src: &[f32],
        valid: &[(usize, usize)],
        out: &mut [f32],
    ) {
        let c = out.len();
        let mut c0 = 0;
        while c0 + 64 <= c {
            chunk::<64, FMA>(c0, taps, bias, src, valid, out);
            c0 += 64;
        }
        while c0 + 16 <= c {
            chunk::<16, FMA>(c0, taps, bias, src, valid, out);
            c0 += 16;
        }
        while c0 < c {
            chunk::<1, FMA>(c0, taps, bias, src, valid, out);
            c0 += 1;
        }
    }
    if fma {
        all::<true>(taps, bias, src, valid, out)
    } else {
        all::<false>(taps, bias, src, valid, out)
    }
}

/// The stem: a `k × k` convolution (PyTorch layout `[out, in, k, k]`) with zero padding, bias and
/// ReLU6, from an NCHW image to `[pixels, out]`.
#[derive(Debug, Clone)]
pub struct Stem {
    in_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    /// The unfolded `[in·k·k, out]` weight, so that a pixel's patch times it is the output.
    conv: Pointwise,
}

impl Stem {
    /// From the `[out, in, k, k]` weight, `[out]` bias, stride and padding.
    pub fn new(
        weight: &[f32],
        shape: [usize; 4],
        bias: &[f32],
        stride: usize,
        padding: usize,
    ) -> Stem {
        let [out, in_channels, k, k2] = shape;
        assert_eq!(k, k2);
        assert_eq!(weight.len(), out * in_channels * k * k);
        Stem {
            in_channels,
            kernel: k,
            stride,
            padding,
            conv: Pointwise::from_oihw(weight, bias),
        }
    }

    fn out_len(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output rows `rows` of one image `x [in, h, w]` into `dst [rows·out_w, out]`; `col` is
    /// scratch for the rows' patches.
    fn rows(
        &self,
        x: &[f32],
        (h, w): (usize, usize),
        rows: std::ops::Range<usize>,
        col: &mut Vec<f32>,
        dst: &mut [f32],
    ) {
        let (k, s, p) = (self.kernel, self.stride, self.padding as isize);
        let out_w = self.out_len(w);
        let patch = self.in_channels * k * k;
        let pixels = rows.len() * out_w;
        let col = at_least(col, pixels * patch);
        for (r, oy) in rows.enumerate() {
            for ox in 0..out_w {
                let dst = &mut col[(r * out_w + ox) * patch..][..patch];
                for c in 0..self.in_channels {
                    for ky in 0..k {
                        let iy = (oy * s + ky) as isize - p;
                        let inside_y = iy >= 0 && (iy as usize) < h;
                        for kx in 0..k {
                            let ix = (ox * s + kx) as isize - p;
                            // Every element is written (zero outside the image): the buffer
                            // is reused from strip to strip.
                            dst[(c * k + ky) * k + kx] = if inside_y && ix >= 0 && (ix as usize) < w
                            {
                                x[(c * h + iy as usize) * w + ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
        self.conv.forward(col, pixels, dst, true);
    }
}

/// One inverted residual block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The 1x1 expansion + ReLU6 (none when the expand ratio is 1).
    pub expand: Option<Pointwise>,
    pub depthwise: Depthwise3x3,
    /// The linear 1x1 projection.
    pub project: Pointwise,
    /// Whether the block's input is added to its output (stride 1, same channels).
    pub residual: bool,
}

/// The whole feature extractor: stem, blocks, head 1x1 + ReLU6, global average pool.
#[derive(Debug, Clone)]
pub struct FusedMobileNet {
    pub stem: Stem,
    pub blocks: Vec<Block>,
    pub head: Pointwise,
}

thread_local! {
    /// Each worker's buffers, kept from image to image and from call to call: allocating and
    /// zero-filling them per rayon job (`for_each_init` makes one per split, up to one per
    /// image) cost a tenth of the time.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// A worker's buffers, reused from image to image.
#[derive(Default)]
struct Scratch {
    current: Vec<f32>,
    next: Vec<f32>,
    hidden: Vec<f32>,
    filtered: Vec<f32>,
}

fn at_least(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

#[inline(always)]
fn fill_rows(dst: &mut [f32], row: &[f32]) {
    // A plain loop, not `copy_from_slice`: a `memmove` call per row of 16-320 floats costs
    // more than the copy.
    for d in dst.chunks_exact_mut(row.len()) {
        d.iter_mut().zip(row).for_each(|(d, v)| *d = *v);
    }
}

#[inline(always)]
fn clamp6(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = x.clamp(0.0, 6.0));
}

/// Output rows a strip of a block takes: as many as keep its expanded input rows
/// (`(rows − 1)·stride + 3`) within [`STRIP_BYTES`], at least one.
fn strip_rows(in_w: usize, hidden: usize, stride: usize, out_h: usize) -> usize {
    let row_bytes = in_w * hidden * 4;
    let input_rows = (STRIP_BYTES / row_bytes.max(1)).max(3);
    ((input_rows - 3) / stride + 1).clamp(1, out_h.max(1))
}

impl Block {
    /// `input [in_h·in_w, C_in] → output [out_h·out_w, C_out]`, strip by strip.
    fn forward(
        &self,
        input: &[f32],
        (in_h, in_w): (usize, usize),
        scratch: (&mut Vec<f32>, &mut Vec<f32>),
        output: &mut [f32],
    ) {
        let (hidden_buf, filtered_buf) = scratch;
        let dw = &self.depthwise;
        let (hidden, stride) = (dw.channels, dw.stride);
        let (out_h, out_w) = (dw.out_len(in_h), dw.out_len(in_w));
        let cout = self.project.out_channels;
        let in_c = match &self.expand {
            Some(e) => e.in_channels,
            None => hidden,
        };
        let per = strip_rows(in_w, hidden, stride, out_h);
        let row_len = in_w * hidden;
        // Input rows the hidden buffer holds: `have.start..have.end`, from its beginning.
        let mut have = 0..0;
        if self.expand.is_some() {
            at_least(hidden_buf, ((per - 1) * stride + 3).min(in_h) * row_len);
        }
        let filtered = at_least(filtered_buf, per * out_w * hidden);
        let mut oy = 0;
        while oy < out_h {
            let end = (oy + per).min(out_h);
            let need = (oy * stride).saturating_sub(1)..((end - 1) * stride + 2).min(in_h);
            let (src, first): (&[f32], usize) = match &self.expand {
                None => (input, 0),
                Some(expand) => {
                    // Strips move down the image, so the rows of the last strip that this one
                    // needs are the last ones held: they move to the front, and the rest are
                    // expanded from the input after them.
                    let kept = need.start..have.end.max(need.start);
                    if !kept.is_empty() && kept.start > have.start {
                        let from = (kept.start - have.start) * row_len;
                        hidden_buf.copy_within(from..from + kept.len() * row_len, 0);
                    }
                    let new = kept.end..need.end;
                    expand.forward(
                        &input[new.start * in_w * in_c..new.end * in_w * in_c],
                        new.len() * in_w,
                        &mut hidden_buf[kept.len() * row_len..],
                        true,
                    );
                    have = need.clone();
                    (hidden_buf.as_slice(), need.start)
                }
            };
            let rows = oy..end;
            let pixels = rows.len() * out_w;
            vectorize(
                #[inline(always)]
                || dw.rows(src, first, (in_h, in_w), rows.clone(), filtered),
            );
            let dst = &mut output[oy * out_w * cout..end * out_w * cout];
            vectorize(
                #[inline(always)]
                || {
                    fill_rows(dst, &self.project.bias);
                    if self.residual {
                        let skip = &input[oy * out_w * cout..end * out_w * cout];
                        dst.iter_mut().zip(skip).for_each(|(d, s)| *d += s);
                    }
                },
            );
            self.project.accumulate(filtered, pixels, dst);
            oy = end;
        }
    }
}

impl FusedMobileNet {
    /// Pooled features `[N, F]` of `images [N, C, h, w]` (row-major), images spread over the
    /// rayon pool.
    pub fn features(&self, images: &[f32], batch: usize, (h, w): (usize, usize)) -> Vec<f32> {
        let image_len = self.stem.in_channels * h * w;
        assert_eq!(images.len(), batch * image_len);
        let dim = self.head.out_channels;
        let mut out = vec![0.0f32; batch * dim];
        out.par_chunks_mut(dim)
            .zip(images.par_chunks(image_len))
            .for_each(|(features, image)| {
                SCRATCH.with_borrow_mut(|scratch| self.image(image, (h, w), scratch, features))
            });
        out
    }

    fn image(&self, image: &[f32], (h, w): (usize, usize), s: &mut Scratch, features: &mut [f32]) {
        let (mut hh, mut ww) = (self.stem.out_len(h), self.stem.out_len(w));
        let stem_c = self.stem.conv.out_channels;
        {
            let out = at_least(&mut s.current, hh * ww * stem_c);
            let per = (STRIP_BYTES / (ww * stem_c * 4).max(1)).clamp(1, hh);
            let mut oy = 0;
            while oy < hh {
                let end = (oy + per).min(hh);
                let dst = &mut out[oy * ww * stem_c..end * ww * stem_c];
                self.stem.rows(image, (h, w), oy..end, &mut s.filtered, dst);
                oy = end;
            }
        }
        for block in &self.blocks {
            let (oh, ow) = (block.depthwise.out_len(hh), block.depthwise.out_len(ww));
            let out_len = oh * ow * block.project.out_channels;
            at_least(&mut s.next, out_len);
            let in_len = hh
                * ww
                * block
                    .expand
                    .as_ref()
                    .map_or(block.depthwise.channels, |e| e.in_channels);
            block.forward(
                &s.current[..in_len],
                (hh, ww),
                (&mut s.hidden, &mut s.filtered),
                &mut s.next[..out_len],
            );
            std::mem::swap(&mut s.current, &mut s.next);
            (hh, ww) = (oh, ow);
        }
        let pixels = hh * ww;
        let in_len = pixels * self.head.in_channels;
        let head = at_least(&mut s.hidden, pixels * self.head.out_channels);
        self.head.forward(&s.current[..in_len], pixels, head, true);
        let scale = 1.0 / pixels.max(1) as f32;
        vectorize(
            #[inline(always)]
            || {
                features.fill(0.0);
                for row in head.chunks_exact(features.len()) {
                    features.iter_mut().zip(row).for_each(|(f, v)| *f += v);
                }
                features.iter_mut().for_each(|f| *f *= scale);
            },
        );
    }
}

impl FusedMobileNet {
    /// Channels of the input images.
    pub fn in_channels(&self) -> usize {
        self.stem.in_channels
    }

    /// Length of the pooled feature vector.
    pub fn feature_dim(&self) -> usize {
        self.head.out_channels
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv_infer::{conv_forward, Epilogue, InferConvShape};
    use super::super::depthwise::{depthwise_forward, DepthwiseShape};
    use super::*;

    struct Rng(u32);
    impl Rng {
        fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
            (0..n)
                .map(|_| {
                    self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((self.0 >> 8) as f32 / 16_777_216.0 - 0.5) * scale
                })
                .collect()
        }
    }

    type Conv = (Vec<f32>, Vec<f32>);
    /// Expand, depthwise (with its stride), project, skip.
    type RawBlock = (Option<Conv>, (Vec<f32>, Vec<f32>, usize), Conv, bool);

    /// Raw PyTorch-layout layers of a small network, run layer by layer in NCHW through the
    /// tested layer kernels as the reference.
    struct Layers {
        stem: (Vec<f32>, [usize; 4], Vec<f32>),
        blocks: Vec<RawBlock>,
        head: (Vec<f32>, Vec<f32>),
    }

    fn layers() -> Layers {
        let mut rng = Rng(7);
        let mut conv = |o: usize, i: usize, kk: usize| {
            // About unit gain per layer, biases mostly positive: activations stay between
            // ReLU6's ends, so a wrong input row shows in the pooled features.
            let scale = 5.0 / ((i * kk) as f32).sqrt();
            let bias = rng.values(o, 0.5).iter().map(|b| b + 0.2).collect();
            (rng.values(o * i * kk, scale), bias)
        };
        let (sw, sb) = conv(24, 3, 9);
        // (expand ratio, out channels, stride): channel counts off the 64/16 steps on purpose
        // (24, 40, 80, 120 hidden: the vector chunks and the one-by-one tail), strides 1 and 2,
        // skips where stride 1 keeps the channels.
        let plan = [(1, 16, 1), (6, 20, 2), (6, 20, 1), (4, 24, 2), (5, 24, 1)];
        let mut blocks = Vec::new();
        let mut input = 24;
        for (t, c, s) in plan {
            let hidden = input * t;
            let expand = (t != 1).then(|| conv(hidden, input, 1));
            let (dw, db) = conv(hidden, 1, 9);
            let (pw, pb) = conv(c, hidden, 1);
            blocks.push((expand, (dw, db, s), (pw, pb), s == 1 && input == c));
            input = c;
        }
        let head = conv(40, input, 1);
        Layers {
            stem: (sw, [24, 3, 3, 3], sb),
            blocks,
            head,
        }
    }

    fn fused(l: &Layers) -> FusedMobileNet {
        FusedMobileNet {
            stem: Stem::new(&l.stem.0, l.stem.1, &l.stem.2, 2, 1),
            blocks: l
                .blocks
                .iter()
                .map(|(e, (dw, db, s), (pw, pb), residual)| Block {
                    expand: e.as_ref().map(|(w, b)| Pointwise::from_oihw(w, b)),
                    depthwise: Depthwise3x3::from_c1kk(dw, db, *s),
                    project: Pointwise::from_oihw(pw, pb),
                    residual: *residual,
                })
                .collect(),
            head: Pointwise::from_oihw(&l.head.0, &l.head.1),
        }
    }

    fn reference(l: &Layers, x: &[f32], batch: usize, (h, w): (usize, usize)) -> Vec<f32> {
        fn conv(
            x: &[f32],
            dims: [usize; 4],
            (wt, b): (&[f32], &[f32]),
            (k, s): (usize, usize),
            e: Epilogue,
        ) -> (Vec<f32>, [usize; 4]) {
            let shape =
                InferConvShape::of(&dims, &[b.len(), dims[1], k, k], [s, s], [k / 2, k / 2]);
            let y = conv_forward(&shape, x, wt, b, e);
            (y, [dims[0], b.len(), shape.out_h(), shape.out_w()])
        }
        let (mut y, mut d) = conv(
            x,
            [batch, 3, h, w],
            (&l.stem.0, &l.stem.2),
            (3, 2),
            Epilogue::Relu6,
        );
        for (expand, (dw, db, s), (pw, pb), residual) in &l.blocks {
            let input = y.clone();
            let (mut hid, mut hd) = (y, d);
            if let Some((ew, eb)) = expand {
                (hid, hd) = conv(&hid, hd, (ew, eb), (1, 1), Epilogue::Relu6);
            }
            let ds = DepthwiseShape {
                batch,
                channels: hd[1],
                in_h: hd[2],
                in_w: hd[3],
                kernel: 3,
                stride: *s,
                padding: 1,
            };
            let f = depthwise_forward(&ds, &hid, dw, db, true);
            let fd = [batch, hd[1], ds.out_h(), ds.out_w()];
            let e = if *residual {
                Epilogue::Add(&input)
            } else {
                Epilogue::Identity
            };
            (y, d) = conv(&f, fd, (pw, pb), (1, 1), e);
        }
        let (y, d) = conv(&y, d, (&l.head.0, &l.head.1), (1, 1), Epilogue::Relu6);
        let plane = d[2] * d[3];
        y.chunks_exact(plane)
            .map(|p| p.iter().sum::<f32>() / plane as f32)
            .collect()
    }

    #[test]
    fn fused_blocks_equal_the_layer_by_layer_network() {
        let l = layers();
        let net = fused(&l);
        // 70 × 45: odd sizes at every stride, and strips of several rows (144-channel hidden
        // rows: the strip budget holds a few of them) so the kept-row hand-over runs.
        for (batch, h, w) in [(3, 70, 45), (1, 9, 7), (2, 2, 3)] {
            let x = Rng(11).values(batch * 3 * h * w, 2.0);
            let got = net.features(&x, batch, (h, w));
            let want = reference(&l, &x, batch, (h, w));
            assert_eq!(got.len(), want.len());
            let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                worst <= 1e-4 * scale,
                "{batch}×{h}×{w}: {worst} (scale {scale})"
            );
            assert!(
                want.iter().any(|v| *v > 0.0),
                "a network that outputs zeros tests nothing"
            );
        }
    }

    #[test]
    fn strips_hold_at_least_one_row_and_at_most_the_image() {
        assert_eq!(
            strip_rows(112, 96, 2, 56),
            (STRIP_BYTES / (112 * 96 * 4) - 3) / 2 + 1
        );
        assert_eq!(
            strip_rows(7, 960, 1, 7),
            (STRIP_BYTES / (7 * 960 * 4) - 3 + 1).min(7)
        );
        assert_eq!(strip_rows(10_000, 960, 1, 5), 1);
        assert_eq!(strip_rows(3, 16, 1, 2), 2);
    }
}
