//! `siamese bench`: our training and inference against Keras/TensorFlow, side by side; its
//! subcommands `index` and `cluster` (in `bench_index.rs`) time the search index and clustering,
//! `pgvector` (in `bench_pgvector.rs`) the PostgreSQL engine.

use clap::{Args, Subcommand};
use siamese::train::bench::{run_bench, BenchConfig, BenchReport, SideReport};

/// `siamese bench [training flags]`, or `siamese bench index|cluster|pgvector ...`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    #[command(flatten)]
    pub train: TrainBenchArgs,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// HNSW and exact search on face-like vectors beside FAISS (--json, --n, --no-peer).
    Index(crate::bench_index::IndexArgs),
    /// Clustering face-like vectors at 100,000 and 1,000,000 (--json, --sizes).
    Cluster(crate::bench_index::ClusterArgs),
    /// PostgreSQL + pgvector: bulk insert, HNSW build, search recall and latency (--db or a
    /// temporary server).
    Pgvector(crate::bench_pgvector::BenchPgvectorArgs),
    /// MobileNetV2 features (the frozen backbone) against ONNX Runtime (--json, --no-peer).
    Backbone(crate::bench_backbone::BackboneArgs),
}

/// The training/inference benchmark's flags (`siamese bench` without a subcommand).
#[derive(Args, Debug)]
pub struct TrainBenchArgs {
    /// Timed steps per round (training and inference).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed warm-up steps before the first round.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Rounds; the report takes the median of the rounds' median step times.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Worker threads of both sides.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Random triplets per training step (3x as many images).
    #[arg(long, default_value_t = 128)]
    pub triplets: usize,
    /// Images per inference batch.
    #[arg(long, default_value_t = 512)]
    pub infer_batch: usize,
    /// Skip the full-epoch timing.
    #[arg(long)]
    pub no_epoch: bool,
    /// Skip the Keras peer (ours only).
    #[arg(long)]
    pub no_peer: bool,
    /// Also time each layer of our step alone (forward and backward).
    #[arg(long)]
    pub breakdown: bool,
    /// Time ours with the allocator's default settings (freed large blocks go back to the kernel).
    #[arg(long)]
    pub default_malloc: bool,
    /// Also time ours on burn's plain layers (fast kernels off) and print the speed-up.
    #[arg(long)]
    pub plain_too: bool,
    /// Our convolutions' arithmetic: f32, or bf16 inputs with fp32 sums on AMX tiles (Intel
    /// Xeon Sapphire Rapids and later).
    #[arg(long, default_value = "f32", value_parser = crate::precision::parse_precision)]
    pub precision: siamese::kernels::Precision,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        Some(BenchCommand::Index(a)) => crate::bench_index::run_index(a),
        Some(BenchCommand::Cluster(a)) => crate::bench_index::run_cluster(a),
        Some(BenchCommand::Pgvector(a)) => crate::bench_pgvector::run(a),
        Some(BenchCommand::Backbone(a)) => crate::bench_backbone::run(a),
        None => run_train(args.train),
    }
}

fn run_train(args: TrainBenchArgs) -> anyhow::Result<()> {
    let config = BenchConfig {
        steps: args.steps,
        warmup: args.warmup,
        rounds: args.rounds,
        threads: args.threads,
        triplets_per_step: args.triplets,
        infer_batch: args.infer_batch,
        epoch: !args.no_epoch,
        breakdown: args.breakdown,
        keep_freed_memory: !args.default_malloc,
        plain_too: args.plain_too,
        precision: args.precision,
        ..BenchConfig::default()
    };
    let report = run_bench(&config, !args.no_peer, &mut |line| {
        eprintln!("bench: {line}")
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &BenchReport) {
    println!(
        "{} ({} cores), {} threads a side",
        r.cpu_model, r.cores, r.threads
    );
    println!(
        "cpu flags: {}; our loops: {}; kernels: {}",
        r.cpu_flags.join(" "),
        r.simd_level,
        r.kernels
    );
    for p in &r.layer_paths {
        println!(
            "  {:<34} train: {}; infer: {}",
            p.layers, p.training, p.inference
        );
    }
    let side = |name: &str, s: &SideReport| {
        println!("{name}: {}", s.framework);
        println!(
            "  train {:>8.0} img/s   infer {:>8.0} img/s   epoch {}   peak RSS {:.0} MiB   load {:.2}->{:.2}",
            s.train_img_per_s,
            s.infer_img_per_s,
            s.epoch_seconds
                .map_or("-".to_string(), |e| format!("{e:.1} s ({} images)", s.epoch_images)),
            s.peak_rss_mb,
            s.load_avg_start,
            s.load_avg_end
        );
    };
    side("ours ", &r.ours);
    if let Some(plain) = &r.plain {
        side("plain", plain);
    }
    match (&r.keras, &r.peer_error) {
        (Some(k), _) => side("keras", k),
        (None, Some(why)) => println!("keras: not measured: {why}"),
        (None, None) => {}
    }
    if let Some(stages) = &r.breakdown {
        println!("our step by layer (ms, median):  forward  backward");
        for s in stages {
            println!(
                "  {:<36} {:>8.1} {:>9.1}",
                s.stage, s.forward_ms, s.backward_ms
            );
        }
    }
    let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}x"));
    if r.plain.is_some() {
        println!(
            "fast kernels vs burn's plain layers: train {}, infer {}",
            show(r.train_speedup_vs_plain),
            show(r.infer_speedup_vs_plain)
        );
    }
    println!(
        "ours vs keras: train {}, infer {}, epoch {} (> 1 = ours faster)",
        show(r.train_ratio_vs_keras),
        show(r.infer_ratio_vs_keras),
        show(r.epoch_ratio_vs_keras)
    );
}
