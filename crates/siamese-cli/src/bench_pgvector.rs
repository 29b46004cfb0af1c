//! `siamese bench pgvector`: the HNSW index of the PostgreSQL store on the face-like vectors of
//! `bench index` ([`siamese::index::synthetic`], 10 faces a person), on the server `--db` names
//! or on a temporary one started with `scripts/pg-server`: insert and index build seconds,
//! recall@k against exact search, latency of one query at a time, queries per second.

use std::path::PathBuf;

use clap::Args;
use siamese::store::postgres::{bench, schema};

#[derive(Args, Debug)]
pub struct BenchPgvectorArgs {
    /// PostgreSQL URL (or @FILE); default: a temporary server from `--pg-server`.
    #[arg(long, value_name = "URL|@FILE")]
    db: Option<String>,
    /// The server script started when no --db is given.
    #[arg(long, default_value = "scripts/pg-server")]
    pg_server: PathBuf,
    /// Vectors in the index (10 faces a person, as `bench index`).
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// Embedding length.
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Queries (new faces of known people), one at a time.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// `hnsw.ef_search`.
    #[arg(long, default_value_t = schema::DEFAULT_EF_SEARCH)]
    ef_search: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// The CPU's model name (from /proc/cpuinfo) and the cores this process may use.
fn cpu() -> (String, usize) {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (model, cores)
}

pub fn run(args: BenchPgvectorArgs) -> anyhow::Result<()> {
    if args.n < 10 || args.dim == 0 {
        anyhow::bail!(
            "invalid --n {} / --dim {}: want at least one person of 10 faces",
            args.n,
            args.dim
        );
    }
    // The vectors and queries of `bench index` with the same seed: its recall and ours compare.
    let people = args.n / 10;
    let (vectors, _) = siamese::index::synthetic::faces(people, 10, args.dim, args.seed);
    let queries = siamese::index::synthetic::queries(people, args.dim, args.seed, args.queries);
    let temporary;
    let url = match &args.db {
        Some(db) => match siamese::store::Locator::parse(db)? {
            siamese::store::Locator::Postgres(url) => url,
            other => anyhow::bail!("invalid --db {other}: want a postgres:// URL"),
        },
        None => {
            let dir = std::env::temp_dir().join(format!("siamese-bench-pg-{}", std::process::id()));
            temporary = bench::TemporaryServer::start(&args.pg_server, &dir)?;
            temporary.url().to_string()
        }
    };
    let report = bench::bench_index(&url, &vectors, args.dim, &queries, args.k, args.ef_search)?;
    let (model, cores) = cpu();
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["cpu"] = model.into();
        value["cores"] = cores.into();
        value["per_person"] = 10.into();
        println!("{value}");
    } else {
        println!(
            "pgvector {} on PostgreSQL {} ({model}, {cores} cores): {} x {} vectors ({} per person)",
            report.pgvector_version,
            report.server_version,
            report.vectors,
            report.dim,
            10
        );
        println!(
            "insert (binary COPY) {:.2} s; HNSW build (m {}, ef_construction {}) {:.2} s, {:.1} MB",
            report.insert_seconds,
            report.m,
            report.ef_construction,
            report.index_build_seconds,
            report.index_bytes as f64 / 1e6
        );
        println!(
            "{} queries, ef_search {}: recall@{} {:.4}; latency p50 {:.3} ms, p99 {:.3} ms; {:.0} queries/s{}",
            report.queries,
            report.ef_search,
            report.k,
            report.recall_at_k,
            report.p50_ms,
            report.p99_ms,
            report.qps,
            if report.plan_uses_index { "" } else { " (the plan did not use the index!)" }
        );
    }
    Ok(())
}
