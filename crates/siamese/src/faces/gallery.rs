//! What `siamese faces cluster` writes into its output folder:
//!
//! - `clusters.csv`: one row per face: `path,face,left,top,width,height,cluster,cluster_size`
//!   (`cluster` 0 is the largest group; -1 marks a face in no group of two or more: DBSCAN's
//!   noise or a face seen once);
//! - `montages/person_NNN.png`: the first faces of each group (the seeds' "4 pictures per
//!   cluster"), aligned chips side by side;
//! - `faces/NNNNNN.jpg`: a 112x112 aligned thumbnail of every face;
//! - `index.html`: one section per person, then the ungrouped faces apart; every link is
//!   relative (thumbnails, montages, the original photos), so the folder opens offline and can
//!   be moved together with the photos.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;

use super::align::{aligned_chip_any, unaligned_chip};
use super::detect::FaceBox;
use super::load::load_rgb;
use crate::eval::clustering::NOISE;
use crate::{Error, Result};

/// Faces per montage.
pub const MONTAGE_FACES: usize = 4;
const THUMB: u32 = 112;

/// One clustered face.
#[derive(Debug, Clone, PartialEq)]
pub struct GalleryFace {
    pub photo: PathBuf,
    pub face: usize,
    pub bbox: FaceBox,
    pub landmarks: Option<Vec<[f32; 2]>>,
    /// Cluster id from the clustering method ([`NOISE`] for noise).
    pub cluster: u32,
}

/// Files written and counts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GalleryOutput {
    pub csv: PathBuf,
    pub html: PathBuf,
    pub montages: Vec<PathBuf>,
    /// Groups of two or more faces.
    pub people: usize,
    /// Faces in no such group.
    pub ungrouped: usize,
}

/// Groups of ≥ 2 faces, largest first (ties: first face first), and the ungrouped faces.
pub fn groups(faces: &[GalleryFace]) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut by_cluster: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, f) in faces.iter().enumerate() {
        by_cluster.entry(f.cluster).or_default().push(i);
    }
    let mut ungrouped = by_cluster.remove(&NOISE).unwrap_or_default();
    let mut people: Vec<Vec<usize>> = Vec::new();
    for members in by_cluster.into_values() {
        if members.len() >= 2 {
            people.push(members);
        } else {
            ungrouped.extend(members);
        }
    }
    people.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    ungrouped.sort_unstable();
    (people, ungrouped)
}

/// The aligned chip of a face (or its box resized when it has no landmarks).
fn face_chip(face: &GalleryFace) -> Result<RgbImage> {
    let img = load_rgb(&face.photo)?;
    if let Some(chip) = face
        .landmarks
        .as_deref()
        .and_then(|p| aligned_chip_any(&img, p))
    {
        return Ok(chip);
    }
    let b = face.bbox;
    let (x, y) = (b.left.max(0.0) as u32, b.top.max(0.0) as u32);
    let w = (b.width as u32).clamp(1, img.width().saturating_sub(x).max(1));
    let h = (b.height as u32).clamp(1, img.height().saturating_sub(y).max(1));
    Ok(unaligned_chip(
        &image::imageops::crop_imm(&img, x, y, w, h).to_image(),
    ))
}

