//! Run folders: `config.json`, and `checkpoint/` holding `model.safetensors` (the weights the
//! run delivers), `optimizer.bpk` (Adam's moments, so `--resume` continues exactly),
//! `state.json` (epochs done, loss history) and, when the weights are averaged,
//! `training.safetensors` (the optimizer's own weights, which `--resume` continues from), and
//! `param_ids.json`: burn keys Adam's state by parameter id, and safetensors keep no ids, so the
//! ids of the trained weights are saved beside them and given back to the parameters on resume
//! (without them the resumed run would start Adam's moments from zero). A loss with learnable
//! class vectors adds `head.safetensors` and `head.json` (their count and parameter id); a run
//! with a cross-batch memory adds `xbm.safetensors` (the queue, oldest row first).
//!
//! A checkpoint is written whole into `checkpoint.tmp/` and then swapped in by renames, so an
//! interrupted save never leaves a model from one epoch beside the history of another.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::history::History;
use crate::loss::ClassWeights;
use crate::model::embedding_cnn::EmbeddingCnn;
use crate::sampling::CrossBatchMemory;
use crate::{Error, Result};

const MODEL_FILE: &str = "model.safetensors";
const TRAINING_FILE: &str = "training.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const STATE_FILE: &str = "state.json";
const PARAM_IDS_FILE: &str = "param_ids.json";
const HEAD_FILE: &str = "head.safetensors";
const HEAD_INFO_FILE: &str = "head.json";
const MEMORY_FILE: &str = "xbm.safetensors";

/// What `head.json` records: the shape of the class vectors and their parameter ids.
#[derive(Debug, Serialize, Deserialize)]
struct HeadInfo {
    classes: usize,
    dim: usize,
    ids: Vec<u64>,
}

/// The ids of `model`'s float parameters, in visiting order.
fn param_ids<M: Module>(model: &M) -> Vec<u64> {
    struct Ids(Vec<u64>);
    impl burn::module::ModuleVisitor for Ids {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            self.0.push(param.id.val());
        }
    }
    let mut ids = Ids(Vec::new());
    model.visit(&mut ids);
    ids.0
}

/// `model` with its float parameters' ids set to `ids` (in visiting order).
fn with_param_ids<M: Module>(model: M, ids: &[u64]) -> M {
    struct SetIds<'a>(std::slice::Iter<'a, u64>);
    impl burn::module::ModuleMapper for SetIds<'_> {
        fn map_float<const D: usize>(
            &mut self,
            mut param: burn::module::Param<burn::tensor::Tensor<D>>,
        ) -> burn::module::Param<burn::tensor::Tensor<D>> {
            if let Some(&id) = self.0.next() {
                param.id = burn::module::ParamId::from(id);
            }
            param
        }
    }
    model.map(&mut SetIds(ids.iter()))
}

/// What a checkpoint records besides the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Loss history up to `epochs_done`.
    pub history: History,
}

/// Path of the run's config.
pub fn config_path(run: &Path) -> PathBuf {
    run.join("config.json")
}

fn checkpoint_dir(run: &Path) -> PathBuf {
    run.join("checkpoint")
}

/// Writes `config.json` (atomically).
pub fn save_config(run: &Path, config: &TrainConfig) -> Result<()> {
    let text = serde_json::to_string_pretty(config).map_err(|e| Error::Other(e.to_string()))?;
    crate::output::write_atomic(&config_path(run), text.as_bytes())
}

/// Reads `config.json` of a run.
pub fn load_config(run: &Path) -> Result<TrainConfig> {
    let path = config_path(run);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let config: TrainConfig =
        serde_json::from_str(&text).map_err(|e| Error::format(&path, e.to_string()))?;
    config.check()?;
    Ok(config)
}

