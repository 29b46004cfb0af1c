//! Inference-only layers for frozen pretrained backbones: convolutions with their BatchNorm
//! folded in, and a linear classifier. Plain tensors, not burn `Module`s: these weights are
//! never trained, so there is nothing for an optimiser to see.
//!
//! Folding (eval-mode BatchNorm is affine): `y = γ (conv(x) − μ) / √(σ² + ε) + β`
//! ⇒ `w' = w · γ/√(σ²+ε)` per output channel and `b' = β − μ · γ/√(σ²+ε)`.
//! Shapes: conv weights `[out, in/groups, k, k]` (PyTorch layout), activations NCHW.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

use super::weights::Weights;
use crate::Result;

/// BatchNorm's ε in torchvision's ResNet and MobileNetV2.
pub const BN_EPS: f32 = 1e-5;

/// A convolution with folded BatchNorm (always with a bias after folding).
#[derive(Debug, Clone)]
pub struct FoldedConv {
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    padding: usize,
    groups: usize,
}

/// Shape of a convolution to read from a weights file.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
}

/// A folded convolution's values and settings, for another runtime (the backbone benchmark's
/// ONNX graph): weight `[out, in/groups, k, k]` and bias `[out]`, both row-major.
#[derive(Debug, Clone)]
pub struct ExportedConv {
    pub weight: Vec<f32>,
    pub shape: [usize; 4],
    pub bias: Vec<f32>,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
}

impl FoldedConv {
    /// The folded weights and settings ([`ExportedConv`]).
    pub fn export(&self) -> ExportedConv {
        let values = |t: TensorData| t.try_to_vec::<f32>().expect("f32 weights");
        ExportedConv {
            weight: values(self.weight.clone().into_data()),
            shape: self.weight.dims(),
            bias: values(self.bias.clone().into_data()),
            stride: self.stride,
            padding: self.padding,
            groups: self.groups,
        }
    }

    /// `relu6(self.forward(x))`, with the clamp fused into our depthwise kernel for depthwise
    /// convolutions (MobileNetV2's).
    pub fn forward_relu6(&self, x: Tensor<4>) -> Tensor<4> {
        let [out, per_group, _, _] = self.weight.dims();
        if self.groups > 1 && self.groups == out && per_group == 1 {
            return crate::kernels::depthwise_conv2d_bias(
                x,
                self.weight.clone(),
                self.bias.clone(),
                self.stride,
                self.padding,
                true,
            );
        }
        if self.groups == 1 {
            return self.then(x, None, crate::kernels::Activation::Relu6);
        }
        self.forward(x).clamp(0.0, 6.0)
    }

    /// `self.forward(x)` plus `residual`, fused into our kernel's epilogue where it applies.
    pub fn forward_add(&self, x: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
        if self.groups == 1 {
            return self.then(x, Some(residual), crate::kernels::Activation::Identity);
        }
        self.forward(x) + residual
    }

    fn then(
        &self,
        x: Tensor<4>,
        residual: Option<Tensor<4>>,
        activation: crate::kernels::Activation,
    ) -> Tensor<4> {
        let (s, p) = (self.stride, self.padding);
        crate::kernels::conv2d_bias_then(
            x,
            (self.weight.clone(), self.bias.clone()),
            ([s, s], [p, p]),
            residual,
            activation,
        )
    }

    /// Reads `{conv}.weight` (no bias) and the BatchNorm `{bn}.weight/bias/running_mean/
    /// running_var`, folds them, and uploads to `device`. Padding is `kernel / 2` ("same" for odd
    /// kernels at stride 1), as in torchvision.
    pub fn load(
        weights: &mut Weights,
        conv: &str,
        bn: &str,
        spec: ConvSpec,
        device: &Device,
    ) -> Result<FoldedConv> {
        let ConvSpec {
            in_channels,
            out_channels,
            kernel,
            stride,
            groups,
        } = spec;
        let shape = [out_channels, in_channels / groups, kernel, kernel];
        let mut w = weights.take(&format!("{conv}.weight"), &shape)?;
        let gamma = weights.take(&format!("{bn}.weight"), &[out_channels])?;
        let beta = weights.take(&format!("{bn}.bias"), &[out_channels])?;
        let mean = weights.take(&format!("{bn}.running_mean"), &[out_channels])?;
        let var = weights.take(&format!("{bn}.running_var"), &[out_channels])?;
        let per_out = w.len() / out_channels;
        let mut bias = vec![0f32; out_channels];
        for o in 0..out_channels {
            let scale = gamma[o] / (var[o] + BN_EPS).sqrt();
            for v in &mut w[o * per_out..(o + 1) * per_out] {
                *v *= scale;
            }
            bias[o] = beta[o] - mean[o] * scale;
        }
        Ok(FoldedConv {
            weight: Tensor::from_data(TensorData::new(w, shape), device),
            bias: Tensor::from_data(TensorData::new(bias, [out_channels]), device),
            stride,
            padding: kernel / 2,
            groups,
        })
    }

    /// `[B, in, H, W] → [B, out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if self.groups == 1 {
            // Our im2col + GEMM kernel (burn's layer where it does not apply, e.g. autodiff).
            return crate::kernels::conv2d_bias(
                x,
                self.weight.clone(),
                self.bias.clone(),
                [self.stride, self.stride],
                [self.padding, self.padding],
                false,
            );
        }
        conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            ConvOptions::new(
                [self.stride, self.stride],
                [self.padding, self.padding],
                [1, 1],
                self.groups,
            ),
        )
    }
}

/// A fully connected layer `y = x Wᵀ + b` with PyTorch's `[out, in]` weight.
#[derive(Debug, Clone)]
pub struct FrozenLinear {
    /// Stored transposed, `[in, out]`, so the forward pass is one matmul.
    weight_t: Tensor<2>,
    bias: Tensor<2>,
}

impl FrozenLinear {
    /// Reads `{name}.weight` `[out, in]` and `{name}.bias` `[out]`.
    pub fn load(
        weights: &mut Weights,
        name: &str,
        in_features: usize,
        out_features: usize,
        device: &Device,
    ) -> Result<FrozenLinear> {
        let w = weights.take(&format!("{name}.weight"), &[out_features, in_features])?;
        let b = weights.take(&format!("{name}.bias"), &[out_features])?;
        let weight: Tensor<2> =
            Tensor::from_data(TensorData::new(w, [out_features, in_features]), device);
        Ok(FrozenLinear {
            weight_t: weight.transpose(),
            bias: Tensor::from_data(TensorData::new(b, [1, out_features]), device),
        })
    }

    /// `[B, in] → [B, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight_t.clone()) + self.bias.clone()
    }
}

/// Global average pooling: `[B, C, H, W] → [B, C]`.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
}
