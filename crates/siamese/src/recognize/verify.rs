//! Verification with a trained run (`siamese verify --model RUN A B`): are two images of the same
//! class? Both are converted MNIST-style like the run's data, embedded, and their distance under
//! the run's distance is compared with a threshold.
//!
//! The threshold is calibrated once per model on the run's validation split, as LFW's protocol
//! does on its pairs: [`CALIBRATION_PAIRS`] pairs drawn by the pair sampler
//! ([`crate::sampling::pair_batch`]: half same class, half different, seeded by the run's seed),
//! and the cut between sorted distances that classifies most of them right
//! ([`crate::faces::verify::best_threshold`], the faces' rule). It is stored in
//! `RUN/verification.json` with the SHA-256 of the weights it was made for, and computed again
//! on first use when missing or made for other weights.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::calibration::model_fingerprint;
use super::recognizer::load_images_mnist_style;
use crate::data::transform::MNIST_SIDE;
use crate::distance::Distance;
use crate::faces::verify::{accuracy, best_threshold, verdict};
use crate::run::{embed, load_data_source, load_inference_model};
use crate::sampling::PairSampler;
use crate::train::checkpoint::load_config;
use crate::{Error, Result};

/// File name of the verification threshold in a run folder.
pub const VERIFICATION_FILE: &str = "verification.json";
/// Validation pairs the threshold is calibrated on (half same, half different; LFW's View 2
/// has 6,000 as well).
pub const CALIBRATION_PAIRS: usize = 6000;
/// Version of the file's layout.
pub const VERIFICATION_VERSION: u32 = 1;
/// Mixed into the run's seed for the calibration pairs (so they are not a training batch's).
const PAIR_SEED: u64 = 0x7E21_F1ED;

/// `RUN/verification.json`: the calibrated threshold and how it was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationCalibration {
    pub version: u32,
    /// SHA-256 of the run's `model.safetensors` the threshold was calibrated for.
    pub model_sha256: String,
    /// The run's distance (the threshold is on its scale).
    pub distance: Distance,
    /// Pairs at most this far apart are "same".
    pub threshold: f32,
    /// Share of the calibration pairs the threshold classifies right.
    pub accuracy: f64,
    pub same_pairs: usize,
    pub different_pairs: usize,
    /// Validation images the pairs were drawn from.
    pub validation_images: usize,
}

/// `RUN/verification.json`.
pub fn verification_path(run: &Path) -> PathBuf {
    run.join(VERIFICATION_FILE)
}

/// Calibrates the run's verification threshold on its validation split and writes
/// `RUN/verification.json`.
pub fn calibrate_verification(run: &Path) -> Result<VerificationCalibration> {
    let config = load_config(run)?;
    let splits = load_data_source(run)?.load(config.val_fraction, config.seed)?;
    let model = load_inference_model(run)?;
    let val = &splits.val;
    let emb = embed(&model, val)?;
    let mut sampler = PairSampler::new(
        &val.labels,
        val.class_names.len(),
        CALIBRATION_PAIRS,
        config.seed ^ PAIR_SEED,
    )
    .map_err(|e| Error::Other(format!("{}: validation split: {e}", run.display())))?;
    let batch = sampler.batch();
    let p = CALIBRATION_PAIRS;
    let pairs: Vec<(f32, bool)> = (0..p)
        .map(|i| {
            let (a, b) = (batch[i], batch[p + i]);
            let d = config.distance.between(emb.row(a), emb.row(b));
            (d, val.labels[a] == val.labels[b])
        })
        .collect();
    let threshold = best_threshold(&pairs);
    let same_pairs = pairs.iter().filter(|p| p.1).count();
    let calibration = VerificationCalibration {
        version: VERIFICATION_VERSION,
        model_sha256: model_fingerprint(run)?,
        distance: config.distance,
        threshold,
        accuracy: accuracy(&pairs, threshold),
        same_pairs,
        different_pairs: p - same_pairs,
        validation_images: val.len(),
    };
    let text =
        serde_json::to_string_pretty(&calibration).map_err(|e| Error::Other(e.to_string()))?;
    crate::output::write_atomic(&verification_path(run), text.as_bytes())?;
    Ok(calibration)
}

/// The run's calibration, calibrating first when `verification.json` is missing or was made
/// for other weights (`true` when it was just computed). A damaged file is an error naming it.
pub fn ensure_verification(run: &Path) -> Result<(VerificationCalibration, bool)> {
    let path = verification_path(run);
    if !path.exists() {
        return Ok((calibrate_verification(run)?, true));
    }
    let bytes = crate::input::read_file(&path)?;
    let saved: VerificationCalibration = serde_json::from_slice(&bytes)
        .map_err(|e| Error::format(&path, format!("not a verification calibration: {e}")))?;
    if saved.version != VERIFICATION_VERSION || saved.model_sha256 != model_fingerprint(run)? {
        return Ok((calibrate_verification(run)?, true));
    }
    Ok((saved, false))
}

/// A user-given threshold: a finite distance > 0.
pub fn check_verify_threshold(t: f32) -> Result<f32> {
    if t.is_finite() && t > 0.0 {
        Ok(t)
    } else {
        Err(Error::config(
            "--threshold",
            format!("{t} is not a distance > 0"),
        ))
    }
}

/// The verdict on two images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunVerification {
    pub a: String,
    pub b: String,
    /// The run's distance between the two embeddings.
    pub distance: f32,
    pub threshold: f32,
    /// `calibrated` (from `verification.json`) or `given` (`--threshold`).
    pub threshold_source: &'static str,
    pub same: bool,
    /// The distance's name (`euclidean`, …).
    pub metric: Distance,
    /// The calibration in use (absent with `--threshold`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<VerificationCalibration>,
}

/// Embeds the images `a` and `b` with the run's model and compares their distance with
/// `threshold`, or with the calibrated threshold (calibrated first when needed). A missing or
/// unreadable image, or a run without weights, is an error naming the file.
pub fn verify_images(
    run: &Path,
    a: &Path,
    b: &Path,
    threshold: Option<f32>,
) -> Result<RunVerification> {
    let threshold = threshold.map(check_verify_threshold).transpose()?;
    let config = load_config(run)?;
    if (config.model.channels, config.model.image_size) != (1, MNIST_SIDE) {
        return Err(Error::format(
            run,
            format!(
                "verify reads images MNIST-style (1×{MNIST_SIDE}×{MNIST_SIDE}); this run's model \
                 takes {}×{}×{}",
                config.model.channels, config.model.image_size, config.model.image_size
            ),
        ));
    }
    let images = load_images_mnist_style(&[a.to_path_buf(), b.to_path_buf()])?;
    let model = load_inference_model(run)?;
    let emb = embed(&model, &images)?;
    let distance = config.distance.between(emb.row(0), emb.row(1));
    let (threshold, calibration) = match threshold {
        Some(t) => (t, None),
        None => {
            let (c, _) = ensure_verification(run)?;
            (c.threshold, Some(c))
        }
    };
    let v = verdict(distance, threshold);
    Ok(RunVerification {
        a: a.display().to_string(),
        b: b.display().to_string(),
        distance: v.distance,
        threshold: v.threshold,
        threshold_source: if calibration.is_some() {
            "calibrated"
        } else {
            "given"
        },
        same: v.same,
        metric: config.distance,
        calibration,
    })
}
