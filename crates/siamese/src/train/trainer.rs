//! The training loop: batches → embeddings → mined triplets → triplet loss (or the run's other
//! loss, see [`super::objective`]) → Adam step, with validation loss per epoch, a checkpoint
//! after each epoch, and `--resume`.
//!
//! Every epoch's batches come from a sampler seeded by `(seed, epoch)`, so a run resumed after
//! epoch `e` sees exactly the batches an uninterrupted run would have seen.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::augment::Augmentation;
use super::average::WeightAverage;
use super::checkpoint::{self, RunState};
use super::config::{Sampling, TrainConfig};
use super::history::{EpochRecord, History};
use super::objective::{batch_objective, Objective};
use super::schedule::{cosine_lr, progress_bar};
use crate::data::LabelledImages;
use crate::embed::{batch_tensor, to_host};
use crate::loss::{ClassWeights, LossConfig};
use crate::model::embedding_cnn::EmbeddingCnn;
use crate::sampling::{CrossBatchMemory, PairSampler, PkBatchSampler, RandomTriplets};
use crate::{Error, Result};

/// How a run is driven (not part of the model's identity).
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from the run folder's last checkpoint.
    pub resume: bool,
    /// Show a progress bar with the live loss.
    pub progress: bool,
    /// End after this many epochs (checkpoint written) as an interrupted run would, so that
    /// `resume` can continue it; `None` runs every epoch of the config.
    pub stop_after_epochs: Option<usize>,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub history: History,
    /// Set when the embeddings collapsed (see [`History::collapse_warning`]).
    pub collapse_warning: Option<String>,
}

/// Validation batches per epoch are capped so validation stays a small fraction of an epoch.
const MAX_VAL_BATCHES: usize = 40;

