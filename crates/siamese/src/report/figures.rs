//! Putting pictures into the report folder: copying PNGs other stages wrote, saving images the
//! report draws itself (rectangles, grids of image groups, digit grids),
//! each written atomically and returned as a [`Figure`] with its pixel size, and adding figures
//! to a stage ([`push_figure`]: a figure that could not be drawn is noted, not fatal).

use std::io::Cursor;
use std::path::Path;

use image::{imageops, Rgb, RgbImage};

use super::document::{Figure, StageRecord};
use crate::data::LabelledImages;
use crate::output::write_atomic;
use crate::{Error, Result};

/// Adds figures to the stage; a figure that could not be drawn is noted, not fatal (the
/// stage's numbers stand without it).
pub fn push_figure(rec: &mut StageRecord, figures: Result<Vec<Figure>>) {
    match figures {
        Ok(f) => rec.figures.extend(f),
        Err(e) => rec
            .summary
            .push(format!("(A figure could not be drawn: {e})")),
    }
}

/// The figure for a PNG something already wrote into `report_dir` as `name`.
pub fn figure_at(report_dir: &Path, name: &str, caption: &str) -> Result<Figure> {
    let path = report_dir.join(name);
    let (width, height) =
        image::image_dimensions(&path).map_err(|e| Error::format(&path, e.to_string()))?;
    Ok(Figure {
        file: name.to_string(),
        caption: caption.to_string(),
        width,
        height,
    })
}

/// Copies the PNG `src` into `report_dir` as `name`.
pub fn add_png(report_dir: &Path, src: &Path, name: &str, caption: &str) -> Result<Figure> {
    let bytes = std::fs::read(src).map_err(|e| Error::io(src, e))?;
    let (width, height) = image::ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| Error::format(src, e.to_string()))?
        .into_dimensions()
        .map_err(|e| Error::format(src, format!("not a readable image: {e}")))?;
    write_atomic(&report_dir.join(name), &bytes)?;
    Ok(Figure {
        file: name.to_string(),
        caption: caption.to_string(),
        width,
        height,
    })
}

/// Encodes `img` as PNG into `report_dir/name`.
pub fn save_png(report_dir: &Path, img: &RgbImage, name: &str, caption: &str) -> Result<Figure> {
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| Error::Other(format!("cannot encode {name}: {e}")))?;
    write_atomic(&report_dir.join(name), &bytes)?;
    Ok(Figure {
        file: name.to_string(),
        caption: caption.to_string(),
        width: img.width(),
        height: img.height(),
    })
}

/// A distinct colour per index (a qualitative palette).
pub fn palette(i: usize) -> Rgb<u8> {
    const COLOURS: [[u8; 3]; 10] = [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
    ];
    Rgb(COLOURS[i % COLOURS.len()])
}

/// Draws an axis-aligned rectangle outline `thickness` pixels wide (clipped to the image).
pub fn draw_rect(
    img: &mut RgbImage,
    x: f32,
    y: f32,
    w: f32,
    h: f32,
    thickness: u32,
    colour: Rgb<u8>,
) {
    let (iw, ih) = (img.width() as i64, img.height() as i64);
    let (x0, y0) = (x.round() as i64, y.round() as i64);
    let (x1, y1) = ((x + w).round() as i64, (y + h).round() as i64);
    let t = thickness as i64;
    let mut put = |px: i64, py: i64| {
        if px >= 0 && py >= 0 && px < iw && py < ih {
            img.put_pixel(px as u32, py as u32, colour);
        }
    };
    for k in 0..t {
        for px in x0..=x1 {
            put(px, y0 + k);
            put(px, y1 - k);
        }
        for py in y0..=y1 {
            put(x0 + k, py);
            put(x1 - k, py);
        }
    }
}

/// Shrinks `img` so its width is at most `max_width` (aspect kept); returns the scale used.
pub fn fit_width(img: &RgbImage, max_width: u32) -> (RgbImage, f32) {
    if img.width() <= max_width {
        return (img.clone(), 1.0);
    }
    let scale = max_width as f32 / img.width() as f32;
    let h = ((img.height() as f32 * scale).round() as u32).max(1);
    (
        imageops::resize(img, max_width, h, imageops::FilterType::Triangle),
        scale,
    )
}

/// Tiles groups of images (e.g. the faces of one person): each group is a coloured bar
/// (palette colour of the group's index) followed by up to `slots` cells of `cell`×`cell`
/// pixels; `per_row` groups side by side per row, `gap` pixels apart.
pub fn group_grid(
    groups: &[Vec<RgbImage>],
    slots: usize,
    per_row: usize,
    cell: u32,
    gap: u32,
) -> RgbImage {
    let bar = 6;
    let per_row = per_row.clamp(1, groups.len().max(1));
    let group_w = bar + gap + slots as u32 * (cell + gap);
    let rows = groups.len().div_ceil(per_row).max(1) as u32;
    let width = per_row as u32 * (group_w + 2 * gap) + gap;
    let height = rows * (cell + gap) + gap;
    let mut out = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (g, images) in groups.iter().enumerate() {
        let x0 = gap + (g % per_row) as u32 * (group_w + 2 * gap);
        let y = gap + (g / per_row) as u32 * (cell + gap);
        let colour = palette(g);
        for dy in 0..cell {
            for dx in 0..bar {
                out.put_pixel(x0 + dx, y + dy, colour);
            }
        }
        for (c, img) in images.iter().take(slots).enumerate() {
            let x = x0 + bar + gap + c as u32 * (cell + gap);
            let tile = if img.width() == cell && img.height() == cell {
                img.clone()
            } else {
                imageops::resize(img, cell, cell, imageops::FilterType::Triangle)
            };
            imageops::replace(&mut out, &tile, i64::from(x), i64::from(y));
        }
    }
    out
}

/// A grey image of `data`'s image `i` (first channel, values in [0, 1]) as RGB.
pub fn digit_image(data: &LabelledImages, i: usize) -> RgbImage {
    let (w, h) = (data.width as u32, data.height as u32);
    let px = data.image(i);
    RgbImage::from_fn(w, h, |x, y| {
        let v = (px[(y * w + x) as usize].clamp(0.0, 1.0) * 255.0).round() as u8;
        Rgb([v, v, v])
    })
}
