//! A run folder as the rest of the product sees it: which data it was trained on
//! (`data.json`), its model, and its evaluation (`siamese eval`) and embeddings (`siamese embed`).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::cluster::kmeans::kmeans;
use crate::data::idx::{load_mnist, MnistSplit};
use crate::data::LabelledImages;
use crate::embed::{embed_images, Embeddings};
use crate::eval::clustering::{ami, nmi};
use crate::eval::retrieval::retrieval_metrics;
use crate::model::embedding_cnn::EmbeddingCnn;
use crate::train::checkpoint;
use crate::{assets, Error, Result};

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
    /// `mnist` or a folder path.
    pub fn parse(spec: &str, limit: Option<usize>) -> Result<Self> {
        if spec == "mnist" {
            return Ok(DataSource::Mnist { limit });
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
            DataSource::Folder { path } => {
                let all = crate::data::image_folder::load_image_folder(
                    path,
                    crate::data::image_folder::FolderMode::MnistStyle,
                )?;
                crate::data::image_folder::check_trainable(&all)?;
                let (train_idx, held_idx) =
                    crate::data::split::stratified_split(&all.labels, 2.0 * val_fraction, seed)?;
                // The held-out part is halved: validation loss / test queries.
                let val_idx: Vec<usize> = held_idx.iter().copied().step_by(2).collect();
                let test_idx: Vec<usize> = held_idx.iter().copied().skip(1).step_by(2).collect();
                let train = all.subset(&train_idx);
                Ok(Splits {
                    gallery: train.clone(),
                    train,
                    val: all.subset(&val_idx),
                    test: all.subset(&test_idx),
                })
            }
        }
    }
}

/// A stratified random subset of `n` images (all of them when `n` ≥ the set's size).
pub fn stratified_subset(data: &LabelledImages, n: usize, seed: u64) -> LabelledImages {
    if n >= data.len() {
        return data.clone();
    }
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5ab5e7));
    // Round-robin over classes in shuffled order keeps class proportions.
    let classes = data.class_names.len();
    let mut per_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for i in order {
        per_class[data.labels[i] as usize].push(i);
    }
    let mut picked = Vec::with_capacity(n);
    let mut round = 0;
    while picked.len() < n {
        for c in per_class.iter() {
            if let Some(&i) = c.get(round) {
                if picked.len() < n {
                    picked.push(i);
                }
            }
        }
        round += 1;
    }
    picked.sort_unstable();
    data.subset(&picked)
}

/// Writes `data.json` into a run folder.
pub fn save_data_source(run: &Path, source: &DataSource) -> Result<()> {
    let text = serde_json::to_string_pretty(source).map_err(|e| Error::Other(e.to_string()))?;
    assets::write_atomic(&run.join("data.json"), text.as_bytes())
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
