//! Outlier exposure (Hendrycks et al. 2019) for triplet training: images that are none of the
//! classes join every training batch as negatives only. Each outlier gets a label of its own
//! (no two outliers share one, none is a class), so triplet mining pairs it with no positive:
//! it is never an anchor or a positive, and it is a negative for every anchor, pushed beyond the
//! margin from all of them.
//!
//! Where they come from (`siamese train --outliers`): a folder or `.zip` of images
//! (`--outliers DIR`), or alphabets of Omniglot (`--outliers omniglot:Greek,Korean`, read from
//! `--omniglot ZIP|DIR` or `$SIAMESE_OMNIGLOT`). The source is stored in `config.json`, so an
//! open-set evaluation can refuse to test on a set the model was exposed to.

use std::path::{Path, PathBuf};

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::image_folder::{load_omniglot_alphabet, load_unknown_images};
use crate::data::LabelledImages;
use crate::recognize::unknown_sets::{concat_sets, omniglot_alphabets, UnknownSource};
use crate::train::TrainConfig;
use crate::{Error, Result};

/// Default outlier images added to each training batch.
pub const DEFAULT_OUTLIERS_PER_BATCH: usize = 32;

/// Where the outlier images come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OutlierSource {
    /// Every image under a folder, or inside a `.zip`.
    Images { path: PathBuf },
    /// Alphabets of the Omniglot zip (or folder of zips) `zip`.
    Omniglot {
        zip: PathBuf,
        alphabets: Vec<String>,
    },
}

/// Outlier exposure of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutlierExposure {
    pub source: OutlierSource,
    /// Outlier images added to each training batch.
    pub per_batch: usize,
}

impl OutlierSource {
    /// Parses `--outliers`: `omniglot:ALPHABET,ALPHABET,…` (the zip from `omniglot`, else
    /// `$SIAMESE_OMNIGLOT`) or a folder / `.zip` of images. Checks that the alphabets exist, or
    /// that the folder holds images, before anything is trained.
    pub fn parse(spec: &str, omniglot: Option<&Path>) -> Result<Self> {
        if let Some(list) = spec.strip_prefix("omniglot:") {
            let alphabets: Vec<String> = list
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect();
            if alphabets.is_empty() {
                return Err(Error::config(
                    "outliers",
                    format!("`{spec}` names no Omniglot alphabet"),
                ));
            }
            let zip = crate::recognize::unknown_sets::omniglot_zip(omniglot)?;
            let available = omniglot_alphabets(Some(&zip))?;
            for a in &alphabets {
                if !available.iter().any(|(b, _)| b == a) {
                    let names: Vec<&str> = available.iter().map(|(b, _)| b.as_str()).collect();
                    return Err(Error::format(
                        &zip,
                        format!(
                            "no Omniglot alphabet `{a}` for --outliers; alphabets: {}",
                            names.join(", ")
                        ),
                    ));
                }
            }
            return Ok(OutlierSource::Omniglot { zip, alphabets });
        }
        let path = PathBuf::from(spec);
        crate::data::image_folder::check_unknown_images_path(&path).map_err(|_| {
            Error::format(
                &path,
                "is not a folder or .zip of images (expected `--outliers DIR|ZIP` or `--outliers omniglot:ALPHABET,…`)",
            )
        })?;
        if path.is_dir() {
            // Refused here, before training touches the run folder.
            crate::data::image_folder::check_holds_images(&path)?;
        }
        Ok(OutlierSource::Images { path })
    }

    /// How reports name it (`omniglot:Greek,Korean`, or the folder).
    pub fn label(&self) -> String {
        match self {
            OutlierSource::Images { path } => path.display().to_string(),
            OutlierSource::Omniglot { alphabets, .. } => {
                format!("omniglot:{}", alphabets.join(","))
            }
        }
    }

    /// Loads the outlier images MNIST-style; a source without images is an error naming it.
    pub fn load(&self) -> Result<LabelledImages> {
        let images = match self {
            OutlierSource::Images { path } => load_unknown_images(path)?,
            OutlierSource::Omniglot { zip, alphabets } => {
                let zips = omniglot_alphabets(Some(zip))?;
                let mut sets = Vec::new();
                for a in alphabets {
                    let (_, z) = zips
                        .iter()
                        .find(|(b, _)| b == a)
                        .ok_or_else(|| Error::format(zip, format!("no Omniglot alphabet `{a}`")))?;
                    sets.push(load_omniglot_alphabet(z, a)?);
                }
                concat_sets(&sets)
            }
        };
        if images.is_empty() {
            return Err(Error::format(
                self.label(),
                "holds no images for outlier exposure",
            ));
        }
        Ok(images)
    }

    /// Whether the tested unknown set `tested` shares images with this source: the same
    /// Omniglot alphabet, or folders one inside the other.
    pub fn overlaps(&self, tested: &UnknownSource) -> bool {
        match (self, tested) {
            (OutlierSource::Omniglot { alphabets, .. }, UnknownSource::Omniglot { alphabet }) => {
                alphabets.contains(alphabet)
            }
            (OutlierSource::Omniglot { .. }, UnknownSource::OmniglotAll) => true,
            (OutlierSource::Images { path }, UnknownSource::Path(p)) => {
                let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
                let (a, b) = (canon(path), canon(p));
                a.starts_with(&b) || b.starts_with(&a)
            }
            _ => false,
        }
    }
}

/// Checks an exposure's settings: at least one outlier per batch.
pub fn check_exposure(exposure: &OutlierExposure) -> Result<()> {
    if exposure.per_batch == 0 {
        return Err(Error::config("outliers per batch", "must be at least 1"));
    }
    Ok(())
}

/// The outlier indices of each of an epoch's `steps` batches: `per_batch` distinct images
/// (fewer when there are fewer), drawn under `(seed, epoch)` so a resumed run draws the same.
pub fn epoch_outliers(
    outliers: usize,
    per_batch: usize,
    seed: u64,
    epoch: usize,
    steps: usize,
) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed.wrapping_mul(2_654_435_761).wrapping_add(epoch as u64) ^ 0x00C0_FFEE,
    );
    let take = per_batch.min(outliers);
    (0..steps)
        .map(|_| sample(&mut rng, outliers, take).into_vec())
        .collect()
}

/// The outlier images of the run's exposure (`None` without one), loaded before the run folder
/// is touched; they must have the training images' shape.
pub(crate) fn load_outliers(
    config: &TrainConfig,
    train: &LabelledImages,
) -> Result<Option<LabelledImages>> {
    let Some(exposure) = &config.outliers else {
        return Ok(None);
    };
    let images = exposure.source.load()?;
    if (images.channels, images.height, images.width) != (train.channels, train.height, train.width)
    {
        return Err(Error::config(
            "outliers",
            format!(
                "{} gives {}x{}x{} images, the training images are {}x{}x{}",
                exposure.source.label(),
                images.channels,
                images.height,
                images.width,
                train.channels,
                train.height,
                train.width
            ),
        ));
    }
    Ok(Some(images))
}
