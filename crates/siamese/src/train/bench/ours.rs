//! Our side of the benchmark: the seeds' CNN on burn (flex CPU backend), a training step of T
//! random triplets (`[3T, 1, 28, 28]` in one forward, `[3T, D]` out, split into anchors,
//! positives, negatives), Adam; inference of a `[B, 1, 28, 28]` batch; a whole epoch.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Device;

use super::{load_average, median, peak_rss_mb, reset_peak_rss, BenchConfig, SideReport};
use crate::data::LabelledImages;
use crate::embed::{batch_tensor, to_host};
use crate::loss::TripletLossConfig;
use crate::model::embedding_cnn::{EmbeddingCnn, EmbeddingCnnConfig};
use crate::sampling::RandomTriplets;
use crate::train::trainer::new_optimizer;
use crate::{Error, Result};

/// Times our training step, inference and (optionally) an epoch on `train`/`test`
/// (`1 × 28 × 28` images; `train` needs two classes, one of them with two images).
pub fn measure_ours(
    config: &BenchConfig,
    train: &LabelledImages,
    test: &LabelledImages,
) -> Result<SideReport> {
    config.check()?;
    let load_avg_start = load_average();
    let device = Device::default().autodiff();
    device.seed(config.seed);
    let model_config = EmbeddingCnnConfig::new()
        .with_channels(train.channels)
        .with_image_size(train.height)
        .with_dim(config.dim);
    let mut stepper = TrainStepper {
        model: Some(model_config.init(&device)?),
        optimizer: new_optimizer(),
        loss: TripletLossConfig::new().with_margin(config.margin).init()?,
        triplets: RandomTriplets::new(&train.labels, train.class_names.len(), config.seed)?,
        data: train,
        device,
        learning_rate: config.learning_rate,
        per_step: config.triplets_per_step,
    };

    let rss_scope = reset_peak_rss();
    for _ in 0..config.warmup.max(1) {
        stepper.step()?;
    }
    let mut train_step_ms = Vec::with_capacity(config.rounds);
    for _ in 0..config.rounds {
        let mut times = Vec::with_capacity(config.steps);
        for _ in 0..config.steps {
            times.push(stepper.step()?);
        }
        train_step_ms.push(median(&mut times) * 1e3);
    }
    let (epoch_seconds, epoch_images) = if config.epoch {
        let steps = train.len() / config.images_per_step();
        let started = Instant::now();
        for _ in 0..steps {
            stepper.step()?;
        }
        (
            Some(started.elapsed().as_secs_f64()),
            steps * config.images_per_step(),
        )
    } else {
        (None, 0)
    };
    let peak_rss_mb = peak_rss_mb()?;

    let framework = framework_name(&stepper.device);
    let model = stepper
        .model
        .take()
        .expect("the stepper always holds a model");
    let (infer_batch_ms, batch_len) = time_inference(config, &model, test)?;
    let train_ms = median(&mut train_step_ms.clone());
    let infer_ms = median(&mut infer_batch_ms.clone());
    Ok(SideReport {
        framework,
        train_img_per_s: config.images_per_step() as f64 / (train_ms / 1e3),
        train_step_ms,
        infer_img_per_s: batch_len as f64 / (infer_ms / 1e3),
        infer_batch_ms,
        epoch_seconds,
        epoch_images,
        peak_rss_mb,
        peak_rss_scope: rss_scope,
        threads: rayon::current_num_threads(),
        load_avg_start,
        load_avg_end: load_average(),
        notes: vec![
            "train step and epoch: the same step loop (random triplets)".into(),
            format!("keep_freed_memory={}", config.keep_freed_memory),
        ],
    })
}

/// Our side's name: the backend, and on flex which kernels ran (the fast kernels are flex-only;
/// on a GPU backend burn's own layers run).
fn framework_name(device: &Device) -> String {
    let backend = format!("{device:?}");
    if backend.to_lowercase().contains("flex") {
        format!(
            "siamese (burn 0.22.1, flex CPU backend, {} kernels)",
            crate::kernels::kernels_name()
        )
    } else {
        format!("siamese (burn 0.22.1, {backend}, burn's layers)")
    }
}

/// The state of a benchmark training run; `step` does one timed step and returns its seconds.
struct TrainStepper<'a> {
    /// `None` only while a step has taken the model out to update it.
    model: Option<EmbeddingCnn>,
    optimizer: ModuleOptimizer,
    loss: crate::loss::TripletLoss,
    triplets: RandomTriplets,
    data: &'a LabelledImages,
    device: Device,
    learning_rate: f64,
    per_step: usize,
}

impl TrainStepper<'_> {
    fn step(&mut self) -> Result<f64> {
        let trips: Vec<[usize; 3]> = (&mut self.triplets).take(self.per_step).collect();
        let indices: Vec<usize> = (0..3)
            .flat_map(|k| trips.iter().map(move |t| t[k]))
            .collect();
        let started = Instant::now();
        let model = self.model.take().expect("the stepper always holds a model");
        let emb = model.forward(batch_tensor(self.data, &indices, &self.device));
        let t = self.per_step;
        let loss = self.loss.forward(
            emb.clone().narrow(0, 0, t),
            emb.clone().narrow(0, t, t),
            emb.narrow(0, 2 * t, t),
        );
        let grads = GradientsParams::from_grads(loss.clone().backward(), &model);
        self.model = Some(self.optimizer.step(self.learning_rate, model, grads));
        // Reading the loss waits for the step, as Keras' train_on_batch returning it does.
        let value: f32 = loss.into_scalar();
        let seconds = started.elapsed().as_secs_f64();
        if !value.is_finite() {
            return Err(Error::Other(format!(
                "benchmark training diverged: loss is {value}"
            )));
        }
        Ok(seconds)
    }
}

/// Median inference-batch time of each round (ms) and the batch size used.
fn time_inference(
    config: &BenchConfig,
    model: &EmbeddingCnn,
    test: &LabelledImages,
) -> Result<(Vec<f64>, usize)> {
    let inference = model.valid();
    let device = Device::default();
    let indices: Vec<usize> = (0..config.infer_batch.min(test.len())).collect();
    if indices.is_empty() {
        return Err(Error::config("test", "no test images to time inference on"));
    }
    let run = || -> Result<f64> {
        let started = Instant::now();
        let emb = to_host(inference.forward(batch_tensor(test, &indices, &device)))?;
        std::hint::black_box(emb);
        Ok(started.elapsed().as_secs_f64())
    };
    for _ in 0..config.warmup.max(1) {
        run()?;
    }
    let mut rounds = Vec::with_capacity(config.rounds);
    for _ in 0..config.rounds {
        let mut times = (0..config.steps)
            .map(|_| run())
            .collect::<Result<Vec<_>>>()?;
        rounds.push(median(&mut times) * 1e3);
    }
    Ok((rounds, indices.len()))
}
