//! t-SNE pictures of a folder's faces coloured by identity (the photo's sub-folder name): the
//! face ResNet's embeddings, and, when the ImageNet backbone is in the cache (`siamese fetch
//! backbone`), the same aligned chips through MobileNetV2's generic features, side by side
//! (the seeds' comparison: a face network separates people, a generic one does not).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use image::RgbImage;

use super::align::aligned_chip_any;
use super::load::load_rgb;
use super::store::{EmbeddingStore, DIM};
use crate::model::backbone::{extract_batched, Backbone, BackboneKind, FeatureExtractor};
use crate::viz::montage::montage_png;
use crate::viz::plot::scatter_png;
use crate::viz::tsne::tsne;
use crate::{Error, Result};

/// Identity of a photo: its parent folder's name relative to `root` ("." at the top).
pub fn identity_of(photo: &Path, root: &Path) -> String {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    photo
        .parent()
        .and_then(|p| p.strip_prefix(&root).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| ".".into())
}

/// Files written by [`plot_faces`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlotOutput {
    /// The face-network t-SNE.
    pub faces_png: PathBuf,
    /// The ImageNet-backbone t-SNE, when the backbone was available.
    pub backbone_png: Option<PathBuf>,
    /// Both side by side (or the first alone).
    pub comparison_png: PathBuf,
    pub points: usize,
    pub identities: usize,
}

/// Plots the faces of `keys` (store keys of photos under `root`) into `out_dir`.
pub fn plot_faces(
    store: &EmbeddingStore,
    keys: &[String],
    root: &Path,
    out_dir: &Path,
    seed: u64,
) -> Result<PlotOutput> {
    let mut data = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut labels = Vec::new();
    let mut chips_of: Vec<(PathBuf, Vec<[f32; 2]>)> = Vec::new();
    for k in keys {
        let Some(photo) = store.get(k) else { continue };
        for face in &photo.faces {
            let who = identity_of(Path::new(&photo.path), root);
            let id = match names.iter().position(|n| n == &who) {
                Some(i) => i,
                None => {
                    names.push(who);
                    names.len() - 1
                }
            };
            data.extend_from_slice(&face.embedding);
            labels.push(id as u32);
            chips_of.push((
                PathBuf::from(&photo.path),
                face.landmarks.clone().unwrap_or_default(),
            ));
        }
    }
    let n = labels.len();
    if n < 5 {
        return Err(Error::config(
            "plot",
            format!("{n} faces: t-SNE needs at least 5"),
        ));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let perplexity = ((n as f64 - 1.0) / 3.0).clamp(2.0, 30.0);
    let points = tsne(&data, DIM, perplexity, seed, 1000)?;
    let faces_png = out_dir.join("faces_tsne.png");
    scatter_png(
        &faces_png,
        &points,
        &labels,
        &names,
        None,
        "Face ResNet (dlib) embeddings, t-SNE",
    )?;

    let backbone_png = if crate::assets::backbone::mobilenet_v2_present() {
        let backbone = Backbone::load(BackboneKind::MobileNetV2, None, &Device::default())?;
        let pre = backbone.preprocess();
        let inputs: Vec<Vec<f32>> = chips_of
            .iter()
            .map(|(path, lm)| -> Result<Vec<f32>> {
                let img = load_rgb(path)?;
                let chip: RgbImage = aligned_chip_any(&img, lm).unwrap_or(img);
                Ok(pre.apply(&chip))
            })
            .collect::<Result<_>>()?;
        let features = extract_batched(&backbone, &inputs, 16, &Device::default())?;
        let points = tsne(&features, backbone.feature_dim(), perplexity, seed, 1000)?;
        let path = out_dir.join("imagenet_tsne.png");
        scatter_png(
            &path,
            &points,
            &labels,
            &names,
            None,
            "ImageNet MobileNetV2 features, t-SNE",
        )?;
        Some(path)
    } else {
        None
    };
    let comparison_png = out_dir.join("tsne_comparison.png");
    let mut tiles = vec![faces_png.clone()];
    let mut titles = vec!["face network".to_string()];
    if let Some(b) = &backbone_png {
        tiles.push(b.clone());
        titles.push("generic ImageNet backbone".to_string());
    }
    montage_png(&comparison_png, &tiles, 2, &titles)?;
    Ok(PlotOutput {
        faces_png,
        backbone_png,
        comparison_png,
        points: n,
        identities: names.len(),
    })
}
