//! Triplet files and the triplet head (seed 003): parsing and its errors, making triplets from
//! class folders, training the head on features, and a small real run on LFW people with the
//! frozen MobileNetV2 (needs `siamese fetch backbone`; the LFW run needs the evaluation data of
//! `tests/common/test_data.rs` and is skipped without it).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese::data::triplet_file::{
    list_classes, make_triplets, read_triplets, split_classes, write_triplets, MakeOptions, Triplet,
};
use siamese::distance::Distance;
use siamese::model::backbone::{Backbone, BackboneKind, FeatureExtractor};
use siamese::model::head::TripletHeadConfig;
use siamese::train::head::{load_head, train_head, HeadRunConfig, TripletFeatures, LOSS_PNG};
use siamese::train::head_predict::{
    closer_to_second, embed_features, predict_triplet_file, triplet_file_features,
};

#[path = "common/test_data.rs"]
mod test_data;
use test_data::{locate, TestData};

/// A folder of `classes` class folders with `per_class` tiny PNGs each.
fn image_folder(dir: &Path, classes: usize, per_class: usize) {
    for c in 0..classes {
        let d = dir.join(format!("class_{c}"));
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..per_class {
            let img = image::RgbImage::from_pixel(8, 8, image::Rgb([c as u8, i as u8, 7]));
            img.save(d.join(format!("img_{i}.png"))).unwrap();
        }
    }
}

fn error_of(dir: &Path, name: &str, text: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let err = read_triplets(&path, dir).unwrap_err().to_string();
    assert!(err.contains(name), "error should name the file: {err}");
    assert!(!err.contains('\n'), "one line: {err}");
    err
}

/// burn's random generator is per device, shared by the threads of this test binary: runs
/// that must be reproducible take turns.
static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn bad_triplet_files_are_errors_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    image_folder(dir.path(), 3, 3);
    let ok = "class_0/img_0.png class_0/img_1.png class_1/img_0.png";

    let err = error_of(
        dir.path(),
        "short.txt",
        format!("{ok}\nclass_0/img_0.png class_0/img_1.png\n").as_bytes(),
    );
    assert!(err.contains("line 2") && err.contains("found 2"), "{err}");
    let err = error_of(
        dir.path(),
        "long.txt",
        format!("# c\n\n{ok} extra\n").as_bytes(),
    );
    assert!(err.contains("line 3") && err.contains("found 4"), "{err}");
    let err = error_of(dir.path(), "dup.txt", format!("{ok}\n{ok}\n").as_bytes());
    assert!(err.contains("line 2") && err.contains("line 1"), "{err}");
    let err = error_of(
        dir.path(),
        "missing.txt",
        format!("{ok}\nclass_0/img_0.png class_0/nope.png class_1/img_0.png\n{ok}x\n").as_bytes(),
    );
    assert!(
        err.contains("line 2: `class_0/nope.png`") && err.contains("line 3: `class_1/img_0.pngx`"),
        "{err}"
    );
    let err = error_of(dir.path(), "empty.txt", b"");
    assert!(err.contains("no triplets"), "{err}");
    let err = error_of(dir.path(), "comments.txt", b"# nothing\n\n   \n");
    assert!(err.contains("no triplets"), "{err}");
    let err = error_of(
        dir.path(),
        "binary.txt",
        &[ok.as_bytes(), b"\n\xff\xfe\n"].concat(),
    );
    assert!(err.contains("line 2") && err.contains("UTF-8"), "{err}");
    let missing_file = dir.path().join("absent.txt");
    let err = read_triplets(&missing_file, dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent.txt"), "{err}");

    // A good file with comments, blank lines, CRLF and extra spaces.
    let path = dir.path().join("good.txt");
    std::fs::write(
        &path,
        format!(
            "# header\r\n{ok}\r\n\r\n  class_1/img_1.png\tclass_1/img_2.png   class_2/img_0.png \n"
        ),
    )
    .unwrap();
    let file = read_triplets(&path, dir.path()).unwrap();
    assert_eq!(file.triplets.len(), 2);
    assert_eq!(file.lines, vec![2, 4]);
    let (names, index) = file.image_index();
    assert_eq!(names.len(), 6);
    assert_eq!(names[index[1][0]], "class_1/img_1.png");
}

