//! Thresholds calibrated from data, and the calibration file stored with a model
//! (`RUN/calibration.json` beside `RUN/gallery.safetensors`).
//!
//! A threshold is chosen from **known** images alone (the run's validation digits, never seen in
//! training or in the gallery): the smallest score that accepts the target share of them (the
//! true-positive rate, 95 % by default). Globally, one threshold for all classes; per class, one
//! threshold from each class's own validation images, applied to queries matched to that class
//! (a class with fewer than [`MIN_PER_CLASS`] validation images falls back to the global one).
//! No unknown image is used: the rejection rate of unknowns is what the open-set evaluation
//! measures, not what calibration tunes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ensemble::{EnsembleFit, ProbedEmbeddings};
use super::gallery::Gallery;
use super::gallery::GalleryMode;
use super::gini::SoftmaxLayer;
use super::scores::Scorer;
use super::scores::{MahalanobisFit, Score};
use crate::distance::Distance;
use crate::eval::openset::threshold_for_tpr;
use crate::{Error, Result};

/// The default share of known images a calibrated threshold accepts.
pub const DEFAULT_TARGET_TPR: f64 = 0.95;
/// Fewest validation images of a class for a per-class threshold of its own.
pub const MIN_PER_CLASS: usize = 20;
/// File name of the calibration in a run folder.
pub const CALIBRATION_FILE: &str = "calibration.json";
/// File name of the k-NN gallery embeddings in a run folder.
pub const GALLERY_FILE: &str = "gallery.safetensors";
/// Version of the calibration file layout.
pub const CALIBRATION_VERSION: u32 = 1;

/// One global threshold and one per class (scores ≤ threshold are accepted as known).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub global: f32,
    pub per_class: Vec<f32>,
}

impl Thresholds {
    /// The threshold applied to a query matched to `class`.
    pub fn for_class(&self, class: u32, per_class: bool) -> f32 {
        if per_class {
            self.per_class
                .get(class as usize)
                .copied()
                .unwrap_or(self.global)
        } else {
            self.global
        }
    }
}

/// Checks a target true-positive rate: in (0, 1].
pub fn check_target_tpr(tpr: f64) -> Result<()> {
    if tpr.is_finite() && tpr > 0.0 && tpr <= 1.0 {
        Ok(())
    } else {
        Err(Error::config(
            "target TPR",
            format!("{tpr} is not in (0, 1]"),
        ))
    }
}

/// Thresholds accepting the share `target_tpr` of `scores` (known images whose true classes are
/// `labels`), overall and per class.
pub fn calibrate_thresholds(
    scores: &[f32],
    labels: &[u32],
    classes: usize,
    target_tpr: f64,
) -> Result<Thresholds> {
    check_target_tpr(target_tpr)?;
    if scores.is_empty() || scores.len() != labels.len() {
        return Err(Error::config(
            "calibration data",
            format!(
                "{} scores for {} labels: need at least one known image",
                scores.len(),
                labels.len()
            ),
        ));
    }
    if let Some(bad) = scores.iter().find(|s| !s.is_finite()) {
        return Err(Error::config(
            "calibration data",
            format!("score {bad} is not finite"),
        ));
    }
    let global = threshold_for_tpr(scores, target_tpr);
    let per_class = (0..classes as u32)
        .map(|c| {
            let own: Vec<f32> = scores
                .iter()
                .zip(labels)
                .filter(|(_, &l)| l == c)
                .map(|(&s, _)| s)
                .collect();
            if own.len() < MIN_PER_CLASS {
                global
            } else {
                threshold_for_tpr(&own, target_tpr)
            }
        })
        .collect();
    Ok(Thresholds { global, per_class })
}

/// Adds the `ensemble` score to a calibration made by [`super::recognizer::calibrate_embeddings`] from the same
/// images: the conv1 fits on the training images, each component's validation scores, and the
/// score's thresholds.
pub fn calibrate_ensemble(
    calibration: &mut Calibration,
    gallery: &Gallery,
    train: &ProbedEmbeddings,
    train_labels: &[u32],
    val: &ProbedEmbeddings,
    val_labels: &[u32],
) -> Result<()> {
    let classes = calibration.class_names.len();
    let fit = EnsembleFit::fit_conv1(train, train_labels, classes)?;
    let scorer = Scorer {
        gallery,
        k: calibration.k,
        softmax: &calibration.gini.softmax,
        mahalanobis: calibration.mahalanobis.as_ref(),
        ensemble: None,
    };
    let component = |score: Score| -> Result<Vec<f32>> {
        Ok(scorer
            .score(score, &val.embeddings.values)?
            .into_iter()
            .map(|p| p.1)
            .collect())
    };
    let [means, stds] = fit.conv1_components(val);
    let components = [
        means,
        stds,
        component(Score::Mahalanobis)?,
        component(Score::KnnKth)?,
    ];
    // The validation digits' own scores, from the components just computed (the scorer would
    // compute them again).
    let fit = fit.with_reference(components.clone())?;
    let scores = fit.combine(&components)?;
    calibration.score_thresholds.insert(
        Score::Ensemble.name().to_string(),
        calibrate_thresholds(&scores, val_labels, classes, calibration.target_tpr)?,
    );
    calibration.ensemble = Some(fit);
    Ok(())
}

