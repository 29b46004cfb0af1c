//! The inference-only entry points of pretrained networks (dlib's face ResNet, MobileNetV2):
//! padded/strided convolutions with fused epilogues (ReLU, ReLU6, a residual add), the depthwise
//! convolution and the k × k max-pool; each takes our kernel on flex tensors without autodiff
//! when the fast kernels are on and falls back to burn's layers otherwise.

use std::sync::atomic::Ordering;

use burn::tensor::activation::relu;
use burn::tensor::Tensor;

use super::{conv_infer, fast_context, fast_kernels, flex_ops, FAST_CALLS};

/// `conv2d(x, weight, bias)` with `stride` and symmetric zero `padding` (then ReLU when `relu`),
/// for inference: through [`conv_infer`] on flex tensors without autodiff when the fast kernels
/// are on, else burn's `conv2d`. `weight [O, C, KH, KW]` (one group, no dilation), `bias [O]`.
pub fn conv2d_bias(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: [usize; 2],
    padding: [usize; 2],
    relu_after: bool,
) -> Tensor<4> {
    let inference = fast_context(&[&x, &weight]) == Some(false)
        && fast_context(&[&bias]) == Some(false)
        && x.dims()[1] == weight.dims()[1];
    if fast_kernels() && inference {
        FAST_CALLS.fetch_add(1, Ordering::Relaxed);
        let activation = if relu_after {
            Activation::Relu
        } else {
            Activation::Identity
        };
        return flex_ops::conv2d_infer(x, weight, bias, stride, padding, activation, None);
    }
    let options = burn::tensor::ops::ConvOptions::new(stride, padding, [1, 1], 1);
    let y = burn::tensor::module::conv2d(x, weight, Some(bias), options);
    if relu_after {
        relu(y)
    } else {
        y
    }
}

/// What follows an inference convolution in [`conv2d_bias_then`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Relu,
    /// `min(max(·, 0), 6)`.
    Relu6,
}

/// `conv2d` + bias, then `residual` added (when given), then `activation` (ReLU6 is not
/// combined with a residual: MobileNetV2 adds its skip to the linear projection): our im2col +
/// GEMM kernel with the rest in its epilogue for inference on flex, burn's layers elsewhere.
pub fn conv2d_bias_then(
    x: Tensor<4>,
    (weight, bias): (Tensor<4>, Tensor<1>),
    (stride, padding): ([usize; 2], [usize; 2]),
    residual: Option<Tensor<4>>,
    activation: Activation,
) -> Tensor<4> {
    let supported = !(residual.is_some() && activation == Activation::Relu6);
    let inference = fast_context(&[&x, &weight]) == Some(false)
        && fast_context(&[&bias]) == Some(false)
        && residual
            .as_ref()
            .is_none_or(|r| fast_context(&[r]) == Some(false))
        && x.dims()[1] == weight.dims()[1];
    if fast_kernels() && inference && supported {
        let s = conv_infer::InferConvShape::of(&x.dims(), &weight.dims(), stride, padding);
        let out = [s.batch, s.out_channels, s.out_h(), s.out_w()];
        if residual.as_ref().is_none_or(|r| r.dims() == out) {
            FAST_CALLS.fetch_add(1, Ordering::Relaxed);
            return flex_ops::conv2d_infer(x, weight, bias, stride, padding, activation, residual);
        }
    }
    let options = burn::tensor::ops::ConvOptions::new(stride, padding, [1, 1], 1);
    let mut y = burn::tensor::module::conv2d(x, weight, Some(bias), options);
    if let Some(r) = residual {
        y = y + r;
    }
    match activation {
        Activation::Identity => y,
        Activation::Relu => relu(y),
        Activation::Relu6 => y.clamp(0.0, 6.0),
    }
}

/// Depthwise `conv2d` (`weight [C, 1, K, K]`, groups = C) + bias, with ReLU6 after when
/// `relu6`: our [`depthwise`] kernel for inference on flex, burn's grouped convolution
/// elsewhere.
pub fn depthwise_conv2d_bias(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    padding: usize,
    relu6: bool,
) -> Tensor<4> {
    let [_, c, h, w] = x.dims();
    let [o, per_group, k, k2] = weight.dims();
    let inference = fast_context(&[&x, &weight]) == Some(false)
        && fast_context(&[&bias]) == Some(false)
        && o == c
        && per_group == 1
        && k == k2
        && stride > 0
        && h + 2 * padding >= k
        && w + 2 * padding >= k;
    if fast_kernels() && inference {
        FAST_CALLS.fetch_add(1, Ordering::Relaxed);
        return flex_ops::depthwise_infer(x, weight, bias, stride, padding, relu6);
    }
    let options =
        burn::tensor::ops::ConvOptions::new([stride, stride], [padding, padding], [1, 1], c);
    let y = burn::tensor::module::conv2d(x, weight, Some(bias), options);
    if relu6 {
        y.clamp(0.0, 6.0)
    } else {
        y
    }
}

