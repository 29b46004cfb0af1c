//! Verification: is this the same person? A pair is "same" when the Euclidean distance of the
//! two embeddings is at most a threshold. The LFW 10-fold protocol picks the threshold on nine
//! folds (the accuracy-maximising cut between sorted training distances) and tests it on the
//! tenth; [`LFW_THRESHOLD`] is the mean of those ten thresholds, measured with this pipeline.

use crate::{Error, Result};

/// Same-person threshold calibrated on LFW's 10 folds with this pipeline (mean of the per-fold
/// thresholds of `siamese faces eval-lfw`, 0.6120); dlib documents 0.6 for its own pipeline.
pub const LFW_THRESHOLD: f32 = 0.612;

/// Same-person threshold with `--flip` (mean of the fold thresholds, 0.602).
pub const LFW_THRESHOLD_FLIP: f32 = 0.602;
/// Same-person threshold with `--flip --jitter 4` (mean of the fold thresholds, 0.5865).
pub const LFW_THRESHOLD_JITTER: f32 = 0.586;

/// The LFW-calibrated threshold for these pipeline settings: averaging an embedding over more
/// views of the face (mirror, jittered copies) shrinks same-person distances, so the cut moves
/// down. Settings not measured take the nearest measured ones (any jitter: the `--flip
/// --jitter 4` value).
pub fn lfw_threshold(options: &super::pipeline::PipelineOptions) -> f32 {
    match (options.flip, options.jitter) {
        (false, 0) => LFW_THRESHOLD,
        (true, 0) => LFW_THRESHOLD_FLIP,
        _ => LFW_THRESHOLD_JITTER,
    }
}

/// The same-person threshold a command uses: `given` (checked) when the user named one, else the
/// LFW-calibrated one for these pipeline settings ([`lfw_threshold`]).
pub fn resolve_threshold(
    given: Option<f32>,
    options: &super::pipeline::PipelineOptions,
) -> Result<f32> {
    check_threshold(given.unwrap_or_else(|| lfw_threshold(options)))
}

/// The verdict on one pair.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub distance: f32,
    pub threshold: f32,
    pub same: bool,
}

/// Compares a distance with a threshold.
pub fn verdict(distance: f32, threshold: f32) -> Verdict {
    Verdict {
        distance,
        threshold,
        same: distance <= threshold,
    }
}

/// Checks a user-given threshold.
pub fn check_threshold(t: f32) -> Result<f32> {
    if t.is_finite() && t > 0.0 && t < 4.0 {
        Ok(t)
    } else {
        Err(Error::config(
            "threshold",
            format!("{t} is not a distance in (0, 4)"),
        ))
    }
}

/// The threshold maximising accuracy over `(distance, same)` pairs: a midpoint between two
/// consecutive sorted distances (or just outside the range); ties go to the smallest threshold.
pub fn best_threshold(pairs: &[(f32, bool)]) -> f32 {
    if pairs.is_empty() {
        return LFW_THRESHOLD;
    }
    let mut sorted: Vec<(f32, bool)> = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let different_total = sorted.iter().filter(|p| !p.1).count();
    // Threshold below everything: all pairs called "different".
    let mut correct = different_total;
    let mut best = (correct, sorted[0].0 - 1e-3);
    let mut i = 0;
    while i < sorted.len() {
        // Move every pair with this distance to the "same" side together.
        let d = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == d {
            if sorted[i].1 {
                correct += 1;
            } else {
                correct -= 1;
            }
            i += 1;
        }
        let cut = if i < sorted.len() {
            (d + sorted[i].0) / 2.0
        } else {
            d + 1e-3
        };
        if correct > best.0 {
            best = (correct, cut);
        }
    }
    best.1
}

/// Accuracy of `threshold` on `(distance, same)` pairs.
pub fn accuracy(pairs: &[(f32, bool)], threshold: f32) -> f64 {
    let right = pairs
        .iter()
        .filter(|(d, s)| (*d <= threshold) == *s)
        .count();
    right as f64 / pairs.len().max(1) as f64
}

/// One fold of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FoldResult {
    pub fold: usize,
    /// Chosen on the other folds.
    pub threshold: f32,
    pub accuracy: f64,
}

