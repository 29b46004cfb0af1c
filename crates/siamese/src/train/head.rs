//! Training the triplet head (seed 003) on frozen, cached backbone features; predicting with it
//! is `head_predict`.
//!
//! Input: a feature matrix `[images, F]` (from [`crate::model::feature_cache`]) and triplets of
//! row indices `(anchor, positive, negative)`. A seeded share of the triplets is held out for
//! validation. Each step embeds a batch's `3B` feature rows with the head (`[3B, F] → [3B, D]`),
//! applies the triplet margin loss and takes an Adam step. The run folder receives
//! `config.json`, `head.safetensors` (the epoch with the lowest validation loss),
//! `history.json` and `loss.png`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::distance::Distance;
use crate::loss::TripletLossConfig;
use crate::model::backbone::BackboneKind;
use crate::model::head::{TripletHead, TripletHeadConfig};
use crate::{Error, Result};

const CONFIG_FILE: &str = "config.json";
const HEAD_FILE: &str = "head.safetensors";
const HISTORY_FILE: &str = "history.json";
/// The loss curves written beside the checkpoint.
pub const LOSS_PNG: &str = "loss.png";

/// Everything needed to rebuild a trained head and the features it expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadRunConfig {
    pub head: TripletHeadConfig,
    /// The frozen backbone whose features the head reads.
    pub backbone: BackboneKind,
    /// Its weights file when not the default one (ResNet-50 always has one).
    pub backbone_weights: Option<PathBuf>,
    /// The backbone's extractor id at training time (weights hash and preprocessing).
    pub backbone_id: String,
    pub epochs: usize,
    pub learning_rate: f64,
    /// Triplets per step.
    pub batch: usize,
    pub margin: f64,
    pub distance: Distance,
    /// Share of the triplets held out for validation.
    pub val_fraction: f64,
    pub seed: u64,
}

impl HeadRunConfig {
    /// The defaults for a head on `backbone`'s features (`feature_dim` wide, extractor id
    /// `backbone_id`): the head's own defaults (dense 512, ReLU, dropout 0.5, dense 10, L2), 40
    /// epochs of Adam at 1e-3 on 64 triplets a step, margin 0.2 with the Euclidean distance, 10 %
    /// of the triplets held out for validation, seed 1. `siamese triplets train` and the demo
    /// start from these.
    pub fn new(backbone: BackboneKind, backbone_id: String, feature_dim: usize) -> Self {
        HeadRunConfig {
            head: TripletHeadConfig::new(feature_dim),
            backbone,
            backbone_weights: None,
            backbone_id,
            epochs: 40,
            learning_rate: 1e-3,
            batch: 64,
            margin: 0.2,
            distance: Distance::Euclidean,
            val_fraction: 0.1,
            seed: 1,
        }
    }

    /// Checks the hyper-parameters.
    pub fn check(&self) -> Result<()> {
        self.head.check()?;
        if self.epochs == 0 {
            return Err(Error::config("epochs", "must be at least 1"));
        }
        if self.batch == 0 {
            return Err(Error::config("batch", "must be at least 1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::config(
                "lr",
                format!("{} must be > 0", self.learning_rate),
            ));
        }
        crate::loss::triplet::check_margin("margin", self.margin)?;
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(Error::config(
                "val-fraction",
                format!("{} is not in [0, 1)", self.val_fraction),
            ));
        }
        Ok(())
    }
}

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadEpoch {
    pub epoch: usize,
    /// Mean training loss (dropout on).
    pub train_loss: f64,
    /// Validation loss (no dropout); `NaN` without a validation split.
    pub val_loss: f64,
    /// Share of validation triplets whose anchor is closer to the positive.
    pub val_accuracy: f64,
    pub seconds: f64,
}

/// What a training run reports.
#[derive(Debug, Clone, Serialize)]
pub struct HeadTrainOutcome {
    pub history: Vec<HeadEpoch>,
    /// The epoch whose weights were kept (lowest validation loss; the last without validation).
    pub best_epoch: usize,
    pub train_triplets: usize,
    pub val_triplets: usize,
    pub run: PathBuf,
}

/// Features of the images a set of triplets uses: `[images, dim]` rows and the triplets as row
/// indices.
#[derive(Debug, Clone)]
pub struct TripletFeatures {
    pub features: Vec<f32>,
    pub dim: usize,
    pub triplets: Vec<[usize; 3]>,
}

