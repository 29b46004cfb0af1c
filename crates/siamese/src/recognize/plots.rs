//! Pictures of open-set recognition: the distance histogram of known vs unknown images with the
//! calibrated threshold, and 2-D embedding plots (t-SNE or PCA of the test embeddings coloured
//! by class, class names at cluster centres, unknowns overlaid in grey).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

use super::openset::{OpensetResult, UnknownSource};
use crate::data::split::stratified_subset;
use crate::run::{embed, load_data_source, load_inference_model};
use crate::train::checkpoint::load_config;
use crate::viz::pca::pca_2d_fit;
use crate::viz::tsne::{tsne_with, TsneConfig};
use crate::viz::{histogram_png, scatter_png};
use crate::{Error, Result};

/// Writes the histogram of the headline method's scores: known test images vs unknowns, with
/// the calibrated threshold drawn.
pub fn write_distance_histogram(path: &Path, result: &OpensetResult) -> Result<()> {
    let r = &result.report;
    let h = &result.headline;
    let known_label = "known: test images".to_string();
    let unknown_label = format!("unknown: {}", r.unknown_source);
    let title = format!(
        "{} score: AUROC {:.3}, {:.1} % of unknowns rejected",
        h.scores.method,
        h.scores.auroc,
        100.0 * h.scores.unknown_rejected
    );
    histogram_png(
        path,
        &h.known_scores,
        &h.unknown_scores,
        Some(h.scores.threshold),
        (&known_label, &unknown_label),
        &title,
    )
}

/// The 2-D projection of an embedding plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Projection {
    /// Barnes–Hut t-SNE (perplexity 30).
    #[default]
    Tsne,
    /// The two leading principal components.
    Pca,
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Projection::Tsne => "tsne",
            Projection::Pca => "pca",
        })
    }
}

impl FromStr for Projection {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tsne" | "t-sne" => Ok(Projection::Tsne),
            "pca" => Ok(Projection::Pca),
            other => Err(Error::config(
                "method",
                format!("`{other}` is not `tsne` or `pca`"),
            )),
        }
    }
}

/// 2-D points, one `[x, y]` per embedding row.
pub type Points2d = Vec<[f32; 2]>;

/// Projects known embeddings (`[n, dim]`) and optional unknown ones (`[m, dim]`) to 2-D.
/// PCA is fitted on the knowns alone (unknowns are projected on their axes); t-SNE embeds both
/// together, since it has no out-of-sample projection.
pub fn project_2d(
    known: &[f32],
    unknown: &[f32],
    dim: usize,
    method: Projection,
    seed: u64,
    iterations: usize,
) -> Result<(Points2d, Points2d)> {
    if dim == 0 || !known.len().is_multiple_of(dim) || !unknown.len().is_multiple_of(dim) {
        return Err(Error::config(
            "embeddings",
            format!("not whole rows of {dim}"),
        ));
    }
    let n = known.len() / dim;
    match method {
        Projection::Pca => {
            let fit = pca_2d_fit(known, dim);
            let mut mean = vec![0f64; dim];
            for row in known.chunks_exact(dim) {
                for (m, &v) in mean.iter_mut().zip(row) {
                    *m += v as f64 / n.max(1) as f64;
                }
            }
            let project = |row: &[f32]| -> [f32; 2] {
                let along = |axis: &[f32]| {
                    row.iter()
                        .zip(&mean)
                        .zip(axis)
                        .map(|((&v, &m), &a)| (v as f64 - m) * a as f64)
                        .sum::<f64>() as f32
                };
                [along(&fit.axes[0]), along(&fit.axes[1])]
            };
            Ok((fit.points, unknown.chunks_exact(dim).map(project).collect()))
        }
        Projection::Tsne => {
            let all: Vec<f32> = known.iter().chain(unknown).copied().collect();
            let config = TsneConfig {
                seed,
                iterations,
                ..TsneConfig::default()
            };
            let mut points = tsne_with(&all, dim, &config)?;
            let rest = points.split_off(n);
            Ok((points, rest))
        }
    }
}

/// What `siamese plot embeddings` draws.
#[derive(Debug, Clone)]
pub struct EmbeddingPlotOptions {
    pub method: Projection,
    /// Unknown images overlaid in grey.
    pub unknown: Option<UnknownSource>,
    /// At most this many test images (a stratified subset).
    pub max_known: usize,
    /// At most this many unknown images.
    pub max_unknown: usize,
    /// t-SNE iterations.
    pub iterations: usize,
    /// The Omniglot zip for `omniglot-*` unknowns.
    pub omniglot: Option<std::path::PathBuf>,
}

impl Default for EmbeddingPlotOptions {
    fn default() -> Self {
        EmbeddingPlotOptions {
            method: Projection::Tsne,
            unknown: None,
            max_known: 10_000,
            max_unknown: 2_000,
            iterations: 1000,
            omniglot: None,
        }
    }
}

/// What was plotted.
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingPlotSummary {
    pub png: std::path::PathBuf,
    pub method: Projection,
    pub known_points: usize,
    pub unknown_points: usize,
    pub seconds: f64,
}

/// Plots a run's test embeddings (and unknowns) into `out` (a PNG).
pub fn plot_embeddings(
    run: &Path,
    options: &EmbeddingPlotOptions,
    out: &Path,
) -> Result<EmbeddingPlotSummary> {
    let started = std::time::Instant::now();
    let config = load_config(run)?;
    let splits = load_data_source(run)?.load(config.val_fraction, config.seed)?;
    let known = stratified_subset(&splits.test, options.max_known.max(1), config.seed);
    let model = load_inference_model(run)?;
    let known_emb = embed(&model, &known)?;
    let unknown_emb = match &options.unknown {
        Some(source) => Some(embed(
            &model,
            &source.load(
                options.max_unknown,
                config.seed,
                options.omniglot.as_deref(),
            )?,
        )?),
        None => None,
    };
    let unknown_values = unknown_emb
        .as_ref()
        .map(|e| e.values.as_slice())
        .unwrap_or(&[]);
    let (points, unknown_points) = project_2d(
        &known_emb.values,
        unknown_values,
        known_emb.dim,
        options.method,
        config.seed,
        options.iterations,
    )?;
    let title = format!(
        "{} of {} test embeddings ({}-d, margin {}){}",
        match options.method {
            Projection::Tsne => "t-SNE",
            Projection::Pca => "PCA",
        },
        known.len(),
        known_emb.dim,
        config.margin,
        match &options.unknown {
            Some(u) => format!(", {} unknowns ({u}) in grey", unknown_points.len()),
            None => String::new(),
        }
    );
    scatter_png(
        out,
        &points,
        &known.labels,
        &known.class_names,
        options.unknown.as_ref().map(|_| unknown_points.as_slice()),
        &title,
    )?;
    Ok(EmbeddingPlotSummary {
        png: out.to_path_buf(),
        method: options.method,
        known_points: points.len(),
        unknown_points: unknown_points.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
