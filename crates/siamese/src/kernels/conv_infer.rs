//! Inference-only 2-D convolution with any kernel size, stride and symmetric zero padding, plus
//! bias: im2col per image (padding and stride folded into the unfolding) into a reused buffer,
//! then one packed GEMM per image that starts from the bias. No backward step: this is the path
//! of pretrained networks used for embedding only (dlib's face ResNet).
//!
//! Shapes: input `x [N, C, H, W]`, weight `w [O, C, KH, KW]`, bias `[O]`, output
//! `y [N, O, OH, OW]` with `OH = (H + 2·PH − KH) / SH + 1` (likewise `OW`). Inside one image the
//! im2col matrix is `col [K, P]`, `K = C·KH·KW`, `P = OH·OW`; `w [O, K] · col [K, P]` is NCHW.
//! Images are spread over the rayon pool; each GEMM runs single-threaded.

use rayon::prelude::*;

use super::buffer::{assume_filled, assume_init_mut, copied, filled_rows, unfilled};
use super::gemm::gemm_strided;
use super::simd::vectorize;

/// Geometry of one inference convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InferConvShape {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl InferConvShape {
    /// The shape of `conv(x, w)` from the dimensions of `x [N, C, H, W]` and `w [O, C, KH, KW]`.
    pub fn of(x: &[usize], w: &[usize], stride: [usize; 2], padding: [usize; 2]) -> Self {
        InferConvShape {
            batch: x[0],
            in_channels: x[1],
            height: x[2],
            width: x[3],
            out_channels: w[0],
            kernel: [w[2], w[3]],
            stride,
            padding,
        }
    }

    /// Output height; 0 when the kernel does not fit.
    pub fn out_h(&self) -> usize {
        let span = self.height + 2 * self.padding[0];
        if span < self.kernel[0] {
            0
        } else {
            (span - self.kernel[0]) / self.stride[0] + 1
        }
    }
    /// Output width; 0 when the kernel does not fit.
    pub fn out_w(&self) -> usize {
        let span = self.width + 2 * self.padding[1];
        if span < self.kernel[1] {
            0
        } else {
            (span - self.kernel[1]) / self.stride[1] + 1
        }
    }
    fn col_rows(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }
    fn pixels(&self) -> usize {
        self.out_h() * self.out_w()
    }
    fn input_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }
    fn output_len(&self) -> usize {
        self.out_channels * self.pixels()
    }
}

