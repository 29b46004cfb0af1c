//! The gallery a query is recognised against: embeddings of the training images (`[n, D]`
//! row-major with their labels) and one prototype per class (the class's mean embedding,
//! `[classes, D]`).
//!
//! Two ways to name a query, selectable with [`GalleryMode`]:
//! - **prototypes**: the class of the nearest prototype; the score is the distance to it.
//! - **k-NN**: the majority class among the `k` nearest gallery images (a tie goes to the class
//!   whose voters are nearer on average); the score is the mean distance to that class's voters.
//!
//! In both the score grows as a query looks less like any known class: it is the open-set
//! "unknown" score that a calibrated threshold cuts.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::distance::Distance;
use crate::eval::knn::nearest;
use crate::{Error, Result};

/// How a query is matched against the gallery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GalleryMode {
    /// Nearest class prototype (mean embedding).
    #[default]
    Prototypes,
    /// Majority vote of the k nearest training images.
    Knn,
}

impl GalleryMode {
    /// The name used on the command line and in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            GalleryMode::Prototypes => "prototypes",
            GalleryMode::Knn => "knn",
        }
    }
}

impl fmt::Display for GalleryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GalleryMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "prototypes" | "prototype" => Ok(GalleryMode::Prototypes),
            "knn" | "k-nn" => Ok(GalleryMode::Knn),
            other => Err(Error::config(
                "gallery",
                format!("`{other}` is not `prototypes` or `knn`"),
            )),
        }
    }
}

/// The class a query was matched to and its unknown score (a distance).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    pub class: u32,
    pub distance: f32,
}

/// Training embeddings with labels, and the class prototypes.
#[derive(Debug, Clone)]
pub struct Gallery {
    /// `[n, dim]` row-major.
    pub embeddings: Vec<f32>,
    pub labels: Vec<u32>,
    /// `[classes, dim]` row-major: mean embedding of each class.
    pub prototypes: Vec<f32>,
    pub dim: usize,
    pub classes: usize,
    pub distance: Distance,
}

/// Mean embedding of each class, `[classes, dim]`. Every class must have an image.
pub fn class_prototypes(
    embeddings: &[f32],
    labels: &[u32],
    dim: usize,
    classes: usize,
) -> Result<Vec<f32>> {
    if dim == 0 || embeddings.len() != labels.len() * dim {
        return Err(Error::config(
            "gallery",
            format!(
                "{} embedding values do not make {} rows of {dim}",
                embeddings.len(),
                labels.len()
            ),
        ));
    }
    let mut sums = vec![0f64; classes * dim];
    let mut counts = vec![0usize; classes];
    for (row, &label) in embeddings.chunks_exact(dim).zip(labels) {
        let c = label as usize;
        if c >= classes {
            return Err(Error::config(
                "gallery",
                format!("label {c} with only {classes} classes"),
            ));
        }
        counts[c] += 1;
        for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row) {
            *s += v as f64;
        }
    }
    if let Some(empty) = counts.iter().position(|&n| n == 0) {
        return Err(Error::config(
            "gallery",
            format!("class {empty} has no training image to build its prototype from"),
        ));
    }
    Ok(sums
        .chunks_exact(dim)
        .zip(&counts)
        .flat_map(|(s, &n)| s.iter().map(move |&v| (v / n as f64) as f32))
        .collect())
}

impl Gallery {
    /// A gallery of `embeddings` (`[labels.len(), dim]`) with `classes` classes.
    pub fn new(
        embeddings: Vec<f32>,
        labels: Vec<u32>,
        dim: usize,
        classes: usize,
        distance: Distance,
    ) -> Result<Self> {
        let prototypes = class_prototypes(&embeddings, &labels, dim, classes)?;
        Ok(Gallery {
            embeddings,
            labels,
            prototypes,
            dim,
            classes,
            distance,
        })
    }

    /// A prototype-only gallery (no images: [`GalleryMode::Knn`] is unavailable).
    pub fn from_prototypes(
        prototypes: Vec<f32>,
        dim: usize,
        classes: usize,
        distance: Distance,
    ) -> Result<Self> {
        if dim == 0 || classes == 0 || prototypes.len() != dim * classes {
            return Err(Error::config(
                "prototypes",
                format!(
                    "{} values are not {classes} rows of {dim}",
                    prototypes.len()
                ),
            ));
        }
        Ok(Gallery {
            embeddings: Vec::new(),
            labels: Vec::new(),
            prototypes,
            dim,
            classes,
            distance,
        })
    }