/// `target` relative to the folder `from` (both made absolute first).
pub fn relative_path(target: &Path, from: &Path) -> PathBuf {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (t, f) = (abs(target), abs(from));
    let tc: Vec<Component> = t.components().collect();
    let fc: Vec<Component> = f.components().collect();
    let common = tc.iter().zip(&fc).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..fc.len() {
        out.push("..");
    }
    for c in &tc[common..] {
        out.push(c.as_os_str());
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// URL-style relative link (forward slashes, spaces and `#`/`?`/`%` escaped).
fn href(p: &Path) -> String {
    let s = p.to_string_lossy().replace('\\', "/");
    html_escape(
        &s.replace('%', "%25")
            .replace(' ', "%20")
            .replace('#', "%23")
            .replace('?', "%3F"),
    )
}

fn write_jpeg(path: &Path, img: &RgbImage) -> Result<()> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
        .encode_image(img)
        .map_err(|e| Error::format(path, format!("cannot encode JPEG: {e}")))?;
    crate::output::write_atomic(path, &bytes)
}

/// Writes the CSV, thumbnails, montages and `index.html` into `out`; `title` heads the page.
pub fn write_gallery(out: &Path, faces: &[GalleryFace], title: &str) -> Result<GalleryOutput> {
    std::fs::create_dir_all(out.join("faces")).map_err(|e| Error::io(out, e))?;
    std::fs::create_dir_all(out.join("montages")).map_err(|e| Error::io(out, e))?;
    let (people, ungrouped) = groups(faces);
    let mut cluster_of = vec![(-1i64, 1usize); faces.len()];
    for (id, members) in people.iter().enumerate() {
        for &m in members {
            cluster_of[m] = (id as i64, members.len());
        }
    }
    // Thumbnails (aligned chips) in parallel; a photo that became unreadable keeps a grey tile.
    let chips: Vec<RgbImage> = faces
        .par_iter()
        .map(|f| {
            face_chip(f)
                .unwrap_or_else(|_| RgbImage::from_pixel(150, 150, image::Rgb([128, 128, 128])))
        })
        .collect();
    for (i, chip) in chips.iter().enumerate() {
        let thumb =
            image::imageops::resize(chip, THUMB, THUMB, image::imageops::FilterType::Triangle);
        write_jpeg(&out.join("faces").join(format!("{i:06}.jpg")), &thumb)?;
    }
    let mut montages = Vec::new();
    for (id, members) in people.iter().enumerate() {
        let tiles: Vec<RgbImage> = members
            .iter()
            .take(MONTAGE_FACES)
            .map(|&m| chips[m].clone())
            .collect();
        let path = out
            .join("montages")
            .join(format!("person_{:03}.png", id + 1));
        crate::viz::montage::image_grid_png(&path, &tiles, MONTAGE_FACES, 150)?;
        montages.push(path);
    }

    let mut csv = String::from("path,face,left,top,width,height,cluster,cluster_size\n");
    for (i, f) in faces.iter().enumerate() {
        let path = f.photo.to_string_lossy();
        let quoted = if path.contains([',', '"', '\n']) {
            format!("\"{}\"", path.replace('"', "\"\""))
        } else {
            path.into_owned()
        };
        let (c, size) = cluster_of[i];
        let b = f.bbox;
        writeln!(
            csv,
            "{quoted},{},{:.1},{:.1},{:.1},{:.1},{c},{size}",
            f.face, b.left, b.top, b.width, b.height
        )
        .expect("writing to a String");
    }
    let csv_path = out.join("clusters.csv");
    crate::output::write_atomic(&csv_path, csv.as_bytes())?;

    let mut html = String::new();
    let t = html_escape(title);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
         body{{font-family:sans-serif;margin:2em;background:#fafafa}} section{{margin-bottom:2em}}\
         img.face{{width:{THUMB}px;height:{THUMB}px;margin:2px;border:1px solid #ccc}}\
         img.montage{{max-width:100%;display:block;margin-bottom:.5em}}</style></head><body>\n\
         <h1>{t}</h1>\n<p>{} people (groups of two or more faces), {} faces ungrouped, {} faces in all.</p>\n",
        people.len(),
        ungrouped.len(),
        faces.len()
    );
    let face_link = |i: usize| {
        let photo = href(&relative_path(&faces[i].photo, out));
        format!("<a href=\"{photo}\"><img class=\"face\" src=\"faces/{i:06}.jpg\" alt=\"face {i}\" loading=\"lazy\"></a>")
    };
    for (id, members) in people.iter().enumerate() {
        let _ = writeln!(
            html,
            "<section id=\"person_{n:03}\"><h2>Person {n} ({} faces)</h2>\n<img class=\"montage\" src=\"montages/person_{n:03}.png\" alt=\"person {n} montage\">",
            members.len(),
            n = id + 1
        );
        for &m in members {
            html.push_str(&face_link(m));
        }
        html.push_str("\n</section>\n");
    }
    if !ungrouped.is_empty() {
        let _ = writeln!(
            html,
            "<section id=\"ungrouped\"><h2>Ungrouped faces ({})</h2>",
            ungrouped.len()
        );
        for &m in &ungrouped {
            html.push_str(&face_link(m));
        }
        html.push_str("\n</section>\n");
    }
    html.push_str("</body></html>\n");
    let html_path = out.join("index.html");
    crate::output::write_atomic(&html_path, html.as_bytes())?;
    Ok(GalleryOutput {
        csv: csv_path,
        html: html_path,
        montages,
        people: people.len(),
        ungrouped: ungrouped.len(),
    })
}
