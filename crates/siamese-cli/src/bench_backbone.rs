//! `siamese bench backbone`: MobileNetV2's features, ours against ONNX Runtime in one run.

use clap::Args;
use siamese::train::bench::backbone::{run_backbone_bench, BackboneBenchConfig};

#[derive(Args, Debug)]
pub struct BackboneArgs {
    /// Images per forward pass (224x224).
    #[arg(long, default_value_t = BackboneBenchConfig::default().batch)]
    batch: usize,
    /// Untimed passes first.
    #[arg(long, default_value_t = BackboneBenchConfig::default().warmup)]
    warmup: usize,
    /// Timed passes (the median is reported).
    #[arg(long, default_value_t = BackboneBenchConfig::default().rounds)]
    rounds: usize,
    /// Threads of both sides.
    #[arg(long, default_value_t = BackboneBenchConfig::default().threads)]
    threads: usize,
    #[arg(long, default_value_t = BackboneBenchConfig::default().seed)]
    seed: u64,
    /// Ours only (no ONNX Runtime).
    #[arg(long)]
    no_peer: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: BackboneArgs) -> anyhow::Result<()> {
    let config = BackboneBenchConfig {
        batch: args.batch,
        warmup: args.warmup,
        rounds: args.rounds,
        threads: args.threads,
        seed: args.seed,
    };
    let report = run_backbone_bench(&config, !args.no_peer, &mut |line| {
        eprintln!("bench backbone: {line}")
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "MobileNetV2 features, batch {}, {} threads ({}): ours {:.1} img/s",
        config.batch, config.threads, report.cpu_model, report.img_per_s
    );
    match (&report.onnxruntime, &report.peer_error) {
        (Some(o), _) => println!(
            "ONNX Runtime {}: {:.1} img/s; ours / ONNX Runtime {:.2}x; features differ by at most \
             {:.2e} (largest feature {:.2})",
            o.version,
            o.img_per_s,
            report.img_per_s / o.img_per_s,
            o.max_abs_diff_vs_ours,
            o.max_abs_feature
        ),
        (None, Some(e)) => println!("ONNX Runtime: not run ({e})"),
        (None, None) => {}
    }
    Ok(())
}
