//! A short real training run on a 2,000-image MNIST subset: the validation loss falls and the
//! test precision@1 clears 90 %. Needs `siamese fetch mnist` (CI runs it first).

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
    }
    assert_eq!(
        losses[0], losses[1],
        "training is deterministic under --seed"
    );
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
