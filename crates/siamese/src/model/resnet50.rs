//! ResNet-50 (He et al. 2016, torchvision's "v1.5": stride on the 3x3 of each bottleneck),
//! inference only, loading user-supplied torchvision weights (`.pth` legacy or zip, or
//! safetensors with torchvision's parameter names). No registry ships these weights.
//!
//! ```text
//! [B, 3, 224, 224] → conv1 7x7/2, 64, BN, ReLU → max-pool 3x3/2   → [B, 64, 56, 56]
//!                  → layer1: 3 bottlenecks (64 → 256)              → [B, 256, 56, 56]
//!                  → layer2: 4 bottlenecks (128 → 512), stride 2   → [B, 512, 28, 28]
//!                  → layer3: 6 bottlenecks (256 → 1024), stride 2  → [B, 1024, 14, 14]
//!                  → layer4: 3 bottlenecks (512 → 2048), stride 2  → [B, 2048, 7, 7]
//!                  → global average pool                           → [B, 2048]  (the features)
//!                  → fc 2048 → 1000                                → [B, 1000]
//! ```
//! Bottleneck: 1x1 (width) → 3x3 (width, stride) → 1x1 (4·width), each with BN, ReLU after the
//! first two and after the residual sum; the shortcut is a strided 1x1 conv + BN when the shape
//! changes. Every BatchNorm is folded into its convolution.

use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

use super::frozen::{global_avg_pool, ConvSpec, FoldedConv, FrozenLinear};
use super::weights::Weights;
use crate::{Error, Result};

/// Length of the pooled feature vector.
pub const FEATURE_DIM: usize = 2048;
/// ImageNet classes of the `fc` layer.
pub const NUM_CLASSES: usize = 1000;
/// `(bottleneck width, blocks, first stride)` of layer1..layer4.
pub const LAYERS: [(usize, usize, usize); 4] = [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)];
const EXPANSION: usize = 4;

#[derive(Debug, Clone)]
struct Bottleneck {
    conv1: FoldedConv,
    conv2: FoldedConv,
    conv3: FoldedConv,
    downsample: Option<FoldedConv>,
}

impl Bottleneck {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.conv1.forward(x.clone()).clamp_min(0.0);
        let h = self.conv2.forward(h).clamp_min(0.0);
        let h = self.conv3.forward(h);
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x),
            None => x,
        };
        (h + shortcut).clamp_min(0.0)
    }
}

/// ResNet-50.
#[derive(Debug, Clone)]
pub struct ResNet50 {
    stem: FoldedConv,
    blocks: Vec<Bottleneck>,
    fc: FrozenLinear,
}

impl ResNet50 {
    /// Builds the network from a torchvision-named state dict; every tensor must be used.
    pub fn from_weights(mut w: Weights, device: &Device) -> Result<ResNet50> {
        let spec = |in_channels, out_channels, kernel, stride| ConvSpec {
            in_channels,
            out_channels,
            kernel,
            stride,
            groups: 1,
        };
        let stem = FoldedConv::load(&mut w, "conv1", "bn1", spec(3, 64, 7, 2), device)?;
        let mut blocks = Vec::new();
        let mut input = 64;
        for (layer, (width, n, first_stride)) in LAYERS.into_iter().enumerate() {
            let out = width * EXPANSION;
            for b in 0..n {
                let stride = if b == 0 { first_stride } else { 1 };
                let p = format!("layer{}.{b}", layer + 1);
                let conv = |w: &mut Weights, i: usize, s: ConvSpec| {
                    FoldedConv::load(w, &format!("{p}.conv{i}"), &format!("{p}.bn{i}"), s, device)
                };
                let conv1 = conv(&mut w, 1, spec(input, width, 1, 1))?;
                let conv2 = conv(&mut w, 2, spec(width, width, 3, stride))?;
                let conv3 = conv(&mut w, 3, spec(width, out, 1, 1))?;
                let downsample = if stride != 1 || input != out {
                    Some(FoldedConv::load(
                        &mut w,
                        &format!("{p}.downsample.0"),
                        &format!("{p}.downsample.1"),
                        spec(input, out, 1, stride),
                        device,
                    )?)
                } else {
                    None
                };
                blocks.push(Bottleneck {
                    conv1,
                    conv2,
                    conv3,
                    downsample,
                });
                input = out;
            }
        }
        let fc = FrozenLinear::load(&mut w, "fc", FEATURE_DIM, NUM_CLASSES, device)?;
        let left = w.leftover();
        if !left.is_empty() {
            return Err(Error::format(
                &w.path,
                format!(
                    "{} tensors are not part of ResNet-50 (first: `{}`)",
                    left.len(),
                    left[0]
                ),
            ));
        }
        Ok(ResNet50 { stem, blocks, fc })
    }

    /// Pooled 2048-d features: `[B, 3, H, W] → [B, 2048]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.stem.forward(images).clamp_min(0.0);
        let mut x = max_pool2d(
            x,
            MaxPoolOptions::new([3, 3])
                .with_stride([2, 2])
                .with_padding([1, 1]),
        );
        for block in &self.blocks {
            x = block.forward(x);
        }
        global_avg_pool(x)
    }

    /// ImageNet logits from pooled features: `[B, 2048] → [B, 1000]`.
    pub fn classify_features(&self, features: Tensor<2>) -> Tensor<2> {
        self.fc.forward(features)
    }

    /// ImageNet logits: `[B, 3, H, W] → [B, 1000]`.
    pub fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.classify_features(self.features(images))
    }
}

/// Names and shapes of every tensor a torchvision ResNet-50 state dict holds (BatchNorm
/// counters excluded), in a fixed order: used to write test weights and to document the format.
pub fn parameter_shapes() -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let mut conv_bn = |conv: String, bn: String, shape: [usize; 4]| {
        out.push((format!("{conv}.weight"), shape.to_vec()));
        for p in ["weight", "bias", "running_mean", "running_var"] {
            out.push((format!("{bn}.{p}"), vec![shape[0]]));
        }
    };
    conv_bn("conv1".into(), "bn1".into(), [64, 3, 7, 7]);
    let mut input = 64;
    for (layer, (width, n, first_stride)) in LAYERS.into_iter().enumerate() {
        let out_c = width * EXPANSION;
        for b in 0..n {
            let p = format!("layer{}.{b}", layer + 1);
            conv_bn(
                format!("{p}.conv1"),
                format!("{p}.bn1"),
                [width, input, 1, 1],
            );
            conv_bn(
                format!("{p}.conv2"),
                format!("{p}.bn2"),
                [width, width, 3, 3],
            );
            conv_bn(
                format!("{p}.conv3"),
                format!("{p}.bn3"),
                [out_c, width, 1, 1],
            );
            let stride = if b == 0 { first_stride } else { 1 };
            if stride != 1 || input != out_c {
                conv_bn(
                    format!("{p}.downsample.0"),
                    format!("{p}.downsample.1"),
                    [out_c, input, 1, 1],
                );
            }
            input = out_c;
        }
    }
    out.push(("fc.weight".into(), vec![NUM_CLASSES, FEATURE_DIM]));
    out.push(("fc.bias".into(), vec![NUM_CLASSES]));
    out
}
