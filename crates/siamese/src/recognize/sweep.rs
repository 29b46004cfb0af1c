//! The margin sweep (the seeds' alpha figure, with numbers): one short MNIST run per triplet
//! margin α, each evaluated for retrieval (precision@1, as `siamese eval`) and open-set
//! separation (AUROC of prototype distances, test digits vs unknowns, and the share of unknowns
//! rejected at the threshold accepting 95 % of validation digits), plus one embedding plot per
//! margin assembled into a montage. `siamese sweep margin` and the demo's sweep stage both run
//! this one.
//!
//! Output folder: `margin-<α>/` run folders (with `embeddings.png`), `margins.png` (montage),
//! `sweep.json` and `sweep.md` (the table). Runs already finished in the folder are reused.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::gallery::{Gallery, GalleryMode};
use super::openset::UnknownSource;
use super::plots::{project_2d, Projection};
use crate::data::split::stratified_subset;
use crate::data::LabelledImages;
use crate::eval::openset::{auroc, threshold_for_tpr};
use crate::run::{embed, evaluate, load_inference_model, train_run, DataSource, Existing};
use crate::train::TrainConfig;
use crate::viz::{montage_png, scatter_png};
use crate::{Error, Result};

/// How the sweep runs.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The margins α to train with (each finite, ≥ 0, distinct).
    pub margins: Vec<f64>,
    /// Hyper-parameters other than the margin (its `epochs` and `seed` included).
    pub base: TrainConfig,
    /// Train on a stratified subset of this many MNIST images.
    pub limit: Option<usize>,
    /// Unknown images for the AUROC.
    pub unknown: UnknownSource,
    pub max_unknown: usize,
    /// The Omniglot zip for `omniglot-*` unknowns.
    pub omniglot: Option<PathBuf>,
    /// Projection of the embedding plots.
    pub method: Projection,
    /// Test images in each embedding plot (a stratified subset; all when `None`).
    pub plot_points: Option<usize>,
    /// Progress bars while training.
    pub progress: bool,
}

impl Default for SweepOptions {
    /// `siamese sweep margin`'s defaults: the seeds' margins 0, 0.1, …, 0.9, 4 epochs on 6,000
    /// MNIST images without shift augmentation (which slows learning more than it regularises on
    /// so few steps), semi-hard mining without L2 normalisation (so α is on the scale of the
    /// seeds' figure), letters as unknowns. (The demo keeps the seeds' shifts: its own plan.)
    fn default() -> Self {
        SweepOptions {
            margins: (0..10).map(|i| i as f64 / 10.0).collect(),
            base: TrainConfig {
                epochs: 4,
                augment_shift: 0,
                augment_rotate: 0.0,
                augment_scale: 0.0,
                ..TrainConfig::semi_hard_unnormalised()
            },
            limit: Some(6000),
            unknown: UnknownSource::Letters,
            max_unknown: 2000,
            omniglot: None,
            method: Projection::Tsne,
            plot_points: None,
            progress: false,
        }
    }
}

/// One margin's results.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    pub margin: f64,
    /// Test precision@1 against the training images (as `siamese eval`).
    pub precision_at_1: f64,
    /// Test MAP@R against the training images (as `siamese eval`).
    pub map_at_r: f64,
    /// AUROC of prototype distance, test digits vs unknowns.
    pub auroc: f64,
    /// Unknowns rejected at the threshold accepting 95 % of the validation digits.
    pub unknown_rejected: f64,
    /// Validation loss of the last epoch.
    pub val_loss: f64,
    /// The embeddings collapsed (see `History::collapse_warning`).
    pub collapsed: bool,
    /// Seconds spent training (about 0 for a finished run reused from the folder).
    pub train_seconds: f64,
    pub run: PathBuf,
    pub plot: PathBuf,
}

/// The whole sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub epochs: usize,
    pub limit: Option<usize>,
    pub unknown_source: String,
    pub unknown_images: usize,
    pub method: Projection,
    pub rows: Vec<SweepRow>,
    pub montage_png: PathBuf,
    pub table_md: PathBuf,
}

impl SweepReport {
    /// The margin with the best precision@1 (the last of equals).
    pub fn best(&self) -> Option<&SweepRow> {
        self.rows
            .iter()
            .max_by(|a, b| a.precision_at_1.total_cmp(&b.precision_at_1))
    }
}

/// Checks the margins: at least one, each finite and ≥ 0, no repeats.
pub fn check_margins(margins: &[f64]) -> Result<()> {
    if margins.is_empty() {
        return Err(Error::config("margins", "give at least one value"));
    }
    for (i, &m) in margins.iter().enumerate() {
        if !(m.is_finite() && m >= 0.0) {
            return Err(Error::config(
                "margins",
                format!("{m} must be a number ≥ 0"),
            ));
        }
        if margins[..i].contains(&m) {
            return Err(Error::config("margins", format!("{m} is given twice")));
        }
    }
    Ok(())
}

fn margin_dir(out: &Path, margin: f64) -> PathBuf {
    out.join(format!("margin-{margin:.2}"))
}