    /// Number of gallery images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the gallery holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Matches every row of `queries` (`[m, dim]`); `k` is used by [`GalleryMode::Knn`] only
    /// (at least 1, at most the gallery's size). k-NN on a prototype-only gallery is an error.
    pub fn classify(&self, queries: &[f32], mode: GalleryMode, k: usize) -> Result<Vec<Match>> {
        if !queries.len().is_multiple_of(self.dim) {
            return Err(Error::config(
                "queries",
                format!("{} values are not rows of {}", queries.len(), self.dim),
            ));
        }
        if mode == GalleryMode::Knn && self.is_empty() {
            return Err(Error::config(
                "gallery",
                "k-NN needs the gallery images, this gallery holds prototypes only",
            ));
        }
        Ok(match mode {
            GalleryMode::Prototypes => {
                nearest(queries, &self.prototypes, self.dim, self.distance, 1)
                    .into_iter()
                    .map(|hits| {
                        let (class, distance) = hits[0];
                        Match {
                            class: class as u32,
                            distance,
                        }
                    })
                    .collect()
            }
            GalleryMode::Knn => {
                let k = k.clamp(1, self.len().max(1));
                nearest(queries, &self.embeddings, self.dim, self.distance, k)
                    .into_iter()
                    .map(|hits| self.vote(&hits))
                    .collect()
            }
        })
    }

    /// Majority vote over nearest-first `(gallery index, distance)` hits.
    fn vote(&self, hits: &[(usize, f32)]) -> Match {
        // (class, votes, summed distance), in first-met order.
        let mut tally: Vec<(u32, usize, f32)> = Vec::new();
        for &(j, d) in hits {
            let c = self.labels[j];
            match tally.iter_mut().find(|t| t.0 == c) {
                Some(t) => {
                    t.1 += 1;
                    t.2 += d;
                }
                None => tally.push((c, 1, d)),
            }
        }
        let best = tally
            .iter()
            .copied()
            .reduce(|a, b| {
                let (ma, mb) = (a.2 / a.1 as f32, b.2 / b.1 as f32);
                if b.1 > a.1 || (b.1 == a.1 && mb < ma) {
                    b
                } else {
                    a
                }
            })
            .unwrap_or((0, 1, f32::INFINITY));
        Match {
            class: best.0,
            distance: best.2 / best.1 as f32,
        }
    }

    /// Writes the gallery's embeddings and labels as safetensors (`embeddings` F32 `[n, dim]`,
    /// `labels` U32 `[n]`), atomically.
    pub fn save_embeddings(&self, path: &Path) -> Result<()> {
        let emb_bytes: Vec<u8> = self
            .embeddings
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let label_bytes: Vec<u8> = self.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
        let bad = |e: safetensors::SafeTensorError| Error::format(path, e.to_string());
        let emb =
            TensorView::new(Dtype::F32, vec![self.len(), self.dim], &emb_bytes).map_err(bad)?;
        let labels = TensorView::new(Dtype::U32, vec![self.len()], &label_bytes).map_err(bad)?;
        let bytes =
            safetensors::serialize([("embeddings", emb), ("labels", labels)], None).map_err(bad)?;
        crate::output::write_atomic(path, &bytes)
    }

    /// Reads a file written by [`Gallery::save_embeddings`] and rebuilds the gallery.
    pub fn load_embeddings(path: &Path, classes: usize, distance: Distance) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |msg: String| Error::format(path, msg);
        let tensors = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a gallery file: {e}")))?;
        let emb = tensors
            .tensor("embeddings")
            .map_err(|e| bad(format!("no `embeddings`: {e}")))?;
        let labels = tensors
            .tensor("labels")
            .map_err(|e| bad(format!("no `labels`: {e}")))?;
        let (shape, lshape) = (emb.shape().to_vec(), labels.shape().to_vec());
        if emb.dtype() != Dtype::F32
            || labels.dtype() != Dtype::U32
            || shape.len() != 2
            || lshape != [shape[0]]
        {
            return Err(bad(format!(
                "expected F32 embeddings [n, d] and U32 labels [n], found {:?} {shape:?} and {:?} {lshape:?}",
                emb.dtype(),
                labels.dtype()
            )));
        }
        let embeddings: Vec<f32> = emb
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let labels: Vec<u32> = labels
            .data()
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Gallery::new(embeddings, labels, shape[1], classes, distance)
            .map_err(|e| bad(e.to_string()))
    }
}
