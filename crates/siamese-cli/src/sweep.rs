//! `siamese sweep margin`: one short MNIST run per triplet margin, a montage of their embedding
//! plots and a table of precision@1 and open-set AUROC per margin.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use siamese::recognize::openset::UnknownSource;
use siamese::recognize::plots::Projection;
use siamese::recognize::sweep::{markdown_table, sweep_margin, SweepOptions};
use siamese::train::TrainConfig;

#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub what: SweepCommand,
}

#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// Train one short model per margin alpha.
    Margin(MarginArgs),
}

#[derive(Args, Debug)]
pub struct MarginArgs {
    /// Comma-separated margins.
    #[arg(long, value_delimiter = ',', default_values_t = SweepOptions::default().margins)]
    pub values: Vec<f64>,
    /// Epochs per run.
    #[arg(long, default_value_t = SweepOptions::default().base.epochs)]
    pub epochs: usize,
    /// Stratified subset of this many MNIST training images per run.
    #[arg(long, default_value_t = SweepOptions::default().limit.unwrap_or(usize::MAX))]
    pub limit: usize,
    /// Seed of every run.
    #[arg(long, default_value_t = SweepOptions::default().base.seed)]
    pub seed: u64,
    /// Unknown images for the AUROC: `letters`, `omniglot-latin`, `omniglot:ALPHABET`, or a
    /// folder / .zip of images.
    #[arg(long, default_value_t = SweepOptions::default().unknown)]
    pub unknown: UnknownSource,
    /// At most this many unknown images.
    #[arg(long, default_value_t = SweepOptions::default().max_unknown)]
    pub max_unknown: usize,
    /// The Omniglot zip for `omniglot-*`.
    #[arg(long)]
    pub omniglot: Option<PathBuf>,
    /// Projection of the embedding plots: `tsne` or `pca`.
    #[arg(long, default_value_t = SweepOptions::default().method)]
    pub method: Projection,
    /// Output folder (runs, margins.png, sweep.json, sweep.md); finished runs in it are reused.
    #[arg(long)]
    pub out: PathBuf,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SweepArgs) -> anyhow::Result<()> {
    match args.what {
        SweepCommand::Margin(a) => margin(a),
    }
}

fn margin(a: MarginArgs) -> anyhow::Result<()> {
    let defaults = SweepOptions::default();
    let options = SweepOptions {
        margins: a.values.clone(),
        base: TrainConfig {
            epochs: a.epochs,
            seed: a.seed,
            ..defaults.base
        },
        limit: Some(a.limit),
        unknown: a.unknown.clone(),
        max_unknown: a.max_unknown,
        omniglot: a.omniglot.clone(),
        method: a.method,
        progress: !a.quiet && !a.json,
        ..defaults
    };
    let chatty = !a.quiet && !a.json;
    let report = sweep_margin(&a.out, &options, |row| {
        if chatty {
            eprintln!(
                "margin {}: P@1 {:.4}, AUROC {:.4}, {:.1} % unknowns rejected ({:.0} s)",
                row.margin,
                row.precision_at_1,
                row.auroc,
                100.0 * row.unknown_rejected,
                row.train_seconds
            );
        }
    })?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", markdown_table(&report));
        println!("\nmontage: {}", report.montage_png.display());
    }
    Ok(())
}
