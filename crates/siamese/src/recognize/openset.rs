//! Open-set evaluation of a calibrated run: known images (the run's test split, e.g. MNIST test
//! digits) against one or several unknown sets ([`super::unknown_sets`]), every score of
//! [`Score`] side by side, each with its threshold calibrated on validation digits: AUROC, FPR at
//! 95 % TPR, AUPR, and at the calibrated threshold the share of digits accepted, the digit
//! accuracy among them and the share of unknowns rejected (per unknown class too).
//!
//! A run trained with outlier exposure is never tested on the set it was exposed to: naming one
//! is an error, and `all` leaves such sets out (listed in the report).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::calibration::{gallery_path, model_fingerprint, Calibration, Thresholds};
use super::ensemble::embed_probed;
use super::gallery::{Gallery, GalleryMode};
use super::recognizer::{calibrate_run, CalibrateOptions};
use super::scores::{Score, Scorer};
use super::unknown_sets::omniglot_alphabets;
use crate::data::LabelledImages;
use crate::eval::openset::{aupr, auroc, fpr_at_tpr};
use crate::run::{load_data_source, load_inference_model};
use crate::train::checkpoint::load_config;
use crate::train::outliers::OutlierSource;
use crate::{Error, Result};

pub use super::unknown_sets::{
    omniglot_zip, parse_unknown_list, NoiseKind, UnknownSet, UnknownSource, OMNIGLOT_ENV,
};

/// One open-set method's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodScores {
    /// The score's name (see [`Score`]).
    pub method: String,
    /// AUROC of known vs unknown by the method's score.
    pub auroc: f64,
    /// Area under the precision–recall curve, unknowns as positives (AUPR-Out).
    pub aupr: f64,
    /// Share of unknowns accepted at the threshold that accepts 95 % of the known test images.
    pub fpr_at_95_tpr: f64,
    /// The calibrated global threshold (per-class ones are used when `per_class` is set).
    pub threshold: f32,
    /// Share of known test images accepted at the calibrated threshold (its TPR on test data).
    pub known_accepted: f64,
    /// Classification accuracy among the accepted known images.
    pub accepted_accuracy: f64,
    /// Classification accuracy over all known images, ignoring the threshold.
    pub closed_set_accuracy: f64,
    /// Share of unknown images rejected at the calibrated threshold.
    pub unknown_rejected: f64,
}

/// Scores of one method on the known and unknown images.
#[derive(Debug, Clone)]
pub struct MethodRun {
    pub scores: MethodScores,
    pub known_scores: Vec<f32>,
    pub unknown_scores: Vec<f32>,
    /// Whether each unknown image was (wrongly) accepted at the threshold.
    pub unknown_accepted: Vec<bool>,
}

/// Computes a method's figures from its `(predicted class, score)` pairs.
pub fn method_scores(
    method: &str,
    known: &[(u32, f32)],
    known_labels: &[u32],
    unknown: &[(u32, f32)],
    thresholds: &Thresholds,
    per_class: bool,
) -> MethodRun {
    let ks: Vec<f32> = known.iter().map(|p| p.1).collect();
    let us: Vec<f32> = unknown.iter().map(|p| p.1).collect();
    let accepts = |&(c, s): &(u32, f32)| s <= thresholds.for_class(c, per_class);
    let accepted: Vec<bool> = known.iter().map(accepts).collect();
    let n_accepted = accepted.iter().filter(|&&a| a).count();
    let correct_accepted = known
        .iter()
        .zip(known_labels)
        .zip(&accepted)
        .filter(|((p, &l), &a)| a && p.0 == l)
        .count();
    let correct = known
        .iter()
        .zip(known_labels)
        .filter(|(p, &l)| p.0 == l)
        .count();
    let ratio = |a: usize, b: usize| {
        if b == 0 {
            f64::NAN
        } else {
            a as f64 / b as f64
        }
    };
    MethodRun {
        scores: MethodScores {
            method: method.to_string(),
            auroc: auroc(&ks, &us),
            aupr: aupr(&ks, &us),
            fpr_at_95_tpr: fpr_at_tpr(&ks, &us, 0.95),
            threshold: thresholds.global,
            known_accepted: ratio(n_accepted, known.len()),
            accepted_accuracy: ratio(correct_accepted, n_accepted),
            closed_set_accuracy: ratio(correct, known.len()),
            unknown_rejected: ratio(
                unknown.iter().filter(|u| !accepts(u)).count(),
                unknown.len(),
            ),
        },
        known_scores: ks,
        unknown_scores: us,
        unknown_accepted: unknown.iter().map(accepts).collect(),
    }
}

