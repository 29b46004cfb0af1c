//! `siamese bench backbone`: MobileNetV2's feature extractor (`[B, 3, 224, 224] → [B, 1280]`,
//! the frozen backbone of `siamese triplets`) timed on our side and in ONNX Runtime in one run,
//! same machine, same batch, same thread count.
//!
//! The peer is not handed a downloaded ONNX file: our binary writes the folded weights it runs
//! (`layout.json` + `weights.bin`) and the input batch into `<home>/bench-backbone`, and
//! `bench/onnx_mobilenet.py` builds the same graph from them with the `onnx` package (Conv with
//! the BatchNorm already folded, Clip for ReLU6, Add, GlobalAveragePool), so both sides compute
//! the same function: the report carries the largest feature difference. The peer's packages
//! are pinned in `bench/onnx-requirements.txt` and installed by name into `<home>/onnx-venv`.

use std::process::Command;
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::{configure_threads, cpu_model, load_average, median};
use crate::assets;
use crate::model::frozen::ExportedConv;
use crate::model::mobilenet_v2::MobileNetV2;
use crate::model::weights::Weights;
use crate::{Error, Result};

/// The peer's pinned packages.
pub const ONNX_REQUIREMENTS: &str = include_str!("../../../../../bench/onnx-requirements.txt");
/// The peer's script.
pub const ONNX_SCRIPT: &str = include_str!("../../../../../bench/onnx_mobilenet.py");

/// What is timed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackboneBenchConfig {
    /// Images per forward pass.
    pub batch: usize,
    /// Untimed passes first.
    pub warmup: usize,
    /// Timed passes; the report takes their median.
    pub rounds: usize,
    /// Threads of each side (our rayon pool; ONNX Runtime's intra-op pool).
    pub threads: usize,
    /// Seed of the input batch.
    pub seed: u64,
}

impl Default for BackboneBenchConfig {
    fn default() -> Self {
        BackboneBenchConfig {
            batch: 32,
            warmup: 2,
            rounds: 5,
            threads: 2,
            seed: 1,
        }
    }
}

/// The peer's numbers.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct OnnxReport {
    pub version: String,
    pub img_per_s: f64,
    pub round_seconds: Vec<f64>,
    /// Largest |ONNX Runtime's feature − ours| over the batch.
    pub max_abs_diff_vs_ours: f64,
    /// Largest |feature| of ours (the scale of the difference).
    pub max_abs_feature: f64,
    pub nodes: usize,
}

/// Both sides' numbers.
#[derive(Debug, Clone, Serialize)]
pub struct BackboneBenchReport {
    pub img_per_s: f64,
    pub round_seconds: Vec<f64>,
    pub onnxruntime_img_per_s: Option<f64>,
    pub ratio_vs_onnxruntime: Option<f64>,
    pub onnxruntime: Option<OnnxReport>,
    pub peer_error: Option<String>,
    pub config: BackboneBenchConfig,
    pub cpu_model: String,
    pub load_avg_start: f64,
    pub load_avg_end: f64,
}

