//! `siamese recognize`: names the digit in each image, or says `unknown`; `--calibrate` computes
//! and stores the gallery and thresholds a run needs first.

use std::path::PathBuf;

use clap::Args;
use siamese::recognize::gini::SoftmaxTrainConfig;
use siamese::recognize::{
    calibrate_run, CalibrateOptions, GalleryMode, RecognizeOptions, Recognizer, Score,
    DEFAULT_TARGET_TPR,
};

#[derive(Args, Debug)]
pub struct RecognizeArgs {
    /// Run folder written by `siamese train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Images (any size or format, converted MNIST-style) or folders of images.
    pub images: Vec<PathBuf>,
    /// Calibrate the run first: embed its training images (the gallery) and validation images,
    /// and write RUN/calibration.json and RUN/gallery.safetensors.
    #[arg(long)]
    pub calibrate: bool,
    /// With --calibrate: share of validation images each threshold accepts.
    #[arg(long, default_value_t = DEFAULT_TARGET_TPR)]
    pub target_tpr: f64,
    /// With --calibrate: k of the k-NN gallery.
    #[arg(long, default_value_t = siamese::recognize::recognizer::DEFAULT_K)]
    pub k: usize,
    /// `prototypes` (nearest class mean) or `knn` (vote of the k nearest training images);
    /// default: the calibration's (with --calibrate, the default it stores).
    #[arg(long)]
    pub gallery: Option<GalleryMode>,
    /// The open-set score that decides: prototypes, knn, knn-kth, mahalanobis, msp, energy,
    /// gini or ensemble (conv1's stroke statistics with the embedding's scores: the best
    /// against every unknown set measured; default: the calibration's gallery mode).
    #[arg(long, conflicts_with = "gallery")]
    pub score: Option<Score>,
    /// Use one calibrated threshold per class instead of the global one.
    #[arg(long)]
    pub per_class: bool,
    /// A threshold overriding the calibrated one (≥ 0; any finite number for `energy`).
    #[arg(long, allow_negative_numbers = true)]
    pub threshold: Option<f32>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RecognizeArgs) -> anyhow::Result<()> {
    if let Some(t) = args.threshold {
        let score = args.score.unwrap_or(Score::Prototypes);
        siamese::recognize::recognizer::check_score_threshold(score, t)?;
    }
    let calibration = if args.calibrate {
        let options = CalibrateOptions {
            target_tpr: args.target_tpr,
            k: args.k,
            default_gallery: args.gallery.unwrap_or_default(),
            softmax: SoftmaxTrainConfig::default(),
        };
        let cal = calibrate_run(&args.model, &options)?;
        if !args.json {
            eprintln!(
                "calibrated on {} validation images against {} gallery images (target TPR {:.1} %): \
                 threshold {:.4} (prototypes), {:.4} (k-NN, k={}), Gini {:.4}",
                cal.validation_images,
                cal.gallery_images,
                100.0 * cal.target_tpr,
                cal.prototype_thresholds.global,
                cal.knn_thresholds.global,
                cal.k,
                cal.gini.thresholds.global
            );
        }
        Some(cal)
    } else {
        None
    };
    if args.images.is_empty() {
        if calibration.is_none() {
            anyhow::bail!("no image given (and no --calibrate)");
        }
        if args.json {
            println!(
                "{}",
                serde_json::to_string(&serde_json::json!({ "calibration": calibration }))?
            );
        }
        return Ok(());
    }
    let recognizer =
        Recognizer::load_with_score(&args.model, args.score.or(args.gallery.map(Score::from)))?;
    let options = RecognizeOptions {
        gallery: args.gallery,
        per_class: args.per_class,
        threshold: args.threshold,
    };
    let results = recognizer.recognize_files(&args.images, &options)?;
    if args.json {
        let out = serde_json::json!({
            "gallery": recognizer.mode.name(),
            "score": recognizer.score.name(),
            "per_class": args.per_class,
            "threshold_overridden": args.threshold.is_some(),
            "results": results,
        });
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    for r in &results {
        if r.known {
            println!(
                "{}: {} ({} {:.4} ≤ threshold {:.4})",
                r.image, r.class, recognizer.score, r.distance, r.threshold
            );
        } else {
            println!(
                "{}: unknown ({} {:.4} > threshold {:.4}; nearest class {})",
                r.image, recognizer.score, r.distance, r.threshold, r.nearest_class
            );
        }
    }
    Ok(())
}
