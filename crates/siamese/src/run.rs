//! A run folder as the rest of the product sees it: training one ([`train_run`]: the model's
//! input shape from the data, `data.json`, train, resume or reuse a finished run), which data it
//! was trained on (`data.json`), its model, and its evaluation (`siamese eval`) and embeddings
//! (`siamese embed`).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::cluster::kmeans::kmeans;
use crate::data::idx::{load_mnist, MnistSplit};
use crate::data::split::stratified_subset;
use crate::data::LabelledImages;
use crate::embed::{embed_images, Embeddings};
use crate::eval::clustering::{ami, nmi};
use crate::eval::retrieval::retrieval_metrics;
use crate::model::embedding_cnn::EmbeddingCnn;
use crate::train::checkpoint::{self, has_checkpoint, load_config, load_state};
use crate::train::{train, History, TrainConfig, TrainOptions};
use crate::{Error, Result};

/// Inference batch size: large batches amortise per-call overhead on CPU.
pub const INFERENCE_BATCH: usize = 512;

/// Where a run's images come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DataSource {
    /// MNIST from the cache: train split for training (minus validation), test split for eval.
    Mnist {
        /// Train on a stratified random subset of this many training images (quick runs).
        limit: Option<usize>,
    },
    /// A labelled folder `class_name/*.png|jpg`: a held-out split is the test set.
    Folder { path: PathBuf },
    /// Omniglot background zips (`omniglot:ZIP[,ZIP…]`): their characters are the classes, a
    /// held-out split the test set (one-shot learning is evaluated on other alphabets by
    /// `siamese oneshot`, at the same side).
    Omniglot {
        zips: Vec<PathBuf>,
        /// Side of the square field the drawings are converted to (`--side`; 28 in runs
        /// written before the option).
        #[serde(default = "mnist_side")]
        side: usize,
        /// Every character also turned by 90°, 180° and 270°, each turn a class of its own
        /// (`--rotated-classes`, [`crate::data::omniglot::with_rotated_classes`]), in each
        /// split after splitting.
        #[serde(default)]
        rotated_classes: bool,
    },
}

fn mnist_side() -> usize {
    crate::data::transform::MNIST_SIDE
}

/// The splits a run uses.
pub struct Splits {
    pub train: LabelledImages,
    pub val: LabelledImages,
    /// Queries for evaluation.
    pub test: LabelledImages,
    /// The gallery the queries are searched in (the training images).
    pub gallery: LabelledImages,
}

