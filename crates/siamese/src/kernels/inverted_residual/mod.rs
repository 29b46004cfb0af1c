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

use super::buffer::{at_least, fill_rows};
use super::gemm::gemm_strided;
use super::simd::vectorize;

mod depthwise_hwc;
#[cfg(test)]
mod tests;

pub use depthwise_hwc::Depthwise3x3;

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
