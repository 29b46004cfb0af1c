//! `siamese embed`: writes a run's embeddings of its test images as `.npy` + labels CSV.

use std::path::PathBuf;

use clap::Args;
use siamese::embed::{write_labels_csv, write_npy};
use siamese::train::checkpoint::load_config;

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Run folder written by `siamese train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Output `.npy` (float32, N×D); the labels go to the same name with `.csv`.
    #[arg(long)]
    pub out: PathBuf,
    /// Which images: `test` (default) or `train`.
    #[arg(long, default_value = "test")]
    pub split: String,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let csv = args.out.with_extension("csv");
    siamese::output::check_distinct(&[("--out", &args.out), ("the labels file", &csv)])?;
    siamese::output::output_target(&args.out)?;
    siamese::output::output_target(&csv)?;
    let config = load_config(&args.model)?;
    let source = siamese::run::load_data_source(&args.model)?;
    let splits = source.load(config.val_fraction, config.seed)?;
    let data = match args.split.as_str() {
        "test" => &splits.test,
        "train" => &splits.gallery,
        other => anyhow::bail!("--split {other}: expected `test` or `train`"),
    };
    let model = siamese::run::load_inference_model(&args.model)?;
    let emb = siamese::run::embed(&model, data)?;
    write_npy(&args.out, &emb)?;
    write_labels_csv(&csv, &data.labels, &data.class_names)?;
    println!(
        "{} embeddings of dimension {} → {} and {}",
        emb.len(),
        emb.dim,
        args.out.display(),
        csv.display()
    );
    Ok(())
}
