//! The drawing basics every figure shares: the bundled DejaVu Sans font, class colours, a white
//! in-memory RGB canvas (plotters' bitmap backend) and atomic PNG writing (temporary sibling +
//! rename), so a failed figure never leaves a half-written file.

use std::path::Path;
use std::sync::Once;

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Error, Result};

static FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Registers the bundled font under the family names plotters asks for (once per process).
pub(crate) fn register_fonts() {
    REGISTER.call_once(|| {
        for family in ["sans-serif", "serif", "monospace", "DejaVu Sans"] {
            for style in [FontStyle::Normal, FontStyle::Bold] {
                // The bytes are a valid TrueType file compiled into the crate.
                let _ = plotters::style::register_font(family, style, FONT);
            }
        }
    });
}

/// Colour of class `i`: the Tableau-10 palette without its grey (grey means "unknown"), then
/// golden-angle hues.
pub fn class_colour(i: usize) -> RGBColor {
    const PALETTE: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (188, 189, 34),
        (23, 190, 207),
        (0, 0, 128),
    ];
    if let Some(&(r, g, b)) = PALETTE.get(i) {
        return RGBColor(r, g, b);
    }
    let hue = (i as f64 * 137.507_764) % 360.0;
    let (s, l) = (0.65, if i.is_multiple_of(2) { 0.45 } else { 0.6 });
    let c = (1.0 - (2.0 * l - 1.0f64).abs()) * s;
    let x = c * (1.0 - ((hue / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (hue / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to = |v: f64| ((v + m) * 255.0).round() as u8;
    RGBColor(to(r), to(g), to(b))
}

pub(crate) const UNKNOWN_GREY: RGBColor = RGBColor(120, 120, 120);

pub(crate) fn draw_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::format(path, format!("cannot draw the figure: {e}"))
}

/// Renders `draw` on a white `size` canvas and writes it to `path` as PNG.
pub(crate) fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    register_fonts();
    let mut buffer = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| draw_error(path, e))?;
    }
    let image = RgbImage::from_raw(size.0, size.1, buffer)
        .ok_or_else(|| Error::format(path, "canvas size mismatch"))?;
    write_png(path, &image)
}

/// Encodes `image` as PNG and writes it atomically.
pub fn write_png(path: &Path, image: &RgbImage) -> Result<()> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| Error::format(path, format!("cannot encode PNG: {e}")))?;
    crate::output::write_atomic(path, &bytes)
}
