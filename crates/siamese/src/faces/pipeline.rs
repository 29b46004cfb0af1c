//! Photo → faces → embeddings: decode (checked), detect (SeetaFace), 5 landmarks (dlib's
//! regressor), align to dlib's 150x150 chip, embed with dlib's ResNet in batches.
//!
//! Photos are prepared in parallel (rayon) a chunk at a time; the chunk's chips, from all its
//! photos, then go through the network in batches of `batch_size` (one forward pass per batch
//! rather than one per face, which is where per-image loops lose their time).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use image::RgbImage;
use rayon::prelude::*;

use super::align::{aligned_chip_any, unaligned_chip};
use super::detect::{
    assumed_to_dlib, centered_box, seeta_to_dlib, DetectorOptions, FaceBox, FaceDetector,
};
use super::jitter::{chip_rng, jitter_chip};
use super::landmarks::{GreyImage, ShapePredictor};
use super::load::load_rgb;
use crate::assets::face_models::{self, FaceModelPaths};
use crate::model::face_resnet::FaceResNet;
use crate::{Error, Result};

/// Which of the detected faces a photo contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FaceSelection {
    /// Every detected face (photo collections).
    All,
    /// The one face nearest the photo's centre (LFW's convention: the named person is centred).
    Central,
}

/// Pipeline settings. [`PipelineOptions::fingerprint`] names everything that changes embeddings,
/// so a store made with other settings is not reused.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PipelineOptions {
    /// Align with landmarks (true) or resize the whole photo to the chip (`--no-align`).
    pub align: bool,
    pub selection: FaceSelection,
    /// When nothing is detected, assume one centred face ([`centered_box`]); for collections of
    /// face crops such as LFW. Off by default: a photo without a face then has no entry.
    pub assume_centered: bool,
    /// Chips per forward pass.
    pub batch_size: usize,
    /// Also embed each chip's mirror image and average the two (test-time augmentation:
    /// twice the network time).
    pub flip: bool,
    /// Also embed this many randomly jittered copies of each chip (dlib's `jitter_image`: ±3°,
    /// ±2 % shifts, slightly larger boxes, mirrored half of the time) and average them in.
    #[serde(default)]
    pub jitter: usize,
    /// Landmarks of the shape predictor in use (5, or 68 with dlib's 68-point model); set by
    /// [`FacePipeline::load`] from the model file.
    pub landmark_points: usize,
    pub detector: DetectorOptions,
    /// Arithmetic of the network's products (`bf16`: AMX CPUs only). Process-wide: loading a
    /// pipeline sets it for every kernel call of the process ([`crate::kernels::set_precision`]).
    #[serde(default)]
    pub precision: crate::kernels::Precision,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            align: true,
            selection: FaceSelection::All,
            assume_centered: false,
            batch_size: 32,
            flip: false,
            jitter: 0,
            landmark_points: 5,
            detector: DetectorOptions::default(),
            precision: crate::kernels::Precision::F32,
        }
    }
}

impl PipelineOptions {
    /// A string naming every setting that changes the embeddings.
    pub fn fingerprint(&self) -> String {
        // `jitter` and `precision` are named only when not the default, so stores made before
        // they existed stay valid; bf16 embeddings differ from fp32 ones by rounding, so they
        // make a collection of their own.
        let mut suffix = match self.jitter {
            0 => String::new(),
            n => format!(";jitter={n}"),
        };
        if self.precision != crate::kernels::Precision::F32 {
            suffix += &format!(";precision={}", self.precision);
        }
        format!(
            "dlib-resnet-v1/face-api.js-0.10.0;align={};landmarks={};pad=0.25;flip={};select={:?};assume_centered={};seeta(min={},thr={},max_side={})",
            self.align,
            self.landmark_points,
            self.flip,
            self.selection,
            self.assume_centered,
            self.detector.min_face,
            self.detector.score_threshold,
            self.detector.max_side,
        ) + &suffix
    }
}

/// One face of a photo with its embedding.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Face {
    pub bbox: FaceBox,
    /// The landmarks (5, or 68; absent with `--no-align`).
    pub landmarks: Option<Vec<[f32; 2]>>,
    /// True when the box was assumed because detection found nothing.
    pub assumed: bool,
    pub embedding: Vec<f32>,
}

/// The faces found in one photo.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhotoFaces {
    pub width: u32,
    pub height: u32,
    pub faces: Vec<Face>,
}

/// A face ready for the network.
struct PreparedFace {
    bbox: FaceBox,
    landmarks: Option<Vec<[f32; 2]>>,
    assumed: bool,
    chip: RgbImage,
}

