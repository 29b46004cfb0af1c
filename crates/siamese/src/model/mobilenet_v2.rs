//! MobileNetV2 (Sandler et al. 2018) as torchvision builds it, inference only, loading
//! torchvision's ImageNet checkpoint (`mobilenet_v2-b0353104.pth`) by parameter name.
//!
//! ```text
//! [B, 3, 224, 224] → features.0  conv 3x3/2, 32, BN, ReLU6          → [B, 32, 112, 112]
//!                  → features.1..17 inverted residual blocks (t, c, n, s):
//!                      (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1)
//!                                                                  → [B, 320, 7, 7]
//!                  → features.18 conv 1x1, 1280, BN, ReLU6          → [B, 1280, 7, 7]
//!                  → global average pool                            → [B, 1280]  (the features)
//!                  → classifier.1 linear 1280 → 1000                → [B, 1000]  (ImageNet logits)
//! ```
//! A block expands with a 1x1 conv (skipped when t = 1), filters with a depthwise 3x3 (stride s
//! on the block's first repeat), projects with a linear 1x1, and adds its input when the stride
//! is 1 and the channel count is unchanged. Every BatchNorm is folded into its convolution.

use std::sync::Arc;

use burn::tensor::{Device, Tensor};

use crate::kernels::inverted_residual::{self as fused, FusedMobileNet};

use super::frozen::{global_avg_pool, ConvSpec, ExportedConv, FoldedConv, FrozenLinear};
use super::weights::Weights;
use crate::{Error, Result};

/// Length of the pooled feature vector.
pub const FEATURE_DIM: usize = 1280;
/// ImageNet classes of the classifier.
pub const NUM_CLASSES: usize = 1000;

/// `(expand ratio t, output channels c, repeats n, first stride s)` per stage.
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// One inverted residual block.
#[derive(Debug, Clone)]
struct InvertedResidual {
    expand: Option<FoldedConv>,
    depthwise: FoldedConv,
    project: FoldedConv,
    residual: bool,
}

impl InvertedResidual {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        if let Some(expand) = &self.expand {
            h = expand.forward_relu6(h);
        }
        h = self.depthwise.forward_relu6(h);
        if self.residual {
            self.project.forward_add(h, x)
        } else {
            self.project.forward(h)
        }
    }
}

/// One inverted residual block's folded layers (see [`MobileNetV2::export`]).
#[derive(Debug, Clone)]
pub struct ExportedBlock {
    pub expand: Option<ExportedConv>,
    pub depthwise: ExportedConv,
    pub project: ExportedConv,
    pub residual: bool,
}

/// The feature extractor's folded layers in order: stem, blocks, head (each convolution but
/// the blocks' projections followed by ReLU6), then global average pooling.
#[derive(Debug, Clone)]
pub struct ExportedMobileNetV2 {
    pub stem: ExportedConv,
    pub blocks: Vec<ExportedBlock>,
    pub head: ExportedConv,
}

/// MobileNetV2 with ImageNet weights.
#[derive(Debug, Clone)]
pub struct MobileNetV2 {
    stem: FoldedConv,
    blocks: Vec<InvertedResidual>,
    head: FoldedConv,
    classifier: FrozenLinear,
    /// The same folded weights, laid out for the fused per-image CPU pass.
    fused: Arc<FusedMobileNet>,
}