impl DataSource {
    /// The source in words, for messages: `MNIST`, `MNIST (a 3,000-image subset)`, `the folder X`.
    pub fn describe(&self) -> String {
        match self {
            DataSource::Mnist { limit: None } => "MNIST".to_string(),
            DataSource::Mnist { limit: Some(n) } => format!("MNIST (a {n}-image subset)"),
            DataSource::Folder { path } => format!("the folder {}", path.display()),
            DataSource::Omniglot {
                zips,
                side,
                rotated_classes,
            } => format!(
                "Omniglot {}{}{}",
                zips.iter()
                    .map(|z| z.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                if *side == mnist_side() {
                    String::new()
                } else {
                    format!(" at {side} × {side}")
                },
                if *rotated_classes {
                    " with rotated classes"
                } else {
                    ""
                }
            ),
        }
    }

    /// `mnist`, `omniglot:ZIP[,ZIP…]` or a folder path.
    pub fn parse(spec: &str, limit: Option<usize>) -> Result<Self> {
        if spec == "mnist" {
            return Ok(DataSource::Mnist { limit });
        }
        if let Some(list) = spec.strip_prefix("omniglot:") {
            let zips: Vec<PathBuf> = list.split(',').map(PathBuf::from).collect();
            for zip in &zips {
                if !zip.is_file() {
                    return Err(Error::io(zip, std::io::ErrorKind::NotFound.into()));
                }
            }
            return Ok(DataSource::Omniglot {
                zips,
                side: mnist_side(),
                rotated_classes: false,
            });
        }
        let path = PathBuf::from(spec);
        if !path.is_dir() {
            return Err(Error::format(
                &path,
                "not `mnist` and not a folder of class folders",
            ));
        }
        Ok(DataSource::Folder { path })
    }

    /// The source with its images converted into `side × side` fields (`--side`; `None` keeps
    /// it). Only Omniglot's drawings are converted at other sides: MNIST is 28 × 28 and folders
    /// are read MNIST-style at 28, so a side for them is an error, as is a side outside
    /// [`crate::data::transform::MIN_SIDE`]..=[`crate::data::transform::MAX_SIDE`].
    pub fn with_side(self, side: Option<usize>) -> Result<Self> {
        let Some(new) = side else {
            return Ok(self);
        };
        crate::data::transform::check_side(new)?;
        match self {
            DataSource::Omniglot {
                zips,
                rotated_classes,
                ..
            } => Ok(DataSource::Omniglot {
                zips,
                side: new,
                rotated_classes,
            }),
            other => Err(Error::config(
                "--side",
                format!(
                    "{new} applies only to omniglot: data; {} is read at {s} × {s}",
                    other.describe(),
                    s = mnist_side()
                ),
            )),
        }
    }

    /// The source with every Omniglot character also turned by 90°, 180° and 270° as classes
    /// of their own (`--rotated-classes`; `false` keeps it). Only Omniglot's characters are
    /// turned (a turned digit is often another digit): for other data it is an error.
    pub fn with_rotated_classes(self, rotated: bool) -> Result<Self> {
        if !rotated {
            return Ok(self);
        }
        match self {
            DataSource::Omniglot { zips, side, .. } => Ok(DataSource::Omniglot {
                zips,
                side,
                rotated_classes: true,
            }),
            other => Err(Error::config(
                "--rotated-classes",
                format!(
                    "applies only to omniglot: data, not to {}",
                    other.describe()
                ),
            )),
        }
    }

    /// Loads and splits the data deterministically under `seed`.
    pub fn load(&self, val_fraction: f64, seed: u64) -> Result<Splits> {
        match self {
            DataSource::Mnist { limit } => {
                let mut full = load_mnist(MnistSplit::Train)?;
                let mut test = load_mnist(MnistSplit::Test)?;
                if let Some(n) = *limit {
                    full = stratified_subset(&full, n, seed);
                    test = stratified_subset(&test, (n / 5).max(100), seed);
                }
                let (train_idx, val_idx) =
                    crate::data::split::stratified_split(&full.labels, val_fraction, seed)?;
                Ok(Splits {
                    train: full.subset(&train_idx),
                    val: full.subset(&val_idx),
                    test,
                    gallery: full,
                })
            }
            DataSource::Folder { .. } | DataSource::Omniglot { .. } => {
                let all = match self {
                    DataSource::Omniglot { zips, side, .. } => {
                        crate::data::omniglot::load_omniglot_background_at(zips, *side)?
                    }
                    DataSource::Folder { path } => crate::data::image_folder::load_image_folder(
                        path,
                        crate::data::image_folder::FolderMode::MnistStyle,
                    )?,
                    DataSource::Mnist { .. } => unreachable!("matched above"),
                };
                crate::data::image_folder::check_trainable(&all)?;
                let (train_idx, held_idx) =
                    crate::data::split::stratified_split(&all.labels, 2.0 * val_fraction, seed)?;
                // The held-out part is halved class by class (validation loss / test queries),
                // so both halves keep every class a small folder has.
                let (mut val_idx, mut test_idx) = (Vec::new(), Vec::new());
                let mut seen = vec![0usize; all.class_names.len()];
                for &i in &held_idx {
                    let class = all.labels[i] as usize;
                    if seen[class] % 2 == 0 {
                        val_idx.push(i);
                    } else {
                        test_idx.push(i);
                    }
                    seen[class] += 1;
                }
                let (mut train, mut val, mut test) = (
                    all.subset(&train_idx),
                    all.subset(&val_idx),
                    all.subset(&test_idx),
                );
                if let DataSource::Omniglot {
                    rotated_classes: true,
                    ..
                } = self
                {
                    // After the split, so a drawing and its turns fall in the same split.
                    let turn = crate::data::omniglot::with_rotated_classes;
                    (train, val, test) = (turn(&train)?, turn(&val)?, turn(&test)?);
                }
                Ok(Splits {
                    gallery: train.clone(),
                    train,
                    val,
                    test,
                })
            }
        }
    }
}

/// What to do with a run folder that already holds a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Train from scratch into the folder (`siamese train`).
    Retrain,
    /// Continue the interrupted run from its last checkpoint; an error when its settings differ
    /// (`siamese train --resume`).
    Resume,
    /// Use a finished run with the same settings as is, continue an interrupted one, and replace
    /// a run with other settings (the demo, the margin sweep).
    Reuse,
}

/// What happened to a run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAction {
    /// Finished with the same settings: used as is.
    Reused,
    /// Interrupted with the same settings: continued from its last checkpoint.
    Resumed,
    /// Trained from scratch.
    Trained,
}

impl RunAction {
    pub fn describe(self) -> &'static str {
        match self {
            RunAction::Reused => "reused the finished run",
            RunAction::Resumed => "resumed the interrupted run",
            RunAction::Trained => "trained from scratch",
        }
    }
}

/// A trained (or reused) run.
#[derive(Debug, Clone)]
pub struct TrainedRun {
    pub action: RunAction,
    pub history: History,
    /// Set when the embeddings collapsed (see [`History::collapse_warning`]).
    pub collapse_warning: Option<String>,
}

