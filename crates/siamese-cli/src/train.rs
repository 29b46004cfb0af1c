//! `siamese train`: trains the embedding CNN with triplet loss (or `--loss NAME`) into a run
//! folder.

use std::path::PathBuf;

use clap::Args;
use siamese::distance::Distance;
use siamese::loss::{LossConfig, LossOptions};
use siamese::model::embedding_cnn::EmbeddingCnnConfig;
use siamese::run::{train_run, DataSource, Existing};
use siamese::sampling::MiningStrategy;
use siamese::train::{Sampling, TrainConfig};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// `mnist`, `omniglot:ZIP[,ZIP…]` (Omniglot background zips) or a folder of class folders
    /// (`class_name/*.png|jpg`).
    #[arg(long, default_value = "mnist")]
    pub data: String,
    /// Run folder for checkpoints, config, history and loss.png.
    #[arg(long)]
    pub out: PathBuf,
    /// Passes over the training data.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// Adam learning rate (cosine-decayed to 5 % of it).
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    pub lr: f64,
    /// The loss: triplet, contrastive, multi-similarity, circle, proxy-anchor, arcface, cosface,
    /// nt-xent or supcon (see README's Losses for each one's options and defaults).
    #[arg(long, default_value = "triplet")]
    pub loss: String,
    /// Margin: triplet alpha (default 0.2), circle m, proxy-anchor delta, arcface/cosface m.
    #[arg(long)]
    pub margin: Option<f64>,
    /// Contrastive: same-class pairs closer than this cost nothing (default 0).
    #[arg(long)]
    pub pos_margin: Option<f64>,
    /// Contrastive: different-class pairs farther than this cost nothing (default 1).
    #[arg(long)]
    pub neg_margin: Option<f64>,
    /// Multi-similarity alpha (default 2), proxy-anchor alpha (default 32).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Multi-similarity beta (default 50).
    #[arg(long)]
    pub beta: Option<f64>,
    /// Multi-similarity base similarity lambda (default 0.5).
    #[arg(long)]
    pub base: Option<f64>,
    /// Multi-similarity miner margin epsilon (default 0.1).
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// Scale: circle gamma (default 80), arcface/cosface s (default 30).
    #[arg(long)]
    pub scale: Option<f64>,
    /// NT-Xent / SupCon temperature (default 0.1).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// euclidean (default), squared_euclidean, cosine or l1: the distance of the triplet and
    /// contrastive losses and of evaluation. The other losses use cosine similarity on
    /// L2-normalised embeddings, and refuse this option.
    #[arg(long)]
    pub distance: Option<Distance>,
    /// Embedding dimension.
    #[arg(long, default_value_t = TrainConfig::default().model.dim)]
    pub dim: usize,
    /// Dropout rate after the pooling layer (the seeds' 0.25).
    #[arg(long, default_value_t = TrainConfig::default().model.dropout_conv)]
    pub dropout_conv: f64,
    /// Dropout rate after the 128-unit dense layer (the seeds' 0.5; training with triplet loss
    /// is better without it, see README).
    #[arg(long, default_value_t = TrainConfig::default().model.dropout_dense)]
    pub dropout_dense: f64,
    /// L2-normalise embeddings (the default).
    #[arg(long, overrides_with = "no_l2")]
    pub l2: bool,
    /// Do not L2-normalise embeddings.
    #[arg(long)]
    pub no_l2: bool,
    /// Triplet mining: batch-hard, batch-all (default), semi-hard (online, P×K batches) or
    /// random (the seeds' generator). The other losses choose their own.
    #[arg(long)]
    pub mining: Option<String>,
    /// Classes per batch (P) for online mining.
    #[arg(long, default_value_t = 10)]
    pub p: usize,
    /// Images per class (K) for online mining.
    #[arg(long, default_value_t = 16)]
    pub k: usize,
    /// How batches are drawn: pk (P classes × K images, the default) or pairs (explicit
    /// same/different pairs, half each, for --loss contrastive).
    #[arg(long, default_value = "pk")]
    pub sampler: String,
    /// Pairs per batch with `--sampler pairs`.
    #[arg(long, default_value_t = siamese::sampling::pair_batch::DEFAULT_PAIRS_PER_BATCH)]
    pub pairs_per_batch: usize,
    /// Cross-batch memory: mine each batch against the embeddings of the last SIZE training
    /// images too (pair and triplet losses; not proxy-anchor, arcface, cosface).
    #[arg(long, value_name = "SIZE")]
    pub xbm: Option<usize>,
    /// With --xbm: the training step (from 0) from which the memory is filled and mined
    /// against (default: one epoch's steps, so the memory starts with the second epoch).
    #[arg(long, requires = "xbm")]
    pub xbm_start_iteration: Option<usize>,
    /// Triplets per batch with `--mining random`.
    #[arg(long, default_value_t = 64)]
    pub triplets_per_batch: usize,
    /// Fraction of the training data held out for validation loss.
    #[arg(long, default_value_t = TrainConfig::default().val_fraction)]
    pub val_fraction: f64,
    /// Train on a stratified subset of this many MNIST images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// With `--data omniglot:…`: convert the drawings into N × N fields instead of MNIST's
    /// 28 × 28 (28..=112; the ink's box stays 20/28 of the field). Saved in the run, so
    /// `oneshot` and `eval` convert their drawings the same way.
    #[arg(long, value_name = "N")]
    pub side: Option<usize>,
    /// With `--data omniglot:…`: also train on every character turned by 90°, 180° and 270°,
    /// each turn a class of its own (four times the classes; an epoch is four times as long).
    #[arg(long)]
    pub rotated_classes: bool,
    /// Randomly shift training images by up to this many pixels (0 turns augmentation off).
    #[arg(long, default_value_t = TrainConfig::default().augment_shift)]
    pub augment_shift: usize,
    /// Randomly rotate training images by up to this many degrees (0 = off).
    #[arg(long, default_value_t = TrainConfig::default().augment_rotate)]
    pub augment_rotate: f64,
    /// Randomly scale training images by a factor in [1 - s, 1 + s] (0 = off).
    #[arg(long, default_value_t = TrainConfig::default().augment_scale)]
    pub augment_scale: f64,
    /// Deliver an exponential moving average of the weights with this per-step decay (0 = off).
    #[arg(long, default_value_t = TrainConfig::default().ema_decay)]
    pub ema_decay: f64,
    /// Outlier exposure: images of no class added to every batch as negatives only, from a
    /// folder / .zip of images or `omniglot:ALPHABET,ALPHABET,…` (Omniglot alphabets).
    #[arg(long)]
    pub outliers: Option<String>,
    /// Arithmetic of the convolutions: f32, or bf16 inputs with fp32 sums on AMX tiles (Intel
    /// Xeon Sapphire Rapids and later; elsewhere it says so and trains in fp32).
    #[arg(long, default_value = "f32", value_parser = crate::precision::parse_precision)]
    pub precision: siamese::kernels::Precision,
    /// Outlier images per batch with --outliers.
    #[arg(long, default_value_t = siamese::train::outliers::DEFAULT_OUTLIERS_PER_BATCH)]
    pub outliers_per_batch: usize,
    /// The Omniglot zip (or folder of zips) for `--outliers omniglot:…` (default:
    /// $SIAMESE_OMNIGLOT).
    #[arg(long)]
    pub omniglot: Option<PathBuf>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Continue an interrupted run from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print the history as one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl TrainArgs {
    /// The library config these arguments describe.
    pub fn config(&self) -> anyhow::Result<TrainConfig> {
        let loss = LossConfig::from_options(
            &self.loss,
            &LossOptions {
                margin: self.margin,
                pos_margin: self.pos_margin,
                neg_margin: self.neg_margin,
                alpha: self.alpha,
                beta: self.beta,
                base: self.base,
                epsilon: self.epsilon,
                scale: self.scale,
                temperature: self.temperature,
            },
        )?;
        if let (Some(_), false) = (&self.mining, loss == LossConfig::Triplet) {
            anyhow::bail!(
                "invalid --mining: does not apply to --loss {loss} (it chooses its own pairs)"
            );
        }
        loss.check_distance_option(self.distance)?;
        let mining = self.mining.as_deref().unwrap_or("batch-all");
        let sampling = if self.sampler == "pairs" {
            if self.mining.is_some() {
                anyhow::bail!("invalid --mining: does not apply to --sampler pairs (fixed pairs)");
            }
            Sampling::Pairs {
                pairs_per_batch: self.pairs_per_batch,
            }
        } else if self.sampler != "pk" {
            anyhow::bail!(
                "invalid --sampler: unknown sampler `{}` (pk, pairs)",
                self.sampler
            );
        } else if mining == "random" {
            Sampling::Random {
                triplets_per_batch: self.triplets_per_batch,
            }
        } else {
            Sampling::Pk {
                classes_per_batch: self.p,
                images_per_class: self.k,
                mining: mining.parse::<MiningStrategy>()?,
            }
        };
        let config = TrainConfig {
            model: EmbeddingCnnConfig::new()
                .with_dim(self.dim)
                .with_l2_normalize(!self.no_l2)
                .with_dropout_conv(self.dropout_conv)
                .with_dropout_dense(self.dropout_dense),
            loss,
            margin: match loss {
                LossConfig::Triplet => self.margin.unwrap_or(TrainConfig::default().margin),
                _ => TrainConfig::default().margin,
            },
            distance: self.distance.unwrap_or_default(),
            sampling,
            epochs: self.epochs,
            learning_rate: self.lr,
            val_fraction: self.val_fraction,
            seed: self.seed,
            augment_shift: self.augment_shift,
            augment_rotate: self.augment_rotate,
            augment_scale: self.augment_scale,
            ema_decay: self.ema_decay,
            outliers: match &self.outliers {
                Some(spec) => Some(siamese::train::outliers::OutlierExposure {
                    source: siamese::train::outliers::OutlierSource::parse(
                        spec,
                        self.omniglot.as_deref(),
                    )?,
                    per_batch: self.outliers_per_batch,
                }),
                None => None,
            },
            xbm: self.xbm.map(|size| siamese::sampling::XbmConfig {
                size,
                start_iteration: self.xbm_start_iteration,
            }),
            precision: crate::precision::usable(self.precision, "training"),
        };
        config.check()?;
        Ok(config)
    }
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let source = DataSource::parse(&args.data, args.limit)?
        .with_side(args.side)?
        .with_rotated_classes(args.rotated_classes)?;
    let existing = if args.resume {
        Existing::Resume
    } else {
        Existing::Retrain
    };
    let progress = !args.quiet && !args.json;
    let outcome = train_run(&args.out, &source, &config, existing, progress)?;
    if let Some(warning) = &outcome.collapse_warning {
        eprintln!("warning: {warning}");
    }
    if args.json {
        let json = serde_json::json!({
            "run": args.out,
            "epochs": outcome.history.epochs.iter().map(|e| serde_json::json!({
                "epoch": e.epoch, "train_loss": e.train_loss, "val_loss": e.val_loss,
                "seconds": e.seconds, "images_per_second": e.images_per_second,
            })).collect::<Vec<_>>(),
            "collapse": outcome.collapse_warning,
        });
        println!("{json}");
    } else {
        let secs: f64 = outcome.history.epochs.iter().map(|e| e.seconds).sum();
        println!(
            "trained {} epochs in {:.0} s; run saved in {}",
            outcome.history.epochs.len(),
            secs,
            args.out.display()
        );
    }
    Ok(())
}
