//! A short real training run on a 2,000-image MNIST subset: the validation loss falls and the
//! test precision@1 clears 90 %; the same seed gives the same run; and a run stopped one epoch
//! early and resumed equals the uninterrupted run bit for bit, with a class-vector head
//! (ArcFace) and with a cross-batch memory. Needs `siamese fetch mnist` (CI runs it first).

use std::sync::Mutex;

use siamese::run::{evaluate, save_data_source, DataSource};
use siamese::train::{train, TrainConfig, TrainOptions};

/// burn's random generator is per device, shared by the threads of this test binary: runs
/// that must be reproducible take turns.
static DEVICE_RNG: Mutex<()> = Mutex::new(());

#[test]
fn short_mnist_run_learns_an_embedding() {
    let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let run = tempfile::tempdir().unwrap();
    let source = DataSource::Mnist { limit: Some(2000) };
    // No augmentation: on 1,800 training images it slows learning more than it regularises.
    let config = TrainConfig {
        epochs: 8,
        seed: 7,
        augment_shift: 0,
        augment_rotate: 0.0,
        augment_scale: 0.0,
        ..TrainConfig::semi_hard_unnormalised()
    };
    let splits = source.load(config.val_fraction, config.seed).unwrap();
    assert_eq!(splits.train.len() + splits.val.len(), 2000);
    save_data_source(run.path(), &source).unwrap();
    let outcome = train(
        &splits.train,
        &splits.val,
        &config,
        run.path(),
        &TrainOptions::default(),
    )
    .unwrap();

    let val: Vec<f64> = outcome.history.val_losses();
    assert_eq!(val.len(), 8);
    assert!(
        val[7] < 0.7 * val[0],
        "validation loss should fall by 30 %: {val:?}"
    );
    assert!(outcome.collapse_warning.is_none());
    assert!(run.path().join("loss.png").is_file());

    let report = evaluate(run.path()).unwrap();
    assert!(
        report.precision_at_1 > 0.90,
        "P@1 {}",
        report.precision_at_1
    );
    assert!(report.map_at_r > 0.5, "MAP@R {}", report.map_at_r);
    assert!(report.nmi > 0.6, "NMI {}", report.nmi);
}

#[test]
fn same_seed_gives_the_same_weights() {
    let source = DataSource::Mnist { limit: Some(600) };
    let config = TrainConfig {
        epochs: 1,
        seed: 3,
        ..TrainConfig::default()
    };
    let splits = source.load(config.val_fraction, config.seed).unwrap();
    let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let mut losses = Vec::new();
    let mut checkpoints = Vec::new();
    for _ in 0..2 {
        let run = tempfile::tempdir().unwrap();
        let out = train(
            &splits.train,
            &splits.val,
            &config,
            run.path(),
            &TrainOptions::default(),
        )
        .unwrap();
        losses.push((
            out.history.epochs[0].train_loss,
            out.history.epochs[0].val_loss,
        ));
        checkpoints.push(checkpoint_bytes(run.path()));
    }
    assert_eq!(
        losses[0], losses[1],
        "training is deterministic under --seed"
    );
    // Byte for byte, not only value for value: the index's collections and
    // `verification.json` key on the weights file's SHA-256.
    assert!(checkpoints[0].contains_key("model.safetensors"));
    for (name, bytes) in &checkpoints[0] {
        assert!(
            checkpoints[1].get(name) == Some(bytes),
            "checkpoint/{name} differs between two trainings with the same seed"
        );
    }
}

/// The weights files of a run's checkpoint by name. Not the optimizer's state: burn keys it by
/// parameter ids drawn at random when a model is built (resume gives them back through
/// `param_ids.json`), so those two files name different ids for equal values.
fn checkpoint_bytes(run: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(run.join("checkpoint"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn invalid_hyper_parameters_are_rejected_before_work() {
    let bad = TrainConfig {
        learning_rate: 0.0,
        ..TrainConfig::default()
    };
    let err = bad.check().unwrap_err().to_string();
    assert!(err.contains("learning rate"), "{err}");
    let bad = TrainConfig {
        margin: f64::NAN,
        ..TrainConfig::default()
    };
    assert!(bad.check().unwrap_err().to_string().contains("margin"));
}

/// The float tensors of a safetensors file, by name (the header's key order is not fixed).
fn tensors(path: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect();
    out.sort();
    out
}

/// Trains `config` for its epochs straight, and for `epochs − 1` then resumed to the end in
/// another folder; the two checkpoints' `files` must hold the same bytes and the histories the
/// same losses.
fn assert_resume_is_exact(config: &TrainConfig, files: &[&str]) {
    let source = DataSource::Mnist { limit: Some(600) };
    let splits = source.load(config.val_fraction, config.seed).unwrap();
    let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (straight, resumed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let whole = train(
        &splits.train,
        &splits.val,
        config,
        straight.path(),
        &TrainOptions::default(),
    )
    .unwrap();
    let interrupted = TrainOptions {
        stop_after_epochs: Some(config.epochs - 1),
        ..TrainOptions::default()
    };
    let first = train(
        &splits.train,
        &splits.val,
        config,
        resumed.path(),
        &interrupted,
    )
    .unwrap();
    assert_eq!(first.history.epochs.len(), config.epochs - 1);
    let resume = TrainOptions {
        resume: true,
        ..TrainOptions::default()
    };
    let rest = train(&splits.train, &splits.val, config, resumed.path(), &resume).unwrap();
    assert_eq!(rest.history.epochs.len(), config.epochs);
    for (a, b) in whole.history.epochs.iter().zip(&rest.history.epochs) {
        assert_eq!(
            (a.train_loss, a.val_loss),
            (b.train_loss, b.val_loss),
            "{}: epoch {}",
            config.loss,
            a.epoch
        );
    }
    for file in files {
        let (a, b) = (
            straight.path().join("checkpoint").join(file),
            resumed.path().join("checkpoint").join(file),
        );
        let (ta, tb) = (tensors(&a), tensors(&b));
        assert!(!ta.is_empty(), "{file}");
        assert!(ta == tb, "{}: {file} differs after --resume", config.loss);
    }
}

#[test]
fn a_resumed_arcface_run_equals_the_uninterrupted_one() {
    let config = TrainConfig {
        loss: siamese::loss::LossConfig::from_options(
            "arcface",
            &siamese::loss::LossOptions::default(),
        )
        .unwrap(),
        epochs: 3,
        seed: 13,
        ema_decay: 0.99,
        ..TrainConfig::default()
    };
    // The network, the optimizer's own weights (the run averages) and the class vectors.
    assert_resume_is_exact(
        &config,
        &[
            "model.safetensors",
            "training.safetensors",
            "head.safetensors",
        ],
    );
}

#[test]
fn a_resumed_run_with_a_cross_batch_memory_equals_the_uninterrupted_one() {
    for loss in ["triplet", "multi-similarity"] {
        let config = TrainConfig {
            loss: siamese::loss::LossConfig::from_options(
                loss,
                &siamese::loss::LossOptions::default(),
            )
            .unwrap(),
            epochs: 2,
            seed: 17,
            // 500 rows: more than the 3 batches of an epoch, so the resumed run starts from a
            // memory holding the whole first epoch.
            xbm: Some(siamese::sampling::XbmConfig {
                size: 500,
                start_iteration: Some(1),
            }),
            ..TrainConfig::default()
        };
        assert_resume_is_exact(&config, &["model.safetensors", "xbm.safetensors"]);
    }
}