/// Trains `config` on `source` into the run folder `dir`: the model's input shape comes from the
/// data, `data.json` records the source, and `existing` says what happens to a run already there.
pub fn train_run(
    dir: &Path,
    source: &DataSource,
    config: &TrainConfig,
    existing: Existing,
    progress: bool,
) -> Result<TrainedRun> {
    let resume = match existing {
        Existing::Retrain => false,
        Existing::Resume => {
            // Resuming on other data would train the checkpoint on it and rewrite `data.json`,
            // after which `eval` reads the wrong test set: refused before anything is written.
            if let Ok(trained_on) = load_data_source(dir) {
                if &trained_on != source {
                    return Err(Error::config(
                        "--data",
                        format!(
                            "{}: --resume with {}, but the run was trained on {}; pass that \
                             data, or drop --resume to train anew",
                            dir.display(),
                            source.describe(),
                            trained_on.describe()
                        ),
                    ));
                }
            }
            true
        }
        Existing::Reuse => {
            let same = load_config(dir).ok().as_ref() == Some(config)
                && load_data_source(dir).ok().as_ref() == Some(source);
            if same && has_checkpoint(dir) {
                let state = load_state(dir)?;
                if state.epochs_done >= config.epochs {
                    return Ok(TrainedRun {
                        action: RunAction::Reused,
                        collapse_warning: state.history.collapse_warning(config.margin),
                        history: state.history,
                    });
                }
            }
            let resume = same && has_checkpoint(dir);
            if !resume && dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            resume
        }
    };
    let splits = source.load(config.val_fraction, config.seed)?;
    let mut config = config.clone();
    config.model.channels = splits.train.channels;
    config.model.image_size = splits.train.height;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    save_data_source(dir, source)?;
    let resumed = resume && has_checkpoint(dir);
    let outcome = train(
        &splits.train,
        &splits.val,
        &config,
        dir,
        &TrainOptions {
            resume,
            progress,
            stop_after_epochs: None,
        },
    )?;
    Ok(TrainedRun {
        action: if resumed {
            RunAction::Resumed
        } else {
            RunAction::Trained
        },
        history: outcome.history,
        collapse_warning: outcome.collapse_warning,
    })
}

/// Writes `data.json` into a run folder.
pub fn save_data_source(run: &Path, source: &DataSource) -> Result<()> {
    let text = serde_json::to_string_pretty(source).map_err(|e| Error::Other(e.to_string()))?;
    crate::output::write_atomic(&run.join("data.json"), text.as_bytes())
}

/// Reads `data.json` of a run folder.
pub fn load_data_source(run: &Path) -> Result<DataSource> {
    let path = run.join("data.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::format(&path, e.to_string()))
}

/// A trained model ready for inference.
pub fn load_inference_model(run: &Path) -> Result<EmbeddingCnn> {
    Ok(checkpoint::load_model(run, &Device::default())?.valid())
}

/// Embeds `data` with the run's model.
pub fn embed(model: &EmbeddingCnn, data: &LabelledImages) -> Result<Embeddings> {
    embed_images(model, data, INFERENCE_BATCH, &Device::default())
}

/// The metrics `siamese eval` reports.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub precision_at_1: f64,
    pub r_precision: f64,
    pub map_at_r: f64,
    pub knn_accuracy_1: f64,
    pub knn_accuracy_5: f64,
    pub nmi: f64,
    pub ami: f64,
    pub queries: usize,
    pub gallery: usize,
    pub distance: String,
}

/// Test embeddings queried against the training images as gallery; k-means (k = number of
/// classes) on the test embeddings for NMI/AMI.
pub fn evaluate(run: &Path) -> Result<EvalReport> {
    let config = checkpoint::load_config(run)?;
    let source = load_data_source(run)?;
    let splits = source.load(config.val_fraction, config.seed)?;
    let model = load_inference_model(run)?;
    let query = embed(&model, &splits.test)?;
    let gallery = embed(&model, &splits.gallery)?;
    let dim = query.dim;
    let r = retrieval_metrics(
        &query.values,
        &splits.test.labels,
        &gallery.values,
        &splits.gallery.labels,
        dim,
        config.distance,
        false,
    )?;
    let k = splits.test.class_names.len();
    let clusters = kmeans(&query.values, dim, k, config.seed, 100);
    Ok(EvalReport {
        precision_at_1: r.precision_at_1,
        r_precision: r.r_precision,
        map_at_r: r.map_at_r,
        knn_accuracy_1: r.knn_accuracy_1,
        knn_accuracy_5: r.knn_accuracy_5,
        nmi: nmi(&splits.test.labels, &clusters),
        ami: ami(&splits.test.labels, &clusters),
        queries: splits.test.len(),
        gallery: splits.gallery.len(),
        distance: config.distance.to_string(),
    })
}

/// `siamese oneshot`: the run's model on the one-shot runs of `runs_zip` (Lake's
/// `all_runs.zip` layout), nearest training drawing under the run's distance. The drawings are
/// converted at the side the model was trained at (`--side`); a model of other than one
/// channel is an error.
pub fn evaluate_oneshot_run(
    run: &Path,
    runs_zip: &Path,
) -> Result<crate::eval::oneshot::OneShotReport> {
    let config = checkpoint::load_config(run)?;
    if config.model.channels != 1 {
        return Err(Error::config(
            "--model",
            format!(
                "{}: the model reads {} channels; one-shot drawings have one",
                run.display(),
                config.model.channels
            ),
        ));
    }
    let runs = crate::data::omniglot::load_oneshot_runs_at(runs_zip, config.model.image_size)?;
    let model = load_inference_model(run)?;
    crate::eval::oneshot::evaluate_oneshot(&model, &runs, config.distance)
}
