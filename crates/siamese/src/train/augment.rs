//! Training-time augmentation: a random small affine warp of each image (translation by up to
//! `max_shift` pixels, rotation by up to `max_rotate` degrees, scaling by up to `±max_scale`),
//! zero fill outside. These are the classic MNIST distortions: they make the embedding robust
//! to the off-centre, slanted and differently sized digits a user's own images have, and keep
//! the small CNN from memorising pixel positions.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The random distortions applied to each training image; all zero = a plain copy.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Augmentation {
    /// Largest translation in pixels (integer steps, as in the seeds' shift augmentation).
    pub max_shift: usize,
    /// Largest rotation in degrees (uniform in `[-max_rotate, max_rotate]`).
    pub max_rotate: f64,
    /// Largest relative scale change (uniform factor in `[1 - max_scale, 1 + max_scale]`).
    pub max_scale: f64,
}

impl Augmentation {
    /// True when no distortion is drawn at all.
    pub fn is_identity(&self) -> bool {
        self.max_shift == 0 && self.max_rotate == 0.0 && self.max_scale == 0.0
    }

    /// Appends a randomly distorted copy of `image` (`channels × height × width`) to `out`.
    ///
    /// Shift-only augmentation copies whole pixels (no interpolation, so it is bit-exact with
    /// the earlier shift-only runs); a rotation or scale resamples bilinearly about the centre.
    pub fn apply(
        &self,
        image: &[f32],
        channels: usize,
        height: usize,
        width: usize,
        rng: &mut ChaCha8Rng,
        out: &mut Vec<f32>,
    ) {
        if self.max_rotate == 0.0 && self.max_scale == 0.0 {
            random_shift(image, channels, height, width, self.max_shift, rng, out);
            return;
        }
        let m = self.max_shift as i64;
        let (dx, dy) = if m == 0 {
            (0, 0)
        } else {
            (rng.random_range(-m..=m), rng.random_range(-m..=m))
        };
        let angle = if self.max_rotate > 0.0 {
            rng.random_range(-self.max_rotate..=self.max_rotate)
                .to_radians()
        } else {
            0.0
        };
        let scale = if self.max_scale > 0.0 {
            rng.random_range(1.0 - self.max_scale..=1.0 + self.max_scale)
        } else {
            1.0
        };
        warp(
            image,
            [channels, height, width],
            Affine {
                angle,
                scale,
                shift: (dx as f64, dy as f64),
            },
            out,
        );
    }
}

/// A similarity transform about the image centre: rotate by `angle`, scale by `scale`, then
/// translate by `shift` (pixels, x then y).
#[derive(Debug, Clone, Copy)]
pub struct Affine {
    pub angle: f64,
    pub scale: f64,
    pub shift: (f64, f64),
}

/// Appends `image` warped by `transform` to `out`: each output pixel takes the bilinear sample of
/// the source at the inverse-transformed position (0 outside the image).
pub fn warp(image: &[f32], [channels, height, width]: [usize; 3], t: Affine, out: &mut Vec<f32>) {
    let start = out.len();
    out.resize(start + image.len(), 0.0);
    let dst = &mut out[start..];
    let (cx, cy) = ((width as f64 - 1.0) / 2.0, (height as f64 - 1.0) / 2.0);
    // Inverse of p' = s·R·(p - c) + c + t:  p = R⁻¹·(p' - c - t)/s + c.
    let (sin, cos) = t.angle.sin_cos();
    let inv = 1.0 / t.scale;
    for y in 0..height {
        for x in 0..width {
            let (u, v) = (x as f64 - cx - t.shift.0, y as f64 - cy - t.shift.1);
            let sx = (cos * u + sin * v) * inv + cx;
            let sy = (-sin * u + cos * v) * inv + cy;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
            let (x0, y0) = (x0 as i64, y0 as i64);
            for c in 0..channels {
                let plane = &image[c * height * width..(c + 1) * height * width];
                let at = |yy: i64, xx: i64| -> f32 {
                    if yy < 0 || xx < 0 || yy >= height as i64 || xx >= width as i64 {
                        0.0
                    } else {
                        plane[yy as usize * width + xx as usize]
                    }
                };
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x0 + 1) * fx;
                let bottom = at(y0 + 1, x0) * (1.0 - fx) + at(y0 + 1, x0 + 1) * fx;
                dst[c * height * width + y * width + x] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
}

/// Copies `image` (`channels × height × width`) into `out`, shifted by a random `(dx, dy)` with
/// `|dx|, |dy| ≤ max_shift`; uncovered pixels are 0 (background).
pub fn random_shift(
    image: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    max_shift: usize,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<f32>,
) {
    let m = max_shift as i64;
    let (dx, dy) = if m == 0 {
        (0, 0)
    } else {
        (rng.random_range(-m..=m), rng.random_range(-m..=m))
    };
    let start = out.len();
    out.resize(start + image.len(), 0.0);
    let dst = &mut out[start..];
    let (h, w) = (height as i64, width as i64);
    for c in 0..channels {
        let plane = c * height * width;
        for y in 0..h {
            let sy = y - dy;
            if sy < 0 || sy >= h {
                continue;
            }
            for x in 0..w {
                let sx = x - dx;
                if sx < 0 || sx >= w {
                    continue;
                }
                dst[plane + (y * w + x) as usize] = image[plane + (sy * w + sx) as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar_image() -> Vec<f32> {
        // 9x9, a vertical bar in column 4.
        (0..81)
            .map(|i| if i % 9 == 4 { 1.0 } else { 0.0 })
            .collect()
    }

    #[test]
    fn identity_warp_copies_the_image() {
        let img = bar_image();
        let mut out = Vec::new();
        let t = Affine {
            angle: 0.0,
            scale: 1.0,
            shift: (0.0, 0.0),
        };
        warp(&img, [1, 9, 9], t, &mut out);
        assert_eq!(out, img);
    }

    #[test]
    fn quarter_turn_makes_the_vertical_bar_horizontal() {
        let img = bar_image();
        let mut out = Vec::new();
        let t = Affine {
            angle: std::f64::consts::FRAC_PI_2,
            scale: 1.0,
            shift: (0.0, 0.0),
        };
        warp(&img, [1, 9, 9], t, &mut out);
        let row4: f32 = out[36..45].iter().sum();
        let col4: f32 = (0..9).map(|y| out[y * 9 + 4]).sum();
        assert!((row4 - 9.0).abs() < 1e-4, "row 4 sums to {row4}");
        assert!((col4 - 1.0).abs() < 1e-4, "column 4 sums to {col4}");
    }

    #[test]
    fn integer_shift_moves_pixels() {
        let img = bar_image();
        let mut out = Vec::new();
        let t = Affine {
            angle: 0.0,
            scale: 1.0,
            shift: (2.0, 0.0),
        };
        warp(&img, [1, 9, 9], t, &mut out);
        assert!((0..9).all(|y| out[y * 9 + 6] == 1.0 && out[y * 9 + 4] == 0.0));
    }
}
