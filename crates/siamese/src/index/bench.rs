//! `siamese bench index`: our HNSW index and exact search timed on face-like vectors
//! ([`super::synthetic`]), beside FAISS (`IndexFlatL2`, `IndexHNSWFlat`) on the same vectors
//! and thread count, in one run.
//!
//! Ours: exact top-10 of 1,000 queries by blocked GEMM (`eval::knn::nearest`: the ground truth,
//! timed as the exact batch of 1,000), the HNSW build (all but the last 1 % of rows, then those
//! added incrementally: the add rate), and for each ef recall@10 against the exact top-10, the
//! latency of one query at a time on one thread (p50, p99, QPS at batch 1) and the QPS of the
//! whole batch over the threads. The reported ef is the smallest reaching the target recall;
//! FAISS is read at its smallest efSearch reaching at least our recall there (equal recall).
//! The peer is `bench/faiss_bench.py`, run in a virtual environment under the cache
//! (`<home>/faiss-venv`, `faiss-cpu` and `numpy` from `bench/faiss-requirements.txt`), reading
//! the vectors from `.npy` files written under `<home>/bench-index/`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use super::hnsw::{HnswIndex, HnswParams};
use super::synthetic;
use crate::distance::Distance;
use crate::eval::knn::nearest;
use crate::train::bench::{cpu_model, load_average, peak_rss_mb};
use crate::{assets, Error, Result};

/// Pinned versions of the FAISS peer.
pub const FAISS_REQUIREMENTS: &str = include_str!("../../../../bench/faiss-requirements.txt");
/// The FAISS peer's script.
pub const FAISS_SCRIPT: &str = include_str!("../../../../bench/faiss_bench.py");
const PEER_JSON_PREFIX: &str = "BENCH_JSON ";
const K: usize = 10;

/// Settings of [`run_index_bench`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IndexBenchConfig {
    /// Vectors indexed (people × 10 faces).
    pub n: usize,
    pub dim: usize,
    pub queries: usize,
    pub threads: usize,
    pub seed: u64,
    pub hnsw: HnswParams,
    /// ef values swept (ours and FAISS's efSearch).
    pub efs: Vec<usize>,
    /// Recall@10 the reported ef must reach.
    pub target_recall: f64,
    /// Run FAISS too.
    pub peer: bool,
}

impl Default for IndexBenchConfig {
    fn default() -> Self {
        IndexBenchConfig {
            n: 1_000_000,
            dim: 128,
            queries: 1000,
            threads: 2,
            seed: 1,
            // FAISS's usual M; both sides are built with the same M and efConstruction.
            hnsw: HnswParams {
                connectivity: 32,
                ..HnswParams::default()
            },
            efs: vec![8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256],
            target_recall: 0.95,
            peer: true,
        }
    }
}

/// One ef of the sweep.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EfPoint {
    pub ef: usize,
    pub recall_at_10: f64,
    pub qps_batch1: f64,
    pub qps_batch1000: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU time of the searching thread per query at batch 1 (µs): unlike wall time, not
    /// inflated by other work on a busy machine (`None` where the OS does not report it).
    #[serde(default)]
    pub cpu_us_batch1: Option<f64>,
}

/// What the FAISS script reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaissReport {
    pub version: String,
    pub flat_qps_batch1000: f64,
    pub hnsw_build_seconds: f64,
    pub hnsw_m: usize,
    pub hnsw_ef_construction: usize,
    pub sweep: Vec<EfPoint>,
    pub peak_rss_mb: f64,
}

/// The benchmark's report (the documented JSON keys first).
#[derive(Debug, Clone, serde::Serialize)]
pub struct IndexBenchReport {
    pub n: usize,
    pub dim: usize,
    pub hnsw_build_seconds: f64,
    pub hnsw_recall_at_10: f64,
    pub hnsw_p50_ms: f64,
    pub hnsw_qps_batch1: f64,
    pub faiss_hnsw_qps_batch1: Option<f64>,
    pub faiss_hnsw_recall_at_10: Option<f64>,
    pub exact_qps_batch1000: f64,
    pub faiss_flat_qps_batch1000: Option<f64>,
    pub peak_rss_mb: f64,
    pub hnsw_ef: usize,
    pub hnsw_p99_ms: f64,
    pub hnsw_qps_batch1000: f64,
    pub hnsw_add_per_second: f64,
    pub faiss_hnsw_ef: Option<usize>,
    pub faiss_hnsw_qps_batch1000: Option<f64>,
    /// Our batch-1 rate at FAISS's recall (interpolated along our ef sweep) over FAISS's rate,
    /// so neither side gains from the other overshooting the target recall.
    pub hnsw_qps_ratio_vs_faiss: Option<f64>,
    pub exact_qps_ratio_vs_faiss: Option<f64>,
    /// FAISS's CPU time per query over ours at equal recall, batch 1 (above 1: ours is faster).
    pub hnsw_cpu_ratio_vs_faiss: Option<f64>,
    pub sweep: Vec<EfPoint>,
    pub faiss: Option<FaissReport>,
    pub peer_error: Option<String>,
    pub config: IndexBenchConfig,
    pub cpu_model: String,
    pub avx512: bool,
    /// The HNSW distance kernel picked for this CPU (`index::l2`).
    pub hnsw_kernel: String,
    pub load_avg_start: f64,
    pub load_avg_end: f64,
}

