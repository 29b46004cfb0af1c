//! Depthwise convolution for inference (MobileNetV2's 3x3 filters): `x [N, C, H, W]`, weight
//! `[C, 1, K, K]`, bias `[C]` → `y [N, C, OH, OW]`, with zero padding, any stride, and ReLU6
//! after when asked.
//!
//! Why a kernel of its own: burn's grouped convolution runs one small GEMM per channel, and a
//! depthwise filter has nothing to share across channels; MobileNetV2 spent most of its time
//! there. Here each (image, channel) plane is one task: the output rows start from the bias and
//! each of the K·K taps adds a scaled, shifted input row (a contiguous run at stride 1, which
//! vectorises; a strided one at stride 2).

use rayon::prelude::*;

use super::buffer;

/// The convolution's sizes.
#[derive(Debug, Clone, Copy)]
pub struct DepthwiseShape {
    pub batch: usize,
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl DepthwiseShape {
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.padding - self.kernel) / self.stride + 1
    }

    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.padding - self.kernel) / self.stride + 1
    }
}

/// The output columns `ox` whose input column `ox·stride + tap − padding` lies in `0..in_w`.
fn columns(s: &DepthwiseShape, tap: usize) -> std::ops::Range<usize> {
    let (stride, pad, ow) = (s.stride, s.padding, s.out_w());
    let lo = pad.saturating_sub(tap).div_ceil(stride);
    // ox·stride + tap − pad ≤ in_w − 1  ⇔  ox ≤ (in_w − 1 + pad − tap) / stride.
    let hi = if s.in_w + pad > tap {
        ((s.in_w - 1 + pad - tap) / stride + 1).min(ow)
    } else {
        0
    };
    lo..hi.max(lo)
}

/// One output plane from one input plane.
#[inline(always)]
fn plane(s: &DepthwiseShape, x: &[f32], w: &[f32], bias: f32, relu6: bool, y: &mut [f32]) {
    let (k, stride, pad) = (s.kernel, s.stride, s.padding);
    let (oh, ow) = (s.out_h(), s.out_w());
    let spans: Vec<std::ops::Range<usize>> = (0..k).map(|tap| columns(s, tap)).collect();
    for oy in 0..oh {
        let out = &mut y[oy * ow..(oy + 1) * ow];
        out.fill(bias);
        for ky in 0..k {
            let iy = (oy * stride + ky) as isize - pad as isize;
            if iy < 0 || iy >= s.in_h as isize {
                continue;
            }
            let row = &x[iy as usize * s.in_w..(iy as usize + 1) * s.in_w];
            for (kx, span) in spans.iter().enumerate() {
                let tap = w[ky * k + kx];
                if span.is_empty() {
                    continue;
                }
                // Input column of output column ox: ox·stride + kx − pad (≥ 0 on the span).
                let first = span.start * stride + kx - pad;
                let out = &mut out[span.clone()];
                if stride == 1 {
                    let input = &row[first..first + out.len()];
                    out.iter_mut().zip(input).for_each(|(o, v)| *o += tap * v);
                } else {
                    for (j, o) in out.iter_mut().enumerate() {
                        *o += tap * row[first + j * stride];
                    }
                }
            }
        }
        if relu6 {
            out.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0));
        }
    }
}

/// MobileNetV2's case, 3x3 with padding 1 at stride 1 or 2: the plane is copied once into a
/// zero-bordered scratch plane (split into even and odd columns at stride 2), then each output
/// row is one pass summing its nine taps from equal-length row slices, which vectorises.
#[inline(always)]
fn plane3x3(
    s: &DepthwiseShape,
    x: &[f32],
    w: &[f32],
    bias: f32,
    relu6: bool,
    y: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let (h, wd, stride) = (s.in_h, s.in_w, s.stride);
    let (oh, ow) = (s.out_h(), s.out_w());
    let (ph, pw) = (h + 2, wd + 2);
    // Phase widths: at stride 1 one phase of pw columns; at stride 2 even then odd columns.
    let (even_w, odd_w) = if stride == 1 {
        (pw, 0)
    } else {
        (pw.div_ceil(2), pw / 2)
    };
    let row_len = even_w + odd_w;
    scratch.clear();
    scratch.resize(ph * row_len, 0.0);
    for iy in 0..h {
        let src = &x[iy * wd..(iy + 1) * wd];
        let dst = &mut scratch[(iy + 1) * row_len..(iy + 2) * row_len];
        if stride == 1 {
            dst[1..=wd].copy_from_slice(src);
        } else {
            // Padded column c = ix + 1 goes to phase c % 2 at index c / 2.
            for (ix, v) in src.iter().enumerate() {
                let c = ix + 1;
                dst[(c % 2) * even_w + c / 2] = *v;
            }
        }
    }
    let t: [f32; 9] = std::array::from_fn(|i| w[i]);
    for oy in 0..oh {
        let out = &mut y[oy * ow..(oy + 1) * ow];
        let row = |ky: usize| {
            let r = oy * stride + ky;
            &scratch[r * row_len..(r + 1) * row_len]
        };
        let (r0, r1, r2) = (row(0), row(1), row(2));
        // Tap kx of output column ox reads padded column ox·stride + kx.
        let tap = |r: &'_ [f32], kx: usize| -> std::ops::Range<usize> {
            let (phase, offset) = if stride == 1 {
                (0, kx)
            } else {
                (kx % 2, kx / 2)
            };
            let start = phase * even_w + offset;
            let _ = r;
            start..start + ow
        };
        let (a0, a1, a2) = (&r0[tap(r0, 0)], &r0[tap(r0, 1)], &r0[tap(r0, 2)]);
        let (b0, b1, b2) = (&r1[tap(r1, 0)], &r1[tap(r1, 1)], &r1[tap(r1, 2)]);
        let (c0, c1, c2) = (&r2[tap(r2, 0)], &r2[tap(r2, 1)], &r2[tap(r2, 2)]);
        for i in 0..ow {
            let v = bias
                + t[0] * a0[i]
                + t[1] * a1[i]
                + t[2] * a2[i]
                + t[3] * b0[i]
                + t[4] * b1[i]
                + t[5] * b2[i]
                + t[6] * c0[i]
                + t[7] * c1[i]
                + t[8] * c2[i];
            out[i] = if relu6 { v.clamp(0.0, 6.0) } else { v };
        }
    }
}

