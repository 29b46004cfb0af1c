//! `siamese oneshot`: 20-way one-shot accuracy of a trained run on Omniglot's runs zip.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct OneshotArgs {
    /// Run folder written by `siamese train`.
    #[arg(long)]
    pub model: PathBuf,
    /// The one-shot runs zip (Lake's all_runs.zip: runNN/class_labels.txt, training/, test/).
    #[arg(long)]
    pub runs: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: OneshotArgs) -> anyhow::Result<()> {
    let report = siamese::run::evaluate_oneshot_run(&args.model, &args.runs)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    for r in &report.runs {
        println!(
            "{}: {}/{} ({:.1} %)",
            r.run,
            r.correct,
            r.total,
            100.0 * r.accuracy
        );
    }
    println!(
        "mean 20-way one-shot accuracy over {} runs: {:.1} % ({} distance)",
        report.runs.len(),
        100.0 * report.mean_accuracy,
        report.distance
    );
    Ok(())
}
