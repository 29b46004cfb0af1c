//! The seeds' embedding CNN: `[B, C, S, S] → [B, D]` (S = 28 for MNIST; any square side ≥ 6, the
//! dense layer sized by it: a network reads only the side it was built for).
//!
//! ```text
//! conv 3x3, 32, ReLU   [B, C, 28, 28] → [B, 32, 26, 26]
//! conv 3x3, 64, ReLU                  → [B, 64, 24, 24]
//! max-pool 2x2                        → [B, 64, 12, 12]
//! dropout 0.25, flatten               → [B, 9216]
//! dense 128, ReLU, dropout 0.5        → [B, 128]
//! dense D                             → [B, D]     (optionally L2-normalised)
//! ```
//!
//! Convolutions are "valid" (no padding), as in the Keras original. Dropout acts only while
//! training on an autodiff device.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::EmbeddingNet;
use crate::kernels;
use crate::{Error, Result};

/// Hyper-parameters of [`EmbeddingCnn`]; stored beside every checkpoint as JSON.
#[derive(Config, Debug, PartialEq)]
pub struct EmbeddingCnnConfig {
    /// Input channels (1 for MNIST). Default: `1`.
    #[config(default = 1)]
    pub channels: usize,
    /// Input height and width (square). Default: `28`.
    #[config(default = 28)]
    pub image_size: usize,
    /// Embedding dimension D. Default: `64`.
    #[config(default = 64)]
    pub dim: usize,
    /// Scale embeddings to unit L2 norm. Default: `false`.
    #[config(default = false)]
    pub l2_normalize: bool,
    /// Dropout after the pooling layer. Default: `0.25`.
    #[config(default = 0.25)]
    pub dropout_conv: f64,
    /// Dropout after the 128-unit dense layer. Default: `0.5`.
    #[config(default = 0.5)]
    pub dropout_dense: f64,
}

impl EmbeddingCnnConfig {
    /// Checks the hyper-parameters before any work.
    pub fn check(&self) -> Result<()> {
        if self.channels == 0 {
            return Err(Error::config("channels", "must be at least 1"));
        }
        if self.image_size < 6 {
            return Err(Error::config("image_size", "must be at least 6"));
        }
        if self.dim == 0 {
            return Err(Error::config("dim", "must be at least 1"));
        }
        for (name, p) in [
            ("dropout_conv", self.dropout_conv),
            ("dropout_dense", self.dropout_dense),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::config(name, format!("{p} is not in [0, 1)")));
            }
        }
        Ok(())
    }

    /// Side of the feature map after the two convolutions and the pool.
    fn pooled_size(&self) -> usize {
        (self.image_size - 4) / 2
    }

    /// Builds the network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> Result<EmbeddingCnn> {
        self.check()?;
        let flat = 64 * self.pooled_size() * self.pooled_size();
        Ok(EmbeddingCnn {
            conv1: Conv2dConfig::new([self.channels, 32], [3, 3]).init(device),
            conv2: Conv2dConfig::new([32, 64], [3, 3]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            dropout_conv: DropoutConfig::new(self.dropout_conv).init(),
            dense: LinearConfig::new(flat, 128).init(device),
            dropout_dense: DropoutConfig::new(self.dropout_dense).init(),
            output: LinearConfig::new(128, self.dim).init(device),
            dim: self.dim,
            l2_normalize: self.l2_normalize,
            channels: self.channels,
            image_size: self.image_size,
        })
    }
}

/// The seeds' conv32-conv64-pool-fc128-fcD embedding network.
#[derive(Module, Debug)]
pub struct EmbeddingCnn {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    dropout_conv: Dropout,
    dense: Linear,
    dropout_dense: Dropout,
    output: Linear,
    dim: usize,
    l2_normalize: bool,
    channels: usize,
    image_size: usize,
}

impl EmbeddingCnn {
    /// Forward pass, `[B, C, H, W] → [B, D]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        // conv + bias + ReLU, the pool and dropout go through crate::kernels: burn's own layers,
        // or the flex kernels when they apply (the same results within float rounding; dropout
        // draws its masks its own way).
        let x = kernels::two_conv2d_relu_pool_dropout(
            &self.conv1,
            &self.conv2,
            &self.pool,
            &self.dropout_conv,
            images,
        );
        let x: Tensor<2> = x.flatten(1, 3);
        let x = kernels::dense_relu_dropout(&self.dense, &self.dropout_dense, x);
        let x = self.output.forward(x);
        if self.l2_normalize {
            l2_normalize_rows(x)
        } else {
            x
        }
    }
}

/// Per-image summaries of the first convolution's maps (after ReLU), `[B, 32]` each: the mean
/// and the standard deviation of every channel over its map. They describe an image's strokes
/// (ink, thickness, texture) apart from what it depicts, which is what tells noise, photographs
/// or another script's pen from handwritten digits; the `ensemble` open-set score reads them.
pub struct Conv1Summaries {
    pub means: Tensor<2>,
    pub stds: Tensor<2>,
}

impl EmbeddingCnn {
    /// The inference forward pass with [`Conv1Summaries`] of each image beside its embedding.
    /// It keeps conv1's maps (the fused two-convolution kernel of [`Self::forward`] never
    /// writes them out), so it is for inference only.
    pub fn forward_with_conv1_summaries(&self, images: Tensor<4>) -> (Tensor<2>, Conv1Summaries) {
        let h1 = kernels::conv2d_relu(&self.conv1, images);
        let [b, c, h, w] = h1.dims();
        let flat = h1.clone().reshape([b, c, h * w]);
        let means = flat.clone().mean_dim(2);
        let second = flat.powi_scalar(2).mean_dim(2);
        let stds = (second - means.clone().powi_scalar(2))
            .clamp_min(0.0)
            .sqrt();
        let pooled =
            kernels::conv2d_relu_pool_dropout(&self.conv2, &self.pool, &self.dropout_conv, h1);
        // Inference: no dropout, whatever mode the layer is in.
        let no_dropout = DropoutConfig::new(0.0).init();
        let x = kernels::dense_relu_dropout(&self.dense, &no_dropout, pooled.flatten(1, 3));
        let x = self.output.forward(x);
        let embedding = if self.l2_normalize {
            l2_normalize_rows(x)
        } else {
            x
        };
        let summaries = Conv1Summaries {
            means: means.reshape([b, c]),
            stds: stds.reshape([b, c]),
        };
        (embedding, summaries)
    }
}

impl EmbeddingNet for EmbeddingCnn {
    fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn input_shape(&self) -> Option<[usize; 3]> {
        Some([self.channels, self.image_size, self.image_size])
    }
}

/// Divides each row by its L2 norm (with a floor, so a zero row stays finite).
pub fn l2_normalize_rows(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