/// Seconds spent per stage, for faces/s figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Timings {
    /// Decoding, detection, landmarks and alignment (wall time of the parallel stage).
    pub prepare_s: f64,
    /// Forward passes of the network.
    pub embed_s: f64,
    /// Faces embedded.
    pub faces: usize,
    /// Photos read.
    pub photos: usize,
}

/// The loaded models and settings.
pub struct FacePipeline {
    detector: FaceDetector,
    landmarks: ShapePredictor,
    net: FaceResNet,
    options: PipelineOptions,
}

impl FacePipeline {
    /// Loads the three models from `paths`.
    pub fn load(paths: &FaceModelPaths, options: PipelineOptions, device: &Device) -> Result<Self> {
        if options.batch_size == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        crate::kernels::set_precision(options.precision)
            .map_err(|m| Error::config("--precision", m))?;
        let landmarks = ShapePredictor::load(&paths.landmarks)?;
        let mut options = options;
        options.landmark_points = landmarks.num_parts();
        if options.landmark_points != 5 && options.landmark_points != 68 {
            return Err(Error::format(
                &paths.landmarks,
                format!(
                    "a {}-point shape predictor; alignment needs dlib's 5- or 68-point model",
                    options.landmark_points
                ),
            ));
        }
        Ok(FacePipeline {
            detector: FaceDetector::load(&paths.detector, options.detector.clone())?,
            landmarks,
            net: FaceResNet::load(&paths.recognition, device)?,
            options,
        })
    }

    /// Loads the models from the asset cache (`siamese fetch face-models`).
    pub fn from_cache(options: PipelineOptions) -> Result<Self> {
        Self::from_cache_with(options, None)
    }

    /// As [`FacePipeline::from_cache`], with another dlib shape predictor file (e.g. dlib's
    /// 68-point model) instead of the fetched 5-point one.
    pub fn from_cache_with(options: PipelineOptions, landmarks: Option<&Path>) -> Result<Self> {
        let mut paths = face_models::locate()?;
        if let Some(p) = landmarks {
            paths.landmarks = p.to_path_buf();
        }
        Self::load(&paths, options, &Device::default())
    }

    pub fn options(&self) -> &PipelineOptions {
        &self.options
    }

    pub fn network(&self) -> &FaceResNet {
        &self.net
    }

    pub fn detector(&self) -> &FaceDetector {
        &self.detector
    }

    pub fn shape_predictor(&self) -> &ShapePredictor {
        &self.landmarks
    }

    /// Faces of a decoded photo, chips cut, not yet embedded.
    fn prepare_image(&self, img: &RgbImage) -> Vec<PreparedFace> {
        if !self.options.align {
            let bbox = FaceBox {
                left: 0.0,
                top: 0.0,
                width: img.width() as f32,
                height: img.height() as f32,
                score: 0.0,
            };
            return vec![PreparedFace {
                bbox,
                landmarks: None,
                assumed: true,
                chip: unaligned_chip(img),
            }];
        }
        let grey = GreyImage::from_rgb(img);
        let mut boxes = self.detector.detect(&grey);
        if self.options.selection == FaceSelection::Central && boxes.len() > 1 {
            let mid = [img.width() as f32 / 2.0, img.height() as f32 / 2.0];
            let d = |b: &FaceBox| {
                let c = b.center();
                (c[0] - mid[0]).powi(2) + (c[1] - mid[1]).powi(2)
            };
            let best = *boxes
                .iter()
                .min_by(|a, b| d(a).total_cmp(&d(b)))
                .expect("non-empty");
            boxes = vec![best];
        }
        let mut assumed = false;
        if boxes.is_empty() && self.options.assume_centered {
            boxes.push(centered_box(img.width(), img.height()));
            assumed = true;
        }
        boxes
            .into_iter()
            .map(|bbox| {
                let rect = if assumed {
                    assumed_to_dlib(&bbox)
                } else {
                    seeta_to_dlib(&bbox)
                };
                let points = self.landmarks.predict(&grey, &rect);
                let chip = aligned_chip_any(img, &points).expect("5 or 68 points, checked at load");
                PreparedFace {
                    bbox,
                    landmarks: Some(points),
                    assumed,
                    chip,
                }
            })
            .collect()
    }

    /// Reads one photo and prepares its faces.
    fn prepare_file(&self, path: &Path) -> Result<(u32, u32, Vec<PreparedFace>)> {
        let img = load_rgb(path)?;
        let faces = self.prepare_image(&img);
        Ok((img.width(), img.height(), faces))
    }

    /// The aligned 150x150 chips of each photo (detection, landmarks and alignment, no
    /// network), photos in parallel; a photo that cannot be read gets its own error.
    pub fn chips_of_files(&self, paths: &[PathBuf]) -> Vec<Result<Vec<RgbImage>>> {
        paths
            .par_iter()
            .map(|p| {
                self.prepare_file(p)
                    .map(|(_, _, faces)| faces.into_iter().map(|f| f.chip).collect())
            })
            .collect()
    }