/// The 10-fold (or k-fold) result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KFoldResult {
    pub folds: Vec<FoldResult>,
    pub mean_accuracy: f64,
    /// Population standard deviation over folds (as LFW results are usually reported).
    pub std_accuracy: f64,
    /// Mean of the per-fold thresholds.
    pub mean_threshold: f32,
}

/// Runs the protocol: for each fold, the threshold is chosen on the others.
pub fn k_fold(pairs: &[(f32, bool)], fold_of: &[usize]) -> Result<KFoldResult> {
    if pairs.len() != fold_of.len() || pairs.is_empty() {
        return Err(Error::config(
            "pairs",
            "no pairs, or pairs and folds differ in number",
        ));
    }
    let k = fold_of.iter().max().expect("non-empty") + 1;
    let mut folds = Vec::with_capacity(k);
    for fold in 0..k {
        let train: Vec<(f32, bool)> = pairs
            .iter()
            .zip(fold_of)
            .filter(|(_, &f)| f != fold)
            .map(|(p, _)| *p)
            .collect();
        let test: Vec<(f32, bool)> = pairs
            .iter()
            .zip(fold_of)
            .filter(|(_, &f)| f == fold)
            .map(|(p, _)| *p)
            .collect();
        if test.is_empty() {
            continue;
        }
        let threshold = best_threshold(&train);
        folds.push(FoldResult {
            fold,
            threshold,
            accuracy: accuracy(&test, threshold),
        });
    }
    let n = folds.len() as f64;
    let mean = folds.iter().map(|f| f.accuracy).sum::<f64>() / n;
    let var = folds
        .iter()
        .map(|f| (f.accuracy - mean).powi(2))
        .sum::<f64>()
        / n;
    let mean_threshold = folds.iter().map(|f| f.threshold).sum::<f32>() / folds.len() as f32;
    Ok(KFoldResult {
        folds,
        mean_accuracy: mean,
        std_accuracy: var.sqrt(),
        mean_threshold,
    })
}

/// One face of photo A against one face of photo B.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FacePair {
    /// The faces' indices in their photos (highest detector score first).
    pub face_a: usize,
    pub face_b: usize,
    pub box_a: super::detect::FaceBox,
    pub box_b: super::detect::FaceBox,
    pub distance: f32,
    pub same: bool,
}

/// Every face of one photo against every face of another, nearest pair first: a group photo is
/// compared face by face, never through one face picked silently.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhotoVerification {
    pub threshold: f32,
    pub faces_a: usize,
    pub faces_b: usize,
    /// All `faces_a × faces_b` pairs, by distance.
    pub pairs: Vec<FacePair>,
}

impl PhotoVerification {
    /// The nearest pair (there is at least one).
    pub fn nearest(&self) -> &FacePair {
        &self.pairs[0]
    }
}

/// Detects, embeds and compares every face of `a` with every face of `b` under `threshold`; a
/// photo without a face is an error naming it.
pub fn verify_photos(
    pipeline: &super::pipeline::FacePipeline,
    a: &std::path::Path,
    b: &std::path::Path,
    threshold: f32,
) -> Result<PhotoVerification> {
    let faces_of = |path: &std::path::Path| -> Result<Vec<super::pipeline::Face>> {
        let faces = pipeline.process_image(&super::load::load_rgb(path)?)?;
        if faces.is_empty() {
            return Err(Error::format(path, "no face found"));
        }
        Ok(faces)
    };
    let (fa, fb) = (faces_of(a)?, faces_of(b)?);
    let mut pairs = Vec::with_capacity(fa.len() * fb.len());
    for (i, x) in fa.iter().enumerate() {
        for (j, y) in fb.iter().enumerate() {
            let v = verdict(
                crate::distance::euclidean(&x.embedding, &y.embedding),
                threshold,
            );
            pairs.push(FacePair {
                face_a: i,
                face_b: j,
                box_a: x.bbox,
                box_b: y.bbox,
                distance: v.distance,
                same: v.same,
            });
        }
    }
    pairs.sort_by(|p, q| p.distance.total_cmp(&q.distance));
    Ok(PhotoVerification {
        threshold,
        faces_a: fa.len(),
        faces_b: fb.len(),
        pairs,
    })
}
