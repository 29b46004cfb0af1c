//! The demo's MNIST stages: train the seeds' CNN with triplet loss (or reuse / resume a run
//! already in the output folder) and evaluate it.

use std::path::{Path, PathBuf};

use super::context::DemoContext;
use super::document::{StageRecord, Table};
use super::figures::push_figure;
use super::plots;
use crate::run::{evaluate, train_run, DataSource, EvalReport, Existing};
use crate::train::{History, TrainConfig};
use crate::{Error, Result};

/// The demo's MNIST training config: the library's defaults with the plan's epochs and seed.
pub fn mnist_config(ctx: &DemoContext, epochs: usize, margin: f64) -> TrainConfig {
    TrainConfig {
        epochs,
        margin,
        seed: ctx.seed,
        ..TrainConfig::default()
    }
}

/// A per-epoch table of a run's history.
pub fn history_table(history: &History) -> Table {
    let mut t = Table::new(
        "Training history",
        &[
            "epoch",
            "train loss",
            "val loss",
            "active triplets",
            "seconds",
            "images/s",
        ],
    );
    for e in &history.epochs {
        t.row([
            e.epoch.to_string(),
            format!("{:.4}", e.train_loss),
            format!("{:.4}", e.val_loss),
            format!("{:.1} %", 100.0 * e.active_fraction),
            format!("{:.1}", e.seconds),
            format!("{:.0}", e.images_per_second),
        ]);
    }
    t
}

/// Stage: train (or reuse) the MNIST model. Returns the run folder.
pub fn stage_train(ctx: &DemoContext, rec: &mut StageRecord) -> Result<PathBuf> {
    let dir = ctx.work_dir(&format!("mnist{}", ctx.plan.suffix));
    let source = DataSource::Mnist {
        limit: ctx.plan.mnist_limit,
    };
    let config = mnist_config(ctx, ctx.plan.mnist_epochs, 0.2);
    let trained = train_run(&dir, &source, &config, Existing::Reuse, ctx.progress)?;
    if let Some(w) = trained.collapse_warning {
        return Err(Error::Other(w));
    }
    let (action, history) = (trained.action, trained.history);
    let secs: f64 = history.epochs.iter().map(|e| e.seconds).sum();
    let images = match ctx.plan.mnist_limit {
        Some(n) => format!("a stratified subset of {n} MNIST training images"),
        None => "the 60,000 MNIST training images".to_string(),
    };
    rec.summary.push(format!(
        "The seeds' CNN (conv 32 → conv 64 → max-pool → dropout {} → dense 128 → {} → dense {}) \
         trained with triplet loss only (margin {}, {} distance{}, P×K batches with {} mining, Adam) \
         on {images} ({} % held out for validation; augmented with ±{} px shifts, ±{}° rotations, \
         ±{} % scaling), {} epochs; {} ({:.0} s of training).",
        config.model.dropout_conv,
        if config.model.dropout_dense > 0.0 {
            format!("dropout {}", config.model.dropout_dense)
        } else {
            "no dropout (the seeds' 0.5 held P@1 near 0.989)".to_string()
        },
        config.model.dim,
        config.margin,
        config.distance,
        if config.model.l2_normalize {
            " between L2-normalised embeddings"
        } else {
            ""
        },
        match config.sampling {
            crate::train::Sampling::Pk { mining, .. } => mining.name(),
            crate::train::Sampling::Random { .. } => "random-triplet",
            crate::train::Sampling::Pairs { .. } => "pair",
        },
        (100.0 * config.val_fraction).round(),
        config.augment_shift,
        config.augment_rotate,
        (100.0 * config.augment_scale).round(),
        config.epochs,
        action.describe(),
        secs
    ));
    rec.tables.push(history_table(&history));
    let loss = plots::loss_figure(
        ctx,
        &dir,
        &history,
        "mnist-loss.png",
        "Training and validation triplet loss per epoch (MNIST).",
    );
    push_figure(rec, loss.map(|f| f.into_iter().collect()));
    rec.metrics
        .insert("run".into(), dir.display().to_string().into());
    rec.metrics
        .insert("action".into(), action.describe().into());
    rec.metrics.insert("epochs".into(), config.epochs.into());
    rec.metrics.insert("train_seconds".into(), secs.into());
    if let Some(last) = history.epochs.last() {
        rec.metrics
            .insert("final_val_loss".into(), last.val_loss.into());
        rec.metrics
            .insert("images_per_second".into(), last.images_per_second.into());
    }
    Ok(dir)
}

/// Stage: retrieval and clustering metrics of the MNIST run.
pub fn stage_evaluate(run: &Path, rec: &mut StageRecord) -> Result<EvalReport> {
    let report = evaluate(run)?;
    rec.summary.push(format!(
        "{} test digits queried against {} training images as the gallery ({} distance); \
         k-means with k = 10 on the test embeddings for NMI and AMI.",
        report.queries, report.gallery, report.distance
    ));
    let mut t = Table::new(
        "Retrieval and clustering (MNIST test)",
        &["metric", "value"],
    );
    for (name, v) in [
        ("precision@1", report.precision_at_1),
        ("R-precision", report.r_precision),
        ("MAP@R", report.map_at_r),
        ("k-NN accuracy (k = 1)", report.knn_accuracy_1),
        ("k-NN accuracy (k = 5)", report.knn_accuracy_5),
        ("NMI (k-means)", report.nmi),
        ("AMI (k-means)", report.ami),
    ] {
        t.row([name.to_string(), format!("{v:.4}")]);
    }
    rec.tables.push(t);
    if let serde_json::Value::Object(m) =
        serde_json::to_value(&report).map_err(|e| Error::Other(e.to_string()))?
    {
        rec.metrics.extend(m);
    }
    Ok(report)
}
