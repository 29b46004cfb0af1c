//! Montages: several figures (e.g. one embedding plot per margin) or images (e.g. the faces of
//! one cluster) assembled into one PNG, written atomically like every figure.

use std::path::Path;

use image::{imageops, Rgb, RgbImage};
use plotters::prelude::*;
use plotters::style::text_anchor;

use super::canvas::{draw_error, register_fonts, write_png};
use crate::{Error, Result};

/// Height of the title strip above each montage tile.
pub const MONTAGE_TITLE_HEIGHT: u32 = 40;
/// Gap between montage / grid tiles.
pub const TILE_GAP: u32 = 6;
/// Montage tiles are scaled down so their longest side is at most this.
pub const MONTAGE_MAX_TILE: u32 = 700;

/// Scales `image` down (never up) to fit a `max_w` × `max_h` box, keeping its aspect ratio.
fn fit_within(image: &RgbImage, max_w: u32, max_h: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let scale = (max_w as f64 / w as f64)
        .min(max_h as f64 / h as f64)
        .min(1.0);
    if scale >= 1.0 {
        return image.clone();
    }
    let (nw, nh) = (
        ((w as f64 * scale).round() as u32).max(1),
        ((h as f64 * scale).round() as u32).max(1),
    );
    imageops::resize(image, nw, nh, imageops::FilterType::Triangle)
}

/// Several PNG files (e.g. one embedding plot per margin) side by side, `columns` per row, each
/// with its title above; tiles are scaled to the first tile's size (at most 700 px a side).
pub fn montage_png<P: AsRef<Path>>(
    path: impl AsRef<Path>,
    tiles: &[P],
    columns: usize,
    titles: &[String],
) -> Result<()> {
    let images = tiles
        .iter()
        .map(|t| {
            let t = t.as_ref();
            image::open(t)
                .map(|i| i.to_rgb8())
                .map_err(|e| Error::format(t, format!("cannot read image: {e}")))
        })
        .collect::<Result<Vec<RgbImage>>>()?;
    montage_images_png(path, &images, columns, titles)
}

/// [`montage_png`] from images in memory.
pub fn montage_images_png(
    path: impl AsRef<Path>,
    images: &[RgbImage],
    columns: usize,
    titles: &[String],
) -> Result<()> {
    let path = path.as_ref();
    let first = images
        .first()
        .ok_or_else(|| Error::config("montage", "no tile to assemble"))?;
    let (w0, h0) = first.dimensions();
    let scale = (MONTAGE_MAX_TILE as f64 / w0.max(h0) as f64).min(1.0);
    let (tw, th) = (
        ((w0 as f64 * scale) as u32).max(1),
        ((h0 as f64 * scale) as u32).max(1),
    );
    let columns = columns.clamp(1, images.len());
    let rows = images.len().div_ceil(columns);
    let cell_h = th + MONTAGE_TITLE_HEIGHT;
    let size = (
        columns as u32 * tw + (columns as u32 + 1) * TILE_GAP,
        rows as u32 * cell_h + (rows as u32 + 1) * TILE_GAP,
    );
    let mut canvas = RgbImage::from_pixel(size.0, size.1, Rgb([255, 255, 255]));
    let mut origins = Vec::new();
    for (k, image) in images.iter().enumerate() {
        let tile = fit_within(image, tw, th);
        let x = TILE_GAP + (k % columns) as u32 * (tw + TILE_GAP);
        let y = TILE_GAP + (k / columns) as u32 * (cell_h + TILE_GAP);
        let (dx, dy) = ((tw - tile.width()) / 2, (th - tile.height()) / 2);
        imageops::overlay(
            &mut canvas,
            &tile,
            i64::from(x + dx),
            i64::from(y + MONTAGE_TITLE_HEIGHT + dy),
        );
        origins.push((x, y));
    }
    register_fonts();
    let mut buffer = canvas.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area();
        let style = TextStyle::from(("sans-serif", 24).into_font()).pos(text_anchor::Pos::new(
            text_anchor::HPos::Center,
            text_anchor::VPos::Center,
        ));
        for ((x, y), title) in origins.iter().zip(titles) {
            let at = ((x + tw / 2) as i32, (y + MONTAGE_TITLE_HEIGHT / 2) as i32);
            root.draw(&Text::new(title.clone(), at, style.clone()))
                .map_err(|e| draw_error(path, e))?;
        }
        root.present().map_err(|e| draw_error(path, e))?;
    }
    let canvas = RgbImage::from_raw(size.0, size.1, buffer)
        .ok_or_else(|| Error::format(path, "canvas size mismatch"))?;
    write_png(path, &canvas)
}

/// Images (e.g. face crops) in a grid, `columns` per row, each scaled to fit a `tile_size`
/// square (up or down) and centred on white.
pub fn image_grid_png(
    path: impl AsRef<Path>,
    images: &[RgbImage],
    columns: usize,
    tile_size: u32,
) -> Result<()> {
    let path = path.as_ref();
    if images.is_empty() {
        return Err(Error::config("image grid", "no image to assemble"));
    }
    if tile_size == 0 {
        return Err(Error::config("tile size", "must be at least 1 pixel"));
    }
    let columns = columns.clamp(1, images.len());
    let rows = images.len().div_ceil(columns);
    let size = (
        columns as u32 * tile_size + (columns as u32 + 1) * TILE_GAP,
        rows as u32 * tile_size + (rows as u32 + 1) * TILE_GAP,
    );
    let mut canvas = RgbImage::from_pixel(size.0, size.1, Rgb([255, 255, 255]));
    for (k, image) in images.iter().enumerate() {
        let (w, h) = image.dimensions();
        if w == 0 || h == 0 {
            continue;
        }
        let scale = (tile_size as f64 / w as f64).min(tile_size as f64 / h as f64);
        let (nw, nh) = (
            ((w as f64 * scale).round() as u32).clamp(1, tile_size),
            ((h as f64 * scale).round() as u32).clamp(1, tile_size),
        );
        let tile = imageops::resize(image, nw, nh, imageops::FilterType::Triangle);
        let x = TILE_GAP + (k % columns) as u32 * (tile_size + TILE_GAP) + (tile_size - nw) / 2;
        let y = TILE_GAP + (k / columns) as u32 * (tile_size + TILE_GAP) + (tile_size - nh) / 2;
        imageops::overlay(&mut canvas, &tile, i64::from(x), i64::from(y));
    }
    write_png(path, &canvas)
}