#[test]
fn made_triplets_follow_the_classes_and_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    image_folder(dir.path(), 12, 4);
    // A class with one image can only be a negative; an empty folder is ignored.
    image_folder(&dir.path().join("single"), 0, 0);
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    let classes = list_classes(dir.path()).unwrap();
    assert_eq!(classes.len(), 12);
    let opts = MakeOptions { n: 300, seed: 7 };
    let a = make_triplets(&classes, opts, dir.path()).unwrap();
    let b = make_triplets(&classes, opts, dir.path()).unwrap();
    assert_eq!(a, b, "same seed, same triplets");
    let c = make_triplets(&classes, MakeOptions { n: 300, seed: 8 }, dir.path()).unwrap();
    assert_ne!(a, c);
    let class = |n: &str| n.split('/').next().unwrap().to_string();
    assert_eq!(a.iter().collect::<HashSet<_>>().len(), 300, "no duplicates");
    for t in &a {
        assert_eq!(class(&t.anchor), class(&t.positive));
        assert_ne!(t.anchor, t.positive);
        assert_ne!(class(&t.anchor), class(&t.negative));
    }
    // Written and read back, the file is the same.
    let path = dir.path().join("t.txt");
    write_triplets(&path, &a).unwrap();
    assert_eq!(read_triplets(&path, dir.path()).unwrap().triplets, a);

    // Class-disjoint split.
    let (train, test) = split_classes(&classes, 0.25, 1).unwrap();
    assert_eq!((train.len(), test.len()), (9, 3));
    assert!(train.keys().all(|k| !test.contains_key(k)));
    // Asking for more triplets than exist is an error, not a hang.
    let tiny: BTreeMap<String, Vec<String>> = [
        ("a".to_string(), vec!["a/1".to_string(), "a/2".to_string()]),
        ("b".to_string(), vec!["b/1".to_string()]),
    ]
    .into_iter()
    .collect();
    let err = make_triplets(&tiny, MakeOptions { n: 10, seed: 1 }, dir.path()).unwrap_err();
    assert!(err.to_string().contains("only 2 distinct"), "{err}");
    let one: BTreeMap<_, _> = tiny.into_iter().take(1).collect();
    assert!(make_triplets(&one, MakeOptions { n: 1, seed: 1 }, dir.path()).is_err());
}

/// Features of `classes` Gaussian clusters in `dim` dimensions, `per_class` points each, with
/// triplets drawn from them.
fn clustered_features(
    classes: usize,
    per_class: usize,
    dim: usize,
    n: usize,
    seed: u64,
) -> TripletFeatures {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centers: Vec<Vec<f32>> = (0..classes)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0..1.0f32)).collect())
        .collect();
    let mut features = Vec::new();
    for c in &centers {
        for _ in 0..per_class {
            features.extend(c.iter().map(|v| v + rng.random_range(-0.6..0.6f32)));
        }
    }
    let triplets = (0..n)
        .map(|_| {
            let c = rng.random_range(0..classes);
            let o = (c + rng.random_range(1..classes)) % classes;
            let a = rng.random_range(0..per_class);
            let p = (a + rng.random_range(1..per_class)) % per_class;
            [
                c * per_class + a,
                c * per_class + p,
                o * per_class + rng.random_range(0..per_class),
            ]
        })
        .collect();
    TripletFeatures {
        features,
        dim,
        triplets,
    }
}

fn head_config(input_dim: usize, epochs: usize) -> HeadRunConfig {
    HeadRunConfig {
        head: TripletHeadConfig::new(input_dim)
            .with_hidden(64)
            .with_dim(10),
        backbone: BackboneKind::MobileNetV2,
        backbone_weights: None,
        backbone_id: "synthetic".into(),
        epochs,
        learning_rate: 1e-3,
        batch: 32,
        margin: 0.2,
        distance: Distance::Euclidean,
        val_fraction: 0.2,
        seed: 3,
    }
}

