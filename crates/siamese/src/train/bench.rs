//! `siamese bench`: our training step, inference and MNIST epoch timed against Keras/TensorFlow
//! on the same machine in one run, with the peak resident memory of each.
//!
//! Both sides run the seeds' CNN (`[B, 1, 28, 28] → [B, 64]`), a training step of T random
//! triplets (3T images in one forward: anchors, positives, negatives), Euclidean triplet loss
//! (margin 0.2) and Adam (lr 1e-3); inference is a forward pass of a fixed test batch.
//! Each side warms up, then takes the median step time of each round and the median of the
//! rounds. Peak memory is VmHWM from `/proc/self/status`, reset after the data and the model are
//! loaded and read after training. The peer is `bench/keras_bench.py`, run in a virtual
//! environment under the cache (`<home>/bench-venv`) created from `bench/requirements.txt`.
//!
//! Layout: this file holds the configuration, the reports and the machine readings;
//! [`ours`] times our side, [`breakdown`] splits our step by layer, [`peer`] installs and runs
//! Keras.

pub mod backbone;
pub mod breakdown;
pub mod ours;
pub mod peer;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub use breakdown::{step_breakdown, StageTiming};
pub use ours::measure_ours;
pub use peer::{
    parse_peer_output, peer_python, requirement_lines, run_peer, PEER_REQUIREMENTS, PEER_SCRIPT,
};

/// What is timed, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Timed steps per round (training and inference alike).
    pub steps: usize,
    /// Untimed steps before the first round.
    pub warmup: usize,
    /// Rounds; each yields a median step time, and the report takes their median.
    pub rounds: usize,
    /// Worker threads of each side (our rayon pool; TF intra/inter-op and OMP threads).
    pub threads: usize,
    /// Random triplets per training step (3× as many images).
    pub triplets_per_step: usize,
    /// Images per inference batch.
    pub infer_batch: usize,
    /// Also time one full pass over the training images.
    pub epoch: bool,
    /// Embedding dimension D.
    pub dim: usize,
    /// Triplet margin α.
    pub margin: f64,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Seed of the weights, the dropout masks and the triplets.
    pub seed: u64,
    /// Keep freed memory in the heap for reuse ([`keep_freed_memory`]) before timing ours.
    #[serde(default)]
    pub keep_freed_memory: bool,
    /// Also time each layer alone ([`step_breakdown`]).
    #[serde(default)]
    pub breakdown: bool,
    /// Also time ours on burn's plain layers (fast kernels off, [`crate::kernels`]; steps and
    /// inference only, no epoch).
    #[serde(default)]
    pub plain_too: bool,
    /// Arithmetic of our convolutions' products (`bf16`: AMX CPUs only; see
    /// [`crate::kernels::Precision`]). Keras runs fp32 either way.
    #[serde(default)]
    pub precision: crate::kernels::Precision,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            steps: 10,
            warmup: 3,
            rounds: 3,
            threads: 2,
            triplets_per_step: 128,
            infer_batch: 512,
            epoch: true,
            dim: 64,
            margin: 0.2,
            learning_rate: 1e-3,
            seed: 1,
            keep_freed_memory: true,
            breakdown: false,
            plain_too: false,
            precision: crate::kernels::Precision::F32,
        }
    }
}

