//! What `siamese faces cluster` writes into its output folder:
//!
//! - `clusters.csv`: one row per face: `path,face,left,top,width,height,cluster,cluster_size,
//!   person,name` (`cluster` 0 is the largest group; -1 marks a face in no group of two or more:
//!   DBSCAN's noise or a face seen once; `person` is the kept person's database id);
//! - `montages/person_NNN.png`: the first faces of each group (the seeds' "4 pictures per
//!   cluster"), aligned chips side by side;
//! - `faces/NNNNNN.jpg`: a 112x112 aligned thumbnail of every face;
//! - `index.html` (and `index-2.html`, … past [`PAGE`] people): one chip per person, with its
//!   name and face count, linking to `people/person_NNN.html` (its montage and every face);
//!   ungrouped faces on `people/ungrouped-N.html`, [`PAGE`] faces a page. Pages stay small at
//!   100,000 faces. Every link is relative (thumbnails, montages, the original photos), so the
//!   folder opens offline and can be moved together with the photos.

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
    /// The person's database id and name, when the faces come from kept people.
    pub person: Option<(i64, Option<String>)>,
}

/// People on one index page, and faces on one page of ungrouped faces.
pub const PAGE: usize = 500;

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

    let mut csv =
        String::from("path,face,left,top,width,height,cluster,cluster_size,person,name\n");
    let quote = |text: &str| {
        if text.contains([',', '"', '\n']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_string()
        }
    };
    for (i, f) in faces.iter().enumerate() {
        let quoted = quote(&f.photo.to_string_lossy());
        let (c, size) = cluster_of[i];
        let b = f.bbox;
        let (person, name) = match &f.person {
            Some((id, name)) => (id.to_string(), quote(name.as_deref().unwrap_or(""))),
            None => (String::new(), String::new()),
        };
        writeln!(
            csv,
            "{quoted},{},{:.1},{:.1},{:.1},{:.1},{c},{size},{person},{name}",
            f.face, b.left, b.top, b.width, b.height
        )
        .expect("writing to a String");
    }
    let csv_path = out.join("clusters.csv");
    crate::output::write_atomic(&csv_path, csv.as_bytes())?;

    let people_dir = out.join("people");
    std::fs::create_dir_all(&people_dir).map_err(|e| Error::io(&people_dir, e))?;
    let t = html_escape(title);
    let head = |title: &str, up: &str| {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>\
             body{{font-family:sans-serif;margin:2em;background:#fafafa}} section{{margin-bottom:2em}}\
             img.face{{width:{THUMB}px;height:{THUMB}px;margin:2px;border:1px solid #ccc}}\
             img.montage{{max-width:100%;display:block;margin-bottom:.5em}}\
             figure{{display:inline-block;margin:4px;text-align:center;font-size:90%}}</style></head><body>\n{up}"
        )
    };
    // The label of group `id`: its kept name, else "Person N".
    let label = |id: usize| -> String {
        let first = &faces[people[id][0]];
        match &first.person {
            Some((pid, Some(name))) => format!("{} (#{pid})", html_escape(name)),
            Some((pid, None)) => format!("Person #{pid}"),
            None => format!("Person {}", id + 1),
        }
    };
    let face_link = |i: usize, from: &Path| {
        let photo = href(&relative_path(&faces[i].photo, from));
        format!("<a href=\"{photo}\"><img class=\"face\" src=\"../faces/{i:06}.jpg\" alt=\"face {i}\" loading=\"lazy\"></a>")
    };
    // A page per person.
    for (id, members) in people.iter().enumerate() {
        let mut page = head(
            &label(id),
            "<p><a href=\"../index.html\">all people</a></p>\n",
        );
        let _ = writeln!(
            page,
            "<h1>{} ({} faces)</h1>\n<img class=\"montage\" src=\"../montages/person_{n:03}.png\" alt=\"montage\">",
            label(id),
            members.len(),
            n = id + 1
        );
        for &m in members {
            page.push_str(&face_link(m, &people_dir));
        }
        page.push_str("\n</body></html>\n");
        let path = people_dir.join(format!("person_{:03}.html", id + 1));
        crate::output::write_atomic(&path, page.as_bytes())?;
    }
    let ungrouped_pages = ungrouped.len().div_ceil(PAGE);
    for (n, chunk) in ungrouped.chunks(PAGE).enumerate() {
        let mut page = head(
            "Ungrouped faces",
            "<p><a href=\"../index.html\">all people</a></p>\n",
        );
        let _ = writeln!(
            page,
            "<h1>Ungrouped faces, page {} of {ungrouped_pages} ({} in all)</h1>",
            n + 1,
            ungrouped.len()
        );
        for &m in chunk {
            page.push_str(&face_link(m, &people_dir));
        }
        page.push_str("\n</body></html>\n");
        let path = people_dir.join(format!("ungrouped-{}.html", n + 1));
        crate::output::write_atomic(&path, page.as_bytes())?;
    }
    // The index: one chip per person, PAGE people a page.
    let index_pages = people.len().div_ceil(PAGE).max(1);
    let index_name = |n: usize| {
        if n == 0 {
            "index.html".to_string()
        } else {
            format!("index-{}.html", n + 1)
        }
    };
    let mut html_path = out.join("index.html");
    for n in 0..index_pages {
        let mut html = head(&t, "");
        let _ = writeln!(
            html,
            "<h1>{t}</h1>\n<p>{} people (groups of two or more faces), {} faces ungrouped, {} faces in all.</p>",
            people.len(),
            ungrouped.len(),
            faces.len()
        );
        if index_pages > 1 {
            let links: Vec<String> = (0..index_pages)
                .map(|k| format!("<a href=\"{}\">{}</a>", index_name(k), k + 1))
                .collect();
            let _ = writeln!(html, "<p>pages: {}</p>", links.join(" "));
        }
        for (id, members) in people.iter().enumerate().skip(n * PAGE).take(PAGE) {
            let first = members[0];
            let _ = writeln!(
                html,
                "<figure id=\"person_{k:03}\"><a href=\"people/person_{k:03}.html\"><img class=\"face\" src=\"faces/{first:06}.jpg\" alt=\"{lab}\" loading=\"lazy\"></a><figcaption>{lab}<br>{} faces</figcaption></figure>",
                members.len(),
                k = id + 1,
                lab = label(id)
            );
        }
        if n == 0 && ungrouped_pages > 0 {
            let links: Vec<String> = (1..=ungrouped_pages)
                .map(|k| format!("<a href=\"people/ungrouped-{k}.html\">{k}</a>"))
                .collect();
            let _ = writeln!(
                html,
                "<section id=\"ungrouped\"><h2>Ungrouped faces ({})</h2><p>pages: {}</p></section>",
                ungrouped.len(),
                links.join(" ")
            );
        }
        html.push_str("</body></html>\n");
        let path = out.join(index_name(n));
        crate::output::write_atomic(&path, html.as_bytes())?;
        if n == 0 {
            html_path = path;
        }
    }
    Ok(GalleryOutput {
        csv: csv_path,
        html: html_path,
        montages,
        people: people.len(),
        ungrouped: ungrouped.len(),
    })
}
