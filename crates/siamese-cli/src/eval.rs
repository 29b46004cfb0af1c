//! `siamese eval`: retrieval and clustering metrics of a trained run.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Run folder written by `siamese train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let report = siamese::run::evaluate(&args.model)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{} test queries against {} training images ({} distance)",
        report.queries, report.gallery, report.distance
    );
    for (name, value) in [
        ("precision@1", report.precision_at_1),
        ("R-precision", report.r_precision),
        ("MAP@R", report.map_at_r),
        ("k-NN accuracy (k=1)", report.knn_accuracy_1),
        ("k-NN accuracy (k=5)", report.knn_accuracy_5),
        ("NMI (k-means)", report.nmi),
        ("AMI (k-means)", report.ami),
    ] {
        println!("  {name:<22} {value:.4}");
    }
    Ok(())
}
