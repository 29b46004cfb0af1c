//! `run::train_run`, the one way a run folder is trained: the model's input shape comes from the
//! data, `data.json` is written, a finished run with the same settings is reused, one with other
//! settings is replaced, `Retrain` trains again and `Resume` refuses other settings. Needs
//! `siamese fetch mnist`.

use siamese::run::{load_data_source, train_run, DataSource, Existing, RunAction};
use siamese::train::checkpoint::load_config;
use siamese::train::TrainConfig;

fn tiny() -> TrainConfig {
    TrainConfig {
        epochs: 1,
        seed: 5,
        ..TrainConfig::semi_hard_unnormalised()
    }
}

#[test]
fn a_run_folder_is_trained_reused_replaced_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let source = DataSource::Mnist { limit: Some(400) };
    let config = tiny();

    let first = train_run(&run, &source, &config, Existing::Reuse, false).unwrap();
    assert_eq!(first.action, RunAction::Trained);
    assert_eq!(first.history.epochs.len(), 1);
    assert_eq!(load_data_source(&run).unwrap(), source);
    let saved = load_config(&run).unwrap();
    assert_eq!((saved.model.channels, saved.model.image_size), (1, 28));

    let again = train_run(&run, &source, &config, Existing::Reuse, false).unwrap();
    assert_eq!(again.action, RunAction::Reused);
    assert_eq!(again.history.epochs, first.history.epochs);

    // Another margin: the folder is replaced, not resumed.
    let other = TrainConfig {
        margin: 0.4,
        ..config.clone()
    };
    let replaced = train_run(&run, &source, &other, Existing::Reuse, false).unwrap();
    assert_eq!(replaced.action, RunAction::Trained);
    assert_eq!(load_config(&run).unwrap().margin, 0.4);

    // `--resume` with other settings than the run's is refused; `Retrain` trains again.
    let err = train_run(&run, &source, &config, Existing::Resume, false).unwrap_err();
    assert!(
        err.to_string().contains("different hyper-parameters"),
        "{err}"
    );
    // `--resume` on other data is refused before anything is written (data.json kept).
    let data_json = std::fs::read(run.join("data.json")).unwrap();
    let elsewhere = DataSource::Folder {
        path: dir.path().join("digits"),
    };
    let err = train_run(&run, &elsewhere, &other, Existing::Resume, false).unwrap_err();
    assert!(
        err.to_string().contains("--resume with the folder")
            && err.to_string().contains("trained on MNIST"),
        "{err}"
    );
    assert_eq!(std::fs::read(run.join("data.json")).unwrap(), data_json);
    let retrained = train_run(&run, &source, &config, Existing::Retrain, false).unwrap();
    assert_eq!(retrained.action, RunAction::Trained);
    assert_eq!(load_config(&run).unwrap().margin, config.margin);
}
