//! `siamese train --data omniglot:… --side N --rotated-classes` and `siamese oneshot` end to
//! end on hand-made zips: the side and the turned classes are saved in the run, `eval` and
//! `oneshot` convert their drawings at the run's side, a command reading 28 × 28 images refuses
//! the run in one line, and the options are refused in one line for data they do not apply to.

#[path = "../../siamese/tests/common/zips.rs"]
mod zips;
use zips::{png, write_zip};

#[path = "common/cli.rs"]
mod cli;
use cli::{json, run, siamese, stderr};

use std::path::{Path, PathBuf};

/// A 105 × 105 drawing, black ink on white: character `c` is a bar at one of four angles
/// and heights, drawing `i` moves it by a few pixels.
fn drawing(c: usize, i: usize) -> Vec<u8> {
    let img = image::GrayImage::from_fn(105, 105, |x, y| {
        let (x, y) = (x as i32 - (i % 5) as i32, y as i32 - (i % 4) as i32);
        let on = match c % 4 {
            0 => (20..85).contains(&x) && (y - 30 - 10 * (c / 4) as i32).abs() < 6,
            1 => (20..85).contains(&y) && (x - 30 - 10 * (c / 4) as i32).abs() < 6,
            2 => (x - y).abs() < 6 && (15..90).contains(&x),
            _ => ((x - 52).pow(2) + (y - 52).pow(2) - 900).abs() < 300,
        };
        image::Luma([if on { 0 } else { 255 }])
    });
    png(img)
}

/// A background zip of two alphabets × four characters × twenty drawings (Omniglot's count), and a runs zip of two
/// runs of four classes whose test items are other drawings of the training classes.
fn hand_made_zips(dir: &Path) -> (PathBuf, PathBuf) {
    let mut background = Vec::new();
    for (a, alphabet) in ["Alpha", "Beta"].iter().enumerate() {
        for c in 0..4 {
            for i in 0..20 {
                background.push((
                    format!("back/{alphabet}/character0{}/{i:02}.png", c + 1),
                    drawing(4 * a + c, i),
                ));
            }
        }
    }
    let mut runs = Vec::new();
    for run in ["run01", "run02"] {
        let mut labels = String::new();
        for c in 0..4 {
            runs.push((format!("{run}/training/class0{}.png", c + 1), drawing(c, 0)));
            runs.push((format!("{run}/test/item0{}.png", c + 1), drawing(c, 5)));
            labels.push_str(&format!(
                "{run}/test/item0{n}.png {run}/training/class0{n}.png\n",
                n = c + 1
            ));
        }
        runs.push((format!("{run}/class_labels.txt"), labels.into_bytes()));
    }
    let (back, all) = (dir.join("background.zip"), dir.join("runs.zip"));
    write_zip(&back, &background);
    write_zip(&all, &runs);
    (back, all)
}

fn file_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_run_at_side_32_with_rotated_classes_is_evaluated_at_its_side() {
    let dir = tempfile::tempdir().unwrap();
    let (back, all) = hand_made_zips(dir.path());
    let out = dir.path().join("run");
    let res = run(siamese()
        .args([
            "train",
            "--loss",
            "multi-similarity",
            "--epochs",
            "1",
            "--p",
            "4",
            "--k",
            "2",
            "--side",
            "32",
            "--rotated-classes",
            "--quiet",
            "--data",
        ])
        .arg(format!("omniglot:{}", back.display()))
        .arg("--out")
        .arg(&out));
    assert!(res.status.success(), "{}", stderr(&res));
    let data = file_json(&out.join("data.json"));
    assert_eq!(data["side"], 32);
    assert_eq!(data["rotated_classes"], true);
    let config = file_json(&out.join("config.json"));
    assert_eq!(config["model"]["image_size"], 32);
    // 8 characters × 20 drawings: 16 of each for training, two for validation, two for
    // test; each split holds the drawings and their three turns.
    let eval = json(&run(siamese()
        .args(["eval", "--json", "--model"])
        .arg(&out)));
    assert_eq!(eval["gallery"], 4 * 8 * 16);
    assert_eq!(eval["queries"], 4 * 8 * 2);
    let report = json(&run(siamese()
        .args(["oneshot", "--json", "--model"])
        .arg(&out)
        .arg("--runs")
        .arg(&all)));
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["total"] == 4), "{report}");
    let mean = report["mean_accuracy"].as_f64().unwrap();
    let correct: u64 = runs.iter().map(|r| r["correct"].as_u64().unwrap()).sum();
    assert!((mean - correct as f64 / 8.0).abs() < 1e-12, "{report}");
    // A command that reads images MNIST-style at 28 × 28 refuses the 32-px model in one line.
    let pngs = dir.path().join("pngs");
    std::fs::create_dir(&pngs).unwrap();
    std::fs::write(pngs.join("a.png"), drawing(0, 0)).unwrap();
    let res = run(siamese()
        .args(["index", "add", "--model"])
        .arg(&out)
        .arg(&pngs));
    let err = stderr(&res);
    assert_eq!(res.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("the model reads 1×32×32 images, these are 1×28×28"),
        "{err}"
    );
}

#[test]
fn side_and_rotated_classes_are_refused_in_one_line_where_they_do_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    let (back, _) = hand_made_zips(dir.path());
    let omniglot = format!("omniglot:{}", back.display());
    for (args, named) in [
        (
            vec!["--data", "mnist", "--side", "40"],
            "invalid --side: 40 applies only to omniglot: data; MNIST is read at 28 × 28",
        ),
        (
            vec!["--data", "mnist", "--rotated-classes"],
            "invalid --rotated-classes: applies only to omniglot: data, not to MNIST",
        ),
        (
            vec!["--data", omniglot.as_str(), "--side", "27"],
            "invalid --side: 27 is not in 28..=112",
        ),
        (
            vec!["--data", omniglot.as_str(), "--side", "113"],
            "invalid --side: 113 is not in 28..=112",
        ),
    ] {
        let res = run(siamese()
            .args(["train", "--quiet", "--out"])
            .arg(dir.path().join("refused"))
            .args(&args));
        let err = stderr(&res);
        assert_eq!(res.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
        assert!(!dir.path().join("refused").exists(), "{args:?}");
    }
}
