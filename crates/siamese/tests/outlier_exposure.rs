//! Outlier exposure on a small run: training with Omniglot's Greek and Korean alphabets as
//! negatives raises the k-th-neighbour distance (the unknown score) of a held-out alphabet
//! (Latin) relative to test digits, i.e. its AUROC, over the same run without exposure; and the
//! evaluation refuses to test on an alphabet it was exposed to.
//!
//! Needs `siamese fetch mnist` and Omniglot (see `common/test_data.rs`).

#[path = "common/test_data.rs"]
mod test_data;

use std::path::{Path, PathBuf};

use siamese::recognize::openset::{evaluate_openset, OpensetOptions, UnknownSource};
use siamese::recognize::{calibrate_run, CalibrateOptions, Score};
use siamese::run::{save_data_source, DataSource};
use siamese::train::outliers::{OutlierExposure, OutlierSource};
use siamese::train::{train, TrainConfig, TrainOptions};
use test_data::{locate, TestData};

fn train_small(dir: &Path, outliers: Option<OutlierExposure>) {
    let _ = std::fs::remove_dir_all(dir);
    let source = DataSource::Mnist { limit: Some(2000) };
    let config = TrainConfig {
        epochs: 3,
        seed: 5,
        augment_shift: 0,
        augment_rotate: 0.0,
        augment_scale: 0.0,
        ema_decay: 0.0,
        outliers,
        ..TrainConfig::default()
    };
    let splits = source.load(config.val_fraction, config.seed).unwrap();
    save_data_source(dir, &source).unwrap();
    train(
        &splits.train,
        &splits.val,
        &config,
        dir,
        &TrainOptions::default(),
    )
    .unwrap();
    calibrate_run(dir, &CalibrateOptions::default()).unwrap();
}

fn latin_auroc(run: &Path, zip: &Path) -> f64 {
    let mut options = OpensetOptions::new(UnknownSource::Omniglot {
        alphabet: "Latin".into(),
    });
    options.omniglot = Some(zip.to_path_buf());
    options.score = Some(Score::KnnKth);
    let report = evaluate_openset(run, &options).unwrap().report;
    assert_eq!(report.headline.method, "knn-kth");
    report.headline.auroc
}

#[test]
fn exposure_raises_the_knn_score_of_a_held_out_outlier_set() {
    let Some(omniglot) = locate(TestData::Omniglot) else {
        return;
    };
    let zip = omniglot.join("images_background_small1.zip");
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let plain = tmp.join("oe-plain");
    let exposed = tmp.join("oe-exposed");
    train_small(&plain, None);
    let source = OutlierSource::parse("omniglot:Greek,Korean", Some(&zip)).unwrap();
    train_small(
        &exposed,
        Some(OutlierExposure {
            source,
            per_batch: 32,
        }),
    );
    let (before, after) = (latin_auroc(&plain, &zip), latin_auroc(&exposed, &zip));
    assert!(
        after > before + 0.01,
        "AUROC vs Omniglot Latin: {before} → {after}"
    );
    // The alphabets seen in training are refused as test sets.
    let mut options = OpensetOptions::new(UnknownSource::Omniglot {
        alphabet: "Greek".into(),
    });
    options.omniglot = Some(zip.clone());
    let err = evaluate_openset(&exposed, &options)
        .err()
        .expect("Greek was seen in training")
        .to_string();
    assert!(err.contains("seen in training"), "{err}");
}
