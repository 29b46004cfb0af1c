//! The open-set scores, all from the same embeddings and all "higher = more likely unknown", each
//! with the class it names:
//!
//! - `prototypes`: distance to the nearest class prototype (mean training embedding).
//! - `knn`: the k-NN vote's mean distance to the winning class's voters (the gallery's k-NN mode).
//! - `knn-kth`: Euclidean distance from the L2-normalised query to its k-th nearest L2-normalised
//!   training embedding (Sun et al. 2022, "Out-of-distribution detection with deep nearest
//!   neighbors"); the class is the vote of those k.
//! - `mahalanobis`: the smallest `(x − μ_c)ᵀ Σ⁻¹ (x − μ_c)` over classes, with the class means
//!   `μ_c` and one covariance `Σ` shared by all classes, fitted on the training embeddings (Lee et
//!   al. 2018).
//! - `msp`, `energy`, `gini`: from the softmax head (a dense softmax layer trained with
//!   cross-entropy on the frozen training embeddings at calibration, [`super::gini`]): `1 − max p`
//!   (Hendrycks & Gimpel 2017, maximum softmax probability, negated), the energy `−log Σ exp(zᵢ)`
//!   of the logits (Liu et al. 2020), and the seeds' Gini impurity `1 − Σ pᵢ²`.
//! - `ensemble`: Fisher's combination of the p-values of conv1's channel statistics and of
//!   `mahalanobis` and `knn-kth` against the validation digits ([`super::ensemble`]); the class
//!   is `knn-kth`'s. It needs conv1's summaries of each image ([`Scorer::score_probed`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ensemble::{EnsembleFit, ProbedEmbeddings};
use super::gallery::{Gallery, GalleryMode};
use super::gini::SoftmaxLayer;
pub use super::mahalanobis::{invert_spd, MahalanobisFit};
use crate::distance::Distance;
use crate::eval::knn::nearest;
use crate::{Error, Result};

/// An open-set score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Score {
    Prototypes,
    Knn,
    KnnKth,
    Mahalanobis,
    Msp,
    Energy,
    Gini,
    Ensemble,
}

impl Score {
    /// Every score, in report order.
    pub const ALL: [Score; 8] = [
        Score::Prototypes,
        Score::Knn,
        Score::KnnKth,
        Score::Mahalanobis,
        Score::Msp,
        Score::Energy,
        Score::Gini,
        Score::Ensemble,
    ];

    /// The name used on the command line, in JSON and in the calibration file.
    pub fn name(&self) -> &'static str {
        match self {
            Score::Prototypes => "prototypes",
            Score::Knn => "knn",
            Score::KnnKth => "knn-kth",
            Score::Mahalanobis => "mahalanobis",
            Score::Msp => "msp",
            Score::Energy => "energy",
            Score::Gini => "gini",
            Score::Ensemble => "ensemble",
        }
    }

    /// The gallery mode this score is, for the two that are one.
    pub fn gallery_mode(&self) -> Option<GalleryMode> {
        match self {
            Score::Prototypes => Some(GalleryMode::Prototypes),
            Score::Knn => Some(GalleryMode::Knn),
            _ => None,
        }
    }

    /// Whether computing it needs the gallery's training embeddings (not only prototypes).
    pub fn needs_gallery_images(&self) -> bool {
        matches!(self, Score::Knn | Score::KnnKth | Score::Ensemble)
    }

    /// Whether computing it needs more of each image than its embedding (conv1's summaries).
    pub fn needs_probes(&self) -> bool {
        *self == Score::Ensemble
    }
}

impl From<GalleryMode> for Score {
    fn from(mode: GalleryMode) -> Self {
        match mode {
            GalleryMode::Prototypes => Score::Prototypes,
            GalleryMode::Knn => Score::Knn,
        }
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Score {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.to_ascii_lowercase().replace('_', "-");
        Score::ALL
            .into_iter()
            .find(|score| score.name() == s || (s == "prototype" && *score == Score::Prototypes))
            .ok_or_else(|| {
                let names: Vec<&str> = Score::ALL.iter().map(Score::name).collect();
                Error::config("score", format!("`{s}` is not one of {}", names.join(", ")))
            })
    }
}

/// Rows scaled to unit L2 norm (a zero row stays zero).
pub fn l2_normalised(x: &[f32], dim: usize) -> Vec<f32> {
    x.chunks_exact(dim)
        .flat_map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
            row.iter().map(move |v| v * scale)
        })
        .collect()
}

/// For each row of `queries`: the vote of its `k` nearest rows of `gallery` (both L2-normalised
/// first, Euclidean), and the distance to the k-th of them.
pub fn knn_kth(
    queries: &[f32],
    gallery: &[f32],
    labels: &[u32],
    dim: usize,
    k: usize,
) -> Vec<(u32, f32)> {
    let k = k.clamp(1, labels.len().max(1));
    let (q, g) = (l2_normalised(queries, dim), l2_normalised(gallery, dim));
    nearest(&q, &g, dim, Distance::Euclidean, k)
        .into_iter()
        .map(|hits| {
            let mut votes: Vec<(u32, usize)> = Vec::new();
            for &(j, _) in &hits {
                match votes.iter_mut().find(|v| v.0 == labels[j]) {
                    Some(v) => v.1 += 1,
                    None => votes.push((labels[j], 1)),
                }
            }
            // Most votes; among equals, the class met first (its nearest voter is nearer).
            let class = votes
                .iter()
                .fold((0, 0), |best, &v| if v.1 > best.1 { v } else { best })
                .0;
            (class, hits.last().map_or(f32::INFINITY, |h| h.1))
        })
        .collect()
}

