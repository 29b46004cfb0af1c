//! ImageNet input conventions for pretrained backbones: any image file → `[3, 224, 224]` RGB,
//! normalised with ImageNet's channel mean and standard deviation.
//!
//! Following torchvision's evaluation transform: resize so the shorter side is 256 (the longer
//! side `⌊256 · long / short⌋`), centre-crop 224x224 (offsets rounded half-to-even like
//! Python's `round`), scale to `[0, 1]`, subtract the mean and divide by the std per channel.
//! The resize is bilinear with antialiasing (a triangle filter widened by the shrink factor), as
//! PIL's `BILINEAR`; PIL rounds its intermediate pass to 8 bits and we do not, so pixels may
//! differ by one grey level from torchvision's.

use std::path::Path;

use image::imageops::FilterType;
use image::RgbImage;

use crate::{Error, Result};

/// Per-channel mean of ImageNet (RGB, `[0, 1]` scale).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// Per-channel standard deviation of ImageNet.
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Resize-then-crop sizes of the evaluation transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preprocess {
    /// Target of the shorter side before cropping.
    pub resize: u32,
    /// Side of the square centre crop (the network input).
    pub crop: u32,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            resize: 256,
            crop: 224,
        }
    }
}

/// The largest image side accepted, so a corrupt or hostile header cannot ask for gigabytes.
const MAX_SIDE: u32 = 16_384;

impl Preprocess {
    /// A short name for cache keys: `r256c224`.
    pub fn id(&self) -> String {
        format!("r{}c{}", self.resize, self.crop)
    }

    /// Values per preprocessed image (`3 · crop · crop`).
    pub fn len(&self) -> usize {
        3 * (self.crop as usize) * (self.crop as usize)
    }

    /// Whether the crop is empty.
    pub fn is_empty(&self) -> bool {
        self.crop == 0
    }

    /// Decodes `path` and preprocesses it: `[3, crop, crop]`, CHW, normalised.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>> {
        let reader = image::ImageReader::open(path)
            .map_err(|e| Error::io(path, e))?
            .with_guessed_format()
            .map_err(|e| Error::io(path, e))?;
        let (w, h) = reader
            .into_dimensions()
            .map_err(|e| Error::format(path, format!("cannot read image header: {e}")))?;
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
            return Err(Error::format(
                path,
                format!("image is {w}x{h}; sides must be between 1 and {MAX_SIDE}"),
            ));
        }
        let img = image::ImageReader::open(path)
            .map_err(|e| Error::io(path, e))?
            .with_guessed_format()
            .map_err(|e| Error::io(path, e))?
            .decode()
            .map_err(|e| Error::format(path, format!("cannot decode image: {e}")))?;
        Ok(self.apply(&img.to_rgb8()))
    }

    /// Preprocesses an RGB image already in memory: `[3, crop, crop]`, CHW, normalised.
    pub fn apply(&self, img: &RgbImage) -> Vec<f32> {
        let resized = self.resize_crop(img);
        let c = self.crop as usize;
        let mut out = vec![0f32; 3 * c * c];
        for (x, y, p) in resized.enumerate_pixels() {
            for ch in 0..3 {
                let v = p[ch] as f32 / 255.0;
                out[ch * c * c + y as usize * c + x as usize] = (v - MEAN[ch]) / STD[ch];
            }
        }
        out
    }

    /// The resized and centre-cropped RGB picture (before normalisation).
    pub fn resize_crop(&self, img: &RgbImage) -> RgbImage {
        let (w, h) = img.dimensions();
        let (nw, nh) = if w <= h {
            let long = (self.resize as u64 * h as u64 / w as u64) as u32;
            (self.resize, long.max(1))
        } else {
            let long = (self.resize as u64 * w as u64 / h as u64) as u32;
            (long.max(1), self.resize)
        };
        let resized = if (nw, nh) == (w, h) {
            img.clone()
        } else {
            image::imageops::resize(img, nw, nh, FilterType::Triangle)
        };
        let crop = self.crop.min(nw).min(nh);
        let left = ((nw - crop) as f64 / 2.0).round_ties_even() as u32;
        let top = ((nh - crop) as f64 / 2.0).round_ties_even() as u32;
        let cropped = image::imageops::crop_imm(&resized, left, top, crop, crop).to_image();
        if crop == self.crop {
            cropped
        } else {
            // Only for images smaller than the crop on one side after resizing (resize < crop).
            image::imageops::resize(&cropped, self.crop, self.crop, FilterType::Triangle)
        }
    }
}

/// Indices of the `k` largest values, largest first.
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    idx.truncate(k);
    idx
}