/// How the open-set evaluation runs.
#[derive(Debug, Clone)]
pub struct OpensetOptions {
    /// The unknown set of [`evaluate_openset`] ([`evaluate_openset_sets`] takes its sets apart).
    pub unknown: UnknownSource,
    /// At most this many unknown images per set (a stratified subset).
    pub max_unknown: usize,
    /// The headline gallery mode (every score is reported).
    pub gallery: Option<GalleryMode>,
    /// The headline score; overrides `gallery`. Default: the calibration's gallery mode.
    pub score: Option<Score>,
    pub per_class: bool,
    /// The Omniglot zip or folder of zips, for `omniglot*` sources.
    pub omniglot: Option<PathBuf>,
    /// Unknown classes left out of [`evaluate_openset`]'s set (e.g. `l` and `o`, which are
    /// written exactly like the digits 1 and 0, so no digit model can call them unknown).
    pub exclude_unknown: Vec<String>,
    /// Used when the run is not calibrated yet (or was calibrated for another checkpoint).
    pub calibrate: CalibrateOptions,
}

impl OpensetOptions {
    /// Defaults: 10,000 unknowns, the calibration's gallery mode, global thresholds.
    pub fn new(unknown: UnknownSource) -> Self {
        OpensetOptions {
            unknown,
            max_unknown: 10_000,
            gallery: None,
            score: None,
            per_class: false,
            omniglot: None,
            exclude_unknown: Vec::new(),
            calibrate: CalibrateOptions::default(),
        }
    }
}

/// One unknown set's figures. The headline score's are at the top level.
#[derive(Debug, Clone, Serialize)]
pub struct OpensetReport {
    pub unknown_source: String,
    pub known_images: usize,
    pub unknown_images: usize,
    pub target_tpr: f64,
    pub per_class: bool,
    pub k: usize,
    /// Whether this evaluation had to calibrate the run first.
    pub calibrated_now: bool,
    /// The headline score.
    #[serde(flatten)]
    pub headline: MethodScores,
    /// The Gini-of-softmax baseline.
    pub gini: MethodScores,
    /// Every score, in [`Score::ALL`]'s order.
    pub methods: Vec<MethodScores>,
    /// The headline score's rejection rate for each unknown class (e.g. each letter), so a
    /// user sees which unknowns pass for known classes.
    pub unknown_rejected_by_class: BTreeMap<String, f64>,
    /// The distance histogram, when written.
    pub histogram_png: Option<PathBuf>,
}

/// Everything an open-set evaluation of one set computed, for the report and the histogram.
pub struct OpensetResult {
    pub report: OpensetReport,
    /// The headline score's values (for the histogram).
    pub headline: MethodRun,
}

/// What `siamese openset` reports: one [`OpensetReport`] per unknown set.
#[derive(Debug, Clone, Serialize)]
pub struct OpensetSetsReport {
    pub known_images: usize,
    pub target_tpr: f64,
    pub per_class: bool,
    pub k: usize,
    pub calibrated_now: bool,
    /// The headline score.
    pub score: String,
    /// Every score reported, in order.
    pub scores: Vec<String>,
    /// The outlier set the model was exposed to in training (never among the tested sets).
    pub seen_in_training: Option<String>,
    /// Sets of `all` left out, each with why.
    pub skipped: Vec<String>,
    pub sets: Vec<OpensetReport>,
}

/// The report and each set's headline values.
pub struct OpensetSetsResult {
    pub report: OpensetSetsReport,
    pub results: Vec<OpensetResult>,
}

/// Loads the run's calibration, calibrating first when it is missing or stale.
pub fn ensure_calibrated(run: &Path, options: &CalibrateOptions) -> Result<(Calibration, bool)> {
    match Calibration::load(run) {
        // A calibration made before a score existed is made again (with the options given).
        Ok(c)
            if c.model_sha256 == model_fingerprint(run)?
                && Score::ALL.iter().all(|&s| c.score_thresholds(s).is_some()) =>
        {
            Ok((c, false))
        }
        Ok(_) => Ok((calibrate_run(run, options)?, true)),
        Err(_) if !super::calibration::calibration_path(run).exists() => {
            Ok((calibrate_run(run, options)?, true))
        }
        Err(e) => Err(e),
    }
}

