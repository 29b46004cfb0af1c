//! The demo's Omniglot stage: one-shot learning of characters never seen in training. The
//! README's recipe (multi-similarity, P×K 64×4, every character's quarter turns as classes of
//! their own) trains on the two small background sets, then Lake's 20 runs of 20-way one-shot
//! classification score it — the library's `train_run` and `evaluate_oneshot_run`, as
//! `siamese train --data omniglot:… --rotated-classes` and `siamese oneshot` call them.

use std::path::{Path, PathBuf};

use super::context::DemoContext;
use super::document::{StageRecord, Table};
use super::stage_mnist::history_table;
use crate::eval::oneshot::OneShotReport;
use crate::loss::{LossConfig, LossOptions};
use crate::run::{evaluate_oneshot_run, train_run, DataSource, Existing};
use crate::sampling::mining::MiningStrategy;
use crate::train::{Sampling, TrainConfig};
use crate::{Error, Result};

/// The background sets the stage trains on, in the Omniglot folder.
pub const BACKGROUND_ZIPS: [&str; 2] = [
    "images_background_small1.zip",
    "images_background_small2.zip",
];
/// Lake's one-shot runs, in the same folder.
pub const RUNS_ZIP: &str = "all_runs.zip";

/// The stage's files in `given` (a folder, or one of its zips): the background zips and the runs
/// zip, or the reason the stage cannot run (naming what is missing where).
pub fn omniglot_files(given: &Path) -> std::result::Result<(Vec<PathBuf>, PathBuf), String> {
    let folder = if given.is_dir() {
        given.to_path_buf()
    } else {
        given
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    };
    let missing: Vec<&str> = BACKGROUND_ZIPS
        .iter()
        .chain(std::iter::once(&RUNS_ZIP))
        .copied()
        .filter(|name| !folder.join(name).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} has no {} (Brenden Lake's omniglot repository)",
            folder.display(),
            missing.join(", ")
        ));
    }
    Ok((
        BACKGROUND_ZIPS.iter().map(|z| folder.join(z)).collect(),
        folder.join(RUNS_ZIP),
    ))
}

/// The stage's training config: multi-similarity with its defaults, P×K 64×4, the plan's
/// epochs, the library's defaults otherwise.
pub fn oneshot_config(ctx: &DemoContext) -> Result<TrainConfig> {
    Ok(TrainConfig {
        loss: LossConfig::from_options("multi-similarity", &LossOptions::default())?,
        sampling: Sampling::Pk {
            classes_per_batch: 64,
            images_per_class: 4,
            // Not read by multi-similarity (it mines its own pairs).
            mining: MiningStrategy::BatchAll,
        },
        epochs: ctx.plan.oneshot_epochs,
        seed: ctx.seed,
        ..TrainConfig::default()
    })
}

/// Stage: train (or reuse) the Omniglot run, then the 20 one-shot runs.
pub fn stage_oneshot(
    ctx: &DemoContext,
    background: &[PathBuf],
    runs_zip: &Path,
    rec: &mut StageRecord,
) -> Result<OneShotReport> {
    let dir = ctx.work_dir(&format!("omniglot{}", ctx.plan.suffix));
    let source = DataSource::Omniglot {
        zips: background.to_vec(),
        side: crate::data::transform::MNIST_SIDE,
        rotated_classes: true,
    };
    let config = oneshot_config(ctx)?;
    let trained = train_run(&dir, &source, &config, Existing::Reuse, ctx.progress)?;
    if let Some(w) = trained.collapse_warning {
        return Err(Error::Other(w));
    }
    let secs: f64 = trained.history.epochs.iter().map(|e| e.seconds).sum();
    let report = evaluate_oneshot_run(&dir, runs_zip)?;
    rec.summary.push(format!(
        "One-shot learning of characters never seen in training: the seeds' CNN trained with the \
         multi-similarity loss (P×K 64×4) on the 8 alphabets of {} (242 characters × 20 drawings, \
         each character also turned by 90°, 180° and 270° as classes of their own: 968 classes), \
         {} epochs ({:.0} s of training, {}); then Lake's 20 runs of 20-way one-shot \
         classification in {}: each of 20 test drawings goes to the class of its nearest of 20 \
         drawings of unseen characters, one each. Drawings are converted MNIST-style to 28 × 28. \
         Koch et al. 2015 report 92.0 % with a siamese convnet trained on four times the \
         alphabets at 105 × 105.",
        BACKGROUND_ZIPS.join(" + "),
        config.epochs,
        secs,
        trained.action.describe(),
        RUNS_ZIP,
    ));
    let mut t = Table::new(
        "20-way one-shot accuracy per run",
        &["run", "correct", "of", "accuracy"],
    );
    for r in &report.runs {
        t.row([
            r.run.clone(),
            r.correct.to_string(),
            r.total.to_string(),
            format!("{:.1} %", 100.0 * r.accuracy),
        ]);
    }
    t.row([
        "mean".to_string(),
        report
            .runs
            .iter()
            .map(|r| r.correct)
            .sum::<usize>()
            .to_string(),
        report
            .runs
            .iter()
            .map(|r| r.total)
            .sum::<usize>()
            .to_string(),
        format!("{:.2} %", 100.0 * report.mean_accuracy),
    ]);
    rec.tables.push(t);
    rec.tables.push(history_table(&trained.history));
    rec.metrics
        .insert("mean_accuracy".into(), report.mean_accuracy.into());
    rec.metrics.insert("runs".into(), report.runs.len().into());
    rec.metrics.insert("epochs".into(), config.epochs.into());
    Ok(report)
}
