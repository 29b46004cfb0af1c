//! `--precision`: bf16 training where the CPU has AMX, a warning and fp32 where it does not
//! (`SIAMESE_SIMD=avx2` stands for such a CPU), and a one-line error for an unknown precision.

use std::path::Path;
use std::process::{Command, Output};

fn train(out: &Path, precision: &str, simd: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_siamese"));
    cmd.args([
        "train", "--data", "mnist", "--limit", "1200", "--epochs", "2",
    ])
    .args(["--seed", "3", "--quiet", "--precision", precision, "--out"])
    .arg(out);
    if let Some(level) = simd {
        cmd.env("SIAMESE_SIMD", level);
    }
    cmd.output().expect("the binary starts")
}

fn recorded(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The validation losses of a run, epoch by epoch.
fn val_losses(run: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["history"]["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["val_loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn bf16_trains_on_amx_and_says_so_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    // A CPU without AMX (stood for by the AVX2 level): one warning line, an fp32 run.
    let plain = dir.path().join("without-amx");
    let out = train(&plain, "bf16", Some("avx2"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("bf16")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("needs AMX") && warnings[0].contains("fp32"));
    assert_eq!(recorded(&plain)["precision"], "f32");
    // This CPU: bf16 where it has AMX, and its validation loss falls as fp32's does.
    let run = dir.path().join("bf16");
    let out = train(&run, "bf16", None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let amx = siamese::kernels::gemm_bf16::available();
    assert_eq!(
        recorded(&run)["precision"],
        if amx { "bf16" } else { "f32" }
    );
    assert_eq!(err.contains("needs AMX"), !amx, "{err}");
    let losses = val_losses(&run);
    assert!(losses.len() == 2 && losses[1] < losses[0], "{losses:?}");
    let fp32 = val_losses(&plain);
    assert!(
        (losses[1] - fp32[1]).abs() < 0.5 * fp32[1],
        "{losses:?} vs {fp32:?}"
    );
}

#[test]
fn an_unknown_precision_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = train(&run, "fp16", None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("fp16") && err.contains("f32 or bf16"), "{err}");
    assert!(!run.exists(), "nothing written");
}
