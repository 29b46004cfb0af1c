//! Predicting with a trained triplet head: the backbone features of every image a triplet file
//! names (through the feature cache), the head's embeddings of them (`[n, F] → [n, D]`), and per
//! triplet whether the anchor is closer to the second image than to the third.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::Serialize;

use super::head::{load_head, rows_tensor, TripletFeatures};
use crate::data::triplet_file::{read_triplets, TripletFile};
use crate::distance::Distance;
use crate::model::backbone::{Backbone, FeatureExtractor};
use crate::model::feature_cache::{CacheStats, ExtractOptions, FeatureCache};
use crate::model::head::TripletHead;
use crate::{Error, Result};

/// Embeds feature rows with a trained head: `[n, F] → [n, D]` row-major.
pub fn embed_features(head: &TripletHead, features: &[f32], dim: usize) -> Result<Vec<f32>> {
    let device = Device::default();
    let rows = features.len() / dim;
    let mut out = Vec::new();
    for start in (0..rows).step_by(1024) {
        let idx: Vec<usize> = (start..(start + 1024).min(rows)).collect();
        let e = head.forward(rows_tensor(features, dim, &idx, &device));
        out.extend(
            e.into_data()
                .try_to_vec::<f32>()
                .map_err(|e| Error::Other(format!("{e:?}")))?,
        );
    }
    Ok(out)
}

/// For each triplet, whether the anchor is closer to the positive (second) than to the negative
/// (third) under `distance`; `vectors` holds `dim`-long rows.
pub fn closer_to_second(
    vectors: &[f32],
    dim: usize,
    triplets: &[[usize; 3]],
    distance: Distance,
) -> Vec<bool> {
    let row = |i: usize| &vectors[i * dim..(i + 1) * dim];
    triplets
        .iter()
        .map(|t| distance.between(row(t[0]), row(t[1])) < distance.between(row(t[0]), row(t[2])))
        .collect()
}

/// Backbone features of every image a triplet file names, through the on-disk cache in
/// `cache_dir`: `(features, cache statistics)`.
pub fn triplet_file_features(
    file: &TripletFile,
    images: &Path,
    backbone: &Backbone,
    cache_dir: &Path,
    progress: bool,
) -> Result<(TripletFeatures, CacheStats)> {
    let (names, triplets) = file.image_index();
    let paths: Vec<PathBuf> = names.iter().map(|n| images.join(n)).collect();
    let mut cache = FeatureCache::open(cache_dir, &backbone.id(), backbone.feature_dim())?;
    let options = ExtractOptions {
        progress,
        ..ExtractOptions::default()
    };
    let (features, stats) = cache.features(backbone, &paths, &options, &Device::default())?;
    Ok((
        TripletFeatures {
            features,
            dim: backbone.feature_dim(),
            triplets,
        },
        stats,
    ))
}

/// What `siamese triplets predict` reports.
#[derive(Debug, Clone, Serialize)]
pub struct PredictOutcome {
    /// Per triplet, in file order: the anchor is closer to the second image than to the third.
    pub predictions: Vec<bool>,
    /// Share of `true` predictions: the accuracy when the file puts the positive second.
    pub accuracy: f64,
    /// The same rule on the raw backbone features (no head), Euclidean and cosine distance.
    pub raw_feature_accuracy_euclidean: f64,
    pub raw_feature_accuracy_cosine: f64,
    pub features: CacheStats,
}

/// Predicts every triplet of `triplets` (image names under `images`) with the head in `run`.
pub fn predict_triplet_file(
    run: &Path,
    images: &Path,
    triplets: &Path,
    cache_dir: &Path,
    progress: bool,
) -> Result<PredictOutcome> {
    let device = Device::default();
    let (head, config) = load_head(run, &device)?;
    let file = read_triplets(triplets, images)?;
    let backbone = Backbone::load(config.backbone, config.backbone_weights.as_deref(), &device)?;
    if backbone.id() != config.backbone_id {
        return Err(Error::format(
            run,
            format!(
                "the head was trained on `{}` features but the backbone now is `{}`",
                config.backbone_id,
                backbone.id()
            ),
        ));
    }
    let (data, stats) = triplet_file_features(&file, images, &backbone, cache_dir, progress)?;
    let embedded = embed_features(&head, &data.features, data.dim)?;
    let predictions = closer_to_second(&embedded, config.head.dim, &data.triplets, config.distance);
    let share = |v: &[bool]| v.iter().filter(|&&b| b).count() as f64 / v.len() as f64;
    let raw = |d: Distance| {
        share(&closer_to_second(
            &data.features,
            data.dim,
            &data.triplets,
            d,
        ))
    };
    Ok(PredictOutcome {
        accuracy: share(&predictions),
        raw_feature_accuracy_euclidean: raw(Distance::Euclidean),
        raw_feature_accuracy_cosine: raw(Distance::Cosine),
        predictions,
        features: stats,
    })
}
