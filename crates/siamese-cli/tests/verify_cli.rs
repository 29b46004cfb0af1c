//! `siamese verify --model RUN A B` end to end on a short MNIST run: two sevens are `same`, a
//! seven and a one `different`, the threshold is calibrated once on validation pairs and kept
//! in `RUN/verification.json`, `--threshold` overrides it; and the refusals of bad input and of
//! training options that do not fit the loss (`--distance` for a cosine loss, `--xbm` for a
//! class-vector loss, `--sampler pairs` for triplet): one line naming the file or value, a
//! non-zero exit, no panic. Needs `siamese fetch mnist`.

use std::path::{Path, PathBuf};
use std::process::Output;

#[path = "common/cli.rs"]
mod cli;
use cli::{assert_clean_failure, copy_dir, json, run, siamese, stderr};

/// MNIST test image `i` written as an 84 × 84 black-on-white PNG.
fn write_digit(test: &siamese::data::LabelledImages, i: usize, path: &Path) {
    let img = image::GrayImage::from_fn(84, 84, |x, y| {
        let v = test.image(i)[(y / 3 * 28 + x / 3) as usize];
        image::Luma([255 - (v * 255.0) as u8])
    });
    img.save(path).unwrap();
}

fn verify(model: &Path, a: &Path, b: &Path, extra: &[&str]) -> Output {
    run(siamese()
        .arg("verify")
        .args(extra)
        .arg("--model")
        .arg(model)
        .arg(a)
        .arg(b))
}

#[test]
fn verify_calls_two_sevens_same_and_a_seven_and_a_one_different() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("run");
    let out = run(siamese()
        .args([
            "train", "--data", "mnist", "--limit", "3000", "--epochs", "3",
        ])
        .args(["--seed", "4", "--quiet", "--out"])
        .arg(&model));
    assert!(out.status.success(), "{}", stderr(&out));
    let test = siamese::data::load_mnist(siamese::data::MnistSplit::Test).unwrap();
    let of = |label: u32, nth: usize| {
        (0..test.len())
            .filter(|&i| test.labels[i] == label)
            .nth(nth)
            .unwrap()
    };
    let png = |name: &str, i: usize| -> PathBuf {
        let p = dir.path().join(name);
        write_digit(&test, i, &p);
        p
    };
    let (seven, other_seven, one) = (
        png("7a.png", of(7, 0)),
        png("7b.png", of(7, 1)),
        png("1.png", of(1, 0)),
    );

    assert!(!model.join("verification.json").exists());
    let same = json(&verify(&model, &seven, &other_seven, &["--json"]));
    assert_eq!(same["same"], true, "{same}");
    assert_eq!(same["threshold_source"], "calibrated");
    let cal = &same["calibration"];
    assert_eq!(cal["same_pairs"].as_u64(), Some(3000), "{cal}");
    assert_eq!(cal["different_pairs"].as_u64(), Some(3000), "{cal}");
    // Measured 0.931 (chance 0.5).
    assert!(cal["accuracy"].as_f64().unwrap() > 0.9, "{cal}");
    let threshold = same["threshold"].as_f64().unwrap();
    assert!(same["distance"].as_f64().unwrap() <= threshold);
    // On unit-length embeddings the Euclidean threshold lies between 0 and 2.
    assert!(threshold > 0.0 && threshold < 2.0, "{threshold}");
    let written = std::fs::read(model.join("verification.json")).unwrap();

    let different = json(&verify(&model, &seven, &one, &["--json"]));
    assert_eq!(different["same"], false, "{different}");
    assert!(different["distance"].as_f64().unwrap() > threshold);
    assert_eq!(different["threshold"].as_f64().unwrap(), threshold);
    // The calibration is reused, not redone.
    assert_eq!(
        std::fs::read(model.join("verification.json")).unwrap(),
        written
    );

    // The text form, and a threshold overriding the calibrated one.
    let out = verify(&model, &seven, &other_seven, &["--threshold", "0.0001"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("different") && text.contains("0.0001") && text.contains("given"),
        "{text}"
    );
    let out = verify(&model, &seven, &one, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.trim().ends_with("different") && text.contains("calibrated"),
        "{text}"
    );

    // Bad input: a missing image, a file that is not an image, a run without weights, a
    // threshold that is no distance.
    let missing = dir.path().join("missing.png");
    assert_clean_failure(&verify(&model, &seven, &missing, &[]), "missing.png");
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG but not really").unwrap();
    assert_clean_failure(&verify(&model, &broken, &seven, &[]), "broken.png");
    let untrained = dir.path().join("untrained");
    std::fs::create_dir(&untrained).unwrap();
    for file in ["config.json", "data.json"] {
        std::fs::copy(model.join(file), untrained.join(file)).unwrap();
    }
    assert_clean_failure(&verify(&untrained, &seven, &one, &[]), "untrained");
    assert_clean_failure(
        &verify(&dir.path().join("no-run"), &seven, &one, &[]),
        "no-run",
    );
    for t in ["-1", "NaN", "0"] {
        assert_clean_failure(
            &verify(&model, &seven, &one, &["--threshold", t]),
            "--threshold",
        );
    }
    let damaged = dir.path().join("damaged");
    copy_dir(&model, &damaged);
    std::fs::write(damaged.join("verification.json"), b"{").unwrap();
    assert_clean_failure(&verify(&damaged, &seven, &one, &[]), "verification.json");
}

#[test]
fn training_options_that_do_not_fit_the_loss_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let train = |args: &[&str]| {
        run(siamese()
            .args(["train", "--limit", "200", "--epochs", "1", "--quiet"])
            .args(args)
            .arg("--out")
            .arg(&out))
    };
    let refused = train(&["--loss", "multi-similarity", "--distance", "euclidean"]);
    assert_clean_failure(&refused, "cosine similarity on L2-normalised embeddings");
    assert_clean_failure(&refused, "--distance");
    assert_clean_failure(&train(&["--loss", "arcface", "--xbm", "512"]), "--xbm");
    assert_clean_failure(&train(&["--xbm", "0"]), "--xbm");
    assert_clean_failure(&train(&["--sampler", "pairs"]), "--sampler");
    assert_clean_failure(&train(&["--sampler", "triangles"]), "triangles");
    assert_clean_failure(
        &train(&["--loss", "contrastive", "--sampler", "pairs", "--xbm", "64"]),
        "--xbm",
    );
    assert_clean_failure(
        &train(&[
            "--loss",
            "contrastive",
            "--sampler",
            "pairs",
            "--pairs-per-batch",
            "1",
        ]),
        "--pairs-per-batch",
    );
    assert!(!out.exists(), "refused before the run folder is made");
    // The distance is accepted where the loss uses it.
    let ok = train(&[
        "--loss",
        "contrastive",
        "--distance",
        "squared_euclidean",
        "--sampler",
        "pairs",
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
}
