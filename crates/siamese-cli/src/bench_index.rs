//! `siamese bench index` and `siamese bench cluster`: the HNSW index and exact search beside
//! FAISS, and clustering at 100,000 and 1,000,000 face-like vectors.

use clap::Args;
use siamese::cluster::bench::{cluster_once, run_cluster_bench, ClusterBenchReport};
use siamese::cluster::Method;
use siamese::faces::grouping::CHINESE_WHISPERS_CUT_FACTOR;
use siamese::faces::verify::LFW_THRESHOLD;
use siamese::index::bench::{run_index_bench, IndexBenchConfig, IndexBenchReport};
use siamese::index::HnswParams;

#[derive(Args, Debug)]
pub struct IndexArgs {
    /// Vectors indexed (10 faces a person).
    #[arg(long, default_value_t = 1_000_000)]
    n: usize,
    /// Queries (new faces of known people).
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Threads of both sides.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// HNSW connectivity M of both sides.
    #[arg(long, default_value_t = 32)]
    m: usize,
    /// HNSW efConstruction of both sides.
    #[arg(long, default_value_t = 128)]
    ef_construction: usize,
    /// ef values swept (ours and FAISS), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "8,12,16,24,32,48,64,96,128,192,256"
    )]
    efs: Vec<usize>,
    /// Recall@10 the reported ef must reach.
    #[arg(long, default_value_t = 0.95)]
    target_recall: f64,
    /// Ours only (no FAISS).
    #[arg(long)]
    no_peer: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run_index(args: IndexArgs) -> anyhow::Result<()> {
    let config = IndexBenchConfig {
        n: args.n,
        dim: 128,
        queries: args.queries,
        threads: args.threads,
        seed: args.seed,
        hnsw: HnswParams {
            connectivity: args.m,
            expansion_add: args.ef_construction,
            expansion_search: 64,
        },
        efs: args.efs,
        target_recall: args.target_recall,
        peer: !args.no_peer,
    };
    config.hnsw.check()?;
    let report = run_index_bench(&config, &mut |line| eprintln!("bench index: {line}"))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_index(&report);
    }
    Ok(())
}

fn print_index(r: &IndexBenchReport) {
    println!(
        "{} (AVX-512: {}), {} threads a side, {} vectors of {}",
        r.cpu_model, r.avx512, r.config.threads, r.n, r.dim
    );
    println!(
        "ours HNSW (M {}, efConstruction {}): build {:.1} s, add {:.0} vectors/s",
        r.config.hnsw.connectivity,
        r.config.hnsw.expansion_add,
        r.hnsw_build_seconds,
        r.hnsw_add_per_second
    );
    println!("  ef   recall@10  batch-1 q/s  p50 ms  p99 ms  batch q/s  cpu µs/q");
    let row = |p: &siamese::index::bench::EfPoint| {
        println!(
            "  {:<4} {:>9.4} {:>12.0} {:>7.3} {:>7.3} {:>10.0} {:>9}",
            p.ef,
            p.recall_at_10,
            p.qps_batch1,
            p.p50_ms,
            p.p99_ms,
            p.qps_batch1000,
            p.cpu_us_batch1.map_or("-".into(), |v| format!("{v:.1}"))
        )
    };
    r.sweep.iter().for_each(row);
    if let Some(f) = &r.faiss {
        println!(
            "FAISS {} HNSW (M {}, efConstruction {}): build {:.1} s",
            f.version, f.hnsw_m, f.hnsw_ef_construction, f.hnsw_build_seconds
        );
        f.sweep.iter().for_each(row);
    } else if let Some(why) = &r.peer_error {
        println!("FAISS: not measured: {why}");
    }
    let ratio = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}x"));
    println!(
        "at recall {:.4} (ef {}): ours {:.0} q/s, FAISS {} q/s (ef {}): {}",
        r.hnsw_recall_at_10,
        r.hnsw_ef,
        r.hnsw_qps_batch1,
        r.faiss_hnsw_qps_batch1
            .map_or("-".into(), |v| format!("{v:.0}")),
        r.faiss_hnsw_ef.map_or("-".into(), |v| v.to_string()),
        ratio(r.hnsw_qps_ratio_vs_faiss)
    );
    println!(
        "CPU time a query at that recall, FAISS over ours: {}",
        ratio(r.hnsw_cpu_ratio_vs_faiss)
    );
    println!(
        "exact, batch of {}: ours {:.0} q/s, FAISS IndexFlatL2 {} q/s: {}; peak RSS {:.0} MiB",
        r.config.queries,
        r.exact_qps_batch1000,
        r.faiss_flat_qps_batch1000
            .map_or("-".into(), |v| format!("{v:.0}")),
        ratio(r.exact_qps_ratio_vs_faiss),
        r.peak_rss_mb
    );
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Sizes clustered (10 faces a person), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    sizes: Vec<usize>,
    /// Chinese whispers' cut (default: the faces default, 0.74 x the LFW threshold).
    #[arg(long)]
    cut: Option<f32>,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run all sizes in this process (each size otherwise runs in a child process, so each
    /// peak RSS is its own).
    #[arg(long)]
    in_process: bool,
    /// Internal: cluster one size here and print its JSON line.
    #[arg(long, hide = true)]
    one: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run_cluster(args: ClusterArgs) -> anyhow::Result<()> {
    siamese::train::bench::configure_threads(args.threads)?;
    let method = Method::ChineseWhispers {
        threshold: args
            .cut
            .unwrap_or(CHINESE_WHISPERS_CUT_FACTOR * LFW_THRESHOLD),
        max_rounds: 100,
    };
    if let Some(n) = args.one {
        println!(
            "{}",
            serde_json::to_string(&cluster_once(n, &method, args.seed)?)?
        );
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let mut child_args = vec![
        "--threads".to_string(),
        args.threads.to_string(),
        "--seed".to_string(),
        args.seed.to_string(),
    ];
    if let Some(cut) = args.cut {
        child_args.extend(["--cut".to_string(), cut.to_string()]);
    }
    let exe = (!args.in_process).then_some((exe.as_path(), child_args.as_slice()));
    let report = run_cluster_bench(
        &args.sizes,
        &method,
        args.seed,
        args.threads,
        exe,
        &mut |l| eprintln!("bench cluster: {l}"),
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_cluster(&report);
    }
    Ok(())
}

fn print_cluster(r: &ClusterBenchReport) {
    println!("{}, {} threads", r.cpu_model, r.threads);
    for p in &r.sizes {
        println!(
            "{:>9} faces: {:>7.1} s, peak RSS {:>6.0} MiB, {} people found of {} (pairwise F1 {:.3}, {})",
            p.n, p.seconds, p.peak_rss_mb, p.people, p.true_people, p.pairwise_f1, p.method
        );
    }
}