/// Times ours on a seeded batch, then (with `peer`) ONNX Runtime on the same batch and weights.
pub fn run_backbone_bench(
    config: &BackboneBenchConfig,
    peer: bool,
    log: &mut dyn FnMut(&str),
) -> Result<BackboneBenchReport> {
    if config.batch == 0 || config.rounds == 0 || config.threads == 0 {
        return Err(Error::config(
            "bench backbone",
            format!(
                "batch {}, rounds {} and threads {} must be positive",
                config.batch, config.rounds, config.threads
            ),
        ));
    }
    configure_threads(config.threads)?;
    // As `siamese bench` does (and ONNX Runtime's arena allocator does for it): reuse freed
    // blocks instead of faulting in fresh pages for every activation.
    if !super::keep_freed_memory() {
        log("could not change the allocator's settings; timing with its defaults");
    }
    let load_avg_start = load_average();
    let weights_path = assets::backbone::fetch_mobilenet_v2()?;
    let device = Device::default();
    let net = MobileNetV2::from_weights(Weights::load(&weights_path)?, &device)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
    let n = config.batch * 3 * 224 * 224;
    // Normalised ImageNet inputs are roughly standard: uniform in [-2, 2] covers their range.
    let input: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect();
    let images = || {
        Tensor::<4>::from_data(
            TensorData::new(input.clone(), [config.batch, 3, 224, 224]),
            &device,
        )
    };
    log(&format!(
        "timing ours: MobileNetV2 features, batch {}, {} rounds, {} threads",
        config.batch, config.rounds, config.threads
    ));
    let features: Vec<f32> = net
        .features(images())
        .into_data()
        .try_to_vec()
        .map_err(|e| Error::Other(format!("features: {e:?}")))?;
    for _ in 0..config.warmup {
        let _ = net.features(images()).into_data();
    }
    let mut round_seconds = Vec::with_capacity(config.rounds);
    for _ in 0..config.rounds {
        let x = images();
        let start = Instant::now();
        let _ = net.features(x).into_data();
        round_seconds.push(start.elapsed().as_secs_f64());
    }
    let img_per_s = config.batch as f64 / median(&mut round_seconds.clone());
    let (onnx, peer_error) = if peer {
        match run_onnx(config, &net, &input, &features, log) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, Some("skipped (--no-peer)".into()))
    };
    let onnxruntime_img_per_s = onnx.as_ref().map(|o| o.img_per_s);
    Ok(BackboneBenchReport {
        img_per_s,
        round_seconds,
        onnxruntime_img_per_s,
        ratio_vs_onnxruntime: onnxruntime_img_per_s.map(|o| img_per_s / o),
        onnxruntime: onnx,
        peer_error,
        config: config.clone(),
        cpu_model: cpu_model(),
        load_avg_start,
        load_avg_end: load_average(),
    })
}

/// Appends `conv`'s weight and bias to `blob` and describes it (offsets in f32 values).
fn describe(conv: &ExportedConv, blob: &mut Vec<f32>) -> serde_json::Value {
    let weight_offset = blob.len();
    blob.extend_from_slice(&conv.weight);
    let bias_offset = blob.len();
    blob.extend_from_slice(&conv.bias);
    serde_json::json!({
        "shape": conv.shape,
        "stride": conv.stride,
        "padding": conv.padding,
        "groups": conv.groups,
        "weight_offset": weight_offset,
        "bias_offset": bias_offset,
    })
}

fn run_onnx(
    config: &BackboneBenchConfig,
    net: &MobileNetV2,
    input: &[f32],
    features: &[f32],
    log: &mut dyn FnMut(&str),
) -> Result<OnnxReport> {
    let python =
        assets::python_venv::peer_venv("onnx-venv", ONNX_REQUIREMENTS, "ONNX Runtime peer's", log)?;
    let dir = assets::home().join("bench-backbone");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let exported = net.export();
    let mut blob = Vec::new();
    let blocks: Vec<serde_json::Value> = exported
        .blocks
        .iter()
        .map(|b| {
            serde_json::json!({
                "expand": b.expand.as_ref().map(|c| describe(c, &mut blob)),
                "depthwise": describe(&b.depthwise, &mut blob),
                "project": describe(&b.project, &mut blob),
                "residual": b.residual,
            })
        })
        .collect();
    let layout = serde_json::json!({
        "stem": describe(&exported.stem, &mut blob),
        "blocks": blocks,
        "head": describe(&exported.head, &mut blob),
    });
    let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    crate::output::write_atomic(&dir.join("weights.bin"), &bytes(&blob))?;
    crate::output::write_atomic(&dir.join("layout.json"), layout.to_string().as_bytes())?;
    let npy = crate::output::write_npy;
    npy(
        &dir.join("input.npy"),
        "<f4",
        &[config.batch, 3, 224, 224],
        &bytes(input),
    )?;
    let dim = features.len() / config.batch;
    npy(
        &dir.join("ours.npy"),
        "<f4",
        &[config.batch, dim],
        &bytes(features),
    )?;
    let script = dir.join("onnx_mobilenet.py");
    crate::output::write_atomic(&script, ONNX_SCRIPT.as_bytes())?;
    log("timing ONNX Runtime on the same batch and weights");
    let stdout = assets::run_command(
        Command::new(&python)
            .arg(&script)
            .arg(&dir)
            .arg(config.threads.to_string())
            .arg(config.warmup.to_string())
            .arg(config.rounds.to_string())
            .env("OMP_NUM_THREADS", config.threads.to_string()),
        &dir,
    )?;
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH_JSON "))
        .ok_or_else(|| Error::Other(format!("{}: no BENCH_JSON line", script.display())))?;
    serde_json::from_str(line)
        .map_err(|e| Error::Other(format!("{}: {e}: {line:?}", script.display())))
}