/// `1 − max p`: the negated maximum softmax probability.
pub fn msp_score(p: &[f32]) -> f32 {
    1.0 - p.iter().copied().fold(0.0, f32::max)
}

/// The energy `−log Σ exp(zᵢ)` of logits `z` (temperature 1), computed stably.
pub fn energy_score(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    -(max + logits.iter().map(|&z| (z - max).exp()).sum::<f32>().ln())
}

/// `(class, score)` of each image.
pub type ScoredRows = Vec<(u32, f32)>;

/// Everything the scores are computed from.
pub struct Scorer<'a> {
    /// Training embeddings (for `knn`, `knn-kth`; prototypes only is enough for the others).
    pub gallery: &'a Gallery,
    pub k: usize,
    pub softmax: &'a SoftmaxLayer,
    pub mahalanobis: Option<&'a MahalanobisFit>,
    /// The conv1 fits and validation scores of `ensemble`.
    pub ensemble: Option<&'a EnsembleFit>,
}

impl Scorer<'_> {
    /// `(class, score)` of each image, any score (`ensemble` included).
    pub fn score_probed(&self, score: Score, probed: &ProbedEmbeddings) -> Result<Vec<(u32, f32)>> {
        if score != Score::Ensemble {
            return self.score(score, &probed.embeddings.values);
        }
        let values =
            |s: Score| -> Result<Vec<(u32, f32)>> { self.score(s, &probed.embeddings.values) };
        self.ensemble_of(
            probed,
            &values(Score::KnnKth)?,
            &values(Score::Mahalanobis)?,
        )
    }

    /// Every score of [`Score::ALL`], in that order, of each image; `ensemble` reuses the
    /// `knn-kth` and `mahalanobis` values computed for their own entries.
    pub fn score_all(&self, probed: &ProbedEmbeddings) -> Result<Vec<(Score, ScoredRows)>> {
        let mut out = Vec::with_capacity(Score::ALL.len());
        for score in Score::ALL {
            let values = if score == Score::Ensemble {
                let of = |s: Score| {
                    &out.iter()
                        .find(|(done, _): &&(Score, ScoredRows)| *done == s)
                        .expect("knn-kth and mahalanobis come before ensemble in ALL")
                        .1
                };
                self.ensemble_of(probed, of(Score::KnnKth), of(Score::Mahalanobis))?
            } else {
                self.score(score, &probed.embeddings.values)?
            };
            out.push((score, values));
        }
        Ok(out)
    }

    /// `ensemble` from conv1's summaries and the images' `knn-kth` and `mahalanobis` values;
    /// the class is `knn-kth`'s.
    fn ensemble_of(
        &self,
        probed: &ProbedEmbeddings,
        kth: &[(u32, f32)],
        maha: &[(u32, f32)],
    ) -> Result<Vec<(u32, f32)>> {
        let fit = self.ensemble.ok_or_else(|| {
            Error::config(
                "score",
                "`ensemble` needs the conv1 fits made at calibration",
            )
        })?;
        let [means, stds] = fit.conv1_components(probed);
        let values = |v: &[(u32, f32)]| v.iter().map(|p| p.1).collect();
        let combined = fit.combine(&[means, stds, values(maha), values(kth)])?;
        Ok(kth.iter().zip(combined).map(|(p, s)| (p.0, s)).collect())
    }

    /// `(class, score)` of each row of `embeddings` (`[n, dim]`).
    pub fn score(&self, score: Score, embeddings: &[f32]) -> Result<Vec<(u32, f32)>> {
        let dim = self.gallery.dim;
        if !embeddings.len().is_multiple_of(dim) {
            return Err(Error::config(
                "queries",
                format!("{} values are not rows of {dim}", embeddings.len()),
            ));
        }
        if score.needs_gallery_images() && self.gallery.is_empty() {
            return Err(Error::config(
                "gallery",
                format!(
                    "score `{score}` needs the gallery images, this gallery holds prototypes only"
                ),
            ));
        }
        let softmax_rows = |f: fn(&[f32]) -> f32, logits: bool| -> Vec<(u32, f32)> {
            let values = if logits {
                self.softmax.logits(embeddings)
            } else {
                self.softmax.probabilities(embeddings)
            };
            let classes = self.softmax.classes.max(1);
            values
                .chunks_exact(classes)
                .map(|row| (super::gini::argmax(row), f(row)))
                .collect()
        };
        Ok(match score {
            Score::Prototypes | Score::Knn => self
                .gallery
                .classify(
                    embeddings,
                    score.gallery_mode().expect("a gallery mode"),
                    self.k,
                )?
                .iter()
                .map(|m| (m.class, m.distance))
                .collect(),
            Score::KnnKth => knn_kth(
                embeddings,
                &self.gallery.embeddings,
                &self.gallery.labels,
                dim,
                self.k,
            ),
            Score::Mahalanobis => match self.mahalanobis {
                Some(fit) => fit.predict(embeddings),
                None => {
                    return Err(Error::config(
                        "score",
                        "`mahalanobis` needs the covariance fitted at calibration",
                    ))
                }
            },
            Score::Msp => softmax_rows(msp_score, false),
            Score::Energy => softmax_rows(energy_score, true),
            Score::Gini => softmax_rows(super::gini::gini_impurity, false),
            Score::Ensemble => {
                return Err(Error::config(
                    "score",
                    "`ensemble` needs conv1's summaries of each image, not only its embedding",
                ))
            }
        })
    }
}
