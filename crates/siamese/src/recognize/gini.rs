//! The seeds' open-set baseline: a softmax layer (`[B, D] → dense C → softmax → [B, C]`)
//! trained with cross-entropy on **frozen** embeddings of the training images, and the Gini
//! impurity of its output, `1 − Σ pᵢ²`, as the unknown score (0 for a confident one-hot output,
//! `1 − 1/C` for a uniform one). Its threshold is calibrated like the distance thresholds, from
//! validation digits alone ([`super::calibration::calibrate_thresholds`]).
//!
//! Training runs on burn (flex CPU, autodiff) with Adam; the trained weights are copied to the
//! host as a [`SoftmaxLayer`] stored in the calibration file, so scoring needs no tensors.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Hyper-parameters of the softmax layer's training.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftmaxTrainConfig {
    pub epochs: usize,
    /// Embeddings per Adam step.
    pub batch: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl Default for SoftmaxTrainConfig {
    fn default() -> Self {
        SoftmaxTrainConfig {
            epochs: 10,
            batch: 256,
            learning_rate: 1e-2,
            seed: 42,
        }
    }
}

/// A dense layer with softmax output, on the host: `logits = x · W + b`, `W` row-major
/// `[dim, classes]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxLayer {
    pub dim: usize,
    pub classes: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Gini impurity `1 − Σ pᵢ²` of a probability vector.
pub fn gini_impurity(p: &[f32]) -> f32 {
    1.0 - p.iter().map(|v| v * v).sum::<f32>()
}

impl SoftmaxLayer {
    /// Logits `x · W + b` of each row of `x` (`[n, dim]` → `[n, classes]`).
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(x.len() / self.dim.max(1) * self.classes);
        for row in x.chunks_exact(self.dim.max(1)) {
            let mut logits = self.bias.clone();
            for (&v, w) in row.iter().zip(self.weights.chunks_exact(self.classes)) {
                for (l, &wc) in logits.iter_mut().zip(w) {
                    *l += v * wc;
                }
            }
            out.extend(logits);
        }
        out
    }

    /// Softmax probabilities of each row of `x` (`[n, dim]` → `[n, classes]`).
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let mut out = self.logits(x);
        for logits in out.chunks_exact_mut(self.classes.max(1)) {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for l in logits.iter_mut() {
                *l = (*l - max).exp();
                sum += *l;
            }
            for l in logits.iter_mut() {
                *l /= sum;
            }
        }
        out
    }

    /// For each row of `x`: the most probable class and the Gini impurity of the softmax.
    pub fn predict(&self, x: &[f32]) -> Vec<(u32, f32)> {
        self.probabilities(x)
            .chunks_exact(self.classes.max(1))
            .map(|p| (argmax(p), gini_impurity(p)))
            .collect()
    }
}

#[derive(Module, Debug)]
struct SoftmaxClassifier {
    linear: Linear,
}

fn rows_tensor(x: &[f32], dim: usize, rows: &[usize], device: &Device) -> Tensor<2> {
    let mut v = Vec::with_capacity(rows.len() * dim);
    for &r in rows {
        v.extend_from_slice(&x[r * dim..(r + 1) * dim]);
    }
    Tensor::from_data(TensorData::new(v, [rows.len(), dim]), device)
}

fn host(t: Tensor<2>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| Error::Other(format!("cannot read tensor: {e:?}")))
}

/// Trains a softmax layer on `embeddings` (`[labels.len(), dim]`) to predict `labels`
/// (`< classes`), Adam with cross-entropy, shuffled mini-batches seeded by `config.seed`.
pub fn train_softmax(
    embeddings: &[f32],
    labels: &[u32],
    dim: usize,
    classes: usize,
    config: &SoftmaxTrainConfig,
) -> Result<SoftmaxLayer> {
    if dim == 0 || labels.is_empty() || embeddings.len() != labels.len() * dim {
        return Err(Error::config(
            "softmax training data",
            format!(
                "{} values for {} labels of dimension {dim}",
                embeddings.len(),
                labels.len()
            ),
        ));
    }
    if classes < 2 || labels.iter().any(|&l| l as usize >= classes) {
        return Err(Error::config(
            "softmax training data",
            format!("labels must lie in 0..{classes} with at least 2 classes"),
        ));
    }
    if config.epochs == 0
        || config.batch == 0
        || config.learning_rate.is_nan()
        || config.learning_rate <= 0.0
    {
        return Err(Error::config(
            "softmax training",
            "epochs, batch and learning rate must be positive",
        ));
    }
    let device = Device::default().autodiff();
    device.seed(config.seed);
    let mut model = SoftmaxClassifier {
        linear: LinearConfig::new(dim, classes).init(&device),
    };
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..labels.len()).collect();
    for epoch in 0..config.epochs {
        order.shuffle(&mut rng);
        // Cosine decay to 5 % of the rate: the last epochs settle instead of jittering.
        let progress = epoch as f64 / config.epochs as f64;
        let lr = config.learning_rate
            * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
        for batch in order.chunks(config.batch) {
            let x = rows_tensor(embeddings, dim, batch, &device);
            let targets: Vec<i64> = batch.iter().map(|&i| labels[i] as i64).collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(targets, [batch.len()]), &device);
            let loss = loss_fn.forward(model.linear.forward(x), y);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
        }
    }
    let trained = model.valid();
    let weights = host(trained.linear.weight.val())?;
    let bias = match &trained.linear.bias {
        Some(b) => b
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::Other(format!("cannot read tensor: {e:?}")))?,
        None => vec![0.0; classes],
    };
    let layer = SoftmaxLayer {
        dim,
        classes,
        weights,
        bias,
    };
    if layer
        .weights
        .iter()
        .chain(&layer.bias)
        .any(|v| !v.is_finite())
    {
        return Err(Error::Other(
            "softmax training diverged (non-finite weights)".to_string(),
        ));
    }
    Ok(layer)
}

/// The index of the largest value (the first of equal ones; 0 for an empty row).
pub(crate) fn argmax(row: &[f32]) -> u32 {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0 as u32
}