impl TripletFeatures {
    fn check(&self) -> Result<()> {
        let rows = self.features.len() / self.dim.max(1);
        if self.dim == 0 || self.features.len() != rows * self.dim {
            return Err(Error::config(
                "features",
                "length is not a multiple of the dimension",
            ));
        }
        if let Some(t) = self.triplets.iter().find(|t| t.iter().any(|&i| i >= rows)) {
            return Err(Error::config(
                "triplets",
                format!("triplet {t:?} indexes past the {rows} feature rows"),
            ));
        }
        Ok(())
    }
}

/// `[rows.len(), dim]` tensor of the given feature rows.
pub(crate) fn rows_tensor(
    features: &[f32],
    dim: usize,
    rows: &[usize],
    device: &Device,
) -> Tensor<2> {
    let mut v = Vec::with_capacity(rows.len() * dim);
    for &r in rows {
        v.extend_from_slice(&features[r * dim..(r + 1) * dim]);
    }
    Tensor::from_data(TensorData::new(v, [rows.len(), dim]), device)
}

/// Embeds a batch of triplets in one forward pass and returns the anchor, positive and negative
/// embeddings `[B, D]` each.
fn embed_triplets(
    head: &TripletHead,
    data: &TripletFeatures,
    batch: &[[usize; 3]],
    device: &Device,
) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
    let rows: Vec<usize> = (0..3)
        .flat_map(|k| batch.iter().map(move |t| t[k]))
        .collect();
    let emb = head.forward(rows_tensor(&data.features, data.dim, &rows, device));
    let b = batch.len();
    let part = |k: usize| {
        let idx: Vec<i64> = ((k * b) as i64..((k + 1) * b) as i64).collect();
        emb.clone().select(
            0,
            Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), device),
        )
    };
    (part(0), part(1), part(2))
}

/// Splits triplet positions into `(train, val)` under `seed`; at least one of each when there
/// are two or more triplets and `val_fraction > 0`.
pub fn split_triplets(n: usize, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut n_val = (n as f64 * val_fraction).round() as usize;
    if val_fraction > 0.0 && n >= 2 {
        n_val = n_val.clamp(1, n - 1);
    }
    let val = order[..n_val].to_vec();
    (order[n_val..].to_vec(), val)
}

/// Trains a head on `data` as `config` says, writing the run into `run`.
pub fn train_head(
    data: &TripletFeatures,
    config: &HeadRunConfig,
    run: &Path,
    progress: bool,
) -> Result<HeadTrainOutcome> {
    config.check()?;
    data.check()?;
    if data.dim != config.head.input_dim {
        return Err(Error::config(
            "features",
            format!(
                "{}-d features for a head expecting {}",
                data.dim, config.head.input_dim
            ),
        ));
    }
    if data.triplets.len() < 2 {
        return Err(Error::config(
            "triplets",
            "at least 2 triplets are needed to train",
        ));
    }
    std::fs::create_dir_all(run).map_err(|e| Error::io(run, e))?;
    let text = serde_json::to_string_pretty(config).map_err(|e| Error::Other(e.to_string()))?;
    crate::output::write_atomic(&run.join(CONFIG_FILE), text.as_bytes())?;

    let device = Device::default().autodiff();
    device.seed(config.seed);
    let mut head = config.head.init(&device)?;
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = TripletLossConfig::new()
        .with_margin(config.margin)
        .with_distance(config.distance)
        .init()?;
    let (train_idx, val_idx) =
        split_triplets(data.triplets.len(), config.val_fraction, config.seed);
    let train: Vec<[usize; 3]> = train_idx.iter().map(|&i| data.triplets[i]).collect();
    let val: Vec<[usize; 3]> = val_idx.iter().map(|&i| data.triplets[i]).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(1));
    let steps = train.len().div_ceil(config.batch);
    let bar = if progress {
        let bar = indicatif::ProgressBar::new((steps * config.epochs) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut history: Vec<HeadEpoch> = Vec::new();
    let mut best: Option<(usize, f64)> = None;
    for epoch in 1..=config.epochs {
        let started = Instant::now();
        bar.set_prefix(format!("epoch {epoch}/{}", config.epochs));
        let mut order = train.clone();
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for (step, batch) in order.chunks(config.batch).enumerate() {
            let (a, p, n) = embed_triplets(&head, data, batch, &device);
            let loss = loss_fn.forward(a, p, n);
            let value: f32 = loss.clone().into_scalar();
            if !value.is_finite() {
                return Err(Error::Other(format!(
                    "training diverged at epoch {epoch}: loss is {value}; lower --lr"
                )));
            }
            loss_sum += value as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = optimizer.step(config.learning_rate, head, grads);
            bar.inc(1);
            bar.set_message(format!("loss {:.4}", loss_sum / (step + 1) as f64));
        }
        let valid = head.valid();
        let (val_loss, val_accuracy) = if val.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            evaluate(&valid, data, &val, config)?
        };
        history.push(HeadEpoch {
            epoch,
            train_loss: loss_sum / steps as f64,
            val_loss,
            val_accuracy,
            seconds: started.elapsed().as_secs_f64(),
        });
        // Keep the best validation epoch (every epoch when there is no validation split).
        let score = if val.is_empty() {
            -(epoch as f64)
        } else {
            val_loss
        };
        if best.is_none_or(|(_, s)| score < s) {
            best = Some((epoch, score));
            save_head(run, &valid)?;
        }
        let text =
            serde_json::to_string_pretty(&history).map_err(|e| Error::Other(e.to_string()))?;
        crate::output::write_atomic(&run.join(HISTORY_FILE), text.as_bytes())?;
        if progress {
            bar.println(format!(
                "epoch {epoch}/{}: train loss {:.4}, val loss {:.4}, val accuracy {:.2} %",
                config.epochs,
                loss_sum / steps as f64,
                val_loss,
                100.0 * val_accuracy
            ));
        }
    }
    bar.finish_and_clear();
    write_loss_png(run, &history)?;
    Ok(HeadTrainOutcome {
        best_epoch: best.map(|(e, _)| e).unwrap_or(config.epochs),
        history,
        train_triplets: train.len(),
        val_triplets: val.len(),
        run: run.to_path_buf(),
    })
}