impl MobileNetV2 {
    /// Builds the network from a torchvision state dict (any format [`Weights::load`] reads).
    /// Every tensor of the file must be used, so a checkpoint of another width is rejected.
    pub fn from_weights(mut w: Weights, device: &Device) -> Result<MobileNetV2> {
        let spec = |in_channels, out_channels, kernel, stride, groups| ConvSpec {
            in_channels,
            out_channels,
            kernel,
            stride,
            groups,
        };
        let stem = FoldedConv::load(
            &mut w,
            "features.0.0",
            "features.0.1",
            spec(3, 32, 3, 2, 1),
            device,
        )?;
        let mut blocks = Vec::new();
        let mut input = 32;
        let mut index = 1;
        for (t, c, n, s) in STAGES {
            for repeat in 0..n {
                let stride = if repeat == 0 { s } else { 1 };
                let hidden = input * t;
                let p = format!("features.{index}.conv");
                // Sub-module numbering inside `conv` shifts by one when there is no expansion.
                let (expand, dw_at) = if t == 1 {
                    (None, 0)
                } else {
                    let e = FoldedConv::load(
                        &mut w,
                        &format!("{p}.0.0"),
                        &format!("{p}.0.1"),
                        spec(input, hidden, 1, 1, 1),
                        device,
                    )?;
                    (Some(e), 1)
                };
                let depthwise = FoldedConv::load(
                    &mut w,
                    &format!("{p}.{dw_at}.0"),
                    &format!("{p}.{dw_at}.1"),
                    spec(hidden, hidden, 3, stride, hidden),
                    device,
                )?;
                let project = FoldedConv::load(
                    &mut w,
                    &format!("{p}.{}", dw_at + 1),
                    &format!("{p}.{}", dw_at + 2),
                    spec(hidden, c, 1, 1, 1),
                    device,
                )?;
                blocks.push(InvertedResidual {
                    expand,
                    depthwise,
                    project,
                    residual: stride == 1 && input == c,
                });
                input = c;
                index += 1;
            }
        }
        let head = FoldedConv::load(
            &mut w,
            &format!("features.{index}.0"),
            &format!("features.{index}.1"),
            spec(input, FEATURE_DIM, 1, 1, 1),
            device,
        )?;
        let classifier =
            FrozenLinear::load(&mut w, "classifier.1", FEATURE_DIM, NUM_CLASSES, device)?;
        let left = w.leftover();
        if !left.is_empty() {
            return Err(Error::format(
                &w.path,
                format!(
                    "{} tensors are not part of MobileNetV2 (first: `{}`)",
                    left.len(),
                    left[0]
                ),
            ));
        }
        let fused = Arc::new(fused_layout(&export(&stem, &blocks, &head)));
        Ok(MobileNetV2 {
            stem,
            blocks,
            head,
            classifier,
            fused,
        })
    }

    /// The folded layers of [`MobileNetV2::features`], for another runtime.
    pub fn export(&self) -> ExportedMobileNetV2 {
        export(&self.stem, &self.blocks, &self.head)
    }

    /// Pooled 1280-d features: `[B, 3, H, W] → [B, 1280]` (normalised ImageNet input). On the
    /// CPU kernels each image runs through all layers in one fused pass
    /// ([`crate::kernels::inverted_residual`]); elsewhere layer by layer.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        if let Some(features) = crate::kernels::fused_mobilenet_features(&self.fused, &images) {
            return features;
        }
        self.features_layer_by_layer(images)
    }

    /// [`MobileNetV2::features`] one layer at a time over the whole batch (the path of other
    /// backends, and the reference the fused pass is tested against).
    pub fn features_layer_by_layer(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem.forward_relu6(images);
        for block in &self.blocks {
            x = block.forward(x);
        }
        global_avg_pool(self.head.forward_relu6(x))
    }

    /// ImageNet logits from pooled features: `[B, 1280] → [B, 1000]`.
    pub fn classify_features(&self, features: Tensor<2>) -> Tensor<2> {
        self.classifier.forward(features)
    }

    /// ImageNet logits: `[B, 3, H, W] → [B, 1000]`.
    pub fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.classify_features(self.features(images))
    }
}

fn export(
    stem: &FoldedConv,
    blocks: &[InvertedResidual],
    head: &FoldedConv,
) -> ExportedMobileNetV2 {
    ExportedMobileNetV2 {
        stem: stem.export(),
        blocks: blocks
            .iter()
            .map(|b| ExportedBlock {
                expand: b.expand.as_ref().map(FoldedConv::export),
                depthwise: b.depthwise.export(),
                project: b.project.export(),
                residual: b.residual,
            })
            .collect(),
        head: head.export(),
    }
}

/// The exported layers in the fused pass's layout (channels-last, transposed 1x1 weights).
fn fused_layout(e: &ExportedMobileNetV2) -> FusedMobileNet {
    let pointwise = |c: &ExportedConv| fused::Pointwise::from_oihw(&c.weight, &c.bias);
    FusedMobileNet {
        stem: fused::Stem::new(
            &e.stem.weight,
            e.stem.shape,
            &e.stem.bias,
            e.stem.stride,
            e.stem.padding,
        ),
        blocks: e
            .blocks
            .iter()
            .map(|b| fused::Block {
                expand: b.expand.as_ref().map(pointwise),
                depthwise: fused::Depthwise3x3::from_c1kk(
                    &b.depthwise.weight,
                    &b.depthwise.bias,
                    b.depthwise.stride,
                ),
                project: pointwise(&b.project),
                residual: b.residual,
            })
            .collect(),
        head: pointwise(&e.head),
    }
}
