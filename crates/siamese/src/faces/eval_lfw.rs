//! LFW View 2 evaluation: embed every photo named in `pairs.txt` (through the embedding store,
//! so a second run is instant), compute each pair's distance, and run the 10-fold protocol.
//!
//! LFW's photos are centred crops of one named person, so the pipeline keeps the detected face
//! nearest the centre, and when nothing is detected it assumes the face where dlib's detector
//! puts it on average (`detect::centered_box`) and still runs the landmarks there. The report
//! counts those photos (`detection_failures`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::lfw::{read_pairs, resolve_images};
use super::pipeline::{FacePipeline, FaceSelection, PipelineOptions, Timings};
use super::store;
use super::verify::{k_fold, FoldResult};
use crate::distance::euclidean;
use crate::eval::openset::auroc;
use crate::{Error, Result};

/// What `siamese faces eval-lfw` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LfwReport {
    pub pairs: usize,
    pub folds: Vec<FoldResult>,
    pub mean_accuracy: f64,
    pub std_accuracy: f64,
    /// Area under the ROC curve of the distance over all pairs.
    pub roc_auc: f64,
    /// Mean of the per-fold thresholds (the calibrated same-person threshold).
    pub threshold: f32,
    /// Distinct photos in the protocol.
    pub photos: usize,
    /// Photos where the detector found no face.
    pub detection_failures: usize,
    /// What was done with those photos.
    pub detection_failure_handling: String,
    /// Pairs left out because a photo could not be read at all.
    pub pairs_skipped: usize,
    pub unreadable: Vec<String>,
    pub embedded_photos: usize,
    pub reused_photos: usize,
    pub timings: Timings,
    pub align: bool,
}

/// Pipeline settings for LFW (central face, assumed box when nothing is detected).
pub fn lfw_options(align: bool) -> PipelineOptions {
    PipelineOptions {
        align,
        selection: FaceSelection::Central,
        assume_centered: true,
        ..PipelineOptions::default()
    }
}

/// Runs the protocol. `lfw`: the tarball or an unpacked folder; `database`: where embeddings
/// are kept (created or updated; one collection per pipeline setting).
pub fn evaluate_lfw(
    lfw: &Path,
    pairs_file: &Path,
    pipeline: &FacePipeline,
    database: &crate::store::Locator,
    progress: bool,
) -> Result<LfwReport> {
    let images = resolve_images(lfw)?;
    let pairs = read_pairs(pairs_file)?;
    let photos: BTreeSet<PathBuf> = pairs
        .iter()
        .flat_map(|p| [p.a.clone(), p.b.clone()])
        .collect();
    let files: Vec<PathBuf> = photos.iter().map(|p| images.join(p)).collect();
    if let Some(missing) = files.iter().find(|p| !p.is_file()) {
        return Err(Error::format(
            pairs_file,
            format!("names a photo that is not there: {}", missing.display()),
        ));
    }
    let store::EmbeddedFiles {
        store,
        keys,
        report: update,
        ..
    } = store::embed_files_in(
        crate::store::open(database)?.as_mut(),
        &files,
        pipeline,
        progress,
    )?;

    let index: std::collections::HashMap<&PathBuf, usize> =
        photos.iter().enumerate().map(|(i, p)| (p, i)).collect();
    let lookup = |rel: &PathBuf| -> Option<(&[f32], bool)> {
        let idx = *index.get(rel)?;
        let photo = store.get(&keys[idx])?;
        let face = photo.faces.first()?;
        Some((face.embedding.as_slice(), face.assumed))
    };
    let mut scored = Vec::with_capacity(pairs.len());
    let mut fold_of = Vec::with_capacity(pairs.len());
    let mut skipped = 0;
    for pair in &pairs {
        match (lookup(&pair.a), lookup(&pair.b)) {
            (Some((a, _)), Some((b, _))) => {
                scored.push((euclidean(a, b), pair.same));
                fold_of.push(pair.fold);
            }
            _ => skipped += 1,
        }
    }
    let result = k_fold(&scored, &fold_of)?;
    let same: Vec<f32> = scored.iter().filter(|p| p.1).map(|p| p.0).collect();
    let different: Vec<f32> = scored.iter().filter(|p| !p.1).map(|p| p.0).collect();
    let detection_failures = keys
        .iter()
        .filter_map(|k| store.get(k))
        .filter(|p| p.faces.first().is_some_and(|f| f.assumed))
        .count();
    let align = pipeline.options().align;
    Ok(LfwReport {
        pairs: scored.len(),
        folds: result.folds,
        mean_accuracy: result.mean_accuracy,
        std_accuracy: result.std_accuracy,
        roc_auc: auroc(&same, &different),
        threshold: result.mean_threshold,
        photos: files.len(),
        detection_failures: if align { detection_failures } else { 0 },
        detection_failure_handling: if align {
            "no face detected: landmarks run in the box dlib's detector gives on average for LFW's centred crops, then aligned and embedded as usual".into()
        } else {
            "--no-align: no detection; each whole photo resized to 150x150".into()
        },
        pairs_skipped: skipped,
        unreadable: update.skipped.iter().map(|(_, m)| m.clone()).collect(),
        embedded_photos: update.embedded_photos,
        reused_photos: update.reused_photos,
        timings: update.timings,
        align,
    })
}
