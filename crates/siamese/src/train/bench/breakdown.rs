//! Where our training step's time goes: each layer of the seeds' CNN timed alone at the training
//! batch (`B = 3T` images), forward and backward, on the autodiff device in training mode, and
//! the whole step split into forward+loss, backward and the Adam update.
//!
//! The conv, pool and dropout stages go through [`crate::kernels`], so they time whichever path is on;
//! conv2, the pool and dropout are timed both alone and as the model calls them (fused on the
//! im2col path).
//!
//! Shapes: conv1 `[B,1,28,28]→[B,32,26,26]`, conv2 `→[B,64,24,24]`, pool `→[B,64,12,12]`,
//! dense `[B,9216]→[B,128]`, output `[B,128]→[B,D]`, loss `[B,D]→[1]`.

use std::time::Instant;

use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{DropoutConfig, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use super::{median, BenchConfig};
use crate::kernels;
use crate::loss::TripletLossConfig;
use crate::model::embedding_cnn::EmbeddingCnnConfig;
use crate::train::trainer::new_optimizer;
use crate::Result;

/// Median times of one stage, milliseconds (`backward_ms` is 0 where it does not apply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTiming {
    pub stage: String,
    pub forward_ms: f64,
    pub backward_ms: f64,
}

/// Per-layer and whole-step timings at the training batch of `config`.
pub fn step_breakdown(config: &BenchConfig) -> Result<Vec<StageTiming>> {
    config.check()?;
    let device = Device::default().autodiff();
    device.seed(config.seed);
    let b = config.images_per_step();
    let t = config.triplets_per_step;
    let conv1 = Conv2dConfig::new([1, 32], [3, 3]).init(&device);
    let conv2 = Conv2dConfig::new([32, 64], [3, 3]).init(&device);
    let pool = MaxPool2dConfig::new([2, 2]).init();
    let drop_conv = DropoutConfig::new(0.25).init();
    let dense = LinearConfig::new(64 * 12 * 12, 128).init(&device);
    let drop_dense = DropoutConfig::new(0.5).init();
    let output = LinearConfig::new(128, config.dim).init(&device);
    let loss = TripletLossConfig::new().with_margin(config.margin).init()?;

    let mut stages = vec![
        time_stage(
            "conv1 3x3 1->32 + relu",
            config,
            [b, 1, 28, 28],
            &device,
            |x| kernels::conv2d_relu(&conv1, x),
        ),
        time_stage(
            "conv2 3x3 32->64 + relu",
            config,
            [b, 32, 26, 26],
            &device,
            |x| kernels::conv2d_relu(&conv2, x),
        ),
        time_stage(
            "conv2 + relu + max-pool + dropout 0.25 (the model's call)",
            config,
            [b, 32, 26, 26],
            &device,
            |x| kernels::conv2d_relu_pool_dropout(&conv2, &pool, &drop_conv, x),
        ),
        time_stage("max-pool 2x2", config, [b, 64, 24, 24], &device, |x| {
            kernels::max_pool2d(&pool, x)
        }),
        time_stage(
            "dropout 0.25 + flatten",
            config,
            [b, 64, 12, 12],
            &device,
            |x| kernels::dropout(&drop_conv, x).flatten::<2>(1, 3),
        ),
        time_stage(
            "dense 9216->128 + relu + dropout",
            config,
            [b, 9216],
            &device,
            |x| kernels::dense_relu_dropout(&dense, &drop_dense, x),
        ),
        time_stage("dense 128->D", config, [b, 128], &device, |x| {
            output.forward(x)
        }),
        time_stage(
            "triplet loss",
            config,
            [b, config.dim],
            &device,
            |x: Tensor<2>| {
                let a = x.clone().narrow(0, 0, t);
                let p = x.clone().narrow(0, t, t);
                loss.forward(a, p, x.narrow(0, 2 * t, t))
            },
        ),
    ];
    stages.extend(whole_step(config, &device)?);
    Ok(stages)
}

/// Times `f` on fresh random inputs of `shape`: forward, then the backward of its sum.
fn time_stage<const I: usize, const O: usize>(
    name: &str,
    config: &BenchConfig,
    shape: [usize; I],
    device: &Device,
    f: impl Fn(Tensor<I>) -> Tensor<O>,
) -> StageTiming {
    let (mut forward, mut backward) = (Vec::new(), Vec::new());
    for i in 0..config.warmup.max(1) + config.steps {
        let x = Tensor::<I>::random(shape, Distribution::Default, device).require_grad();
        let started = Instant::now();
        let y = f(x.clone());
        let forward_done = Instant::now();
        let grads = y.sum().backward();
        std::hint::black_box(x.grad(&grads));
        if i >= config.warmup.max(1) {
            forward.push((forward_done - started).as_secs_f64() * 1e3);
            backward.push(forward_done.elapsed().as_secs_f64() * 1e3);
        }
    }
    StageTiming {
        stage: name.to_string(),
        forward_ms: median(&mut forward),
        backward_ms: median(&mut backward),
    }
}

/// The real step on the whole model: forward+loss, backward, and the Adam update.
fn whole_step(config: &BenchConfig, device: &Device) -> Result<Vec<StageTiming>> {
    let t = config.triplets_per_step;
    let mut model = EmbeddingCnnConfig::new()
        .with_dim(config.dim)
        .init(device)?;
    let mut optimizer = new_optimizer();
    let loss_fn = TripletLossConfig::new().with_margin(config.margin).init()?;
    let (mut forward, mut backward, mut update) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..config.warmup.max(1) + config.steps {
        let x = Tensor::<4>::random([3 * t, 1, 28, 28], Distribution::Default, device);
        let started = Instant::now();
        let emb = model.forward(x);
        let loss = loss_fn.forward(
            emb.clone().narrow(0, 0, t),
            emb.clone().narrow(0, t, t),
            emb.narrow(0, 2 * t, t),
        );
        let forward_done = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let backward_done = Instant::now();
        model = optimizer.step(config.learning_rate, model, grads);
        let update_done = Instant::now();
        if i >= config.warmup.max(1) {
            forward.push((forward_done - started).as_secs_f64() * 1e3);
            backward.push((backward_done - forward_done).as_secs_f64() * 1e3);
            update.push((update_done - backward_done).as_secs_f64() * 1e3);
        }
    }
    Ok(vec![
        StageTiming {
            stage: "whole step: forward + loss | backward".into(),
            forward_ms: median(&mut forward),
            backward_ms: median(&mut backward),
        },
        StageTiming {
            stage: "whole step: Adam update".into(),
            forward_ms: median(&mut update),
            backward_ms: 0.0,
        },
    ])
}