#[test]
fn head_learns_clusters_and_its_checkpoint_reloads() {
    let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let data = clustered_features(12, 10, 48, 600, 1);
    let run = tempfile::tempdir().unwrap();
    let config = head_config(48, 12);
    let out = train_head(&data, &config, run.path(), false).unwrap();
    assert_eq!((out.train_triplets, out.val_triplets), (480, 120));
    let first = &out.history[0];
    let best = &out.history[out.best_epoch - 1];
    assert!(
        best.val_loss < 0.5 * first.val_loss,
        "val loss {} → {}",
        first.val_loss,
        best.val_loss
    );
    assert!(
        best.val_accuracy > 0.95,
        "val accuracy {}",
        best.val_accuracy
    );

    // The saved head reproduces its validation accuracy and is deterministic.
    let (head, loaded) = load_head(run.path(), &burn::tensor::Device::default()).unwrap();
    assert_eq!(loaded, config);
    let emb = embed_features(&head, &data.features, 48).unwrap();
    assert_eq!(emb, embed_features(&head, &data.features, 48).unwrap());
    let norms: Vec<f32> = emb
        .chunks(10)
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect();
    assert!(
        norms.iter().all(|n| (n - 1.0).abs() < 1e-4),
        "rows are unit length"
    );
    let right = closer_to_second(&emb, 10, &data.triplets, Distance::Euclidean);
    let acc = right.iter().filter(|&&b| b).count() as f64 / right.len() as f64;
    assert!(acc > 0.95, "accuracy of the reloaded head {acc}");

    // Loss curves are a real PNG.
    let png = image::open(run.path().join(LOSS_PNG)).unwrap();
    assert_eq!((png.width(), png.height()), siamese::viz::plot::CHART_SIZE);

    // Same seed, same run.
    let run2 = tempfile::tempdir().unwrap();
    let again = train_head(&data, &config, run2.path(), false).unwrap();
    assert_eq!(again.history[0].train_loss, out.history[0].train_loss);

    // Bad settings are errors, not panics.
    let mut bad = config.clone();
    bad.head.input_dim = 7;
    assert!(train_head(&data, &bad, run2.path(), false).is_err());
    let mut bad = config.clone();
    bad.learning_rate = -1.0;
    assert!(train_head(&data, &bad, run2.path(), false).is_err());
    assert!(load_head(&run.path().join("nope"), &burn::tensor::Device::default()).is_err());
}

/// Copies the first `per_person` photos of the first `people` LFW people having at least that
/// many into `dir/<person>/`.
fn lfw_subset(lfw: &Path, dir: &Path, people: usize, per_person: usize) -> usize {
    let tar_path = lfw.join("lfw-deepfunneled.tar");
    let tar =
        std::fs::File::open(&tar_path).unwrap_or_else(|e| panic!("{}: {e}", tar_path.display()));
    let mut archive = tar::Archive::new(tar);
    let mut by_person: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path: PathBuf = entry.path().unwrap().into_owned();
        let parts: Vec<String> = path
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if parts.len() != 3 || !parts[2].ends_with(".jpg") {
            continue;
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        by_person
            .entry(parts[1].clone())
            .or_default()
            .push((parts[2].clone(), bytes));
    }
    let mut copied = 0;
    for (person, mut photos) in by_person
        .into_iter()
        .filter(|(_, v)| v.len() >= per_person)
        .take(people)
    {
        photos.sort();
        std::fs::create_dir_all(dir.join(&person)).unwrap();
        for (name, bytes) in photos.into_iter().take(per_person) {
            std::fs::write(dir.join(&person).join(name), bytes).unwrap();
            copied += 1;
        }
    }
    copied
}

#[test]
fn lfw_people_triplets_with_frozen_mobilenet_v2() {
    let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lfw) = locate(TestData::Lfw) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let images = work.path().join("lfw");
    let n_images = lfw_subset(&lfw, &images, 30, 5);
    assert_eq!(n_images, 150);
    let classes = list_classes(&images).unwrap();
    let (train_classes, test_classes) = split_classes(&classes, 0.3, 1).unwrap();
    let train_t = make_triplets(&train_classes, MakeOptions { n: 400, seed: 1 }, &images).unwrap();
    let test_t = make_triplets(&test_classes, MakeOptions { n: 150, seed: 2 }, &images).unwrap();
    let people = |ts: &[Triplet]| -> HashSet<String> {
        ts.iter()
            .flat_map(|t| t.names().map(|n| n.split('/').next().unwrap().to_string()))
            .collect()
    };
    assert!(
        people(&train_t).is_disjoint(&people(&test_t)),
        "train and test people are disjoint"
    );
    let out = train_and_predict(work.path(), &images, &train_t, &test_t, 30);
    assert_eq!(out.predictions.len(), 150);
    eprintln!(
        "LFW subset: test accuracy {:.3}, raw features {:.3} (euclidean) {:.3} (cosine); features computed {} / cached {}",
        out.accuracy,
        out.raw_feature_accuracy_euclidean,
        out.raw_feature_accuracy_cosine,
        out.features.computed,
        out.features.hits
    );
    // Unseen people: well above chance (0.5) with only 21 training people.
    assert!(out.accuracy > 0.7, "test accuracy {}", out.accuracy);
    assert!(out.raw_feature_accuracy_cosine > 0.6);
    // The test images were not in the training cache: computed now; a second predict reuses all.
    assert!(out.features.computed > 0);
    let (run, test_file) = (work.path().join("run"), work.path().join("test.txt"));
    let cache = work.path().join("features");
    let again = predict_triplet_file(&run, &images, &test_file, &cache, false).unwrap();
    assert_eq!(again.features.computed, 0);
    assert_eq!(again.predictions, out.predictions);
}

