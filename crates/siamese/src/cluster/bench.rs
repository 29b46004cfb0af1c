//! `siamese bench cluster`: clustering face-like vectors ([`crate::index::synthetic`], 10 faces
//! a person) at several sizes with one method through [`super::cluster`] (the neighbour graph:
//! exact up to 200,000 points, HNSW above), timing each size with its peak resident memory and
//! the people found.
//!
//! Each size runs in a child process of the same binary (the CLI passes itself as `exe`), so
//! each peak RSS is that size's alone; without `exe` the sizes run in this process and the
//! peaks accumulate.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use super::Method;
use crate::eval::clustering::{pairwise_scores, NOISE};
use crate::index::synthetic;
use crate::train::bench::{cpu_model, load_average, peak_rss_mb};
use crate::{Error, Result};

/// One size's result.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterBenchPoint {
    pub n: usize,
    pub seconds: f64,
    pub peak_rss_mb: f64,
    /// Clusters found (noise excluded).
    pub people: usize,
    pub true_people: usize,
    pub pairwise_f1: f64,
    pub method: String,
}

/// The report of all sizes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterBenchReport {
    pub sizes: Vec<ClusterBenchPoint>,
    pub threads: usize,
    pub cpu_model: String,
    pub load_avg_start: f64,
    pub load_avg_end: f64,
}

/// Clusters `n` face-like vectors (seeded) with `method` in this process.
pub fn cluster_once(n: usize, method: &Method, seed: u64) -> Result<ClusterBenchPoint> {
    if n < 10 {
        return Err(Error::config("n", format!("{n} vectors, at least 10")));
    }
    let (data, truth) = synthetic::faces(n / 10, 10, 128, seed);
    let start = Instant::now();
    let labels = super::cluster(&data, 128, method, seed)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(ClusterBenchPoint {
        n: truth.len(),
        seconds,
        peak_rss_mb: peak_rss_mb()?,
        people: {
            let mut ids: Vec<u32> = labels.iter().copied().filter(|&l| l != NOISE).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        },
        true_people: n / 10,
        pairwise_f1: pairwise_scores(&truth, &labels).f1,
        method: method.name().to_string(),
    })
}

/// Runs every size; with `exe`, each in a child `exe bench cluster --one N ...` process that
/// prints one point as JSON (`child_args` are the flags it needs besides `--one`).
pub fn run_cluster_bench(
    sizes: &[usize],
    method: &Method,
    seed: u64,
    threads: usize,
    exe: Option<(&Path, &[String])>,
    log: &mut dyn FnMut(&str),
) -> Result<ClusterBenchReport> {
    let load_avg_start = load_average();
    let mut points = Vec::new();
    for &n in sizes {
        log(&format!(
            "clustering {n} face-like vectors with {}",
            method.name()
        ));
        let point = match exe {
            Some((exe, args)) => {
                let stdout = crate::assets::run_command(
                    Command::new(exe)
                        .args(["bench", "cluster", "--one", &n.to_string()])
                        .args(args),
                    Path::new("."),
                )?;
                let line = stdout.lines().last().unwrap_or_default();
                serde_json::from_str(line).map_err(|e| {
                    Error::Other(format!("bench cluster child for {n}: {e}: {line:?}"))
                })?
            }
            None => cluster_once(n, method, seed)?,
        };
        log(&format!(
            "{n}: {:.1} s, peak RSS {:.0} MiB, {} people found of {} (pairwise F1 {:.3})",
            point.seconds, point.peak_rss_mb, point.people, point.true_people, point.pairwise_f1
        ));
        points.push(point);
    }
    Ok(ClusterBenchReport {
        sizes: points,
        threads,
        cpu_model: cpu_model(),
        load_avg_start,
        load_avg_end: load_average(),
    })
}
