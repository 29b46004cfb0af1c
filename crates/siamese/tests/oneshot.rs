//! Omniglot: one-shot evaluation on hand-made runs whose answers are known, the refusal of zips
//! of another layout, drawings converted at a larger side, the turned classes (alone and through
//! `DataSource` with `--side`), a model refusing images of another side, and (when the Omniglot
//! zips are around) the small background sets and Lake's 20 runs read as they should be.

#[path = "common/zips.rs"]
mod zips;
use zips::{png, write_zip};

#[path = "common/test_data.rs"]
mod test_data;

use std::path::Path;

use burn::tensor::Device;
use image::imageops::{rotate180, rotate270, rotate90};
use image::{GrayImage, ImageBuffer, Luma};
use siamese::data::omniglot::{
    load_omniglot_background, load_oneshot_runs, load_oneshot_runs_at, with_rotated_classes,
};
use siamese::data::LabelledImages;
use siamese::distance::Distance;
use siamese::eval::oneshot::evaluate_oneshot;
use siamese::model::embedding_cnn::EmbeddingCnnConfig;
use siamese::run::DataSource;

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
    png(img)
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

/// Bounding box `(width, height)` of the values above 0.2 of a `side × side` field.
fn ink_box(v: &[f32], side: usize) -> (usize, usize) {
    let on: Vec<(usize, usize)> = (0..side * side)
        .filter(|&p| v[p] > 0.2)
        .map(|p| (p % side, p / side))
        .collect();
    let span = |f: fn(&(usize, usize)) -> usize| {
        on.iter().map(f).max().unwrap() + 1 - on.iter().map(f).min().unwrap()
    };
    (span(|p| p.0), span(|p| p.1))
}

#[test]
fn runs_at_side_40_hold_the_drawing_in_a_29_pixel_box() {
    let dir = tempfile::tempdir().unwrap();
    let zip = hand_made_runs(dir.path(), true);
    let small = load_oneshot_runs(&zip).unwrap();
    let large = load_oneshot_runs_at(&zip, 40).unwrap();
    assert_eq!((large[0].test.height, large[0].test.width), (40, 40));
    assert_eq!(large[0].test.pixels.len(), 4 * 40 * 40);
    assert_eq!(large[0].test.labels, small[0].test.labels);
    // Shape 0, a horizontal bar: its longer side is MNIST's 20 px at 28, round(40·20/28) = 29
    // at 40 (the thickened stroke makes the height).
    let bar = small[0].training.image(0);
    let bar40 = large[0].training.image(0);
    assert_eq!(ink_box(bar, 28).0, 20);
    assert_eq!(ink_box(bar40, 40).0, 29);
    for side in [27, 113] {
        let err = load_oneshot_runs_at(&zip, side).unwrap_err().to_string();
        assert_eq!(err, format!("invalid --side: {side} is not in 28..=112"));
    }
}

#[test]
fn rotated_classes_are_exact_quarter_turns_with_labels_of_their_own() {
    // Two 3 × 3 images of classes 1 and 0: pixel values 0..9 and 10..19.
    let images = LabelledImages {
        pixels: (0..9).chain(10..19).map(|v| v as f32).collect(),
        labels: vec![1, 0],
        class_names: vec!["A/character01".into(), "A/character02".into()],
        channels: 1,
        height: 3,
        width: 3,
    };
    let turned = with_rotated_classes(&images).unwrap();
    assert_eq!(turned.len(), 8);
    assert_eq!(turned.labels, vec![1, 0, 3, 2, 5, 4, 7, 6]);
    assert_eq!(turned.class_names.len(), 8);
    assert_eq!(turned.class_names[3], "A/character02 rotated 90°");
    assert_eq!(turned.class_names[7], "A/character02 rotated 270°");
    // 0 1 2 / 3 4 5 / 6 7 8 turned clockwise is 6 3 0 / 7 4 1 / 8 5 2.
    let row = |i: usize| -> Vec<f32> { turned.image(i).to_vec() };
    assert_eq!(row(0), (0..9).map(|v| v as f32).collect::<Vec<_>>());
    assert_eq!(row(2), [6., 3., 0., 7., 4., 1., 8., 5., 2.]);
    assert_eq!(row(4), [8., 7., 6., 5., 4., 3., 2., 1., 0.]);
    assert_eq!(row(6), [2., 5., 8., 1., 4., 7., 0., 3., 6.]);
    assert_eq!(row(3), [16., 13., 10., 17., 14., 11., 18., 15., 12.]);
    let mut wide = images.clone();
    (wide.height, wide.width) = (1, 9);
    let err = with_rotated_classes(&wide).unwrap_err().to_string();
    assert_eq!(err, "invalid rotated classes: images are 1x9, not square");
}