/// Runs the sweep into `out`; `on_row` is called after each margin (for progress output).
pub fn sweep_margin(
    out: &Path,
    options: &SweepOptions,
    mut on_row: impl FnMut(&SweepRow),
) -> Result<SweepReport> {
    check_margins(&options.margins)?;
    options.base.check()?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let source = DataSource::Mnist {
        limit: options.limit,
    };
    let splits = source.load(options.base.val_fraction, options.base.seed)?;
    let unknown = options.unknown.load(
        options.max_unknown,
        options.base.seed,
        options.omniglot.as_deref(),
    )?;
    let mut rows = Vec::new();
    for &margin in &options.margins {
        let run = margin_dir(out, margin);
        let config = TrainConfig {
            margin,
            ..options.base.clone()
        };
        let started = Instant::now();
        // A finished run in the folder is reused, an interrupted one continues.
        let trained = train_run(&run, &source, &config, Existing::Reuse, options.progress)
            .map_err(|e| Error::Other(format!("margin {margin}: {e}")))?;
        let train_seconds = started.elapsed().as_secs_f64();
        let row = evaluate_margin(&run, margin, &splits, &unknown, options, &config)?;
        let row = SweepRow {
            val_loss: trained
                .history
                .epochs
                .last()
                .map(|e| e.val_loss)
                .unwrap_or(f64::NAN),
            collapsed: trained.collapse_warning.is_some(),
            train_seconds,
            ..row
        };
        on_row(&row);
        rows.push(row);
    }
    let montage = out.join("margins.png");
    let tiles: Vec<&Path> = rows.iter().map(|r| r.plot.as_path()).collect();
    let titles: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "margin {} — P@1 {:.3}, AUROC {:.3}",
                r.margin, r.precision_at_1, r.auroc
            )
        })
        .collect();
    montage_png(&montage, &tiles, rows.len().min(5), &titles)?;
    let report = SweepReport {
        epochs: options.base.epochs,
        limit: options.limit,
        unknown_source: options.unknown.to_string(),
        unknown_images: unknown.len(),
        method: options.method,
        rows,
        montage_png: montage,
        table_md: out.join("sweep.md"),
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| Error::Other(e.to_string()))?;
    crate::output::write_atomic(&out.join("sweep.json"), json.as_bytes())?;
    crate::output::write_atomic(&report.table_md, markdown_table(&report).as_bytes())?;
    Ok(report)
}

/// Precision@1, AUROC, rejection and the embedding plot of one trained margin.
fn evaluate_margin(
    run: &Path,
    margin: f64,
    splits: &crate::run::Splits,
    unknown: &LabelledImages,
    options: &SweepOptions,
    config: &TrainConfig,
) -> Result<SweepRow> {
    let eval = evaluate(run)?;
    let model = load_inference_model(run)?;
    let train_emb = embed(&model, &splits.train)?;
    let val_emb = embed(&model, &splits.val)?;
    let test_emb = embed(&model, &splits.test)?;
    let plotted = match options.plot_points {
        Some(n) => stratified_subset(&splits.test, n, config.seed),
        None => splits.test.clone(),
    };
    let plot_emb = match options.plot_points {
        Some(_) => embed(&model, &plotted)?.values,
        None => test_emb.values.clone(),
    };
    let unknown_emb = embed(&model, unknown)?;
    let dim = train_emb.dim;
    let gallery = Gallery::new(
        train_emb.values,
        splits.train.labels.clone(),
        dim,
        splits.train.class_names.len(),
        config.distance,
    )?;
    let score = |v: &[f32]| -> Result<Vec<f32>> {
        Ok(gallery
            .classify(v, GalleryMode::Prototypes, 1)?
            .iter()
            .map(|m| m.distance)
            .collect())
    };
    let (known, unknowns) = (score(&test_emb.values)?, score(&unknown_emb.values)?);
    let threshold = threshold_for_tpr(&score(&val_emb.values)?, 0.95);
    let rejected =
        unknowns.iter().filter(|&&u| u > threshold).count() as f64 / unknowns.len().max(1) as f64;
    let (points, _) = project_2d(&plot_emb, &[], dim, options.method, config.seed, 1000)?;
    let plot = run.join("embeddings.png");
    scatter_png(
        &plot,
        &points,
        &plotted.labels,
        &plotted.class_names,
        None,
        &format!(
            "margin {margin}: {} test digits ({})",
            points.len(),
            options.method
        ),
    )?;
    Ok(SweepRow {
        margin,
        precision_at_1: eval.precision_at_1,
        map_at_r: eval.map_at_r,
        auroc: auroc(&known, &unknowns),
        unknown_rejected: rejected,
        val_loss: f64::NAN,
        collapsed: false,
        train_seconds: 0.0,
        run: run.to_path_buf(),
        plot,
    })
}

/// The sweep's table in Markdown.
pub fn markdown_table(report: &SweepReport) -> String {
    let mut s = format!(
        "Margin sweep: {} epochs on {} MNIST training images; AUROC of prototype distance, test \
         digits vs {} {} images; rejected = unknowns rejected at the threshold accepting 95 % of \
         validation digits.\n\n| margin | P@1 | AUROC | rejected | val loss | train s |\n|---:|---:|---:|---:|---:|---:|\n",
        report.epochs,
        report
            .limit
            .map(|l| l.to_string())
            .unwrap_or_else(|| "all".into()),
        report.unknown_images,
        report.unknown_source
    );
    for r in &report.rows {
        s.push_str(&format!(
            "| {} | {:.4} | {:.4} | {:.1} % | {:.4} | {:.0} |\n",
            r.margin,
            r.precision_at_1,
            r.auroc,
            100.0 * r.unknown_rejected,
            r.val_loss,
            r.train_seconds
        ));
    }
    s
}
