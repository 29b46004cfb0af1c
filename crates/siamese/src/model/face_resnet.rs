//! dlib's 128-d face ResNet (`dlib_face_recognition_resnet_model_v1`), inference only, loaded
//! from face-api.js's flat float32 copy of its weights.
//!
//! ```text
//! input  [B, 3, 150, 150] RGB in [0, 255]; x = (x - (122.782, 117.001, 104.298)) / 256
//! conv 7x7/2 valid, 32, ReLU            → [B,  32, 72, 72]
//! max-pool 3x3/2 valid                  → [B,  32, 35, 35]
//! 3 × residual(32)                      → [B,  32, 35, 35]
//! residual_down(64),  3 × residual(64)  → [B,  64, 17, 17]
//! residual_down(128), 2 × residual(128) → [B, 128,  8,  8]
//! residual_down(256), 2 × residual(256) → [B, 256,  4,  4]
//! residual_down(256)                    → [B, 256,  2,  2]
//! global mean, dense 256→128 (no bias)  → [B, 128]
//! ```
//!
//! `residual(x) = relu(bn(conv3x3(relu(bn(conv3x3(x))))) + x)` with "same" padding;
//! `residual_down` uses a 3x3/2 "valid" first convolution, adds `avg_pool2x2(x)` (zero-padded
//! with channels when their number doubles), and zero-pads the convolution branch at the
//! bottom/right when its side is one short of the pool's (4 → 1 vs 2 in the last block).
//!
//! Each convolution's batch-norm (stored as per-channel scale and shift) is folded into its
//! weights and bias at load time: `w' = w·s`, `b' = b·s + t`.
//!
//! File layout (little-endian float32, 5,614,592 values): for each convolution in the order
//! above, filters `[O, I, k, k]`, bias `[O]`, scale `[O]`, shift `[O]`; then the dense matrix
//! `[128, 256]`. Layer order and shapes follow face-api.js's `faceRecognitionNet/extractParams.ts`.

use std::path::Path;

use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::{AvgPoolOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};

use super::EmbeddingNet;
use crate::kernels::face_resnet_hwc::{ConvHwc, FusedFaceResNet, ResidualHwc};
use crate::{Error, Result};

/// Side of the square input chip.
pub const CHIP_SIZE: usize = 150;
/// Embedding length.
pub const EMBEDDING_DIM: usize = 128;
/// Per-channel RGB means subtracted before the network (dlib's `input_rgb_image_sized`).
pub const RGB_MEAN: [f32; 3] = [122.782, 117.001, 104.298];
/// Number of float32 values in the weight file.
pub const WEIGHT_COUNT: usize = 5_614_592;

/// A convolution with its batch-norm folded in.
#[derive(Debug, Clone)]
struct FoldedConv {
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    /// Symmetric zero padding ("same" for 3x3 stride 1 is 1; "valid" is 0).
    padding: usize,
}

impl FoldedConv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_relu(x, false)
    }

    /// The convolution, then ReLU when `relu`; the fast inference kernel on the CPU backend
    /// (`kernels::conv2d_bias`), burn's `conv2d` elsewhere.
    fn forward_relu(&self, x: Tensor<4>, relu: bool) -> Tensor<4> {
        crate::kernels::conv2d_bias(
            x,
            self.weight.clone(),
            self.bias.clone(),
            [self.stride; 2],
            [self.padding; 2],
            relu,
        )
    }
}

/// Two convolutions of a residual block.
#[derive(Debug, Clone)]
struct Residual {
    conv1: FoldedConv,
    conv2: FoldedConv,
    down: bool,
}

impl Residual {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = self.conv1.forward_relu(x.clone(), true);
        if !self.down {
            // relu(conv2(out) + x), the addition and ReLU in the convolution's epilogue.
            let c = &self.conv2;
            return crate::kernels::conv2d_bias_add_relu(
                out,
                (c.weight.clone(), c.bias.clone()),
                [c.stride; 2],
                [c.padding; 2],
                x,
            );
        }
        let mut out = self.conv2.forward(out);
        let mut pooled = avg_pool2d(x, AvgPoolOptions::new([2, 2]));
        let [_, pc, ph, pw] = pooled.dims();
        let [b, oc, oh, ow] = out.dims();
        if (ph, pw) != (oh, ow) {
            // face-api.js appends one zero row and column to the convolution branch.
            out = out.pad([(0, ph - oh), (0, pw - ow)], PadMode::Constant(0.0));
        }
        if pc != oc {
            let zeros = Tensor::<4>::zeros([b, oc - pc, ph, pw], &pooled.device());
            pooled = Tensor::cat(vec![pooled, zeros], 1);
        }
        (out + pooled).clamp_min(0.0)
    }
}