    /// Embeds 150x150 chips, `batch_size` per forward pass; one 128-d vector per chip (the
    /// mean over the chip, its mirror image with `flip`, and `jitter` jittered copies).
    pub fn embed_chips(&self, chips: &[RgbImage]) -> Result<Vec<Vec<f32>>> {
        let (flip, jitter) = (self.options.flip, self.options.jitter);
        let variants = 1 + flip as usize + jitter;
        let mut bytes = Vec::with_capacity(chips.len() * variants * 150 * 150 * 3);
        for chip in chips {
            bytes.extend_from_slice(chip.as_raw());
            if flip {
                bytes.extend_from_slice(image::imageops::flip_horizontal(chip).as_raw());
            }
            if jitter > 0 {
                let mut rng = chip_rng(chip);
                for _ in 0..jitter {
                    bytes.extend_from_slice(jitter_chip(chip, &mut rng).as_raw());
                }
            }
        }
        let flat = self.net.embed_rgb_chips(&bytes, self.options.batch_size)?;
        Ok(flat
            .chunks_exact(128 * variants)
            .map(|group| {
                let mut mean = group[..128].to_vec();
                for copy in group[128..].chunks_exact(128) {
                    mean.iter_mut().zip(copy).for_each(|(m, x)| *m += x);
                }
                mean.iter_mut().for_each(|m| *m /= variants as f32);
                mean
            })
            .collect())
    }

    /// Faces and embeddings of a decoded photo.
    pub fn process_image(&self, img: &RgbImage) -> Result<Vec<Face>> {
        let prepared = self.prepare_image(img);
        let chips: Vec<RgbImage> = prepared.iter().map(|p| p.chip.clone()).collect();
        let embeddings = self.embed_chips(&chips)?;
        Ok(prepared
            .into_iter()
            .zip(embeddings)
            .map(|(p, embedding)| Face {
                bbox: p.bbox,
                landmarks: p.landmarks,
                assumed: p.assumed,
                embedding,
            })
            .collect())
    }

    /// Faces and embeddings of each photo, in order; a photo that cannot be read gets its own
    /// error and does not stop the others. `on_done(n)` is called as photos finish (progress).
    pub fn process_files(
        &self,
        paths: &[PathBuf],
        mut on_done: impl FnMut(usize),
    ) -> (Vec<Result<PhotoFaces>>, Timings) {
        let mut results = Vec::with_capacity(paths.len());
        let mut timings = Timings::default();
        // Enough photos per chunk to fill several batches while keeping memory small.
        let chunk = (self.options.batch_size * 2).max(16);
        for group in paths.chunks(chunk) {
            let start = Instant::now();
            let prepared: Vec<Result<(u32, u32, Vec<PreparedFace>)>> =
                group.par_iter().map(|p| self.prepare_file(p)).collect();
            timings.prepare_s += start.elapsed().as_secs_f64();
            let chips: Vec<RgbImage> = prepared
                .iter()
                .flat_map(|r| {
                    r.iter()
                        .flat_map(|(_, _, faces)| faces.iter().map(|f| f.chip.clone()))
                })
                .collect();
            let start = Instant::now();
            let embedded = self.embed_chips(&chips);
            timings.embed_s += start.elapsed().as_secs_f64();
            timings.faces += chips.len();
            timings.photos += group.len();
            let mut embeddings = match embedded {
                Ok(e) => e.into_iter(),
                Err(e) => {
                    let msg = e.to_string();
                    results.extend(group.iter().map(|_| Err(Error::Other(msg.clone()))));
                    on_done(group.len());
                    continue;
                }
            };
            for r in prepared {
                results.push(r.map(|(width, height, faces)| {
                    PhotoFaces {
                        width,
                        height,
                        faces: faces
                            .into_iter()
                            .map(|p| Face {
                                bbox: p.bbox,
                                landmarks: p.landmarks,
                                assumed: p.assumed,
                                embedding: embeddings.next().expect("one embedding per chip"),
                            })
                            .collect(),
                    }
                }));
            }
            on_done(group.len());
        }
        (results, timings)
    }

    /// The single face of a photo for verification: the highest-scoring (or only) face.
    pub fn embed_one(&self, path: &Path) -> Result<Face> {
        let (results, _) = self.process_files(&[path.to_path_buf()], |_| {});
        let photo = results.into_iter().next().expect("one result per path")?;
        photo
            .faces
            .into_iter()
            .next()
            .ok_or_else(|| Error::format(path, "no face found"))
    }
}
