//! `siamese plot embeddings`: a 2-D picture (t-SNE or PCA) of a run's test embeddings coloured
//! by class, optionally with unknown images overlaid in grey.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use siamese::recognize::openset::UnknownSource;
use siamese::recognize::plots::{plot_embeddings, EmbeddingPlotOptions, Projection};

#[derive(Args, Debug)]
pub struct PlotArgs {
    #[command(subcommand)]
    pub what: PlotCommand,
}

#[derive(Subcommand, Debug)]
pub enum PlotCommand {
    /// Scatter plot of the test embeddings, class names at cluster centres.
    Embeddings(EmbeddingsArgs),
}

#[derive(Args, Debug)]
pub struct EmbeddingsArgs {
    /// Run folder written by `siamese train`.
    #[arg(long)]
    pub model: PathBuf,
    /// `tsne` (Barnes–Hut) or `pca`.
    #[arg(long, default_value = "tsne")]
    pub method: Projection,
    /// Unknown images to overlay in grey: `letters`, `omniglot-latin`, `omniglot:ALPHABET`, or
    /// a folder / .zip of images.
    #[arg(long)]
    pub unknown: Option<UnknownSource>,
    /// At most this many test images (a stratified subset).
    #[arg(long, default_value_t = 10_000)]
    pub max_points: usize,
    /// At most this many unknown images.
    #[arg(long, default_value_t = 2_000)]
    pub max_unknown: usize,
    /// t-SNE iterations.
    #[arg(long, default_value_t = 1000)]
    pub iterations: usize,
    /// The Omniglot zip for `omniglot-*`, e.g. `images_background_small1.zip` (default:
    /// $SIAMESE_OMNIGLOT).
    #[arg(long)]
    pub omniglot: Option<PathBuf>,
    /// Output PNG (default: RUN/embeddings-<method>.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    match args.what {
        PlotCommand::Embeddings(a) => embeddings(a),
    }
}

fn embeddings(a: EmbeddingsArgs) -> anyhow::Result<()> {
    if a.max_points < 2 {
        anyhow::bail!(
            "invalid --max-points: {} (need at least 2 points)",
            a.max_points
        );
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.model.join(format!("embeddings-{}.png", a.method)));
    let options = EmbeddingPlotOptions {
        method: a.method,
        unknown: a.unknown.clone(),
        max_known: a.max_points,
        max_unknown: a.max_unknown,
        iterations: a.iterations,
        omniglot: a.omniglot.clone(),
    };
    let summary = plot_embeddings(&a.model, &options, &out)?;
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} test points{} ({}) in {:.1} s: {}",
            summary.known_points,
            if summary.unknown_points > 0 {
                format!(" and {} unknowns", summary.unknown_points)
            } else {
                String::new()
            },
            summary.method,
            summary.seconds,
            summary.png.display()
        );
    }
    Ok(())
}