/// Trains on `train` (validation loss on `val`), writing the run into `run_dir`.
pub fn train(
    train: &LabelledImages,
    val: &LabelledImages,
    config: &TrainConfig,
    run_dir: &Path,
    options: &TrainOptions,
) -> Result<TrainOutcome> {
    config.check()?;
    super::memory::check_step_memory(config)?;
    if train.channels != config.model.channels
        || train.height != config.model.image_size
        || train.width != config.model.image_size
    {
        return Err(Error::config(
            "data",
            format!(
                "images are {}x{}x{}, the model expects {}x{}x{}",
                train.channels,
                train.height,
                train.width,
                config.model.channels,
                config.model.image_size,
                config.model.image_size
            ),
        ));
    }
    // Everything that can be refused is checked before the run folder is touched: the batch
    // against the training data (named as such), and the validation batches.
    if let Sampling::Pk {
        classes_per_batch,
        images_per_class,
        ..
    } = config.sampling
    {
        PkBatchSampler::new(
            &train.labels,
            train.class_names.len(),
            classes_per_batch,
            images_per_class,
            0,
        )
        .map_err(|e| Error::Other(format!("training data: {e}")))?;
    }
    if let Sampling::Pairs { pairs_per_batch } = config.sampling {
        PairSampler::new(&train.labels, train.class_names.len(), pairs_per_batch, 0)
            .map_err(|e| Error::Other(format!("training data: {e}")))?;
    }
    let val_batches = fixed_val_batches(val, config)?;
    let outliers = super::outliers::load_outliers(config, train)?;
    let _precision = crate::kernels::PrecisionScope::set(config.precision)
        .map_err(|m| Error::config("--precision", m))?;
    std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
    let device = Device::default().autodiff();
    device.seed(config.seed);

    let (mut model, mut optimizer, mut state) =
        if options.resume && checkpoint::has_checkpoint(run_dir) {
            let saved = checkpoint::load_config(run_dir)?;
            if &saved != config {
                return Err(Error::format(
                    checkpoint::config_path(run_dir),
                    "--resume with different hyper-parameters than the interrupted run",
                ));
            }
            let model = checkpoint::load_training_model(run_dir, &device)?
                .fork(&device)
                .train();
            let optimizer = checkpoint::load_optimizer(run_dir, new_optimizer())?;
            (model, optimizer, checkpoint::load_state(run_dir)?)
        } else {
            checkpoint::save_config(run_dir, config)?;
            let model = config.model.init(&device)?;
            let state = RunState {
                epochs_done: 0,
                history: History::default(),
            };
            (model, new_optimizer(), state)
        };

    let num_classes = train.class_names.len();
    // The class vectors of Proxy-Anchor / ArcFace / CosFace, trained by the same optimizer.
    let mut head = match config.loss.has_class_head() {
        false => None,
        true if state.epochs_done > 0 => Some(checkpoint::load_head(run_dir, &device)?),
        true => Some(ClassWeights::new(num_classes, config.model.dim, &device)),
    };
    if let Some(h) = &head {
        h.check_labels(config.loss.name(), &train.labels)?;
    }
    // The cross-batch memory continues from the checkpoint's queue.
    let mut memory = match config.xbm {
        None => None,
        Some(x) if state.epochs_done > 0 => {
            Some(checkpoint::load_memory(run_dir, x.size, config.model.dim)?)
        }
        Some(x) => Some(CrossBatchMemory::new(x.size, config.model.dim)?),
    };
    let steps_per_epoch = (train.len() / config.images_per_step()).max(1);
    let total_steps = steps_per_epoch * config.epochs;
    // A resumed run continues the average saved as its model.
    let mut average = if config.ema_decay > 0.0 {
        let start = if state.epochs_done > 0 {
            checkpoint::load_model(run_dir, &device)?
        } else {
            model.clone()
        };
        Some(WeightAverage::new(&start, config.ema_decay))
    } else {
        None
    };

    let last_epoch = options
        .stop_after_epochs
        .map_or(config.epochs, |n| n.min(config.epochs));
    while state.epochs_done < last_epoch {
        let epoch = state.epochs_done + 1;
        device.seed(config.seed.wrapping_add(epoch as u64 * 7919));
        let batches = epoch_batches(train, num_classes, config, epoch, steps_per_epoch)?;
        let outlier_batches = match (&outliers, &config.outliers) {
            (Some(images), Some(exposure)) => super::outliers::epoch_outliers(
                images.len(),
                exposure.per_batch,
                config.seed,
                epoch,
                batches.len(),
            ),
            _ => vec![Vec::new(); batches.len()],
        };
        let bar = progress_bar(options.progress, batches.len(), epoch, config.epochs);
        let mut aug_rng =
            ChaCha8Rng::seed_from_u64(config.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9));
        let started = Instant::now();
        // `train_loss` is over every valid triplet (as the validation loss), `mined_loss` over the
        // triplets actually trained on.
        let (mut loss_sum, mut mined_sum, mut active_sum) = (0.0, 0.0, 0.0);
        for (step, batch) in batches.iter().enumerate() {
            let global_step = (epoch - 1) * steps_per_epoch + step;
            let lr = cosine_lr(config.learning_rate, global_step, total_steps);
            let exposed = &outlier_batches[step];
            let mut parts = vec![(train, batch.indices.as_slice())];
            if let Some(images) = &outliers {
                parts.push((images, exposed.as_slice()));
            }
            let x = augmented_batch(&parts, config.augmentation(), &mut aug_rng, &device);
            let emb = model.forward(x);
            let host = to_host(emb.clone())?;
            // Each outlier's label is its own and no class's: a negative for every anchor,
            // never an anchor or a positive (exposure is for the triplet loss only: checked by
            // `TrainConfig::check`).
            let labels: Vec<u32> = batch
                .indices
                .iter()
                .map(|&i| train.labels[i])
                .chain((0..exposed.len()).map(|j| (num_classes + j) as u32))
                .collect();
            let active = config
                .xbm
                .is_some_and(|x| x.active_at(global_step, steps_per_epoch));
            let objective = Objective {
                config,
                head: head.as_ref(),
                memory: memory.as_ref().filter(|_| active),
                backward: true,
            };
            let objective = batch_objective(&objective, emb, &host, &labels)?;
            loss_sum += objective.reported;
            active_sum += objective.active;
            // The batch's class images join the memory after being mined against it (outlier
            // images, whose labels are per batch, never do).
            if let (Some(m), true) = (&mut memory, active) {
                let rows = batch.indices.len();
                m.enqueue(&host[..rows * config.model.dim], &labels[..rows])?;
            }
            let Some(loss) = objective.loss else {
                bar.inc(1);
                continue;
            };
            let loss_value: f32 = loss.clone().into_scalar();
            if !loss_value.is_finite() {
                return Err(Error::Other(format!(
                    "training diverged at epoch {epoch}, step {step}: loss is {loss_value}; lower the learning rate"
                )));
            }
            mined_sum += loss_value as f64;
            let mut grads = loss.backward();
            let model_grads = GradientsParams::from_module(&mut grads, &model);
            model = optimizer.step(lr, model, model_grads);
            if let Some(h) = head.take() {
                let head_grads = GradientsParams::from_module(&mut grads, &h);
                head = Some(optimizer.step(lr, h, head_grads));
            }
            if let Some(average) = &mut average {
                average.update(&model, global_step);
            }
            bar.inc(1);
            bar.set_message(format!("loss {:.4}", loss_sum / (step + 1) as f64));
        }
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        let averaged = average.as_ref().map(|a| a.averaged(&model));
        let delivered = averaged.as_ref().unwrap_or(&model);
        let (val_loss, val_mean_distance) =
            validate(delivered, head.as_ref(), val, &val_batches, config)?;
        state.history.epochs.push(EpochRecord {
            epoch,
            train_loss: loss_sum / batches.len() as f64,
            mined_loss: mined_sum / batches.len() as f64,
            val_loss,
            active_fraction: active_sum / batches.len() as f64,
            val_mean_distance,
            seconds,
            images_per_second: (batches.len() * config.images_per_step()) as f64 / seconds,
        });
        state.epochs_done = epoch;
        checkpoint::save_checkpoint(
            run_dir,
            &model,
            averaged.as_ref(),
            head.as_ref(),
            memory.as_ref(),
            &optimizer,
            &state,
        )?;
        let title = match config.loss {
            LossConfig::Triplet => "Triplet loss per epoch (all valid triplets of each batch)",
            _ => "Loss per epoch",
        };
        crate::viz::plot::loss_curves_png(
            run_dir.join("loss.png"),
            &state.history.train_losses(),
            &state.history.val_losses(),
            title,
        )?;
        if options.progress {
            let r = state.history.epochs.last().expect("just pushed");
            eprintln!(
                "epoch {}/{}: train loss {:.4}, val loss {:.4}, {:.0} img/s, {:.0} s",
                epoch, config.epochs, r.train_loss, r.val_loss, r.images_per_second, r.seconds
            );
        }
    }
    let collapse_warning = state.history.collapse_warning(config.margin);
    Ok(TrainOutcome {
        history: state.history,
        collapse_warning,
    })
}

