//! Labelled image data sets: readers (IDX, image folders, letters), transforms and splits.
//!
//! Every reader produces a [`LabelledImages`]: `n` images of `channels × height × width`
//! stored row-major as `f32` in `[0, 1]` (NCHW order), with one class index per image.

pub mod idx;
pub mod image_folder;
pub mod letters;
pub mod omniglot;
pub mod split;
pub mod transform;
pub mod triplet_file;

pub use idx::{load_mnist, MnistSplit};
pub use image_folder::{
    check_trainable, load_image_folder, load_omniglot_alphabet, load_unknown_images, FolderMode,
};
pub use letters::load_letters;
pub use split::{stratified_split, stratified_subset};
pub use transform::{load_image_mnist_style, mnist_style};

/// `n` labelled images, `NCHW`, values in `[0, 1]`.
#[derive(Debug, Clone)]
pub struct LabelledImages {
    /// Pixel values, length `n * channels * height * width`, NCHW order.
    pub pixels: Vec<f32>,
    /// Class index of each image, `< class_names.len()`.
    pub labels: Vec<u32>,
    /// Human-readable class names (for MNIST "0".."9").
    pub class_names: Vec<String>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl LabelledImages {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image.
    pub fn image_size(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let s = self.image_size();
        &self.pixels[i * s..(i + 1) * s]
    }

    /// A new set holding the images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> LabelledImages {
        let s = self.image_size();
        let mut pixels = Vec::with_capacity(indices.len() * s);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        LabelledImages {
            pixels,
            labels,
            class_names: self.class_names.clone(),
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }
}
