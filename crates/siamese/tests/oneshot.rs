//! Omniglot: one-shot evaluation on hand-made runs whose answers are known, the refusal of zips
//! of another layout, and (when the Omniglot zips are around) a short training run on the small
//! background sets evaluated on Lake's 20 runs.

#[path = "common/test_data.rs"]
mod test_data;

use std::io::Write;
use std::path::Path;

use burn::tensor::Device;
use image::{GrayImage, Luma};
use siamese::data::omniglot::{load_omniglot_background, load_oneshot_runs};
use siamese::distance::Distance;
use siamese::eval::oneshot::evaluate_oneshot;
use siamese::model::embedding_cnn::EmbeddingCnnConfig;

/// A 105 × 105 drawing, black ink on white: shape 0 a horizontal bar, 1 a vertical bar, 2 a
/// cross, 3 an L (distinct after the MNIST-style crop and rescale).
fn drawing(shape: usize) -> Vec<u8> {
    let mut img = GrayImage::from_pixel(105, 105, Luma([255]));
    let ink = |x: u32, y: u32| match shape {
        0 => (45..60).contains(&y) && (10..95).contains(&x),
        1 => (45..60).contains(&x) && (10..95).contains(&y),
        2 => (45..60).contains(&x) || (45..60).contains(&y),
        _ => ((10..25).contains(&x) && (10..95).contains(&y)) || (80..95).contains(&y),
    };
    for (x, y, p) in img.enumerate_pixels_mut() {
        if ink(x, y) {
            *p = Luma([0]);
        }
    }
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

fn write_zip(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// Two runs of four classes; every test drawing is a copy of its class's training drawing.
/// run01's labels are right (4/4); run02's `class_labels.txt` swaps the classes of two of
/// its items (2/4).
fn hand_made_runs(dir: &Path, with_labels: bool) -> std::path::PathBuf {
    let mut entries = Vec::new();
    for run in ["run01", "run02"] {
        let mut labels = String::new();
        for c in 0..4 {
            entries.push((format!("{run}/training/class0{}.png", c + 1), drawing(c)));
            // The test items are the classes in reverse order.
            let shape = 3 - c;
            entries.push((format!("{run}/test/item0{}.png", c + 1), drawing(shape)));
            let named = if run == "run02" && c < 2 {
                2 + c
            } else {
                3 - c
            };
            labels.push_str(&format!(
                "{run}/test/item0{} {run}/training/class0{}.png\n",
                c + 1,
                named + 1
            ));
        }
        let labels = labels.replace(" ", ".png ");
        if with_labels {
            entries.push((format!("{run}/class_labels.txt"), labels.into_bytes()));
        }
    }
    let path = dir.join(if with_labels {
        "runs.zip"
    } else {
        "nolabels.zip"
    });
    write_zip(&path, &entries);
    path
}

#[test]
fn one_shot_accuracy_of_hand_made_runs_is_known() {
    let dir = tempfile::tempdir().unwrap();
    let runs = load_oneshot_runs(&hand_made_runs(dir.path(), true)).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].training.len(), 4);
    assert_eq!(runs[0].test.labels, vec![3, 2, 1, 0]);
    // Copies embed exactly like their originals, whatever the weights: an untrained network.
    let model = EmbeddingCnnConfig::new().init(&Device::default()).unwrap();
    let report = evaluate_oneshot(&model, &runs, Distance::Euclidean).unwrap();
    assert_eq!(report.runs[0].correct, 4);
    assert_eq!(report.runs[1].correct, 2);
    assert!((report.mean_accuracy - 0.75).abs() < 1e-12);
}

#[test]
fn a_runs_zip_without_class_labels_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_oneshot_runs(&hand_made_runs(dir.path(), false))
        .unwrap_err()
        .to_string();
    assert!(err.contains("run01/class_labels.txt is missing"), "{err}");
    assert!(err.contains("nolabels.zip") && !err.contains('\n'), "{err}");
}

#[test]
fn a_zip_of_another_layout_is_refused_as_background_set() {
    let dir = tempfile::tempdir().unwrap();
    // The runs zip is not a background set: `run01/training/class01.png` has no character
    // folder.
    let runs = hand_made_runs(dir.path(), true);
    let err = load_omniglot_background(&[runs]).unwrap_err().to_string();
    assert!(
        err.contains("runs.zip") && err.contains("not an Omniglot background zip"),
        "{err}"
    );
    let flat = dir.path().join("flat.zip");
    write_zip(&flat, &[("a.png".to_string(), drawing(0))]);
    let err = load_omniglot_background(&[flat]).unwrap_err().to_string();
    assert!(
        err.contains("flat.zip") && err.contains("entry a.png"),
        "{err}"
    );
    let err = load_oneshot_runs(&dir.path().join("flat.zip"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an Omniglot one-shot runs zip"), "{err}");
}

#[test]
fn small_background_sets_are_read_with_shared_alphabets_once() {
    let Some(dir) = test_data::locate(test_data::TestData::Omniglot) else {
        return;
    };
    let data = load_omniglot_background(&[
        dir.join("images_background_small1.zip"),
        dir.join("images_background_small2.zip"),
    ])
    .unwrap();
    // small1: Balinese 24, Early_Aramaic 22, Greek 24, Korean 40, Latin 26; small2 adds
    // Japanese (katakana) 47, Sanskrit 42, Tagalog 17 (its Greek and Latin are skipped).
    assert_eq!(data.class_names.len(), 242);
    assert_eq!(data.len(), 242 * 20);
    assert_eq!(
        data.class_names
            .iter()
            .filter(|c| c.starts_with("Greek/"))
            .count(),
        24
    );
    let runs = load_oneshot_runs(&dir.join("all_runs.zip")).unwrap();
    assert_eq!(runs.len(), 20);
    assert!(runs
        .iter()
        .all(|r| r.training.len() == 20 && r.test.len() == 20));
}