/// One training (or validation) step's images; random batches are `[anchors; positives; negatives]`.
struct Batch {
    indices: Vec<usize>,
}

fn epoch_batches(
    data: &LabelledImages,
    num_classes: usize,
    config: &TrainConfig,
    epoch: usize,
    steps: usize,
) -> Result<Vec<Batch>> {
    let seed = config
        .seed
        .wrapping_mul(1_000_003)
        .wrapping_add(epoch as u64);
    sample_batches(data, num_classes, config, seed, steps)
}

fn sample_batches(
    data: &LabelledImages,
    num_classes: usize,
    config: &TrainConfig,
    seed: u64,
    steps: usize,
) -> Result<Vec<Batch>> {
    match config.sampling {
        Sampling::Random { triplets_per_batch } => {
            let mut stream = RandomTriplets::new(&data.labels, num_classes, seed)?;
            Ok((0..steps)
                .map(|_| {
                    let trips: Vec<[usize; 3]> = (&mut stream).take(triplets_per_batch).collect();
                    let indices = (0..3)
                        .flat_map(|k| trips.iter().map(move |t| t[k]))
                        .collect();
                    Batch { indices }
                })
                .collect())
        }
        Sampling::Pairs { pairs_per_batch } => {
            let mut sampler = PairSampler::new(&data.labels, num_classes, pairs_per_batch, seed)?;
            Ok(sampler
                .batches(steps)
                .into_iter()
                .map(|indices| Batch { indices })
                .collect())
        }
        Sampling::Pk {
            classes_per_batch,
            images_per_class,
            ..
        } => {
            let mut sampler = PkBatchSampler::new(
                &data.labels,
                num_classes,
                classes_per_batch,
                images_per_class,
                seed,
            )?;
            let mut batches = sampler.epoch();
            batches.truncate(steps);
            Ok(batches
                .into_iter()
                .map(|indices| Batch { indices })
                .collect())
        }
    }
}