/// Saves weights, optimizer state and run state as one checkpoint. With `averaged` weights,
/// those become the run's model and `model`'s own are kept for `--resume`.
pub fn save_checkpoint(
    run: &Path,
    model: &EmbeddingCnn,
    averaged: Option<&EmbeddingCnn>,
    head: Option<&ClassWeights>,
    memory: Option<&CrossBatchMemory>,
    optimizer: &ModuleOptimizer,
    state: &RunState,
) -> Result<()> {
    let tmp = run.join("checkpoint.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    match averaged {
        Some(averaged) => {
            save_weights(averaged, &tmp.join(MODEL_FILE))?;
            save_weights(model, &tmp.join(TRAINING_FILE))?;
        }
        None => save_weights(model, &tmp.join(MODEL_FILE))?,
    }
    if let Some(head) = head {
        save_weights(head, &tmp.join(HEAD_FILE))?;
        let info = HeadInfo {
            classes: head.classes(),
            dim: head.vectors().dims()[1],
            ids: param_ids(head),
        };
        let path = tmp.join(HEAD_INFO_FILE);
        let text = serde_json::to_string(&info).map_err(|e| Error::Other(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    }
    if let Some(memory) = memory {
        memory.save(&tmp.join(MEMORY_FILE))?;
    }
    let optim_path = tmp.join(OPTIMIZER_FILE);
    optimizer
        .to_record()
        .save(&optim_path)
        .map_err(|e| Error::format(&optim_path, format!("cannot save optimizer: {e:?}")))?;
    let ids_path = tmp.join(PARAM_IDS_FILE);
    let ids = serde_json::to_string(&param_ids(model)).map_err(|e| Error::Other(e.to_string()))?;
    std::fs::write(&ids_path, ids).map_err(|e| Error::io(&ids_path, e))?;
    let text = serde_json::to_string_pretty(state).map_err(|e| Error::Other(e.to_string()))?;
    let state_path = tmp.join(STATE_FILE);
    std::fs::write(&state_path, text).map_err(|e| Error::io(&state_path, e))?;

    let dir = checkpoint_dir(run);
    let old = run.join("checkpoint.old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    if dir.exists() {
        std::fs::rename(&dir, &old).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

/// Writes a module's weights. burn's store adds three `__metadata__` entries from a `HashMap`,
/// so their order (and the file's bytes) changed from one save to the next; one entry keeps two
/// trainings with the same seed byte-identical, as the SHA-256 keys of the index's collections
/// and `verification.json` need.
pub(crate) fn save_weights<M: Module>(model: &M, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_file(path)
        .overwrite(true)
        .clear_metadata()
        .metadata("producer", "siamese");
    model
        .valid()
        .save_into(&mut store)
        .map_err(|e| Error::format(path, format!("cannot save weights: {e}")))
}

/// The newest complete checkpoint folder (falls back to `checkpoint.old` when a crash hit
/// between the two renames).
fn latest_checkpoint(run: &Path) -> Option<PathBuf> {
    [checkpoint_dir(run), run.join("checkpoint.old")]
        .into_iter()
        .find(|d| d.join(STATE_FILE).is_file() && d.join(MODEL_FILE).is_file())
}

/// Whether the run folder has a checkpoint to resume from.
pub fn has_checkpoint(run: &Path) -> bool {
    latest_checkpoint(run).is_some()
}

/// Loads the run state of the latest checkpoint.
pub fn load_state(run: &Path) -> Result<RunState> {
    let dir = latest_checkpoint(run)
        .ok_or_else(|| Error::format(run, "no checkpoint in this run folder (train it first)"))?;
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::format(&path, e.to_string()))
}

/// Loads the latest checkpoint's weights (the averaged ones when the run averages) into a
/// freshly built model on `device`.
pub fn load_model(run: &Path, device: &Device) -> Result<EmbeddingCnn> {
    load_weights(run, &[MODEL_FILE], device)
}

/// Loads the weights the optimizer left at the latest checkpoint (where `--resume` continues):
/// `training.safetensors` when the run averages, else the model itself.
pub fn load_training_model(run: &Path, device: &Device) -> Result<EmbeddingCnn> {
    let model = load_weights(run, &[TRAINING_FILE, MODEL_FILE], device)?;
    let Some(dir) = latest_checkpoint(run) else {
        return Ok(model);
    };
    let ids_path = dir.join(PARAM_IDS_FILE);
    let Ok(text) = std::fs::read_to_string(&ids_path) else {
        // A checkpoint from before ids were kept: Adam's state cannot be matched to it.
        return Ok(model);
    };
    let ids: Vec<u64> = serde_json::from_str(&text)
        .map_err(|e| Error::format(&ids_path, format!("not a list of parameter ids: {e}")))?;
    let params = param_ids(&model).len();
    if ids.len() != params {
        return Err(Error::format(
            &ids_path,
            format!("{} ids for {params} parameters", ids.len()),
        ));
    }
    Ok(with_param_ids(model, &ids))
}

/// Loads the first of `files` present in the latest checkpoint (the last one when none is, so
/// the error names it).
fn load_weights(run: &Path, files: &[&str], device: &Device) -> Result<EmbeddingCnn> {
    let config = load_config(run)?;
    let dir = latest_checkpoint(run)
        .ok_or_else(|| Error::format(run, "no checkpoint in this run folder (train it first)"))?;
    let path = files
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .unwrap_or_else(|| dir.join(files[files.len() - 1]));
    let mut model = config.model.init(device)?;
    let mut store = SafetensorsStore::from_file(&path);
    let result = model
        .load_from(&mut store)
        .map_err(|e| Error::format(&path, format!("cannot load weights: {e}")))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(Error::format(
            &path,
            format!(
                "weights do not fit the model in config.json ({} missing, {} errors)",
                result.missing.len(),
                result.errors.len()
            ),
        ));
    }
    Ok(model)
}

/// Loads the optimizer state of the latest checkpoint.
pub fn load_optimizer(run: &Path, optimizer: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let dir = latest_checkpoint(run)
        .ok_or_else(|| Error::format(run, "no checkpoint in this run folder"))?;
    let path = dir.join(OPTIMIZER_FILE);
    let record = burn::optim::OptimizerRecord::load(&path)
        .map_err(|e| Error::format(&path, format!("cannot load optimizer state: {e:?}")))?;
    Ok(optimizer.load_record(record))
}

/// Loads the latest checkpoint's class-vector head (with its parameter id, so Adam's state
/// continues) onto `device`.
pub fn load_head(run: &Path, device: &Device) -> Result<ClassWeights> {
    let dir = latest_checkpoint(run)
        .ok_or_else(|| Error::format(run, "no checkpoint in this run folder"))?;
    let info_path = dir.join(HEAD_INFO_FILE);
    let text = std::fs::read_to_string(&info_path).map_err(|e| Error::io(&info_path, e))?;
    let info: HeadInfo = serde_json::from_str(&text)
        .map_err(|e| Error::format(&info_path, format!("not a head description: {e}")))?;
    let path = dir.join(HEAD_FILE);
    let mut head = ClassWeights::new(info.classes, info.dim, device);
    let mut store = SafetensorsStore::from_file(&path);
    let result = head
        .load_from(&mut store)
        .map_err(|e| Error::format(&path, format!("cannot load the head: {e}")))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(Error::format(
            &path,
            format!(
                "does not hold {} × {} class vectors",
                info.classes, info.dim
            ),
        ));
    }
    Ok(with_param_ids(head, &info.ids))
}

/// Loads the latest checkpoint's cross-batch memory (`capacity` rows of `dim` floats).
pub fn load_memory(run: &Path, capacity: usize, dim: usize) -> Result<CrossBatchMemory> {
    let dir = latest_checkpoint(run)
        .ok_or_else(|| Error::format(run, "no checkpoint in this run folder"))?;
    CrossBatchMemory::load(&dir.join(MEMORY_FILE), capacity, dim)
}
