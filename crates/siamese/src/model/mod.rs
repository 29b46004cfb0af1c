//! Embedding networks: the seeds' CNN trained here, and pretrained networks (faces, ImageNet
//! backbones) loaded from published weights. All map images to embedding vectors.

pub mod embedding_cnn;

use burn::tensor::Tensor;

/// An image-to-embedding network.
///
/// Shapes: `images` is `[batch, channels, height, width]`, the result `[batch, dim]`.
pub trait EmbeddingNet {
    /// Embeds a batch of images.
    fn embed(&self, images: Tensor<4>) -> Tensor<2>;
    /// Length of one embedding.
    fn dim(&self) -> usize;
}