/// Unfolds one image `x [C, H, W]` into `col [K, P]` with zero padding and stride; row `r` of
/// the image's block starts at `col[r · row_stride + offset]` (several images side by side when
/// `row_stride > P`).
#[inline(always)]
fn im2col_padded(s: &InferConvShape, x: &[f32], col: &mut [f32], row_stride: usize, offset: usize) {
    let (oh, ow, p) = (s.out_h(), s.out_w(), s.pixels());
    let ([kh, kw], [sh, sw], [ph, pw]) = (s.kernel, s.stride, s.padding);
    let (h, w) = (s.height as isize, s.width as isize);
    let mut row = 0;
    for c in 0..s.in_channels {
        let plane = &x[c * s.height * s.width..(c + 1) * s.height * s.width];
        for ky in 0..kh {
            for kx in 0..kw {
                let dst = &mut col[row * row_stride + offset..][..p];
                // Output columns whose input column `ox·sw + kx − pw` lies inside the image.
                let first = (pw as isize - kx as isize).max(0) as usize;
                let first = first.div_ceil(sw).min(ow);
                let last = {
                    let limit = w - 1 + pw as isize - kx as isize; // ox·sw ≤ limit
                    if limit < 0 {
                        0
                    } else {
                        ((limit as usize) / sw + 1).min(ow)
                    }
                };
                // Plain loops, not `fill`/`copy_from_slice`: their `memset`/`memmove` calls cost
                // more than the work on rows this short.
                for oy in 0..oh {
                    let out = &mut dst[oy * ow..(oy + 1) * ow];
                    let iy = (oy * sh + ky) as isize - ph as isize;
                    if iy < 0 || iy >= h || first >= last {
                        out.iter_mut().for_each(|o| *o = 0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * s.width..(iy as usize + 1) * s.width];
                    out[..first].iter_mut().for_each(|o| *o = 0.0);
                    out[last..].iter_mut().for_each(|o| *o = 0.0);
                    let x0 = first * sw + kx - pw;
                    if sw == 1 {
                        for (o, v) in out[first..last].iter_mut().zip(&src[x0..]) {
                            *o = *v;
                        }
                    } else {
                        for (o, v) in out[first..last]
                            .iter_mut()
                            .zip(src[x0..].iter().step_by(sw))
                        {
                            *o = *v;
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// Images a GEMM takes side by side: enough for about [`MIN_GEMM_COLUMNS`] output columns when
/// one image has fewer, but no fewer runs than two a worker (so the pool stays busy).
fn images_per_gemm(batch: usize, pixels: usize, threads: usize) -> usize {
    if pixels == 0 || pixels >= MIN_GEMM_COLUMNS {
        return 1;
    }
    let wanted = MIN_GEMM_COLUMNS.div_ceil(pixels);
    let balanced = batch.div_ceil(2 * threads.max(1)).max(1);
    wanted.min(balanced).max(1)
}

/// Output columns below which a per-image GEMM wastes the micro-kernel's tiles.
const MIN_GEMM_COLUMNS: usize = 256;

/// What [`conv_forward`] applies to `conv(x, w) + b` before writing it.
#[derive(Debug, Clone, Copy)]
pub enum Epilogue<'a> {
    /// Nothing.
    Identity,
    /// `max(·, 0)`.
    Relu,
    /// `max(· + residual, 0)`, `residual` shaped like the output (a ResNet block's skip).
    AddRelu(&'a [f32]),
    /// `min(max(·, 0), 6)` (MobileNetV2's ReLU6).
    Relu6,
    /// `· + residual` (MobileNetV2's linear bottleneck plus its skip).
    Add(&'a [f32]),
}

impl Epilogue<'_> {
    /// Applies the epilogue in place to `y`, the output elements `at..at + y.len()`.
    #[inline(always)]
    fn apply(self, y: &mut [f32], at: usize) {
        match self {
            Epilogue::Identity => {}
            Epilogue::Relu => y.iter_mut().for_each(|v| *v = v.max(0.0)),
            Epilogue::AddRelu(residual) => {
                let skip = &residual[at..at + y.len()];
                for (v, r) in y.iter_mut().zip(skip) {
                    *v = (*v + r).max(0.0);
                }
            }
            Epilogue::Relu6 => y.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)),
            Epilogue::Add(residual) => {
                let skip = &residual[at..at + y.len()];
                y.iter_mut().zip(skip).for_each(|(v, r)| *v += r);
            }
        }
    }
}

/// `y = epilogue(conv(x, w) + b)`, as a new `[N, O, OH, OW]` buffer.
pub fn conv_forward(
    s: &InferConvShape,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    epilogue: Epilogue,
) -> Vec<f32> {
    assert_eq!(x.len(), s.batch * s.input_len());
    assert_eq!(w.len(), s.out_channels * s.col_rows());
    assert_eq!(bias.len(), s.out_channels);
    assert!(s.stride[0] > 0 && s.stride[1] > 0);
    let (k, p, o) = (s.col_rows(), s.pixels(), s.out_channels);
    if let Epilogue::AddRelu(r) | Epilogue::Add(r) = epilogue {
        assert_eq!(r.len(), s.batch * s.output_len());
    }
    if s.batch * s.output_len() == 0 {
        return Vec::new();
    }
    let mut y = unfilled(s.batch * s.output_len());
    let direct = s.kernel == [1, 1] && s.stride == [1, 1] && s.padding == [0, 0];
    let group = images_per_gemm(s.batch, p, rayon::current_num_threads());
    if group > 1 {
        // Small outputs (deep layers of a ResNet): one GEMM over `group` images side by side,
        // `[O, K] · [K, group·P]`, then each image's block copied out to NCHW.
        y.par_chunks_mut(group * s.output_len())
            .zip(x.par_chunks(group * s.input_len()))
            .enumerate()
            .for_each_init(
                || (vec![0.0f32; k * group * p], vec![0.0f32; o * group * p]),
                |(col, out), (run, (y_run, x_run))| {
                    let images = x_run.len() / s.input_len();
                    let cols = images * p;
                    vectorize(
                        #[inline(always)]
                        || {
                            for (g, x_img) in x_run.chunks_exact(s.input_len()).enumerate() {
                                im2col_padded(s, x_img, col, cols, g * p);
                            }
                            for (row, b) in out[..o * cols].chunks_exact_mut(cols).zip(bias) {
                                row.fill(*b);
                            }
                        },
                    );
                    gemm_strided(
                        o,
                        cols,
                        k,
                        &mut out[..o * cols],
                        true,
                        w,
                        (k, 1),
                        col,
                        (cols, 1),
                    );
                    vectorize(
                        #[inline(always)]
                        || {
                            for (g, y_img) in y_run.chunks_exact_mut(o * p).enumerate() {
                                for (c, dst) in y_img.chunks_exact_mut(p).enumerate() {
                                    copied(dst, &out[c * cols + g * p..][..p]);
                                }
                                // SAFETY: every channel's plane was just copied in.
                                let y_img = unsafe { assume_init_mut(y_img) };
                                epilogue.apply(y_img, (run * group + g) * o * p);
                            }
                        },
                    );
                },
            );
        // SAFETY: every run's slice was copied into.
        return unsafe { assume_filled(y) };
    }
    y.par_chunks_mut(s.output_len())
        .zip(x.par_chunks(s.input_len()))
        .enumerate()
        .for_each_init(
            // A 1x1 stride-1 unpadded convolution's im2col matrix is the image itself.
            || {
                if direct {
                    Vec::new()
                } else {
                    vec![0.0f32; k * p]
                }
            },
            |col, (n, (y_img, x_img))| {
                let y_img = filled_rows(y_img, p, bias);
                let rhs: &[f32] = if direct {
                    x_img
                } else {
                    vectorize(
                        #[inline(always)]
                        || im2col_padded(s, x_img, col, p, 0),
                    );
                    col
                };
                gemm_strided(o, p, k, y_img, true, w, (k, 1), rhs, (p, 1));
                vectorize(
                    #[inline(always)]
                    || epilogue.apply(y_img, n * o * p),
                );
            },
        );
    // SAFETY: every image's slice went through `filled_rows`.
    unsafe { assume_filled(y) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct convolution, the definition.
    fn reference(s: &InferConvShape, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let (oh, ow) = (s.out_h(), s.out_w());
        let mut y = vec![0.0; s.batch * s.out_channels * oh * ow];
        for n in 0..s.batch {
            for o in 0..s.out_channels {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = b[o];
                        for c in 0..s.in_channels {
                            for ky in 0..s.kernel[0] {
                                for kx in 0..s.kernel[1] {
                                    let iy =
                                        (oy * s.stride[0] + ky) as isize - s.padding[0] as isize;
                                    let ix =
                                        (ox * s.stride[1] + kx) as isize - s.padding[1] as isize;
                                    if iy < 0
                                        || ix < 0
                                        || iy >= s.height as isize
                                        || ix >= s.width as isize
                                    {
                                        continue;
                                    }
                                    let xv = x[((n * s.in_channels + c) * s.height + iy as usize)
                                        * s.width
                                        + ix as usize];
                                    let wv = w[((o * s.in_channels + c) * s.kernel[0] + ky)
                                        * s.kernel[1]
                                        + kx];
                                    acc += xv * wv;
                                }
                            }
                        }
                        y[((n * s.out_channels + o) * oh + oy) * ow + ox] = acc;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn images_share_a_gemm_only_when_outputs_are_small_and_workers_stay_busy() {
        assert_eq!(images_per_gemm(32, 576, 2), 1);
        assert_eq!(images_per_gemm(32, 25, 2), 8);
        assert_eq!(images_per_gemm(32, 81, 2), 4);
        assert_eq!(images_per_gemm(2, 25, 2), 1);
        assert_eq!(images_per_gemm(10, 99, 2), 3);
    }

    #[test]
    fn matches_the_definition_for_padded_and_strided_geometries() {
        let geometries = [
            ([3, 3], [1, 1], [1, 1]),
            ([3, 3], [2, 2], [0, 0]),
            ([7, 7], [2, 2], [0, 0]),
            ([3, 3], [2, 2], [1, 1]),
            ([5, 3], [1, 2], [2, 1]),
        ];
        let mut seed = 1u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / 16_777_216.0 - 0.5
        };
        // Batch 10: several images share a GEMM (`images_per_gemm`), the last run shorter.
        for (batch, (kernel, stride, padding)) in
            [2, 10].into_iter().flat_map(|b| geometries.map(|g| (b, g)))
        {
            let s = InferConvShape {
                batch,
                in_channels: 3,
                height: 11,
                width: 9,
                out_channels: 4,
                kernel,
                stride,
                padding,
            };
            let x: Vec<f32> = (0..s.batch * s.input_len()).map(|_| next()).collect();
            let w: Vec<f32> = (0..s.out_channels * s.col_rows()).map(|_| next()).collect();
            let b: Vec<f32> = (0..s.out_channels).map(|_| next()).collect();
            // Two workers, as on a 2-core machine, so batch 10 takes the shared-GEMM path.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let got = pool.install(|| conv_forward(&s, &x, &w, &b, Epilogue::Identity));
            // The residual epilogue: max(conv + b + r, 0), on both paths.
            let r: Vec<f32> = (0..got.len()).map(|_| next()).collect();
            let fused = pool.install(|| conv_forward(&s, &x, &w, &b, Epilogue::AddRelu(&r)));
            for ((f, g), r) in fused.iter().zip(&got).zip(&r) {
                assert!(
                    (f - (g + r).max(0.0)).abs() < 1e-6,
                    "residual epilogue {f} vs {g} + {r}"
                );
            }
            let want = reference(&s, &x, &w, &b);
            assert_eq!(got.len(), want.len());
            for (g, r) in got.iter().zip(&want) {
                assert!(
                    (g - r).abs() < 1e-5,
                    "batch {batch} {kernel:?}/{stride:?}/{padding:?}: {g} vs {r}"
                );
            }
        }
    }
}
