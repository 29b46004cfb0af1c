//! `siamese triplets make|train|predict`: triplet similarity from `anchor positive negative`
//! files on a frozen ImageNet backbone (seed 003).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use siamese::data::triplet_file::{
    list_classes, make_triplets, read_triplets, split_classes, write_triplets, MakeOptions,
};
use siamese::distance::Distance;
use siamese::model::backbone::{Backbone, BackboneKind, FeatureExtractor};
use siamese::model::feature_cache;
use siamese::model::head::TripletHeadConfig;
use siamese::train::head::{train_head, HeadRunConfig};
use siamese::train::head_predict::{predict_triplet_file, triplet_file_features};

#[derive(Args)]
pub struct TripletsArgs {
    #[command(subcommand)]
    command: TripletsCommand,
}

#[derive(Subcommand)]
enum TripletsCommand {
    /// Draw triplets from a labelled folder (`class/*.jpg`): anchor and positive from one class,
    /// negative from another.
    Make(MakeArgs),
    /// Train the head (dense 512, ReLU, dropout, dense D, L2) on frozen backbone features.
    Train(TrainArgs),
    /// Print one 0/1 per triplet: 1 when the anchor is closer to the second image than the third.
    Predict(PredictArgs),
}

#[derive(Args)]
struct MakeArgs {
    /// Folder of class folders.
    #[arg(long)]
    images: PathBuf,
    /// Triplets to draw (for the main file).
    #[arg(long, default_value_t = 10_000)]
    n: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The triplet file to write.
    #[arg(long)]
    out: PathBuf,
    /// Also write a test file whose classes (people) are disjoint from `--out`'s.
    #[arg(long)]
    test_out: Option<PathBuf>,
    /// Triplets in the test file.
    #[arg(long, default_value_t = 2_000)]
    test_n: usize,
    /// Share of the classes kept for the test file.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct TrainArgs {
    /// The folder the triplet file's image names are relative to.
    #[arg(long)]
    images: PathBuf,
    /// The training triplet file (`anchor positive negative` per line).
    #[arg(long)]
    triplets: PathBuf,
    /// mobilenet_v2 (fetched with `siamese fetch backbone`) or resnet50 (needs --weights).
    #[arg(long, default_value = "mobilenet_v2")]
    backbone: BackboneKind,
    /// Backbone weights (torchvision `.pth` or safetensors) instead of the fetched ones.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Run folder: config.json, head.safetensors, history.json, loss.png.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = HeadRunConfig::new(BackboneKind::MobileNetV2, String::new(), 0).epochs)]
    epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = HeadRunConfig::new(BackboneKind::MobileNetV2, String::new(), 0).learning_rate)]
    lr: f64,
    /// Triplets per step.
    #[arg(long, default_value_t = HeadRunConfig::new(BackboneKind::MobileNetV2, String::new(), 0).batch)]
    batch: usize,
    /// Triplet margin alpha.
    #[arg(long, default_value_t = HeadRunConfig::new(BackboneKind::MobileNetV2, String::new(), 0).margin)]
    margin: f64,
    /// Embedding dimension D.
    #[arg(long, default_value_t = TripletHeadConfig::new(0).dim)]
    dim: usize,
    /// Width of the hidden dense layer.
    #[arg(long, default_value_t = TripletHeadConfig::new(0).hidden)]
    hidden: usize,
    #[arg(long, default_value_t = TripletHeadConfig::new(0).dropout)]
    dropout: f64,
    /// euclidean, squared_euclidean, cosine or l1.
    #[arg(long, default_value_t = HeadRunConfig::new(BackboneKind::MobileNetV2, String::new(), 0).distance)]
    distance: Distance,
    /// Share of the triplets held out for validation.
    #[arg(long, default_value_t = HeadRunConfig::new(BackboneKind::MobileNetV2, String::new(), 0).val_fraction)]
    val_fraction: f64,
    #[arg(long, default_value_t = HeadRunConfig::new(BackboneKind::MobileNetV2, String::new(), 0).seed)]
    seed: u64,
    /// Feature cache folder (default: <cache>/features).
    #[arg(long)]
    feature_cache: Option<PathBuf>,
    /// Print one JSON object on stdout (no progress bars).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PredictArgs {
    /// A run folder written by `siamese triplets train`.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    images: PathBuf,
    #[arg(long)]
    triplets: PathBuf,
    /// Feature cache folder (default: <cache>/features).
    #[arg(long)]
    feature_cache: Option<PathBuf>,
    /// One JSON object: predictions, accuracy (positive-second convention) and the raw
    /// backbone features' accuracy.
    #[arg(long)]
    json: bool,
}

pub fn run(args: TripletsArgs) -> anyhow::Result<()> {
    match args.command {
        TripletsCommand::Make(a) => make(a),
        TripletsCommand::Train(a) => train(a),
        TripletsCommand::Predict(a) => predict(a),
    }
}