/// Mean loss and accuracy of `head` over `triplets` (inference, no dropout).
fn evaluate(
    head: &TripletHead,
    data: &TripletFeatures,
    triplets: &[[usize; 3]],
    config: &HeadRunConfig,
) -> Result<(f64, f64)> {
    let device = Device::default();
    let loss_fn = TripletLossConfig::new()
        .with_margin(config.margin)
        .with_distance(config.distance)
        .init()?;
    let (mut loss_sum, mut correct) = (0.0, 0usize);
    for batch in triplets.chunks(512) {
        let (a, p, n) = embed_triplets(head, data, batch, &device);
        let losses: Vec<f32> = loss_fn
            .forward_no_reduction(a.clone(), p.clone(), n.clone())
            .into_data()
            .try_to_vec()
            .map_err(|e| Error::Other(format!("{e:?}")))?;
        loss_sum += losses.iter().map(|&l| l as f64).sum::<f64>();
        let host = |t: Tensor<2>| -> Result<Vec<f32>> {
            t.into_data()
                .try_to_vec()
                .map_err(|e| Error::Other(format!("{e:?}")))
        };
        let (a, p, n) = (host(a)?, host(p)?, host(n)?);
        let d = config.head.dim;
        correct += (0..batch.len())
            .filter(|&i| {
                let r = |v: &[f32]| v[i * d..(i + 1) * d].to_vec();
                config.distance.between(&r(&a), &r(&p)) < config.distance.between(&r(&a), &r(&n))
            })
            .count();
    }
    Ok((
        loss_sum / triplets.len() as f64,
        correct as f64 / triplets.len() as f64,
    ))
}

fn save_head(run: &Path, head: &TripletHead) -> Result<()> {
    let path = run.join(HEAD_FILE);
    let tmp = run.join(format!(".{HEAD_FILE}.tmp"));
    super::checkpoint::save_weights(head, &tmp)?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
}

/// Loads a trained head and its run config.
pub fn load_head(run: &Path, device: &Device) -> Result<(TripletHead, HeadRunConfig)> {
    let path = run.join(CONFIG_FILE);
    if !path.is_file() {
        return Err(Error::format(
            run,
            "not a triplet head run folder (no config.json; train one with `siamese triplets train`)",
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let config: HeadRunConfig = serde_json::from_str(&text)
        .map_err(|e| Error::format(&path, format!("not a triplet head run config: {e}")))?;
    config.check()?;
    let weights = run.join(HEAD_FILE);
    if !weights.is_file() {
        return Err(Error::format(
            run,
            "no head.safetensors in this run folder (train it first)",
        ));
    }
    let mut head = config.head.init(device)?;
    let mut store = SafetensorsStore::from_file(&weights);
    head.load_from(&mut store)
        .map_err(|e| Error::format(&weights, format!("cannot load weights: {e}")))?;
    Ok((head, config))
}

/// Writes the loss curves (train and validation per epoch).
fn write_loss_png(run: &Path, history: &[HeadEpoch]) -> Result<()> {
    let train: Vec<f64> = history.iter().map(|e| e.train_loss).collect();
    let val: Vec<f64> = history.iter().map(|e| e.val_loss).collect();
    crate::viz::plot::loss_curves_png(run.join(LOSS_PNG), &train, &val, "triplet head loss")
}
