//! `siamese faces` from the command line: a second `cluster` run over an unchanged folder embeds
//! nothing and writes the same results; bad files in a folder are skipped, listed and do not stop
//! the run; bad single inputs and missing weights are one-line errors naming the file; `faces
//! bench` reports faces/s and writes the chips it timed.
//!
//! Needs `siamese fetch face-models` and `../shared/data/lfw`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn siamese() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siamese"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn lfw_images() -> PathBuf {
    let tar =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/lfw/lfw-deepfunneled.tar");
    siamese::faces::lfw::unpack(&tar).expect("LFW tarball in ../shared/data/lfw")
}

/// Two photos each of two people, plus a text file, a truncated JPEG and a 1x1 PNG.
fn photo_folder(dir: &Path) -> PathBuf {
    let images = lfw_images();
    let photos = dir.join("photos");
    for person in ["Colin_Powell", "Tony_Blair"] {
        std::fs::create_dir_all(photos.join(person)).unwrap();
        for i in 1..=2 {
            let src = siamese::faces::lfw::image_path(&images, person, i);
            std::fs::copy(&src, photos.join(person).join(src.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(photos.join("notes.txt"), b"not an image").unwrap();
    let jpeg = std::fs::read(siamese::faces::lfw::image_path(&images, "Colin_Powell", 3)).unwrap();
    std::fs::write(photos.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    image::RgbImage::new(1, 1)
        .save(photos.join("tiny.png"))
        .unwrap();
    photos
}

fn cluster(photos: &Path, out: &Path) -> Value {
    let result = run(siamese()
        .args(["faces", "cluster", "--json", "--out"])
        .arg(out)
        .arg(photos));
    assert!(result.status.success(), "{}", text(&result.stderr));
    serde_json::from_str(&text(&result.stdout)).unwrap()
}

#[test]
fn second_cluster_run_embeds_nothing_and_bad_files_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let out = dir.path().join("clusters");

    let first = cluster(&photos, &out);
    assert_eq!(first["embedded_photos"], 7, "{first}");
    assert_eq!(first["reused_photos"], 0, "{first}");
    let skipped: Vec<String> = first["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for (file, why) in [
        ("notes.txt", "not an image"),
        ("truncated.jpg", "truncated JPEG"),
        ("tiny.png", "too small"),
    ] {
        assert!(
            skipped.iter().any(|s| s.contains(file) && s.contains(why)),
            "{file}: {skipped:?}"
        );
    }
    // The good photos were still clustered and written out.
    assert_eq!(first["faces"], 4, "{first}");
    let people = first["people"].as_u64().unwrap();
    assert!((1..=2).contains(&people), "{first}");
    let csv = std::fs::read_to_string(out.join("clusters.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "header and one row per face: {csv}");
    assert!(out.join("index.html").is_file());

    // Unchanged folder: nothing embedded, the same groups, bad files listed again.
    let second = cluster(&photos, &out);
    assert_eq!(second["embedded_photos"], 0, "{second}");
    assert_eq!(second["embedded_faces"], 0, "{second}");
    assert_eq!(second["reused_photos"], 7, "{second}");
    assert_eq!(second["skipped"].as_array().unwrap().len(), 3);
    assert_eq!(
        std::fs::read_to_string(out.join("clusters.csv")).unwrap(),
        csv
    );
}

#[test]
fn bad_single_inputs_and_missing_weights_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let good = siamese::faces::lfw::image_path(&photos, "Tony_Blair", 1);
    for (bad, why) in [
        ("notes.txt", "not an image"),
        ("truncated.jpg", "truncated JPEG"),
        ("tiny.png", "too small"),
    ] {
        let result = run(siamese()
            .args(["faces", "verify"])
            .arg(photos.join(bad))
            .arg(&good));
        let err = text(&result.stderr);
        assert!(!result.status.success());
        assert!(
            err.lines().count() == 1 && err.contains(bad) && err.contains(why),
            "{bad}: {err}"
        );
    }
    // No weights in the cache: the error says which file and how to get it.
    let empty = dir.path().join("empty-home");
    std::fs::create_dir_all(&empty).unwrap();
    let result = run(siamese()
        .env("SIAMESE_HOME", &empty)
        .args(["faces", "verify"])
        .arg(&good)
        .arg(&good));
    let err = text(&result.stderr);
    assert!(!result.status.success());
    assert!(
        err.lines().count() == 1
            && err.contains("face_recognition_model.weights")
            && err.contains("siamese fetch face-models"),
        "{err}"
    );
}

#[test]
fn bench_times_the_pipeline_and_writes_the_chips() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let chips = dir.path().join("chips");
    let result = run(siamese()
        .args(["faces", "bench", "--rounds", "2", "--json", "--save-chips"])
        .arg(&chips)
        .arg(&photos));
    assert!(result.status.success(), "{}", text(&result.stderr));
    let r: Value = serde_json::from_str(&text(&result.stdout)).unwrap();
    assert_eq!(
        (r["photos"].as_u64(), r["faces"].as_u64()),
        (Some(7), Some(4)),
        "{r}"
    );
    assert_eq!(r["skipped"].as_array().unwrap().len(), 3, "{r}");
    assert_eq!(r["embed_rounds_faces_per_s"].as_array().unwrap().len(), 2);
    let embed = r["embed_faces_per_s"].as_f64().unwrap();
    let pipeline = r["pipeline_faces_per_s"].as_f64().unwrap();
    assert!(
        embed > 0.0 && pipeline > 0.0 && pipeline < embed * 1.5,
        "{r}"
    );
    for i in 0..4 {
        let chip = image::open(chips.join(format!("chip_{i:05}.png"))).unwrap();
        assert_eq!((chip.width(), chip.height()), (150, 150));
    }
    assert!(!chips.join("chip_00004.png").exists());
}