fn make(a: MakeArgs) -> anyhow::Result<()> {
    siamese::output::output_target(&a.out)?;
    if let Some(test_out) = &a.test_out {
        siamese::output::check_distinct(&[("--out", &a.out), ("--test-out", test_out)])?;
        siamese::output::output_target(test_out)?;
    }
    let classes = list_classes(&a.images)?;
    let (train_classes, test_classes) = match &a.test_out {
        Some(_) => {
            let (tr, te) = split_classes(&classes, a.test_fraction, a.seed)?;
            (tr, Some(te))
        }
        None => (classes.clone(), None),
    };
    let opts = MakeOptions {
        n: a.n,
        seed: a.seed,
    };
    let train = make_triplets(&train_classes, opts, &a.images)?;
    let test = match (&test_classes, &a.test_out) {
        (Some(te), Some(_)) => Some(make_triplets(
            te,
            MakeOptions {
                n: a.test_n,
                seed: a.seed.wrapping_add(1),
            },
            &a.images,
        )?),
        _ => None,
    };
    write_triplets(&a.out, &train)?;
    if let (Some(path), Some(t)) = (&a.test_out, &test) {
        write_triplets(path, t)?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "out": a.out.display().to_string(),
                "triplets": train.len(),
                "classes": train_classes.len(),
                "test_out": a.test_out.as_ref().map(|p| p.display().to_string()),
                "test_triplets": test.as_ref().map(Vec::len),
                "test_classes": test_classes.as_ref().map(|c| c.len()),
            })
        );
    } else {
        println!(
            "{}: {} triplets from {} classes",
            a.out.display(),
            train.len(),
            train_classes.len()
        );
        if let (Some(path), Some(t), Some(c)) = (&a.test_out, &test, &test_classes) {
            println!(
                "{}: {} triplets from {} other classes",
                path.display(),
                t.len(),
                c.len()
            );
        }
    }
    Ok(())
}

fn train(a: TrainArgs) -> anyhow::Result<()> {
    let file = read_triplets(&a.triplets, &a.images)?;
    let backbone = Backbone::load_cpu(a.backbone, a.weights.as_deref())?;
    let cache = a.feature_cache.unwrap_or_else(feature_cache::default_dir);
    let (data, stats) = triplet_file_features(&file, &a.images, &backbone, &cache, !a.json)
        .context("computing backbone features")?;
    let config = HeadRunConfig {
        head: TripletHeadConfig::new(backbone.feature_dim())
            .with_hidden(a.hidden)
            .with_dim(a.dim)
            .with_dropout(a.dropout),
        backbone: a.backbone,
        backbone_weights: a.weights.clone(),
        backbone_id: backbone.id(),
        epochs: a.epochs,
        learning_rate: a.lr,
        batch: a.batch,
        margin: a.margin,
        distance: a.distance,
        val_fraction: a.val_fraction,
        seed: a.seed,
    };
    let outcome = train_head(&data, &config, &a.out, !a.json)?;
    let best = &outcome.history[outcome.best_epoch - 1];
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "run": a.out.display().to_string(),
                "backbone": backbone.id(),
                "features": stats,
                "train_triplets": outcome.train_triplets,
                "val_triplets": outcome.val_triplets,
                "best_epoch": outcome.best_epoch,
                "val_loss": best.val_loss,
                "val_accuracy": best.val_accuracy,
                "history": outcome.history,
            })
        );
    } else {
        println!(
            "{}: features {} computed, {} cached; best epoch {} of {}: val loss {:.4}, val accuracy {:.2} % ({} train / {} val triplets)",
            a.out.display(),
            stats.computed,
            stats.hits,
            outcome.best_epoch,
            outcome.history.len(),
            best.val_loss,
            100.0 * best.val_accuracy,
            outcome.train_triplets,
            outcome.val_triplets
        );
    }
    Ok(())
}

fn predict(a: PredictArgs) -> anyhow::Result<()> {
    let cache = a.feature_cache.unwrap_or_else(feature_cache::default_dir);
    let out = predict_triplet_file(&a.model, &a.images, &a.triplets, &cache, !a.json)?;
    if a.json {
        let predictions: Vec<u8> = out.predictions.iter().map(|&b| b as u8).collect();
        println!(
            "{}",
            serde_json::json!({
                "triplets": out.predictions.len(),
                "accuracy": out.accuracy,
                "raw_feature_accuracy_euclidean": out.raw_feature_accuracy_euclidean,
                "raw_feature_accuracy_cosine": out.raw_feature_accuracy_cosine,
                "features": out.features,
                "predictions": predictions,
            })
        );
    } else {
        let mut text = String::with_capacity(out.predictions.len() * 2);
        for &p in &out.predictions {
            text.push_str(if p { "1\n" } else { "0\n" });
        }
        print!("{text}");
    }
    Ok(())
}
