//! Training-time augmentation: random translations of each image by up to `max_shift` pixels
//! (zero fill), the classic MNIST augmentation. It makes the embedding robust to the off-centre
//! digits a user's own images have, and keeps the small CNN from memorising pixel positions.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

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
