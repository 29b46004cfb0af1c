//! Frozen ImageNet feature extractors behind one trait, so the triplet head, the faces plots and
//! the feature cache work with any of them.
//!
//! Shapes: [`FeatureExtractor::extract`] maps `[B, 3, S, S]` normalised ImageNet input (see
//! [`crate::model::imagenet`]) to `[B, F]` pooled features (F = 1280 for MobileNetV2, 2048 for
//! ResNet-50).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::imagenet::Preprocess;
use super::mobilenet_v2::MobileNetV2;
use super::resnet50::ResNet50;
use super::weights::Weights;
use crate::assets::backbone as assets;
use crate::{Error, Result};

/// A frozen network that turns preprocessed images into feature vectors.
pub trait FeatureExtractor {
    /// Identifies the network, its weights and its preprocessing; feature caches are keyed by it,
    /// e.g. `mobilenet_v2-b0353104-r256c224`.
    fn id(&self) -> String;
    /// Length of one feature vector.
    fn feature_dim(&self) -> usize;
    /// How image files are turned into network input.
    fn preprocess(&self) -> Preprocess;
    /// Features of a batch: `[B, 3, S, S] → [B, F]`.
    fn extract(&self, images: Tensor<4>) -> Tensor<2>;
}

/// The architectures this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackboneKind {
    MobileNetV2,
    ResNet50,
}

impl BackboneKind {
    /// Every kind, as listed on the command line.
    pub const ALL: [BackboneKind; 2] = [BackboneKind::MobileNetV2, BackboneKind::ResNet50];

    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            BackboneKind::MobileNetV2 => "mobilenet_v2",
            BackboneKind::ResNet50 => "resnet50",
        }
    }

    /// Length of the pooled features.
    pub fn feature_dim(self) -> usize {
        match self {
            BackboneKind::MobileNetV2 => super::mobilenet_v2::FEATURE_DIM,
            BackboneKind::ResNet50 => super::resnet50::FEATURE_DIM,
        }
    }

    /// The weights file used when none is given: the fetched MobileNetV2; ResNet-50 has none
    /// (no registry ships its weights).
    pub fn default_weights(self) -> Result<PathBuf> {
        match self {
            BackboneKind::MobileNetV2 => {
                let path = assets::mobilenet_v2_path();
                if !assets::mobilenet_v2_present() {
                    return Err(Error::MissingAsset {
                        path,
                        what: "backbone mobilenet_v2".into(),
                    });
                }
                // Content, not only size: a corrupted cache is an error here, not wrong features.
                assets::verify_mobilenet_v2()?;
                Ok(path)
            }
            BackboneKind::ResNet50 => Err(Error::config(
                "weights",
                "resnet50 needs a weights file (torchvision `.pth` or safetensors); no package ships one",
            )),
        }
    }
}

impl fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackboneKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        BackboneKind::ALL
            .into_iter()
            .find(|k| k.name() == s || k.name().replace('_', "-") == s)
            .ok_or_else(|| {
                Error::config(
                    "backbone",
                    format!("unknown backbone `{s}` (known: mobilenet_v2, resnet50)"),
                )
            })
    }
}

/// A loaded backbone.
#[derive(Debug, Clone)]
pub struct Backbone {
    kind: BackboneKind,
    network: Network,
    /// First 8 hex digits of the weights file's SHA-256 (part of [`FeatureExtractor::id`]).
    weights_tag: String,
    preprocess: Preprocess,
}

#[derive(Debug, Clone)]
enum Network {
    MobileNetV2(Box<MobileNetV2>),
    ResNet50(Box<ResNet50>),
}

impl Backbone {
    /// Loads `kind` from `weights` (or its default weights) onto `device`.
    pub fn load(kind: BackboneKind, weights: Option<&Path>, device: &Device) -> Result<Backbone> {
        let path = match weights {
            Some(p) => p.to_path_buf(),
            None => kind.default_weights()?,
        };
        let weights_tag = assets::sha256_file(&path)?[..8].to_string();
        let tensors = Weights::load(&path)?;
        let network = match kind {
            BackboneKind::MobileNetV2 => {
                Network::MobileNetV2(Box::new(MobileNetV2::from_weights(tensors, device)?))
            }
            BackboneKind::ResNet50 => {
                Network::ResNet50(Box::new(ResNet50::from_weights(tensors, device)?))
            }
        };
        Ok(Backbone {
            kind,
            network,
            weights_tag,
            preprocess: Preprocess::default(),
        })
    }

    /// Loads `kind` onto the default (CPU) device.
    pub fn load_cpu(kind: BackboneKind, weights: Option<&Path>) -> Result<Backbone> {
        Backbone::load(kind, weights, &Device::default())
    }

    /// The architecture.
    pub fn kind(&self) -> BackboneKind {
        self.kind
    }

    /// ImageNet logits from pooled features: `[B, F] → [B, 1000]`.
    pub fn classify_features(&self, features: Tensor<2>) -> Tensor<2> {
        match &self.network {
            Network::MobileNetV2(n) => n.classify_features(features),
            Network::ResNet50(n) => n.classify_features(features),
        }
    }
}

impl FeatureExtractor for Backbone {
    fn id(&self) -> String {
        format!(
            "{}-{}-{}",
            self.kind.name(),
            self.weights_tag,
            self.preprocess.id()
        )
    }

    fn feature_dim(&self) -> usize {
        self.kind.feature_dim()
    }

    fn preprocess(&self) -> Preprocess {
        self.preprocess
    }

    fn extract(&self, images: Tensor<4>) -> Tensor<2> {
        match &self.network {
            Network::MobileNetV2(n) => n.features(images),
            Network::ResNet50(n) => n.features(images),
        }
    }
}

/// Runs `extractor` over preprocessed images (each `preprocess().len()` values, CHW), in
/// batches of `batch`; returns the features row-major, `[n, F]`.
pub fn extract_batched(
    extractor: &dyn FeatureExtractor,
    images: &[Vec<f32>],
    batch: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    let side = extractor.preprocess().crop as usize;
    let mut out = Vec::with_capacity(images.len() * extractor.feature_dim());
    for chunk in images.chunks(batch.max(1)) {
        let mut pixels = Vec::with_capacity(chunk.len() * 3 * side * side);
        for img in chunk {
            pixels.extend_from_slice(img);
        }
        let x = Tensor::<4>::from_data(
            TensorData::new(pixels, [chunk.len(), 3, side, side]),
            device,
        );
        let f = extractor.extract(x);
        let values = f
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| Error::Other(format!("cannot read backbone output: {e:?}")))?;
        // Corrupt weights can overflow: never hand on NaN features (they would become NaN
        // distances and silent wrong answers downstream).
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Error::Other(format!(
                "{}: the backbone's features are not finite: its weights are corrupt",
                extractor.id()
            )));
        }
        out.extend(values);
    }
    Ok(out)
}