/// The network, ready for inference on one device.
#[derive(Debug, Clone)]
pub struct FaceResNet {
    stem: FoldedConv,
    blocks: Vec<Residual>,
    /// `[256, 128]`, so that `features.matmul(fc)` gives `[B, 128]`.
    fc: Tensor<2>,
    device: Device,
    /// The weights file, named when the network's output is not finite.
    source: Option<std::path::PathBuf>,
    /// The same weights for the channels-last pass per chip (CPU kernels).
    fused: std::sync::Arc<FusedFaceResNet>,
}

/// Reads float32 values from the weight file in order, checking that none is missing.
struct WeightReader<'a> {
    values: &'a [f32],
    at: usize,
}

impl WeightReader<'_> {
    fn take(&mut self, n: usize) -> &[f32] {
        let s = &self.values[self.at..self.at + n];
        self.at += n;
        s
    }

    /// One convolution: filters `[out, in, k, k]`, bias, scale, shift; batch-norm folded.
    fn conv(
        &mut self,
        inputs: usize,
        outputs: usize,
        k: usize,
        stride: usize,
        padding: usize,
        device: &Device,
    ) -> (FoldedConv, ConvHwc) {
        let filters = self.take(outputs * inputs * k * k).to_vec();
        let bias = self.take(outputs).to_vec();
        let scale = self.take(outputs).to_vec();
        let shift = self.take(outputs).to_vec();
        let per_filter = inputs * k * k;
        let mut weight = filters;
        for (o, chunk) in weight.chunks_mut(per_filter).enumerate() {
            chunk.iter_mut().for_each(|w| *w *= scale[o]);
        }
        let bias: Vec<f32> = (0..outputs)
            .map(|o| bias[o] * scale[o] + shift[o])
            .collect();
        let hwc = ConvHwc::from_oihw(&weight, &bias, k);
        let folded = FoldedConv {
            weight: Tensor::from_data(TensorData::new(weight, [outputs, inputs, k, k]), device),
            bias: Tensor::from_data(TensorData::new(bias, [outputs]), device),
            stride,
            padding,
        };
        (folded, hwc)
    }

    fn residual(
        &mut self,
        inputs: usize,
        outputs: usize,
        down: bool,
        device: &Device,
    ) -> (Residual, ResidualHwc) {
        let (stride, padding) = if down { (2, 0) } else { (1, 1) };
        let (conv1, hwc1) = self.conv(inputs, outputs, 3, stride, padding, device);
        let (conv2, hwc2) = self.conv(outputs, outputs, 3, 1, 1, device);
        (
            Residual { conv1, conv2, down },
            ResidualHwc {
                conv1: hwc1,
                conv2: hwc2,
                down,
            },
        )
    }
}