/// `relu(conv2d(x, weight, bias) + residual)` (a ResNet block's end) with `stride` and symmetric
/// zero `padding`, for inference: the addition and ReLU run in [`conv_infer`]'s epilogue, while
/// the output is in cache, when the fast kernels apply; else burn's `conv2d`, `+` and ReLU.
pub fn conv2d_bias_add_relu(
    x: Tensor<4>,
    (weight, bias): (Tensor<4>, Tensor<1>),
    stride: [usize; 2],
    padding: [usize; 2],
    residual: Tensor<4>,
) -> Tensor<4> {
    let inference = fast_context(&[&x, &weight, &residual]) == Some(false)
        && fast_context(&[&bias]) == Some(false)
        && x.dims()[1] == weight.dims()[1];
    if fast_kernels() && inference {
        let s = conv_infer::InferConvShape::of(&x.dims(), &weight.dims(), stride, padding);
        if residual.dims() == [s.batch, s.out_channels, s.out_h(), s.out_w()] {
            FAST_CALLS.fetch_add(1, Ordering::Relaxed);
            return flex_ops::conv2d_infer(
                x,
                weight,
                bias,
                stride,
                padding,
                Activation::Relu,
                Some(residual),
            );
        }
    }
    let options = burn::tensor::ops::ConvOptions::new(stride, padding, [1, 1], 1);
    relu(burn::tensor::module::conv2d(x, weight, Some(bias), options) + residual)
}

/// MobileNetV2's pooled features of `images [N, C, H, W]` through the fused per-image pass
/// ([`super::inverted_residual`]) when the fast kernels are on and the images are flex f32
/// without autodiff; `None` otherwise (the caller runs its layers one by one).
pub fn fused_mobilenet_features(
    net: &super::inverted_residual::FusedMobileNet,
    images: &Tensor<4>,
) -> Option<Tensor<2>> {
    let [_, c, h, w] = images.dims();
    if !(fast_kernels()
        && fast_context(&[images]) == Some(false)
        && c == net.in_channels()
        && h > 0
        && w > 0)
    {
        return None;
    }
    FAST_CALLS.fetch_add(1, Ordering::Relaxed);
    Some(flex_ops::mobilenet_features(net, images.clone()))
}

/// `k × k` max-pool with stride `stride`, no padding (floor mode), for inference: our
/// vectorised kernel on flex tensors without autodiff when the fast kernels are on, else burn's
/// `max_pool2d`.
pub fn max_pool2d_infer(x: Tensor<4>, k: usize, stride: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if fast_kernels()
        && fast_context(&[&x]) == Some(false)
        && h >= k
        && w >= k
        && k > 0
        && stride > 0
    {
        FAST_CALLS.fetch_add(1, Ordering::Relaxed);
        return flex_ops::max_pool_infer(x, k, stride);
    }
    burn::tensor::module::max_pool2d(
        x,
        burn::tensor::ops::MaxPoolOptions::new([k, k]).with_stride([stride, stride]),
    )
}

/// Whether [`fused_face_embeddings`] runs on `device`: the fast kernels are on and `device` is
/// the CPU backend.
pub fn fused_face_pass_on(device: &burn::tensor::Device) -> bool {
    let probe = Tensor::<1>::zeros([1], device);
    fast_kernels() && fast_context(&[&probe]) == Some(false)
}

/// dlib's face ResNet on `chips` (`side·side·3` RGB bytes each, HWC) in one channels-last pass
/// per chip ([`super::face_resnet_hwc`]) when the fast kernels are on and `device` is the CPU
/// backend; `None` otherwise (the caller runs the network layer by layer).
pub fn fused_face_embeddings(
    net: &super::face_resnet_hwc::FusedFaceResNet,
    device: &burn::tensor::Device,
    chips: &[u8],
) -> Option<Vec<f32>> {
    if !fused_face_pass_on(device) {
        return None;
    }
    FAST_CALLS.fetch_add(1, Ordering::Relaxed);
    let n = chips.len() / (net.side * net.side * 3).max(1);
    let mut out = vec![0.0; n * net.dim()];
    net.embed_chips(chips, &mut out);
    Some(out)
}
