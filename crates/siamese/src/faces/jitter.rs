//! Test-time jitter of aligned face chips, after dlib's `jitter_image`: each jittered copy of a
//! 150x150 chip is re-cut from it with a random rotation (±3°), a slightly larger box (the
//! chip's inner 144 px square grown by 1/U(0.97, 1)) moved by up to 2 % of its side, and a
//! mirror image half of the time. Averaging the embeddings of a few such copies with the
//! original's smooths out small alignment errors of the landmarks.
//!
//! The copies are drawn from a generator seeded by the chip's own pixels, so a photo always
//! gets the same embedding, whatever else is embedded with it and in whatever order.

use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::align::{extract_chip, ChipPlacement};

/// The largest rotation of a jittered copy, degrees (dlib's value).
const MAX_ROTATION_DEGREES: f32 = 3.0;
/// The largest shift of a jittered copy, as a fraction of the box side (dlib's value).
const TRANSLATE_AMOUNT: f32 = 0.02;
/// The chip's inner box is this many pixels in from each edge (dlib's `shrink_rect(rect, 3)`).
const INSET: f32 = 3.0;

/// The generator of `chip`'s jittered copies: seeded by an FNV-1a hash of its pixels.
pub fn chip_rng(chip: &RgbImage) -> ChaCha8Rng {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in chip.as_raw() {
        hash = (hash ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(hash)
}

/// One randomly jittered copy of a square chip, the same size as the chip.
pub fn jitter_chip(chip: &RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
    let size = chip.width().min(chip.height()) as usize;
    let inner = size as f32 - 2.0 * INSET;
    let centre = (size as f32 - 1.0) / 2.0;
    let shift = [
        rng.random_range(-TRANSLATE_AMOUNT..=TRANSLATE_AMOUNT) * inner,
        rng.random_range(-TRANSLATE_AMOUNT..=TRANSLATE_AMOUNT) * inner,
    ];
    let box_side = inner / rng.random_range(0.97f32..1.0);
    let angle = rng
        .random_range(-MAX_ROTATION_DEGREES..=MAX_ROTATION_DEGREES)
        .to_radians();
    let placement = ChipPlacement {
        center: [centre + shift[0], centre + shift[1]],
        angle,
        step: box_side / size as f32,
        size,
    };
    let copy = extract_chip(chip, &placement);
    if rng.random_bool(0.5) {
        image::imageops::flip_horizontal(&copy)
    } else {
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient_chip() -> RgbImage {
        RgbImage::from_fn(150, 150, |x, y| {
            image::Rgb([x as u8, y as u8, (x + y) as u8 / 2])
        })
    }

    #[test]
    fn copies_are_deterministic_per_chip() {
        let chip = gradient_chip();
        let a = jitter_chip(&chip, &mut chip_rng(&chip));
        let b = jitter_chip(&chip, &mut chip_rng(&chip));
        assert_eq!(a, b);
        assert_eq!(a.dimensions(), (150, 150));
    }

    #[test]
    fn copies_stay_close_to_the_chip() {
        // A small similarity transform of a smooth image: the centre pixel moves by a few
        // pixels at most (or is mirrored), never to the far side of the chip.
        let chip = gradient_chip();
        let mut rng = chip_rng(&chip);
        for _ in 0..10 {
            let copy = jitter_chip(&chip, &mut rng);
            let c = copy.get_pixel(75, 75);
            assert!(
                (c[1] as i32 - 75).abs() <= 6,
                "row value {} at the centre",
                c[1]
            );
            let x = c[0] as i32;
            assert!(
                (x - 75).abs() <= 6 || (x - 74).abs() <= 6,
                "column value {x}"
            );
        }
    }
}
