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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::trainer::new_optimizer;
use crate::data::LabelledImages;
use crate::embed::{batch_tensor, to_host};
use crate::loss::TripletLossConfig;
use crate::model::embedding_cnn::{EmbeddingCnn, EmbeddingCnnConfig};
use crate::sampling::RandomTriplets;
use crate::{assets, Error, Result};

/// Pinned versions of the peer, one `name==version` a line (comments allowed).
pub const PEER_REQUIREMENTS: &str = include_str!("../../../../bench/requirements.txt");
/// The peer's benchmark script.
pub const PEER_SCRIPT: &str = include_str!("../../../../bench/keras_bench.py");
/// The line prefix under which the peer prints its JSON report.
const PEER_JSON_PREFIX: &str = "BENCH_JSON ";

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
    let train = crate::data::load_mnist(crate::data::MnistSplit::Train)?;
    let test = crate::data::load_mnist(crate::data::MnistSplit::Test)?;
    log(&format!(
        "timing ours: {} rounds of {} steps, {} images a step, {} threads",
        config.rounds,
        config.steps,
        config.images_per_step(),
        config.threads
    ));
    let ours = measure_ours(config, &train, &test)?;
    drop((train, test));
    let peer_report = if peer {
        peer_python(log).and_then(|python| {
            log("timing the Keras peer");
            run_peer(config, &python, &crate::data::idx::mnist_dir())
        })
    } else {
        Err(Error::Other("skipped (--no-peer)".into()))
    };
    Ok(BenchReport::new(config, ours, peer_report))
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

/// Times our training step, inference and (optionally) an epoch on `train`/`test`
/// (`1 × 28 × 28` images; `train` needs two classes, one of them with two images).
pub fn measure_ours(
    config: &BenchConfig,
    train: &LabelledImages,
    test: &LabelledImages,
) -> Result<SideReport> {
    config.check()?;
    let load_avg_start = load_average();
    let device = Device::default().autodiff();
    device.seed(config.seed);
    let model_config = EmbeddingCnnConfig::new()
        .with_channels(train.channels)
        .with_image_size(train.height)
        .with_dim(config.dim);
    let mut stepper = TrainStepper {
        model: Some(model_config.init(&device)?),
        optimizer: new_optimizer(),
        loss: TripletLossConfig::new().with_margin(config.margin).init()?,
        triplets: RandomTriplets::new(&train.labels, train.class_names.len(), config.seed)?,
        data: train,
        device,
        learning_rate: config.learning_rate,
        per_step: config.triplets_per_step,
    };

    let rss_scope = reset_peak_rss();
    for _ in 0..config.warmup.max(1) {
        stepper.step()?;
    }
    let mut train_step_ms = Vec::with_capacity(config.rounds);
    for _ in 0..config.rounds {
        let mut times = Vec::with_capacity(config.steps);
        for _ in 0..config.steps {
            times.push(stepper.step()?);
        }
        train_step_ms.push(median(&mut times) * 1e3);
    }
    let (epoch_seconds, epoch_images) = if config.epoch {
        let steps = train.len() / config.images_per_step();
        let started = Instant::now();
        for _ in 0..steps {
            stepper.step()?;
        }
        (
            Some(started.elapsed().as_secs_f64()),
            steps * config.images_per_step(),
        )
    } else {
        (None, 0)
    };
    let peak_rss_mb = peak_rss_mb()?;

    let model = stepper
        .model
        .take()
        .expect("the stepper always holds a model");
    let (infer_batch_ms, batch_len) = time_inference(config, &model, test)?;
    let train_ms = median(&mut train_step_ms.clone());
    let infer_ms = median(&mut infer_batch_ms.clone());
    Ok(SideReport {
        framework: "siamese (burn 0.22.1, flex CPU backend)".into(),
        train_img_per_s: config.images_per_step() as f64 / (train_ms / 1e3),
        train_step_ms,
        infer_img_per_s: batch_len as f64 / (infer_ms / 1e3),
        infer_batch_ms,
        epoch_seconds,
        epoch_images,
        peak_rss_mb,
        peak_rss_scope: rss_scope,
        threads: rayon::current_num_threads(),
        load_avg_start,
        load_avg_end: load_average(),
        notes: vec!["train step and epoch: the same step loop (random triplets)".into()],
    })
}

/// The state of a benchmark training run; `step` does one timed step and returns its seconds.
struct TrainStepper<'a> {
    /// `None` only while a step has taken the model out to update it.
    model: Option<EmbeddingCnn>,
    optimizer: ModuleOptimizer,
    loss: crate::loss::TripletLoss,
    triplets: RandomTriplets,
    data: &'a LabelledImages,
    device: Device,
    learning_rate: f64,
    per_step: usize,
}