impl BenchConfig {
    /// Checks the counts before any work.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("steps", self.steps),
            ("rounds", self.rounds),
            ("threads", self.threads),
            ("triplets_per_step", self.triplets_per_step),
            ("infer_batch", self.infer_batch),
            ("dim", self.dim),
        ] {
            if v == 0 {
                return Err(Error::config(name, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// Images per training step.
    pub fn images_per_step(&self) -> usize {
        3 * self.triplets_per_step
    }
}

/// One side's measurements (ours or the peer's; the peer prints the same fields as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideReport {
    /// What ran, with versions.
    pub framework: String,
    /// Images per second of a training step (median of the rounds' medians).
    pub train_img_per_s: f64,
    /// Median training-step time of each round, milliseconds.
    pub train_step_ms: Vec<f64>,
    /// Images per second of inference.
    pub infer_img_per_s: f64,
    /// Median inference-batch time of each round, milliseconds.
    pub infer_batch_ms: Vec<f64>,
    /// Wall time of one pass over the training images (`None` when not timed).
    pub epoch_seconds: Option<f64>,
    /// Images seen in that pass (whole steps only).
    pub epoch_images: usize,
    /// Peak resident memory, MiB.
    pub peak_rss_mb: f64,
    /// What the peak covers.
    pub peak_rss_scope: String,
    /// Worker threads used.
    pub threads: usize,
    /// 1-minute load average before and after this side ran.
    pub load_avg_start: f64,
    pub load_avg_end: f64,
    /// Anything a reader should know (compilation mode, what the epoch loop is).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The whole comparison; `siamese bench --json` prints it as one object.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub train_img_per_s: f64,
    pub keras_train_img_per_s: Option<f64>,
    /// Ours / Keras images per second (> 1: we are faster).
    pub train_ratio_vs_keras: Option<f64>,
    pub infer_img_per_s: f64,
    pub keras_infer_img_per_s: Option<f64>,
    pub infer_ratio_vs_keras: Option<f64>,
    pub epoch_seconds: Option<f64>,
    pub keras_epoch_seconds: Option<f64>,
    /// Keras epoch time / ours (> 1: we are faster).
    pub epoch_ratio_vs_keras: Option<f64>,
    pub peak_rss_mb: f64,
    pub keras_peak_rss_mb: Option<f64>,
    pub cpu_model: String,
    pub cores: usize,
    pub threads: usize,
    /// Why the peer's numbers are missing, when they are.
    pub peer_error: Option<String>,
    pub config: BenchConfig,
    pub ours: SideReport,
    pub keras: Option<SideReport>,
    /// Which path ours ran: "im2col", "winograd" (crate::kernels) or "plain" (burn's layers).
    pub kernels: String,
    /// The CPU features our kernels and the `gemm` crate's can use (`/proc/cpuinfo` names).
    pub cpu_flags: Vec<String>,
    /// The vector level our own loops ran at (`avx512`, `avx2` or `portable`).
    pub simd_level: String,
    /// What ran for each layer of the seeds' CNN, training and inference.
    pub layer_paths: Vec<crate::kernels::LayerPath>,
    /// Ours on burn's plain layers (with `plain_too`), and fast / plain speed-ups.
    pub plain: Option<SideReport>,
    pub train_speedup_vs_plain: Option<f64>,
    pub infer_speedup_vs_plain: Option<f64>,
    /// Our step split by layer (with `breakdown`).
    pub breakdown: Option<Vec<StageTiming>>,
}

impl BenchReport {
    /// Combines both sides' reports (`peer` is the peer's report or why it is missing).
    pub fn new(config: &BenchConfig, ours: SideReport, peer: Result<SideReport>) -> BenchReport {
        let (keras, peer_error) = match peer {
            Ok(k) => (Some(k), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let k = keras.as_ref();
        let ratio = |a: f64, b: Option<f64>| b.filter(|b| *b > 0.0).map(|b| a / b);
        BenchReport {
            train_img_per_s: ours.train_img_per_s,
            keras_train_img_per_s: k.map(|k| k.train_img_per_s),
            train_ratio_vs_keras: ratio(ours.train_img_per_s, k.map(|k| k.train_img_per_s)),
            infer_img_per_s: ours.infer_img_per_s,
            keras_infer_img_per_s: k.map(|k| k.infer_img_per_s),
            infer_ratio_vs_keras: ratio(ours.infer_img_per_s, k.map(|k| k.infer_img_per_s)),
            epoch_seconds: ours.epoch_seconds,
            keras_epoch_seconds: k.and_then(|k| k.epoch_seconds),
            epoch_ratio_vs_keras: match (ours.epoch_seconds, k.and_then(|k| k.epoch_seconds)) {
                (Some(o), Some(k)) if o > 0.0 => Some(k / o),
                _ => None,
            },
            peak_rss_mb: ours.peak_rss_mb,
            keras_peak_rss_mb: k.map(|k| k.peak_rss_mb),
            cpu_model: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads: config.threads,
            peer_error,
            config: config.clone(),
            ours,
            keras,
            kernels: crate::kernels::kernels_name().into(),
            cpu_flags: crate::kernels::simd::cpu_flags()
                .into_iter()
                .map(String::from)
                .collect(),
            simd_level: crate::kernels::simd::level().name().into(),
            layer_paths: crate::kernels::embedding_cnn_paths(),
            plain: None,
            train_speedup_vs_plain: None,
            infer_speedup_vs_plain: None,
            breakdown: None,
        }
    }
}

/// The whole benchmark on MNIST from the cache: sizes the thread pool, times ours, then (when
/// `peer`) installs and runs the Keras peer. A peer that cannot be installed or run leaves
/// `peer_error` set and ours still reported. `log` hears progress lines.
pub fn run_bench(
    config: &BenchConfig,
    peer: bool,
    log: &mut dyn FnMut(&str),
) -> Result<BenchReport> {
    config.check()?;
    configure_threads(config.threads)?;
    if config.keep_freed_memory && !keep_freed_memory() {
        log("could not change the allocator's settings; timing with its defaults");
    }
    let train = crate::data::load_mnist(crate::data::MnistSplit::Train)?;
    let test = crate::data::load_mnist(crate::data::MnistSplit::Test)?;
    log(&format!(
        "timing ours: {} rounds of {} steps, {} images a step, {} threads",
        config.rounds,
        config.steps,
        config.images_per_step(),
        config.threads
    ));
    let ours = {
        let _precision = crate::kernels::PrecisionScope::set(config.precision)
            .map_err(|m| Error::config("--precision", m))?;
        measure_ours(config, &train, &test)?
    };
    let plain = if config.plain_too {
        log("timing ours again on burn's plain layers (fast kernels off; no epoch)");
        let plain_config = BenchConfig {
            epoch: false,
            ..config.clone()
        };
        Some(crate::kernels::with_kernels(false, || {
            measure_ours(&plain_config, &train, &test)
        })?)
    } else {
        None
    };
    drop((train, test));
    let breakdown = if config.breakdown {
        log("timing each layer alone");
        Some(step_breakdown(config)?)
    } else {
        None
    };
    let peer_report = if peer {
        peer_python(log).and_then(|python| {
            log("timing the Keras peer");
            run_peer(config, &python, &crate::data::idx::mnist_dir())
        })
    } else {
        Err(Error::Other("skipped (--no-peer)".into()))
    };
    let mut report = BenchReport::new(config, ours, peer_report);
    if let Some(plain) = plain {
        report.train_speedup_vs_plain = Some(report.train_img_per_s / plain.train_img_per_s);
        report.infer_speedup_vs_plain = Some(report.infer_img_per_s / plain.infer_img_per_s);
        report.plain = Some(plain);
    }
    report.breakdown = breakdown;
    Ok(report)
}

/// Keeps freed memory in this process's heap for reuse; returns whether the allocator accepted.
///
/// glibc hands every block above its mmap threshold (at most 32 MiB) back to the kernel on
/// `free`, and a training step of the seeds' CNN at 384 images allocates and frees several
/// such blocks (conv2's output alone is 57 MB): each step then faults in hundreds of MB of
/// fresh zeroed pages (a quarter of the step's CPU time in `perf`). With mmap off and no
/// trimming, freed blocks are reused. Call it once, early; other allocators: no-op (`false`).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // glibc's <malloc.h>: M_TRIM_THRESHOLD = -1, M_MMAP_MAX = -4; mallopt returns 1 on success.
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_MAX: i32 = -4;
        // SAFETY: mallopt only changes allocator parameters under the allocator's own lock.
        unsafe { mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, i32::MAX) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Sizes the global rayon pool (burn-flex's kernels and its GEMM run on it) to `threads`.
/// Must run before the first tensor operation; a pool already built with another size is an error.
pub fn configure_threads(threads: usize) -> Result<()> {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    let actual = rayon::current_num_threads();
    if actual != threads {
        return Err(Error::config(
            "threads",
            format!("the thread pool already runs {actual} threads, cannot set {threads}"),
        ));
    }
    Ok(())
}

/// Median of `values` (0 for none); sorts them.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Resets this process's VmHWM so the next reading covers only what follows; says what the
/// reading will cover.
pub(crate) fn reset_peak_rss() -> String {
    match std::fs::write("/proc/self/clear_refs", "5") {
        Ok(()) => "training (VmHWM reset after loading data and model)".into(),
        Err(_) => "process lifetime (VmHWM could not be reset)".into(),
    }
}

/// This process's peak resident memory (VmHWM), MiB.
pub fn peak_rss_mb() -> Result<f64> {
    let path = Path::new("/proc/self/status");
    let status = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .ok_or_else(|| Error::format(path, "no VmHWM line"))
}

/// The 1-minute load average (NaN where unknown).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The CPU's model name from `/proc/cpuinfo` ("unknown" elsewhere).
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