impl FaceResNet {
    /// Loads face-api.js's `face_recognition_model.weights`; a file of the wrong size is an error
    /// naming the file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = crate::input::read_file(path)?;
        if bytes.len() != WEIGHT_COUNT * 4 {
            return Err(Error::format(
                path,
                format!(
                    "{} bytes, expected {} (5,614,592 float32 values of face-api.js's face_recognition_model.weights)",
                    bytes.len(),
                    WEIGHT_COUNT * 4
                ),
            ));
        }
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::format(path, format!("value {i} is not finite")));
        }
        Ok(FaceResNet {
            source: Some(path.to_path_buf()),
            ..Self::from_values(&values, device)
        })
    }

    /// Builds the network from the flat weight values (length [`WEIGHT_COUNT`]).
    pub fn from_values(values: &[f32], device: &Device) -> Self {
        assert_eq!(values.len(), WEIGHT_COUNT, "face ResNet weight count");
        let mut r = WeightReader { values, at: 0 };
        let (stem, stem_hwc) = r.conv(3, 32, 7, 2, 0, device);
        let (mut blocks, mut blocks_hwc) = (Vec::new(), Vec::new());
        // (inputs, outputs, down) in file order.
        let plan: [(usize, usize, bool); 14] = [
            (32, 32, false),
            (32, 32, false),
            (32, 32, false),
            (32, 64, true),
            (64, 64, false),
            (64, 64, false),
            (64, 64, false),
            (64, 128, true),
            (128, 128, false),
            (128, 128, false),
            (128, 256, true),
            (256, 256, false),
            (256, 256, false),
            (256, 256, true),
        ];
        for (i, o, down) in plan {
            let (block, hwc) = r.residual(i, o, down, device);
            blocks.push(block);
            blocks_hwc.push(hwc);
        }
        // Stored [128, 256] row-major (out × in): transpose for `x.matmul(fc)`.
        let fc_rows = r.take(EMBEDDING_DIM * 256).to_vec();
        debug_assert_eq!(r.at, WEIGHT_COUNT);
        let fused = std::sync::Arc::new(FusedFaceResNet {
            stem: stem_hwc,
            blocks: blocks_hwc,
            fc: fc_rows.clone(),
            rgb_mean: RGB_MEAN,
            side: CHIP_SIZE,
        });
        let fc = Tensor::<2>::from_data(TensorData::new(fc_rows, [EMBEDDING_DIM, 256]), device)
            .transpose();
        FaceResNet {
            stem,
            blocks,
            fc,
            fused,
            device: device.clone(),
            source: None,
        }
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How [`FaceResNet::embed_rgb_chips`] runs here, for reports: one channels-last pass per
    /// chip on the CPU kernels, else burn's layers one by one.
    pub fn pass_name(&self) -> &'static str {
        if crate::kernels::fused_face_pass_on(&self.device) {
            "channels-last pass per chip (CPU kernels)"
        } else {
            "layer by layer (burn)"
        }
    }

    /// Forward pass on raw RGB values in `[0, 255]`: `[B, 3, 150, 150] → [B, 128]`.
    pub fn forward(&self, rgb255: Tensor<4>) -> Tensor<2> {
        let mean = Tensor::<1>::from_data(TensorData::new(RGB_MEAN.to_vec(), [3]), &self.device)
            .reshape([1, 3, 1, 1]);
        let x = (rgb255 - mean) / 256.0;
        let x = self.stem.forward_relu(x, true);
        let mut x = crate::kernels::max_pool2d_infer(x, 3, 2);
        for block in &self.blocks {
            x = block.forward(x);
        }
        let [b, c, _, _] = x.dims();
        let pooled: Tensor<2> = x.mean_dim(3).mean_dim(2).reshape([b, c]);
        pooled.matmul(self.fc.clone())
    }

    /// Embeds `n` chips given as interleaved RGB bytes (`n × 150 × 150 × 3`, row-major HWC),
    /// in batches of `batch_size`; returns `n × 128` values.
    pub fn embed_rgb_chips(&self, chips: &[u8], batch_size: usize) -> Result<Vec<f32>> {
        let per_chip = CHIP_SIZE * CHIP_SIZE * 3;
        if !chips.len().is_multiple_of(per_chip) {
            return Err(Error::Other(format!(
                "face chips: {} bytes is not a multiple of 150x150x3",
                chips.len()
            )));
        }
        let n = chips.len() / per_chip;
        let mut out = Vec::with_capacity(n * EMBEDDING_DIM);
        for batch in chips.chunks(per_chip * batch_size.max(1)) {
            let b = batch.len() / per_chip;
            out.extend(self.embed_batch(batch, b)?);
        }
        Ok(out)
    }

    /// [`FaceResNet::embed_rgb_chips`] through burn's tensors layer by layer, whatever the
    /// device (the reference the channels-last pass per chip is tested against).
    pub fn embed_rgb_chips_layer_by_layer(
        &self,
        chips: &[u8],
        batch_size: usize,
    ) -> Result<Vec<f32>> {
        let per_chip = CHIP_SIZE * CHIP_SIZE * 3;
        let mut out = Vec::new();
        for batch in chips.chunks(per_chip * batch_size.max(1)) {
            out.extend(self.layer_by_layer(batch, batch.len() / per_chip)?);
        }
        Ok(out)
    }

    fn layer_by_layer(&self, batch: &[u8], b: usize) -> Result<Vec<f32>> {
        let plane = CHIP_SIZE * CHIP_SIZE;
        let mut nchw = vec![0f32; b * 3 * plane];
        for (i, chip) in batch.chunks_exact(plane * 3).enumerate() {
            let base = i * 3 * plane;
            for (p, px) in chip.chunks_exact(3).enumerate() {
                nchw[base + p] = px[0] as f32;
                nchw[base + plane + p] = px[1] as f32;
                nchw[base + 2 * plane + p] = px[2] as f32;
            }
        }
        let x = Tensor::<4>::from_data(
            TensorData::new(nchw, [b, 3, CHIP_SIZE, CHIP_SIZE]),
            &self.device,
        );
        self.forward(x)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::Other(format!("cannot read face embeddings: {e:?}")))
    }

    fn embed_batch(&self, batch: &[u8], b: usize) -> Result<Vec<f32>> {
        // One channels-last pass per chip on the CPU kernels; burn's layers elsewhere.
        let out = match crate::kernels::fused_face_embeddings(&self.fused, &self.device, batch) {
            Some(out) => out,
            None => self.layer_by_layer(batch, b)?,
        };
        // Finite weights can still overflow (a corrupted file): never hand on a NaN distance.
        if out.iter().any(|v| !v.is_finite()) {
            let what = "the face network's embeddings are not finite: its weights are corrupt; \
                        run `siamese fetch face-models` again";
            return Err(match &self.source {
                Some(path) => Error::format(path, what),
                None => Error::Other(what.into()),
            });
        }
        Ok(out)
    }
}

impl EmbeddingNet for FaceResNet {
    /// `images`: `[B, 3, 150, 150]` RGB in `[0, 1]` (the crate's image convention).
    fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images * 255.0)
    }

    fn dim(&self) -> usize {
        EMBEDDING_DIM
    }
}