#[test]
fn rotated_classes_quadruple_a_background_set_turning_each_split_exactly() {
    // One alphabet of the four shapes, ten drawings each.
    let dir = tempfile::tempdir().unwrap();
    let mut entries = Vec::new();
    for c in 0..4 {
        for i in 0..10 {
            let name = format!("back/Alpha/character0{}/{i:02}.png", c + 1);
            entries.push((name, drawing(c)));
        }
    }
    let zip = dir.path().join("background.zip");
    write_zip(&zip, &entries);
    let source = DataSource::parse(&format!("omniglot:{}", zip.display()), None)
        .unwrap()
        .with_side(Some(40))
        .unwrap();
    let plain = source.clone().load(0.1, 42).unwrap();
    let turned = source
        .with_rotated_classes(true)
        .unwrap()
        .load(0.1, 42)
        .unwrap();
    // 20 % held out per class, halved: 8 / 1 / 1 drawings of each of the 4 characters.
    assert_eq!(
        (plain.train.len(), plain.val.len(), plain.test.len()),
        (32, 4, 4)
    );
    assert_eq!(plain.train.class_names.len(), 4);
    assert_eq!(turned.train.class_names.len(), 16);
    assert_eq!(turned.train.class_names[5], "Alpha/character02 rotated 90°");
    for (p, t) in [
        (&plain.train, &turned.train),
        (&plain.val, &turned.val),
        (&plain.test, &turned.test),
    ] {
        assert_eq!(t.len(), 4 * p.len());
        assert_eq!((t.height, t.width), (40, 40));
        for i in 0..p.len() {
            let img = ImageBuffer::<Luma<f32>, _>::from_raw(40, 40, p.image(i).to_vec()).unwrap();
            assert_eq!(t.image(i), p.image(i));
            // The image crate's clockwise turns, an independent reference.
            for (k, r) in [rotate90(&img), rotate180(&img), rotate270(&img)]
                .iter()
                .enumerate()
            {
                let j = (k + 1) * p.len() + i;
                assert_eq!(t.image(j), r.as_raw().as_slice(), "turn {k} of {i}");
                assert_eq!(t.labels[j], p.labels[i] + 4 * (k as u32 + 1));
            }
        }
    }
    // A bar is not its own quarter turn: the turned classes are other pictures.
    assert_ne!(turned.train.image(0), turned.train.image(32));
}

#[test]
fn a_model_of_another_side_refuses_the_images_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let runs = load_oneshot_runs(&hand_made_runs(dir.path(), true)).unwrap();
    let model = EmbeddingCnnConfig::new()
        .with_image_size(40)
        .init(&Device::default())
        .unwrap();
    let err = evaluate_oneshot(&model, &runs, Distance::Euclidean)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid --model: the model reads 1×40×40 images, these are 1×28×28"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    let at_40 = load_oneshot_runs_at(&dir.path().join("runs.zip"), 40).unwrap();
    let report = evaluate_oneshot(&model, &at_40, Distance::Euclidean).unwrap();
    assert!((report.mean_accuracy - 0.75).abs() < 1e-12);
}
