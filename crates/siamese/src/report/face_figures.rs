//! The face stage's pictures: the photos with every face boxed in its person's colour, face
//! thumbnails (aligned chips), and grids of a few faces per person, largest groups first.

use std::path::{Path, PathBuf};

use image::{imageops, RgbImage};

use super::document::Figure;
use super::figures::{draw_rect, figure_at, fit_width, group_grid, palette, save_png};
use crate::faces::align::aligned_chip;
use crate::faces::load::load_rgb;
use crate::faces::store::StoredFace;
use crate::Result;

/// A face's aligned chip (from its landmarks), else a square crop around its box (1.4× its
/// size), resized to `side`.
pub fn face_thumb(img: &RgbImage, face: &StoredFace, side: u32) -> RgbImage {
    if let Some(l) = &face.landmarks {
        if l.len() >= 5 {
            let five = [l[0], l[1], l[2], l[3], l[4]];
            let chip = aligned_chip(img, &five);
            return imageops::resize(&chip, side, side, imageops::FilterType::Triangle);
        }
    }
    let b = &face.bbox;
    let s = (b.width.max(b.height) * 1.4).max(1.0);
    let (cx, cy) = (b.left + b.width / 2.0, b.top + b.height / 2.0);
    let x = (cx - s / 2.0).clamp(0.0, (img.width() as f32 - 1.0).max(0.0)) as u32;
    let y = (cy - s / 2.0).clamp(0.0, (img.height() as f32 - 1.0).max(0.0)) as u32;
    let w = (s as u32).min(img.width() - x).max(1);
    let h = (s as u32).min(img.height() - y).max(1);
    let crop = imageops::crop_imm(img, x, y, w, h).to_image();
    imageops::resize(&crop, side, side, imageops::FilterType::Triangle)
}

/// The centred square of `img` with 3/5 of its shorter side (the face of an LFW photo).
pub fn centre_crop(img: &RgbImage) -> RgbImage {
    let side = img.width().min(img.height()) * 3 / 5;
    let (x, y) = ((img.width() - side) / 2, (img.height() - side) / 2);
    imageops::crop_imm(img, x, y, side, side).to_image()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `name`: the photos tiled, every face boxed in the colour of its person (`person[j]` for face
/// `faces[j]` = (photo index, face)). Returns the figure and a 110-pixel thumbnail per face.
pub fn boxed_photos(
    report_dir: &Path,
    name: &str,
    photos: &[PathBuf],
    faces: &[(usize, &StoredFace)],
    person: &[usize],
) -> Result<(Figure, Vec<RgbImage>)> {
    let mut images = Vec::new();
    let mut thumbs = vec![RgbImage::new(1, 1); faces.len()];
    let mut titles = Vec::new();
    for (i, path) in photos.iter().enumerate() {
        let mut img = load_rgb(path)?;
        let here: Vec<usize> = (0..faces.len()).filter(|&j| faces[j].0 == i).collect();
        for &j in &here {
            thumbs[j] = face_thumb(&img, faces[j].1, 110);
        }
        let thick = (img.width() / 250).max(3);
        for &j in &here {
            let b = &faces[j].1.bbox;
            let colour = palette(person[j]);
            draw_rect(&mut img, b.left, b.top, b.width, b.height, thick, colour);
        }
        images.push(fit_width(&img, 900).0);
        let plural = if here.len() == 1 { "" } else { "s" };
        titles.push(format!("{}: {} face{plural}", file_name(path), here.len()));
    }
    crate::viz::montage_images_png(report_dir.join(name), &images, 3, &titles)?;
    let caption = "The sample photos with every detected face boxed; one colour per person found by clustering.";
    Ok((figure_at(report_dir, name, caption)?, thumbs))
}

/// `name`: up to 4 images per group (`images(member)`), the first `max_groups` groups.
pub fn groups_grid(
    report_dir: &Path,
    name: &str,
    caption: &str,
    groups: &[Vec<usize>],
    max_groups: usize,
    mut image: impl FnMut(usize) -> Result<RgbImage>,
) -> Result<Figure> {
    let mut rows = Vec::new();
    for g in groups.iter().take(max_groups) {
        rows.push(
            g.iter()
                .take(4)
                .map(|&j| image(j))
                .collect::<Result<Vec<_>>>()?,
        );
    }
    save_png(report_dir, &group_grid(&rows, 4, 2, 110, 6), name, caption)
}
