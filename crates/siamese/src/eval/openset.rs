//! Open-set scores: how well a distance (higher = more likely unknown) separates known items from
//! unknown ones — AUROC, the ROC curve, thresholds calibrated on knowns alone, FPR at a target TPR.
//! A sample is *accepted* as known when its score is ≤ the threshold.

use serde::{Deserialize, Serialize};

fn sorted(scores: &[f32]) -> Vec<f32> {
    let mut v = scores.to_vec();
    v.sort_unstable_by(f32::total_cmp);
    v
}

/// Number of values in ascending `sorted` that are < x and == x.
fn below_and_equal(sorted: &[f32], x: f32) -> (usize, usize) {
    let below = sorted.partition_point(|&v| v < x);
    let upto = sorted.partition_point(|&v| v <= x);
    (below, upto - below)
}

/// Area under the ROC curve: the probability that an unknown scores higher than a known, ties
/// counted half (Mann–Whitney). NaN when either set is empty. Scores should be finite.
pub fn auroc(known_scores: &[f32], unknown_scores: &[f32]) -> f64 {
    if known_scores.is_empty() || unknown_scores.is_empty() {
        return f64::NAN;
    }
    let known = sorted(known_scores);
    let wins: f64 = unknown_scores
        .iter()
        .map(|&u| {
            let (below, equal) = below_and_equal(&known, u);
            below as f64 + 0.5 * equal as f64
        })
        .sum();
    wins / (known.len() as f64 * unknown_scores.len() as f64)
}

/// The smallest threshold that accepts (score ≤ threshold) at least the fraction `tpr` of the
/// known scores. `tpr` is clamped to [0, 1]; 0 gives a threshold just below every known score.
/// NaN when `known` is empty.
pub fn threshold_for_tpr(known: &[f32], tpr: f64) -> f32 {
    if known.is_empty() {
        return f32::NAN;
    }
    let known = sorted(known);
    // The epsilon keeps 0.07 × 100 = 7.000000000000001 from asking for 8 items.
    let needed = (tpr.clamp(0.0, 1.0) * known.len() as f64 - 1e-9)
        .ceil()
        .max(0.0) as usize;
    if needed == 0 {
        known[0].next_down()
    } else {
        known[needed - 1]
    }
}

/// Fraction of unknowns accepted at the threshold that accepts the fraction `tpr` of knowns
/// (FPR at e.g. 95 % TPR). NaN when either set is empty.
pub fn fpr_at_tpr(known: &[f32], unknown: &[f32], tpr: f64) -> f64 {
    if unknown.is_empty() {
        return f64::NAN;
    }
    let threshold = threshold_for_tpr(known, tpr);
    if threshold.is_nan() {
        return f64::NAN;
    }
    unknown.iter().filter(|&&u| u <= threshold).count() as f64 / unknown.len() as f64
}

/// One point of a ROC curve: at `threshold`, the fraction of knowns accepted (`tpr`) and of
/// unknowns accepted (`fpr`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    pub threshold: f32,
    pub tpr: f64,
    pub fpr: f64,
}

/// The ROC curve over every distinct score, from (0, 0) at threshold −∞ to (1, 1); its
/// trapezoidal area equals [`auroc`]. Empty when either set is empty.
pub fn roc_curve(known: &[f32], unknown: &[f32]) -> Vec<RocPoint> {
    if known.is_empty() || unknown.is_empty() {
        return Vec::new();
    }
    let (k, u) = (sorted(known), sorted(unknown));
    let mut all: Vec<f32> = k.iter().chain(&u).copied().collect();
    all.sort_unstable_by(f32::total_cmp);
    all.dedup();
    let mut curve = vec![RocPoint {
        threshold: f32::NEG_INFINITY,
        tpr: 0.0,
        fpr: 0.0,
    }];
    curve.extend(all.into_iter().map(|t| RocPoint {
        threshold: t,
        tpr: k.partition_point(|&v| v <= t) as f64 / k.len() as f64,
        fpr: u.partition_point(|&v| v <= t) as f64 / u.len() as f64,
    }));
    curve
}

/// Trapezoidal area under a ROC curve (x = fpr, y = tpr).
pub fn roc_area(curve: &[RocPoint]) -> f64 {
    curve
        .windows(2)
        .map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0)
        .sum()
}

/// Area under the precision–recall curve with the unknowns as positives (AUPR-Out: a higher
/// score means "more likely unknown"), as average precision: the mean, over the unknowns ranked
/// by descending score, of the precision at each one's rank; tied scores are ranked together.
/// Its chance level is the unknowns' share. NaN when either set is empty.
pub fn aupr(known: &[f32], unknown: &[f32]) -> f64 {
    if known.is_empty() || unknown.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f32, bool)> = known
        .iter()
        .map(|&s| (s, false))
        .chain(unknown.iter().map(|&s| (s, true)))
        .collect();
    all.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp, mut sum) = (0usize, 0usize, 0.0f64);
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        let mut positives = 0;
        while j < all.len() && all[j].0.total_cmp(&all[i].0).is_eq() {
            positives += usize::from(all[j].1);
            j += 1;
        }
        tp += positives;
        fp += (j - i) - positives;
        sum += positives as f64 * tp as f64 / (tp + fp) as f64;
        i = j;
    }
    sum / unknown.len() as f64
}
