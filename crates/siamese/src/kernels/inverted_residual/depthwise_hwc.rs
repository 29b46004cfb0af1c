//! MobileNetV2's depthwise 3x3 filter (+ bias + ReLU6) in channels-last layout: all the
//! channels of a pixel side by side, 16 at a time in vector registers along a row, the nine
//! taps' weights held; a tap outside the image is skipped (padding 1, stride 1 or 2).

/// A depthwise 3x3 convolution + bias + ReLU6 with padding 1, stride 1 or 2.
#[derive(Debug, Clone)]
pub struct Depthwise3x3 {
    pub(super) channels: usize,
    pub(super) stride: usize,
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

    pub(super) fn out_len(&self, n: usize) -> usize {
        (n + 2 - 3) / self.stride + 1
    }

    /// Output rows `rows` of the filter (inlined into [`vectorize`](crate::kernels::simd::vectorize)'s closure, so compiled for
    /// the CPU's vector level): `src` holds input rows `first..` of an
    /// `in_h × in_w × C` activation; `dst` receives `rows.len() × out_w × C`.
    #[inline(always)]
    pub(super) fn rows(
        &self,
        src: &[f32],
        first: usize,
        (in_h, in_w): (usize, usize),
        rows: std::ops::Range<usize>,
        dst: &mut [f32],
    ) {
        let (c, s) = (self.channels, self.stride);
        let out_w = self.out_len(in_w);
        let fma = crate::kernels::simd::level() >= crate::kernels::simd::SimdLevel::Avx2;
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