/// Runs the benchmark; `log` hears progress lines.
pub fn run_index_bench(
    config: &IndexBenchConfig,
    log: &mut dyn FnMut(&str),
) -> Result<IndexBenchReport> {
    if config.n < 100 || config.queries == 0 || config.efs.is_empty() {
        return Err(Error::config(
            "index bench",
            format!(
                "n = {} (at least 100), queries = {}, {} ef values",
                config.n,
                config.queries,
                config.efs.len()
            ),
        ));
    }
    crate::train::bench::configure_threads(config.threads)?;
    let load_avg_start = load_average();
    let (dim, people) = (config.dim, config.n.div_ceil(10));
    log(&format!(
        "generating {} face-like vectors of {dim}",
        config.n
    ));
    let (mut data, _) = synthetic::faces(people, 10, dim, config.seed);
    data.truncate(config.n * dim);
    let queries = synthetic::queries(people, dim, config.seed, config.queries);

    log("exact search (GEMM + top-k)");
    let start = Instant::now();
    let exact = nearest(&queries, &data, dim, Distance::Euclidean, K);
    let exact_qps = config.queries as f64 / start.elapsed().as_secs_f64();
    let truth: Vec<Vec<u64>> = exact
        .iter()
        .map(|hits| hits.iter().map(|&(j, _)| j as u64).collect())
        .collect();

    let added = (config.n / 100).max(1);
    let first = config.n - added;
    let ids: Vec<u64> = (0..config.n as u64).collect();
    log(&format!(
        "building HNSW over {first} rows, then adding {added}"
    ));
    let start = Instant::now();
    let mut index = HnswIndex::build(dim, &ids[..first], &data[..first * dim], config.hnsw)?;
    let built = start.elapsed().as_secs_f64();
    let start = Instant::now();
    index.add(&ids[first..], &data[first * dim..])?;
    let add_seconds = start.elapsed().as_secs_f64();

    let mut sweep = Vec::new();
    for &ef in &config.efs {
        index.set_ef(ef)?;
        let point = measure_ef(&index, &queries, &truth)?;
        log(&format!(
            "ours ef {ef}: recall@10 {:.4}, batch 1 {:.0} q/s (p50 {:.3} ms), batch {} {:.0} q/s",
            point.recall_at_10, point.qps_batch1, point.p50_ms, config.queries, point.qps_batch1000
        ));
        sweep.push(point);
    }
    let chosen = sweep
        .iter()
        .find(|p| p.recall_at_10 >= config.target_recall)
        .unwrap_or_else(|| sweep.last().expect("at least one ef"))
        .clone();
    let hnsw_kernel = index.kernel();
    drop(index);

    let (faiss, peer_error) = if config.peer {
        match run_faiss(config, &data, &queries, &truth, log) {
            Ok(f) => (Some(f), None),
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };
    let faiss_point = faiss.as_ref().and_then(|f| {
        f.sweep
            .iter()
            .find(|p| p.recall_at_10 >= chosen.recall_at_10)
            .or(f.sweep.last())
            .cloned()
    });
    Ok(IndexBenchReport {
        n: config.n,
        dim,
        hnsw_build_seconds: built + add_seconds,
        hnsw_recall_at_10: chosen.recall_at_10,
        hnsw_p50_ms: chosen.p50_ms,
        hnsw_qps_batch1: chosen.qps_batch1,
        faiss_hnsw_qps_batch1: faiss_point.as_ref().map(|p| p.qps_batch1),
        faiss_hnsw_recall_at_10: faiss_point.as_ref().map(|p| p.recall_at_10),
        exact_qps_batch1000: exact_qps,
        faiss_flat_qps_batch1000: faiss.as_ref().map(|f| f.flat_qps_batch1000),
        peak_rss_mb: peak_rss_mb()?,
        hnsw_ef: chosen.ef,
        hnsw_p99_ms: chosen.p99_ms,
        hnsw_qps_batch1000: chosen.qps_batch1000,
        hnsw_add_per_second: added as f64 / add_seconds,
        faiss_hnsw_ef: faiss_point.as_ref().map(|p| p.ef),
        faiss_hnsw_qps_batch1000: faiss_point.as_ref().map(|p| p.qps_batch1000),
        hnsw_qps_ratio_vs_faiss: faiss_point.as_ref().and_then(|p| {
            Some(at_recall(&sweep, p.recall_at_10, |q| Some(q.qps_batch1))? / p.qps_batch1)
        }),
        exact_qps_ratio_vs_faiss: faiss.as_ref().map(|f| exact_qps / f.flat_qps_batch1000),
        hnsw_cpu_ratio_vs_faiss: faiss_point.as_ref().and_then(|p| {
            Some(p.cpu_us_batch1? / at_recall(&sweep, p.recall_at_10, |q| q.cpu_us_batch1)?)
        }),
        sweep,
        faiss,
        peer_error,
        config: config.clone(),
        cpu_model: cpu_model(),
        avx512: std::arch::is_x86_feature_detected!("avx512f"),
        hnsw_kernel,
        load_avg_start,
        load_avg_end: load_average(),
    })
}

/// `value` of the sweep at `recall`, linear between the two ef points around it (`None` outside
/// the sweep's recalls or where a point lacks the value).
fn at_recall(
    sweep: &[EfPoint],
    recall: f64,
    value: impl Fn(&EfPoint) -> Option<f64>,
) -> Option<f64> {
    let above = sweep.iter().position(|p| p.recall_at_10 >= recall)?;
    let hi = &sweep[above];
    if above == 0 || hi.recall_at_10 == recall {
        return (hi.recall_at_10 == recall).then(|| value(hi)).flatten();
    }
    let lo = &sweep[above - 1];
    let t = (recall - lo.recall_at_10) / (hi.recall_at_10 - lo.recall_at_10);
    Some(value(lo)? + t * (value(hi)? - value(lo)?))
}

/// Recall and speed of the index at its current ef.
fn measure_ef(index: &HnswIndex, queries: &[f32], truth: &[Vec<u64>]) -> Result<EfPoint> {
    let dim = index.dim();
    let mut latencies = Vec::with_capacity(truth.len());
    let mut found = Vec::with_capacity(truth.len());
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    for q in queries.chunks_exact(dim) {
        let t = Instant::now();
        let hits = index.search(q, K)?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        found.push(hits);
    }
    let batch1 = start.elapsed().as_secs_f64();
    let cpu_us_batch1 = cpu_start
        .zip(thread_cpu_ns())
        .map(|(a, b)| (b - a) as f64 / 1e3 / truth.len() as f64);
    let start = Instant::now();
    let _ = index.search_batch(queries, K)?;
    let batch = start.elapsed().as_secs_f64();
    let hit: usize = found
        .iter()
        .zip(truth)
        .map(|(f, t)| f.iter().filter(|h| t.contains(&h.id)).count())
        .sum();
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok(EfPoint {
        ef: index.params().expansion_search,
        recall_at_10: hit as f64 / (K * truth.len()) as f64,
        qps_batch1: truth.len() as f64 / batch1,
        qps_batch1000: truth.len() as f64 / batch,
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
        cpu_us_batch1,
    })
}

/// Nanoseconds this thread has run on a CPU (Linux's `/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The FAISS peer's Python, creating `<home>/faiss-venv` and installing the pinned packages by
/// name once.
pub fn faiss_python(log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    assets::python_venv::peer_venv("faiss-venv", FAISS_REQUIREMENTS, "FAISS peer's", log)
}

fn run_faiss(
    config: &IndexBenchConfig,
    data: &[f32],
    queries: &[f32],
    truth: &[Vec<u64>],
    log: &mut dyn FnMut(&str),
) -> Result<FaissReport> {
    let python = faiss_python(log)?;
    let dir = assets::home().join("bench-index");
    let (base, query, gt, script) = (
        dir.join("base.npy"),
        dir.join("queries.npy"),
        dir.join("truth.npy"),
        dir.join("faiss_bench.py"),
    );
    log(&format!(
        "writing the vectors for FAISS to {}",
        dir.display()
    ));
    crate::output::write_npy(
        &base,
        "<f4",
        &[data.len() / config.dim, config.dim],
        &f32_bytes(data),
    )?;
    crate::output::write_npy(
        &query,
        "<f4",
        &[truth.len(), config.dim],
        &f32_bytes(queries),
    )?;
    let ids: Vec<u8> = truth
        .iter()
        .flat_map(|t| t.iter().flat_map(|&i| (i as i64).to_le_bytes()))
        .collect();
    crate::output::write_npy(&gt, "<i8", &[truth.len(), K], &ids)?;
    crate::output::write_atomic(&script, FAISS_SCRIPT.as_bytes())?;
    log(&format!(
        "running FAISS (IndexFlatL2, IndexHNSWFlat M={} efConstruction {}: ours)",
        config.hnsw.connectivity, config.hnsw.expansion_add
    ));
    let efs: Vec<String> = config.efs.iter().map(usize::to_string).collect();
    let stdout = assets::run_command(
        Command::new(&python)
            .arg(&script)
            .arg(&base)
            .arg(&query)
            .arg(&gt)
            .args([
                "--threads",
                &config.threads.to_string(),
                "--efs",
                &efs.join(","),
                "--m",
                &config.hnsw.connectivity.to_string(),
                "--ef-construction",
                &config.hnsw.expansion_add.to_string(),
            ]),
        &dir,
    )?;
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(PEER_JSON_PREFIX))
        .ok_or_else(|| Error::format(&script, "printed no BENCH_JSON line"))?;
    serde_json::from_str(line).map_err(|e| Error::format(&script, format!("BENCH_JSON: {e}")))
}
