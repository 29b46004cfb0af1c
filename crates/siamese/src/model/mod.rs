//! Embedding networks: the seeds' CNN trained here, and pretrained networks (faces, ImageNet
//! backbones) loaded from published weights. All map images to embedding vectors.

pub mod backbone;
pub mod embedding_cnn;
pub mod face_resnet;
pub mod feature_cache;
pub mod frozen;
pub mod head;
pub mod imagenet;
pub mod mobilenet_v2;
pub mod resnet50;
pub mod weights;

use burn::tensor::Tensor;

/// An image-to-embedding network.
///
/// Shapes: `images` is `[batch, channels, height, width]`, the result `[batch, dim]`.
pub trait EmbeddingNet {
    /// Embeds a batch of images.
    fn embed(&self, images: Tensor<4>) -> Tensor<2>;
    /// Length of one embedding.
    fn dim(&self) -> usize;
    /// `[channels, height, width]` of the images the network reads, where it reads only one
    /// size (the seeds' CNN: its dense layer is sized by the side it was trained at).
    fn input_shape(&self) -> Option<[usize; 3]> {
        None
    }
}
