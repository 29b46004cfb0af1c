//! The `ensemble` open-set score: Fisher's combination of four scores' p-values, each against
//! the validation digits' own scores.
//!
//! The components (each "higher = more likely unknown"):
//!
//! 1. Mahalanobis distance (class means, one shared covariance) of the `[32]` channel means of
//!    the first convolution's maps after ReLU;
//! 2. the same of the `[32]` channel standard deviations of those maps;
//! 3. the embedding's Mahalanobis distance ([`super::scores::Score::Mahalanobis`]);
//! 4. the distance to the k-th nearest training embedding, L2-normalised
//!    ([`super::scores::Score::KnnKth`]).
//!
//! The first two see how an image is drawn (the amount of ink, stroke width, texture), the last
//! two what it depicts, so noise, photographs and solid images, which the embedding alone often
//! places among the digits, are far out on the first two. Lee et al. (2018) combine Mahalanobis
//! scores of several layers with weights fitted on unknown images; here nothing is fitted on
//! unknowns: each component value `s` becomes the conformal p-value
//! `p = (1 + #{validation digits scoring ≥ s}) / (1 + n)` and the score is `Σ −ln p` (Fisher's
//! method). Which components: the four, out of eight candidates (the channel means and spreads of
//! conv1 and the pooled conv2 maps, the dense layer, the raw output, the embedding's Mahalanobis
//! and k-th-neighbour scores), that gave the best AUROC on Omniglot's seven non-Latin alphabets
//! for the model trained without outlier exposure; none of the sets the targets are reported on
//! (letters, Omniglot Latin, Fashion-MNIST, noise) took part in the choice.

use serde::{Deserialize, Serialize};

use super::gallery::class_prototypes;
use super::mahalanobis::MahalanobisFit;
use crate::data::LabelledImages;
use crate::embed::{batch_tensor, to_host, Embeddings};
use crate::model::embedding_cnn::EmbeddingCnn;
use crate::{Error, Result};

/// Embeddings with the conv1 summaries of the same images.
#[derive(Debug, Clone)]
pub struct ProbedEmbeddings {
    pub embeddings: Embeddings,
    /// `[n, channels]` mean of each conv1 channel's map.
    pub conv1_means: Vec<f32>,
    /// `[n, channels]` standard deviation of each conv1 channel's map.
    pub conv1_stds: Vec<f32>,
    /// conv1's channel count.
    pub channels: usize,
}

impl ProbedEmbeddings {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.embeddings.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.embeddings.is_empty()
    }
}

/// Embeds `data` with `model` (in inference mode), keeping conv1's summaries, in batches of
/// [`crate::run::INFERENCE_BATCH`].
pub fn embed_probed(model: &EmbeddingCnn, data: &LabelledImages) -> Result<ProbedEmbeddings> {
    crate::embed::check_input_shape(model, data)?;
    let device = burn::tensor::Device::default();
    let (mut values, mut means, mut stds) = (Vec::new(), Vec::new(), Vec::new());
    let (mut dim, mut channels) = (crate::model::EmbeddingNet::dim(model), 0);
    let all: Vec<usize> = (0..data.len()).collect();
    for chunk in all.chunks(crate::run::INFERENCE_BATCH) {
        let (embedding, summaries) =
            model.forward_with_conv1_summaries(batch_tensor(data, chunk, &device));
        dim = embedding.dims()[1];
        channels = summaries.means.dims()[1];
        values.extend(to_host(embedding)?);
        means.extend(to_host(summaries.means)?);
        stds.extend(to_host(summaries.stds)?);
    }
    Ok(ProbedEmbeddings {
        embeddings: Embeddings { values, dim },
        conv1_means: means,
        conv1_stds: stds,
        channels,
    })
}

/// Number of components the score combines.
pub const COMPONENTS: usize = 4;

/// What the `ensemble` score needs beyond the embedding scores: the two conv1 fits and each
/// component's validation scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleFit {
    /// Mahalanobis fit of conv1's channel means.
    pub conv1_means: MahalanobisFit,
    /// Mahalanobis fit of conv1's channel standard deviations.
    pub conv1_stds: MahalanobisFit,
    /// Each component's scores on the validation digits, ascending, in the module's order.
    pub reference: Vec<Vec<f32>>,
}

impl EnsembleFit {
    /// Fits the two conv1 Mahalanobis models on the training images' summaries.
    /// [`Self::reference`] is left empty: [`Self::with_reference`] sets it from the validation
    /// digits' components.
    pub fn fit_conv1(train: &ProbedEmbeddings, labels: &[u32], classes: usize) -> Result<Self> {
        let fit = |x: &[f32]| -> Result<MahalanobisFit> {
            let means = class_prototypes(x, labels, train.channels, classes)?;
            MahalanobisFit::fit(x, labels, &means, train.channels)
        };
        Ok(EnsembleFit {
            conv1_means: fit(&train.conv1_means)?,
            conv1_stds: fit(&train.conv1_stds)?,
            reference: Vec::new(),
        })
    }

    /// The two conv1 components of each image.
    pub fn conv1_components(&self, probed: &ProbedEmbeddings) -> [Vec<f32>; 2] {
        let distances =
            |fit: &MahalanobisFit, x: &[f32]| fit.predict(x).into_iter().map(|p| p.1).collect();
        [
            distances(&self.conv1_means, &probed.conv1_means),
            distances(&self.conv1_stds, &probed.conv1_stds),
        ]
    }

    /// Stores the validation digits' components (`[component][image]`) as the reference.
    pub fn with_reference(mut self, components: [Vec<f32>; COMPONENTS]) -> Result<Self> {
        let n = components[0].len();
        if n == 0 || components.iter().any(|c| c.len() != n) {
            return Err(Error::config(
                "ensemble calibration",
                "needs every component's score on the same validation images",
            ));
        }
        self.reference = components
            .into_iter()
            .map(|mut c| {
                if c.iter().any(|v| !v.is_finite()) {
                    return Err(Error::config(
                        "ensemble calibration",
                        "a validation score is not finite",
                    ));
                }
                c.sort_by(f32::total_cmp);
                Ok(c)
            })
            .collect::<Result<_>>()?;
        Ok(self)
    }

    /// The score `Σ −ln p` of each image from its components (`[component][image]`).
    pub fn combine(&self, components: &[Vec<f32>; COMPONENTS]) -> Result<Vec<f32>> {
        if self.reference.len() != COMPONENTS {
            return Err(Error::config(
                "score",
                "`ensemble` needs the validation scores stored at calibration",
            ));
        }
        let n = components[0].len();
        Ok((0..n)
            .map(|i| {
                components
                    .iter()
                    .zip(&self.reference)
                    .map(|(c, reference)| fisher_term(reference, c[i]))
                    .sum::<f64>() as f32
            })
            .collect())
    }
}

/// `−ln p` of `value` against the ascending `reference`, with the conformal p-value
/// `p = (1 + #{reference ≥ value}) / (1 + n)`; NaN counts as beyond every reference value.
pub fn fisher_term(reference: &[f32], value: f32) -> f64 {
    let at_or_above = if value.is_nan() {
        0
    } else {
        reference.len() - reference.partition_point(|&r| r < value)
    };
    -((1 + at_or_above) as f64 / (1 + reference.len()) as f64).ln()
}