/// Validation batches, the same every epoch so the curve is comparable.
fn fixed_val_batches(val: &LabelledImages, config: &TrainConfig) -> Result<Vec<Batch>> {
    let steps = (val.len() / config.images_per_step()).clamp(1, MAX_VAL_BATCHES);
    // A small data set's validation split can hold fewer classes than a training batch: its
    // batches take as many classes as it has (at least two).
    let mut val_config = config.clone();
    if let Sampling::Pk {
        classes_per_batch, ..
    } = &mut val_config.sampling
    {
        let usable = crate::sampling::indices_by_class(&val.labels, val.class_names.len())
            .iter()
            .filter(|c| c.len() >= 2)
            .count();
        if usable < 2 {
            return Err(Error::config(
                "validation split",
                format!(
                    "{usable} of its classes have two or more images and a validation batch \
                     needs 2; add images or raise the validation fraction"
                ),
            ));
        }
        *classes_per_batch = (*classes_per_batch).min(usable);
    }
    sample_batches(
        val,
        val.class_names.len(),
        &val_config,
        config.seed ^ 0x5EED_0F7A,
        steps,
    )
}

/// Validation loss (no dropout): for triplet, the mean triplet loss over every valid triplet of
/// the fixed validation batches, whatever the mining strategy (for the other losses, the loss
/// itself on those batches); and the mean distance between consecutive validation embeddings
/// (near 0 means collapse).
fn validate(
    model: &EmbeddingCnn,
    head: Option<&ClassWeights>,
    val: &LabelledImages,
    batches: &[Batch],
    config: &TrainConfig,
) -> Result<(f64, f64)> {
    let inference = model.valid();
    let head = head.map(|h| h.valid());
    let device = Device::default();
    let dim = config.model.dim;
    let objective = Objective {
        config,
        head: head.as_ref(),
        memory: None,
        backward: false,
    };
    let (mut loss_sum, mut dist_sum, mut dist_n) = (0.0, 0.0, 0usize);
    for batch in batches {
        let emb = inference.forward(batch_tensor(val, &batch.indices, &device));
        let host = to_host(emb.clone())?;
        let labels: Vec<u32> = batch.indices.iter().map(|&i| val.labels[i]).collect();
        loss_sum += batch_objective(&objective, emb, &host, &labels)?.reported;
        let rows: Vec<&[f32]> = host.chunks_exact(dim).collect();
        for w in rows.windows(2) {
            dist_sum += config.distance.between(w[0], w[1]) as f64;
            dist_n += 1;
        }
    }
    Ok((
        loss_sum / batches.len().max(1) as f64,
        dist_sum / dist_n.max(1) as f64,
    ))
}

/// The images of each `(data, indices)` part, in order, as one tensor, each randomly distorted
/// by `augmentation`.
fn augmented_batch(
    parts: &[(&LabelledImages, &[usize])],
    augmentation: Augmentation,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Tensor<4> {
    let first = parts[0].0;
    let (c, h, w) = (first.channels, first.height, first.width);
    let n: usize = parts.iter().map(|p| p.1.len()).sum();
    if augmentation.is_identity() && parts.len() == 1 {
        return batch_tensor(first, parts[0].1, device);
    }
    let mut pixels = Vec::with_capacity(n * first.image_size());
    for &(data, indices) in parts {
        for &i in indices {
            if augmentation.is_identity() {
                pixels.extend_from_slice(data.image(i));
            } else {
                augmentation.apply(data.image(i), c, h, w, rng, &mut pixels);
            }
        }
    }
    Tensor::<4>::from_data(TensorData::new(pixels, [n, c, h, w]), device)
}

/// An optimizer of the kind `train` uses; exposed for benchmarks.
pub fn new_optimizer() -> ModuleOptimizer {
    ModuleOptimizer::from(crate::kernels::adam::FusedAdam::default())
}
