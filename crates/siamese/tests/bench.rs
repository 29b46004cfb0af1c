//! The benchmark harness: our side on a small synthetic set, the combined report's ratios and
//! JSON keys, reading the peer's output, the peer's pins. Speed itself is never asserted.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese::data::LabelledImages;
use siamese::train::bench::{
    keep_freed_memory, measure_ours, median, parse_peer_output, requirement_lines, step_breakdown,
    BenchConfig, BenchReport, SideReport, PEER_REQUIREMENTS,
};
use siamese::Error;

fn synthetic(n_per_class: usize, classes: usize, seed: u64) -> LabelledImages {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = n_per_class * classes;
    LabelledImages {
        pixels: (0..n * 784).map(|_| rng.random::<f32>()).collect(),
        labels: (0..n).map(|i| (i % classes) as u32).collect(),
        class_names: (0..classes).map(|c| c.to_string()).collect(),
        channels: 1,
        height: 28,
        width: 28,
    }
}

fn side(train: f64, infer: f64, epoch: Option<f64>, rss: f64) -> SideReport {
    SideReport {
        framework: "test".into(),
        train_img_per_s: train,
        train_step_ms: vec![1.0],
        infer_img_per_s: infer,
        infer_batch_ms: vec![1.0],
        epoch_seconds: epoch,
        epoch_images: 0,
        peak_rss_mb: rss,
        peak_rss_scope: "test".into(),
        threads: 2,
        load_avg_start: 0.0,
        load_avg_end: 0.0,
        notes: vec![],
    }
}

#[test]
fn ours_measures_every_round_and_a_whole_epoch() {
    let train = synthetic(40, 10, 1);
    let test = synthetic(4, 10, 2);
    let config = BenchConfig {
        steps: 2,
        warmup: 1,
        rounds: 2,
        triplets_per_step: 8,
        infer_batch: 16,
        ..BenchConfig::default()
    };
    let r = measure_ours(&config, &train, &test).expect("benchmark runs");
    assert_eq!(r.train_step_ms.len(), 2);
    assert_eq!(r.infer_batch_ms.len(), 2);
    assert!(r.train_step_ms.iter().all(|t| t.is_finite() && *t > 0.0));
    // Throughput follows from the median step time and the images a step.
    let mut steps = r.train_step_ms.clone();
    let expected = 24.0 / (median(&mut steps) / 1e3);
    assert!((r.train_img_per_s - expected).abs() < 1e-6 * expected);
    let mut batches = r.infer_batch_ms.clone();
    let expected = 16.0 / (median(&mut batches) / 1e3);
    assert!((r.infer_img_per_s - expected).abs() < 1e-6 * expected);
    // 400 images / 24 a step = 16 whole steps.
    assert_eq!(r.epoch_images, 16 * 24);
    assert!(r.epoch_seconds.is_some_and(|s| s > 0.0));
    // The model, its Adam state and a batch's activations take more than a few MiB.
    assert!(r.peak_rss_mb > 10.0, "peak RSS {}", r.peak_rss_mb);
}

#[test]
fn bad_counts_are_refused() {
    let data = synthetic(4, 2, 3);
    let config = BenchConfig {
        steps: 0,
        ..BenchConfig::default()
    };
    let err = measure_ours(&config, &data, &data).unwrap_err();
    assert!(err.to_string().contains("steps"), "{err}");
}

#[test]
fn report_has_ratios_and_the_promised_json_keys() {
    let config = BenchConfig::default();
    let r = BenchReport::new(
        &config,
        side(300.0, 1200.0, Some(50.0), 400.0),
        Ok(side(200.0, 1600.0, Some(100.0), 800.0)),
    );
    assert!((r.train_ratio_vs_keras.unwrap() - 1.5).abs() < 1e-12);
    assert!((r.infer_ratio_vs_keras.unwrap() - 0.75).abs() < 1e-12);
    assert!((r.epoch_ratio_vs_keras.unwrap() - 2.0).abs() < 1e-12);
    assert!(r.cores >= 1);
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "train_img_per_s",
        "keras_train_img_per_s",
        "train_ratio_vs_keras",
        "infer_img_per_s",
        "keras_infer_img_per_s",
        "infer_ratio_vs_keras",
        "epoch_seconds",
        "keras_epoch_seconds",
        "peak_rss_mb",
        "keras_peak_rss_mb",
        "cpu_model",
        "cores",
    ] {
        assert!(json.get(key).is_some_and(|v| !v.is_null()), "{key} missing");
    }
    assert_eq!(json["keras_peak_rss_mb"], 800.0);
}

#[test]
fn a_missing_peer_keeps_ours_and_says_why() {
    let r = BenchReport::new(
        &BenchConfig::default(),
        side(300.0, 1200.0, None, 400.0),
        Err(Error::Other("pip failed".into())),
    );
    assert_eq!(r.train_img_per_s, 300.0);
    assert!(r.keras_train_img_per_s.is_none() && r.train_ratio_vs_keras.is_none());
    assert_eq!(r.peer_error.as_deref(), Some("pip failed"));
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["keras_train_img_per_s"].is_null());
}

#[test]
fn peer_output_is_read_from_its_json_line_among_log_noise() {
    let report = side(123.0, 456.0, Some(7.5), 789.0);
    let stdout = format!(
        "I0000 tensorflow noise\nBENCH_JSON {}\nmore noise\n",
        serde_json::to_string(&report).unwrap()
    );
    let script = Path::new("keras_bench.py");
    assert_eq!(parse_peer_output(&stdout, script).unwrap(), report);
    let err = parse_peer_output("nothing here\n", script).unwrap_err();
    assert!(err.to_string().contains("keras_bench.py"), "{err}");
    let err = parse_peer_output("BENCH_JSON {\"framework\": 1}\n", script).unwrap_err();
    assert!(err.to_string().contains("not valid"), "{err}");
}

#[test]
fn peer_versions_are_pinned() {
    let pins: Vec<&str> = requirement_lines(PEER_REQUIREMENTS).collect();
    assert!(pins.iter().any(|p| p.starts_with("keras==3.")), "{pins:?}");
    assert!(
        pins.iter().any(|p| p.starts_with("tensorflow-cpu==2.")),
        "{pins:?}"
    );
    assert!(pins.iter().all(|p| p.contains("==")), "{pins:?}");
}

#[test]
fn median_of_odd_and_even_counts() {
    assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    assert_eq!(median(&mut []), 0.0);
}

#[test]
fn breakdown_times_every_layer_and_the_whole_step() {
    let config = BenchConfig {
        steps: 1,
        warmup: 1,
        triplets_per_step: 4,
        ..BenchConfig::default()
    };
    let stages = step_breakdown(&config).expect("breakdown runs");
    // conv1, conv2, conv2 + pool + dropout as the model calls it, pool, dropout, dense, output,
    // loss, and the whole step in two parts.
    assert_eq!(stages.len(), 10);
    assert!(stages[0].stage.starts_with("conv1") && stages[1].stage.starts_with("conv2"));
    assert!(stages[2].stage.contains("model's call"));
    assert!(stages
        .iter()
        .all(|s| s.forward_ms.is_finite() && s.backward_ms.is_finite()));
    // Convolutions have weights and inputs to differentiate: their backward does real work.
    assert!(stages[1].forward_ms > 0.0 && stages[1].backward_ms > 0.0);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn glibc_accepts_keeping_freed_memory() {
    assert!(keep_freed_memory());
}