/// The whole convolution, planes in parallel; `x`, `w`, `bias` row-major as in the docs.
pub fn depthwise_forward(
    s: &DepthwiseShape,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    relu6: bool,
) -> Vec<f32> {
    let (in_plane, out_plane) = (s.in_h * s.in_w, s.out_h() * s.out_w());
    assert_eq!(x.len(), s.batch * s.channels * in_plane);
    assert_eq!(w.len(), s.channels * s.kernel * s.kernel);
    assert_eq!(bias.len(), s.channels);
    let mut y = buffer::unfilled(s.batch * s.channels * out_plane);
    let three = s.kernel == 3 && s.padding == 1 && (s.stride == 1 || s.stride == 2);
    y.par_chunks_mut(out_plane)
        .enumerate()
        .for_each_init(Vec::new, |scratch, (i, out)| {
            // Zeroed here, in this worker's cache (the general path adds to it).
            let out = buffer::zeroed(out);
            let c = i % s.channels;
            let input = &x[i * in_plane..(i + 1) * in_plane];
            let taps = &w[c * s.kernel * s.kernel..(c + 1) * s.kernel * s.kernel];
            super::simd::vectorize(
                #[inline(always)]
                || {
                    if three {
                        plane3x3(s, input, taps, bias[c], relu6, out, scratch)
                    } else {
                        plane(s, input, taps, bias[c], relu6, out)
                    }
                },
            );
        });
    // SAFETY: every plane was filled above.
    unsafe { buffer::assume_filled(y) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook sum, one output at a time.
    fn reference(s: &DepthwiseShape, x: &[f32], w: &[f32], b: &[f32], relu6: bool) -> Vec<f32> {
        let (oh, ow, k) = (s.out_h(), s.out_w(), s.kernel);
        let mut y = vec![0f32; s.batch * s.channels * oh * ow];
        for n in 0..s.batch {
            for c in 0..s.channels {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut sum = b[c];
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * s.stride + ky) as isize - s.padding as isize;
                                let ix = (ox * s.stride + kx) as isize - s.padding as isize;
                                if iy >= 0
                                    && ix >= 0
                                    && (iy as usize) < s.in_h
                                    && (ix as usize) < s.in_w
                                {
                                    let at = ((n * s.channels + c) * s.in_h + iy as usize) * s.in_w
                                        + ix as usize;
                                    sum += w[(c * k + ky) * k + kx] * x[at];
                                }
                            }
                        }
                        let i = ((n * s.channels + c) * oh + oy) * ow + ox;
                        y[i] = if relu6 { sum.clamp(0.0, 6.0) } else { sum };
                    }
                }
            }
        }
        y
    }

    #[test]
    fn matches_the_textbook_sum_for_strides_paddings_and_odd_sizes() {
        let value = |i: usize| ((i * 7919 % 997) as f32 / 997.0 - 0.5) * 8.0;
        for (h, w, k, stride, padding) in [
            (112, 112, 3, 1, 1),
            (112, 112, 3, 2, 1),
            (7, 5, 3, 2, 1),
            (6, 9, 3, 1, 0),
            (4, 4, 5, 1, 2),
            (3, 3, 3, 2, 1),
            (1, 1, 3, 1, 1),
        ] {
            let s = DepthwiseShape {
                batch: 2,
                channels: 3,
                in_h: h,
                in_w: w,
                kernel: k,
                stride,
                padding,
            };
            let x: Vec<f32> = (0..2 * 3 * h * w).map(value).collect();
            let taps: Vec<f32> = (0..3 * k * k).map(|i| value(i + 5) / 4.0).collect();
            let b = [0.5, -1.0, 2.0];
            for relu6 in [false, true] {
                let got = depthwise_forward(&s, &x, &taps, &b, relu6);
                let want = reference(&s, &x, &taps, &b, relu6);
                assert_eq!(got.len(), want.len());
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(g, w)| (g - w).abs())
                    .fold(0.0f32, f32::max);
                assert!(worst < 1e-4, "{s:?} relu6 {relu6}: {worst}");
                if relu6 {
                    assert!(got.iter().all(|v| (0.0..=6.0).contains(v)));
                }
            }
        }
    }
}
