//! `siamese demo`: runs every stage (fetch, MNIST training, evaluation, open-set, margin sweep,
//! faces, triplet files, Omniglot one-shot) and writes `OUT/report/index.html` + `OUT/report/report.json`.

use std::path::PathBuf;

use clap::Args;
use siamese::report::{run_demo, DemoOptions, DemoSize, StageStatus};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Shortened stages: fewer images, epochs and margins (under 10 minutes on 2 cores).
    #[arg(long)]
    pub quick: bool,
    /// Output folder: work folders and `report/` (a finished MNIST run here is reused).
    #[arg(long, default_value = "siamese-demo")]
    pub out: PathBuf,
    /// LFW (the deep-funneled tarball or its folder; pairs.txt beside it) for the face and
    /// triplet stages. Without it: the sample photo from the face packages and MNIST digits.
    #[arg(long)]
    pub lfw: Option<PathBuf>,
    /// Omniglot: a folder holding images_background_small1.zip, images_background_small2.zip
    /// and all_runs.zip (Brenden Lake's omniglot repository), for the one-shot stage and the
    /// open-set alphabets; else `SIAMESE_OMNIGLOT`. Without it the one-shot stage is skipped.
    #[arg(long)]
    pub omniglot: Option<PathBuf>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Run only these stages (comma-separated): fetch, train-mnist, evaluate, openset, sweep,
    /// faces, triplets, oneshot.
    #[arg(long, value_delimiter = ',')]
    pub stages: Option<Vec<String>>,
    /// Seconds-scale stages for testing the report itself (numbers are not meaningful).
    #[arg(long, hide = true, conflicts_with = "quick")]
    pub tiny: bool,
    /// No stage announcements or progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Print the report (report.json's content) as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let mut options = DemoOptions::new(&args.out);
    options.size = if args.tiny {
        DemoSize::Tiny
    } else if args.quick {
        DemoSize::Quick
    } else {
        DemoSize::Full
    };
    options.lfw = args.lfw.clone();
    options.omniglot = args.omniglot.clone();
    options.seed = args.seed;
    options.stages = args.stages.clone();
    options.progress = !args.quiet && !args.json;
    let report = run_demo(&options)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for s in &report.stages {
            println!(
                "{:<12} {:<8} {:>8.1} s{}",
                s.id,
                s.status.name(),
                s.seconds,
                s.error
                    .as_deref()
                    .map(|e| format!("  {e}"))
                    .unwrap_or_default()
            );
        }
        for h in &report.headlines {
            println!("{}: {} ({})", h.label, h.value, h.detail);
        }
        println!(
            "report: {} ({:.0} s)",
            args.out.join("report").join("index.html").display(),
            report.total_seconds
        );
    }
    let failed: Vec<&str> = report
        .stages
        .iter()
        .filter(|s| s.status == StageStatus::Failed)
        .map(|s| s.id.as_str())
        .collect();
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} stages failed ({}); the report shows why",
            failed.len(),
            report.stages.len(),
            failed.join(", ")
        );
    }
    Ok(())
}