/// Checks a user-given distance threshold: finite and ≥ 0.
pub fn check_distance_threshold(t: f32) -> Result<()> {
    if t.is_finite() && t >= 0.0 {
        Ok(())
    } else {
        Err(Error::config(
            "threshold",
            format!("{t} is not a distance (a finite number ≥ 0)"),
        ))
    }
}

/// The calibrated Gini-of-softmax baseline: the softmax layer and its thresholds on the Gini
/// impurity `1 − Σ p²`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GiniCalibration {
    pub softmax: SoftmaxLayer,
    pub thresholds: Thresholds,
    /// Accuracy of the softmax layer on the validation images.
    pub val_accuracy: f64,
}

/// Everything recognition needs besides the model: written by
/// [`super::recognizer::calibrate_run`], read by [`super::recognizer::Recognizer::load`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub version: u32,
    /// SHA-256 of the checkpoint's weights the calibration was computed with.
    pub model_sha256: String,
    pub target_tpr: f64,
    pub distance: Distance,
    pub class_names: Vec<String>,
    pub dim: usize,
    /// k of the k-NN gallery.
    pub k: usize,
    /// The gallery mode `recognize` uses unless told otherwise.
    pub default_gallery: GalleryMode,
    pub gallery_images: usize,
    pub validation_images: usize,
    /// `[classes, dim]` class prototypes.
    pub prototypes: Vec<f32>,
    /// Distance thresholds of the prototype gallery.
    pub prototype_thresholds: Thresholds,
    /// Distance thresholds of the k-NN gallery.
    pub knn_thresholds: Thresholds,
    pub gini: GiniCalibration,
    /// Thresholds of the scores beyond the three above (`knn-kth`, `mahalanobis`, `msp`,
    /// `energy`), by score name; absent from calibrations made before those scores existed.
    #[serde(default)]
    pub score_thresholds: BTreeMap<String, Thresholds>,
    /// The shared-covariance fit of the `mahalanobis` score.
    #[serde(default)]
    pub mahalanobis: Option<MahalanobisFit>,
    /// The conv1 fits and validation scores of the `ensemble` score (absent from calibrations
    /// made from embeddings alone, or before the score existed).
    #[serde(default)]
    pub ensemble: Option<EnsembleFit>,
}

impl Calibration {
    /// The distance thresholds of a gallery mode.
    pub fn thresholds(&self, mode: GalleryMode) -> &Thresholds {
        match mode {
            GalleryMode::Prototypes => &self.prototype_thresholds,
            GalleryMode::Knn => &self.knn_thresholds,
        }
    }

    /// The thresholds of any score, `None` when this calibration holds none for it.
    pub fn score_thresholds(&self, score: Score) -> Option<&Thresholds> {
        match score {
            Score::Prototypes => Some(&self.prototype_thresholds),
            Score::Knn => Some(&self.knn_thresholds),
            Score::Gini => Some(&self.gini.thresholds),
            Score::Mahalanobis if self.mahalanobis.is_none() => None,
            Score::Ensemble if self.ensemble.is_none() => None,
            other => self.score_thresholds.get(other.name()),
        }
    }

    /// The thresholds of `score`; an error naming the run's calibration file and how to
    /// recalibrate when it holds none (a calibration made before the score existed).
    pub fn require_score(&self, run: &Path, score: Score) -> Result<&Thresholds> {
        self.score_thresholds(score).ok_or_else(|| {
            Error::format(
                calibration_path(run),
                format!(
                    "holds no calibration for score `{score}`; re-run `siamese recognize --model {} --calibrate`",
                    run.display()
                ),
            )
        })
    }

    /// Writes `RUN/calibration.json` atomically.
    pub fn save(&self, run: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        crate::output::write_atomic(&calibration_path(run), text.as_bytes())
    }

    /// Reads `RUN/calibration.json`; a missing file is an error telling how to calibrate.
    pub fn load(run: &Path) -> Result<Self> {
        let path = calibration_path(run);
        if !path.is_file() {
            return Err(Error::format(
                &path,
                format!(
                    "the model is not calibrated; run `siamese recognize --model {} --calibrate` first",
                    run.display()
                ),
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let cal: Calibration = serde_json::from_str(&text)
            .map_err(|e| Error::format(&path, format!("not a calibration file: {e}")))?;
        if cal.version != CALIBRATION_VERSION {
            return Err(Error::format(
                &path,
                format!(
                    "calibration format {} (expected {CALIBRATION_VERSION}); re-run `siamese recognize --model {} --calibrate`",
                    cal.version,
                    run.display()
                ),
            ));
        }
        let classes = cal.class_names.len();
        if cal.dim == 0 || cal.prototypes.len() != classes * cal.dim {
            return Err(Error::format(
                &path,
                "prototypes do not match the class count and dimension",
            ));
        }
        Ok(cal)
    }
}

/// `RUN/calibration.json`.
pub fn calibration_path(run: &Path) -> PathBuf {
    run.join(CALIBRATION_FILE)
}

/// `RUN/gallery.safetensors`.
pub fn gallery_path(run: &Path) -> PathBuf {
    run.join(GALLERY_FILE)
}

/// SHA-256 of a run's checkpoint weights (ties a calibration to the model it was made for).
pub fn model_fingerprint(run: &Path) -> Result<String> {
    crate::assets::backbone::sha256_file(&run.join("checkpoint").join("model.safetensors"))
}