impl TrainStepper<'_> {
    fn step(&mut self) -> Result<f64> {
        let trips: Vec<[usize; 3]> = (&mut self.triplets).take(self.per_step).collect();
        let indices: Vec<usize> = (0..3)
            .flat_map(|k| trips.iter().map(move |t| t[k]))
            .collect();
        let started = Instant::now();
        let model = self.model.take().expect("the stepper always holds a model");
        let emb = model.forward(batch_tensor(self.data, &indices, &self.device));
        let t = self.per_step;
        let loss = self.loss.forward(
            emb.clone().narrow(0, 0, t),
            emb.clone().narrow(0, t, t),
            emb.narrow(0, 2 * t, t),
        );
        let grads = GradientsParams::from_grads(loss.clone().backward(), &model);
        self.model = Some(self.optimizer.step(self.learning_rate, model, grads));
        // Reading the loss waits for the step, as Keras' train_on_batch returning it does.
        let value: f32 = loss.into_scalar();
        let seconds = started.elapsed().as_secs_f64();
        if !value.is_finite() {
            return Err(Error::Other(format!(
                "benchmark training diverged: loss is {value}"
            )));
        }
        Ok(seconds)
    }
}

/// Median inference-batch time of each round (ms) and the batch size used.
fn time_inference(
    config: &BenchConfig,
    model: &EmbeddingCnn,
    test: &LabelledImages,
) -> Result<(Vec<f64>, usize)> {
    let inference = model.valid();
    let device = Device::default();
    let indices: Vec<usize> = (0..config.infer_batch.min(test.len())).collect();
    if indices.is_empty() {
        return Err(Error::config("test", "no test images to time inference on"));
    }
    let run = || -> Result<f64> {
        let started = Instant::now();
        let emb = to_host(inference.forward(batch_tensor(test, &indices, &device)))?;
        std::hint::black_box(emb);
        Ok(started.elapsed().as_secs_f64())
    };
    for _ in 0..config.warmup.max(1) {
        run()?;
    }
    let mut rounds = Vec::with_capacity(config.rounds);
    for _ in 0..config.rounds {
        let mut times = (0..config.steps)
            .map(|_| run())
            .collect::<Result<Vec<_>>>()?;
        rounds.push(median(&mut times) * 1e3);
    }
    Ok((rounds, indices.len()))
}

/// The peer's Python interpreter, creating `<home>/bench-venv` and installing
/// [`PEER_REQUIREMENTS`] into it by package name when not done yet. `log` hears about
/// the one-time install.
pub fn peer_python(log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let venv = assets::home().join("bench-venv");
    let python = venv.join("bin").join("python");
    let marker = venv.join("installed-requirements.txt");
    if python.exists()
        && std::fs::read_to_string(&marker).ok().as_deref() == Some(PEER_REQUIREMENTS)
    {
        return Ok(python);
    }
    let parent = assets::home();
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    if !python.exists() {
        log("creating the peer's virtual environment (once)");
        assets::run_command(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            &parent,
        )?;
    }
    let wanted = venv.join("requirements.txt");
    assets::write_atomic(&wanted, PEER_REQUIREMENTS.as_bytes())?;
    let pins: Vec<&str> = requirement_lines(PEER_REQUIREMENTS).collect();
    log(&format!("installing {} (once)", pins.join(" ")));
    assets::run_command(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                "-r",
            ])
            .arg(&wanted),
        &venv,
    )?;
    assets::write_atomic(&marker, PEER_REQUIREMENTS.as_bytes())?;
    Ok(python)
}

/// The `name==version` lines of a requirements text.
pub fn requirement_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Runs the peer script with `python` on the MNIST files in `mnist_dir`.
pub fn run_peer(config: &BenchConfig, python: &Path, mnist_dir: &Path) -> Result<SideReport> {
    config.check()?;
    let dir = python
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(assets::home);
    let script = dir.join("keras_bench.py");
    assets::write_atomic(&script, PEER_SCRIPT.as_bytes())?;
    let threads = config.threads.to_string();
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg("--mnist")
        .arg(mnist_dir)
        .args(["--steps", &config.steps.to_string()])
        .args(["--warmup", &config.warmup.to_string()])
        .args(["--rounds", &config.rounds.to_string()])
        .args(["--threads", &threads])
        .args(["--triplets", &config.triplets_per_step.to_string()])
        .args(["--infer-batch", &config.infer_batch.to_string()])
        .args(["--dim", &config.dim.to_string()])
        .args(["--margin", &config.margin.to_string()])
        .args(["--lr", &config.learning_rate.to_string()])
        .args(["--seed", &config.seed.to_string()])
        .env("OMP_NUM_THREADS", &threads)
        .env("TF_NUM_INTRAOP_THREADS", &threads)
        .env("TF_NUM_INTEROP_THREADS", &threads)
        .env("TF_CPP_MIN_LOG_LEVEL", "2");
    if !config.epoch {
        cmd.arg("--no-epoch");
    }
    let stdout = assets::run_command(&mut cmd, &dir)?;
    parse_peer_output(&stdout, &script)
}

/// The peer's report from its stdout (the `BENCH_JSON` line; other lines are ignored).
pub fn parse_peer_output(stdout: &str, script: &Path) -> Result<SideReport> {
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(PEER_JSON_PREFIX))
        .ok_or_else(|| Error::format(script, "the peer printed no BENCH_JSON line"))?;
    serde_json::from_str(line)
        .map_err(|e| Error::format(script, format!("the peer's report is not valid: {e}")))
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
fn reset_peak_rss() -> String {
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