/// The triplet-file task end to end on data a registry ships (no evaluation data needed): MNIST
/// test digits written as a labelled PNG folder, triplets of seven digits for training and of
/// the three others for testing, features of the frozen MobileNetV2, the head trained and asked
/// which of two images is closer for triplets of digits it has never seen.
#[test]
fn mnist_digit_triplets_with_frozen_mobilenet_v2() {
    let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().unwrap();
    let images = work.path().join("digits");
    let test = siamese::data::load_mnist(siamese::data::MnistSplit::Test)
        .unwrap_or_else(|e| panic!("{e} (run `siamese fetch mnist` before the tests)"));
    let mut per_digit = [0usize; 10];
    for i in 0..test.len() {
        let d = test.labels[i] as usize;
        if per_digit[d] == 12 {
            continue;
        }
        per_digit[d] += 1;
        let dir = images.join(format!("digit_{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        let px = test.image(i);
        image::GrayImage::from_fn(28, 28, |x, y| {
            image::Luma([(px[(y * 28 + x) as usize].clamp(0.0, 1.0) * 255.0).round() as u8])
        })
        .save(dir.join(format!("{i:05}.png")))
        .unwrap();
    }
    assert_eq!(per_digit, [12; 10]);
    let classes = list_classes(&images).unwrap();
    let (train_classes, test_classes) = split_classes(&classes, 0.3, 5).unwrap();
    assert_eq!((train_classes.len(), test_classes.len()), (7, 3));
    let train_t = make_triplets(&train_classes, MakeOptions { n: 300, seed: 1 }, &images).unwrap();
    let test_t = make_triplets(&test_classes, MakeOptions { n: 120, seed: 2 }, &images).unwrap();
    let out = train_and_predict(work.path(), &images, &train_t, &test_t, 20);
    assert_eq!(out.predictions.len(), 120);
    eprintln!(
        "MNIST digits: test accuracy {:.3}, raw features {:.3} (euclidean) {:.3} (cosine)",
        out.accuracy, out.raw_feature_accuracy_euclidean, out.raw_feature_accuracy_cosine
    );
    // Unseen digits: well above chance (0.5); measured 0.833 (raw cosine 0.842).
    assert!(out.accuracy > 0.75, "test accuracy {}", out.accuracy);
    assert!(out.raw_feature_accuracy_cosine > 0.75);
}

/// Writes the triplet files, computes the frozen MobileNetV2's features of the training images,
/// trains the head for `epochs` (its training loss must fall) and predicts the test triplets.
fn train_and_predict(
    work: &Path,
    images: &Path,
    train_t: &[Triplet],
    test_t: &[Triplet],
    epochs: usize,
) -> siamese::train::head_predict::PredictOutcome {
    let train_file = work.join("train.txt");
    let test_file = work.join("test.txt");
    write_triplets(&train_file, train_t).unwrap();
    write_triplets(&test_file, test_t).unwrap();
    let backbone = Backbone::load_cpu(BackboneKind::MobileNetV2, None)
        .unwrap_or_else(|e| panic!("{e} (run `siamese fetch backbone` before the tests)"));
    let cache = work.join("features");
    let file = read_triplets(&train_file, images).unwrap();
    let (data, stats) = triplet_file_features(&file, images, &backbone, &cache, false).unwrap();
    assert_eq!(stats.computed, stats.unique);
    let mut config = head_config(backbone.feature_dim(), epochs);
    config.head = TripletHeadConfig::new(backbone.feature_dim());
    config.backbone_id = backbone.id();
    config.val_fraction = 0.1;
    let run = work.join("run");
    let trained = train_head(&data, &config, &run, false).unwrap();
    let h = &trained.history;
    assert!(
        h[h.len() - 1].train_loss < h[0].train_loss,
        "training loss falls"
    );
    predict_triplet_file(&run, images, &test_file, &cache, false).unwrap()
}