/// The outlier set a run was trained with, if any.
pub fn exposure_of(run: &Path) -> Result<Option<OutlierSource>> {
    Ok(load_config(run)?.outliers.map(|e| e.source))
}

/// Refuses a tested set that the run's outlier exposure saw in training.
pub fn check_disjoint(exposure: Option<&OutlierSource>, set: &UnknownSource) -> Result<()> {
    match exposure {
        Some(seen) if seen.overlaps(set) => Err(Error::config(
            "unknown",
            format!(
                "`{set}` was seen in training (outlier exposure {}); test on sets disjoint from it",
                seen.label()
            ),
        )),
        _ => Ok(()),
    }
}

/// Runs the open-set evaluation of one set (`options.unknown` less `options.exclude_unknown`;
/// `omniglot` counts as one set), calibrating the run first if needed. No file is written
/// besides the calibration.
pub fn evaluate_openset(run: &Path, options: &OpensetOptions) -> Result<OpensetResult> {
    let set = UnknownSet {
        source: options.unknown.clone(),
        exclude: options.exclude_unknown.clone(),
    };
    let ctx = KnownSide::new(run, options)?;
    check_disjoint(ctx.exposure.as_ref(), &set.source)?;
    ctx.evaluate(&set, options)
}

/// Runs the open-set evaluation of several sets against the same known images, embedded once;
/// `omniglot` becomes one set per alphabet, leaving out (and listing) the alphabets the run was
/// exposed to in training. A set named explicitly that the run was exposed to is an error.
pub fn evaluate_openset_sets(
    run: &Path,
    sets: &[UnknownSet],
    options: &OpensetOptions,
) -> Result<OpensetSetsResult> {
    let ctx = KnownSide::new(run, options)?;
    let exposure = ctx.exposure.as_ref();
    let mut expanded = Vec::new();
    let mut skipped = Vec::new();
    for set in sets {
        if set.source == UnknownSource::OmniglotAll {
            let alphabets = match omniglot_alphabets(options.omniglot.as_deref()) {
                Ok(a) => a,
                Err(e) if sets.len() > 1 => {
                    skipped.push(format!("omniglot: {e}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (alphabet, _) in alphabets {
                let source = UnknownSource::Omniglot { alphabet };
                if exposure.is_some_and(|seen| seen.overlaps(&source)) {
                    skipped.push(format!("{source}: seen in training"));
                } else {
                    expanded.push(UnknownSet::new(source));
                }
            }
        } else {
            check_disjoint(exposure, &set.source)?;
            expanded.push(set.clone());
        }
    }
    let mut results = Vec::new();
    for set in &expanded {
        results.push(ctx.evaluate(set, options)?);
    }
    Ok(OpensetSetsResult {
        report: OpensetSetsReport {
            known_images: ctx.labels.len(),
            target_tpr: ctx.calibration.target_tpr,
            per_class: options.per_class,
            k: ctx.calibration.k,
            calibrated_now: ctx.calibrated_now,
            score: ctx.headline.name().to_string(),
            scores: Score::ALL.iter().map(|s| s.name().to_string()).collect(),
            seen_in_training: exposure.map(OutlierSource::label),
            skipped,
            sets: results.iter().map(|r| r.report.clone()).collect(),
        },
        results,
    })
}

/// The known side of an evaluation, computed once: the model, its calibration, the test
/// digits' labels and each score's `(class, score)` on them.
struct KnownSide {
    calibration: Calibration,
    calibrated_now: bool,
    model: crate::model::embedding_cnn::EmbeddingCnn,
    gallery: Gallery,
    labels: Vec<u32>,
    known: Vec<(Score, Vec<(u32, f32)>)>,
    headline: Score,
    seed: u64,
    exposure: Option<OutlierSource>,
}

impl KnownSide {
    fn new(run: &Path, options: &OpensetOptions) -> Result<Self> {
        let (calibration, calibrated_now) = ensure_calibrated(run, &options.calibrate)?;
        let config = load_config(run)?;
        let headline = options
            .score
            .or(options.gallery.map(Score::from))
            .unwrap_or_else(|| calibration.default_gallery.into());
        for score in Score::ALL {
            calibration.require_score(run, score)?;
        }
        let splits = load_data_source(run)?.load(config.val_fraction, config.seed)?;
        let model = load_inference_model(run)?;
        let known_emb = embed_probed(&model, &splits.test)?;
        let classes = calibration.class_names.len();
        let gallery = Gallery::load_embeddings(&gallery_path(run), classes, calibration.distance)?;
        let mut side = KnownSide {
            calibration,
            calibrated_now,
            model,
            gallery,
            labels: splits.test.labels.clone(),
            known: Vec::new(),
            headline,
            seed: config.seed,
            exposure: config.outliers.map(|e| e.source),
        };
        side.known = side.scorer().score_all(&known_emb)?;
        Ok(side)
    }

    fn scorer(&self) -> Scorer<'_> {
        Scorer {
            gallery: &self.gallery,
            k: self.calibration.k,
            softmax: &self.calibration.gini.softmax,
            mahalanobis: self.calibration.mahalanobis.as_ref(),
            ensemble: self.calibration.ensemble.as_ref(),
        }
    }

    fn thresholds(&self, score: Score) -> &Thresholds {
        self.calibration
            .score_thresholds(score)
            .expect("checked when the known side was built")
    }

    /// Loads, embeds and scores one unknown set.
    fn evaluate(&self, set: &UnknownSet, options: &OpensetOptions) -> Result<OpensetResult> {
        let unknown =
            set.source
                .load(options.max_unknown, self.seed, options.omniglot.as_deref())?;
        let unknown = exclude_classes(unknown, &set.exclude, &set.source)?;
        let unknown_emb = embed_probed(&self.model, &unknown)?;
        let mut runs = Vec::new();
        let unknown_scores = self.scorer().score_all(&unknown_emb)?;
        for ((score, known), (_, unknown)) in self.known.iter().zip(&unknown_scores) {
            runs.push(method_scores(
                score.name(),
                known,
                &self.labels,
                unknown,
                self.thresholds(*score),
                options.per_class,
            ));
        }
        let at = |s: Score| Score::ALL.iter().position(|&a| a == s).expect("in ALL");
        let headline = runs[at(self.headline)].clone();
        let mut by_class: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (&label, &accepted) in unknown.labels.iter().zip(&headline.unknown_accepted) {
            let name = unknown
                .class_names
                .get(label as usize)
                .cloned()
                .unwrap_or_else(|| label.to_string());
            let entry = by_class.entry(name).or_default();
            entry.0 += usize::from(!accepted);
            entry.1 += 1;
        }
        Ok(OpensetResult {
            report: OpensetReport {
                unknown_source: set.label(),
                known_images: self.labels.len(),
                unknown_images: unknown.len(),
                target_tpr: self.calibration.target_tpr,
                per_class: options.per_class,
                k: self.calibration.k,
                calibrated_now: self.calibrated_now,
                headline: headline.scores.clone(),
                gini: runs[at(Score::Gini)].scores.clone(),
                methods: runs.iter().map(|r| r.scores.clone()).collect(),
                unknown_rejected_by_class: by_class
                    .into_iter()
                    .map(|(name, (rejected, all))| (name, rejected as f64 / all as f64))
                    .collect(),
                histogram_png: None,
            },
            headline,
        })
    }
}

/// `unknown` without the images of the classes named in `exclude`; a name that is not one of
/// its classes is an error.
fn exclude_classes(
    unknown: LabelledImages,
    exclude: &[String],
    source: &UnknownSource,
) -> Result<LabelledImages> {
    if exclude.is_empty() {
        return Ok(unknown);
    }
    for name in exclude {
        if !unknown.class_names.contains(name) {
            return Err(Error::config(
                "excluded unknown class",
                format!("`{name}` is not a class of {source}"),
            ));
        }
    }
    let kept: Vec<usize> = (0..unknown.len())
        .filter(|&i| !exclude.contains(&unknown.class_names[unknown.labels[i] as usize]))
        .collect();
    Ok(unknown.subset(&kept))
}
