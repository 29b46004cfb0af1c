//! `siamese index add` / `siamese search`: a trained run's retrieval system in the database.
//! Test digits written as PNG files are indexed by a short MNIST run; held-out digits find
//! mostly their own digit among their 10 nearest; a second `index add` embeds nothing; a run
//! that indexed nothing is a one-line error.
//!
//! Needs `siamese fetch mnist`; no evaluation data.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use siamese::data::idx::{load_mnist, MnistSplit};

fn siamese() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siamese"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary starts")
}

fn json(cmd: &mut Command) -> Value {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// MNIST test digit `i` as a PNG at `path`.
fn write_digit(images: &siamese::data::LabelledImages, i: usize, path: &Path) {
    let side = images.width;
    let pixels = &images.pixels[i * side * side..(i + 1) * side * side];
    image::GrayImage::from_fn(side as u32, side as u32, |x, y| {
        image::Luma([(pixels[y as usize * side + x as usize] * 255.0).round() as u8])
    })
    .save(path)
    .unwrap();
}

#[test]
fn a_trained_run_indexes_and_searches_digits() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("run");
    let trained = run(siamese()
        .args([
            "train", "--data", "mnist", "--limit", "1200", "--epochs", "3", "--seed", "5",
            "--quiet", "--out",
        ])
        .arg(&model));
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    let test = load_mnist(MnistSplit::Test).unwrap();
    let digits = dir.path().join("digits");
    let (indexed, queries) = (400, 40);
    for i in 0..indexed {
        let folder = digits.join(test.labels[i].to_string());
        std::fs::create_dir_all(&folder).unwrap();
        write_digit(&test, i, &folder.join(format!("{i:05}.png")));
    }
    let first = json(
        siamese()
            .args(["index", "add", "--json", "--model"])
            .arg(&model)
            .arg(&digits),
    );
    assert_eq!(
        (first["added"].as_u64(), first["images"].as_u64()),
        (Some(indexed as u64), Some(indexed as u64)),
        "{first}"
    );
    assert!(model.join("index.db").is_file());
    let again = json(
        siamese()
            .args(["index", "add", "--json", "--model"])
            .arg(&model)
            .arg(&digits),
    );
    assert_eq!(
        (again["added"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(indexed as u64)),
        "{again}"
    );

    // Held-out digits: the share of their 10 nearest stored digits with the same label.
    let mut same = 0;
    for q in indexed..indexed + queries {
        let query = dir.path().join(format!("query-{q}.png"));
        write_digit(&test, q, &query);
        let found = json(
            siamese()
                .args(["search", "--json", "-k", "10", "--model"])
                .arg(&model)
                .arg(&query),
        );
        let hits = found["hits"].as_array().unwrap();
        assert_eq!(hits.len(), 10, "{found}");
        let distances: Vec<f64> = hits
            .iter()
            .map(|h| h["distance"].as_f64().unwrap())
            .collect();
        assert!(distances.windows(2).all(|w| w[0] <= w[1]), "{distances:?}");
        let label = test.labels[q].to_string();
        same += hits
            .iter()
            .filter(|h| {
                let path = h["path"].as_str().unwrap();
                Path::new(path).parent().unwrap().ends_with(&label)
            })
            .count();
    }
    let precision = same as f64 / (10 * queries) as f64;
    assert!(precision >= 0.75, "precision@10 {precision:.3}");

    // A database where the run indexed nothing: one line naming the run.
    let empty = dir.path().join("empty.db");
    drop(siamese::store::open(&siamese::store::Locator::Sqlite(empty.clone())).unwrap());
    let err = run(siamese()
        .args(["search", "--model"])
        .arg(&model)
        .arg("--db")
        .arg(&empty)
        .arg(dir.path().join(format!("query-{indexed}.png"))));
    let text = String::from_utf8_lossy(&err.stderr);
    assert!(
        !err.status.success() && text.lines().count() == 1 && text.contains("no images indexed"),
        "{text}"
    );
}
