//! MNIST-style conversion of arbitrary images to `1 × 28 × 28` ink maps in `[0, 1]`
//! (white ink on black, row-major, 784 values), following LeCun's description of MNIST.
//!
//! The steps, in order:
//! 1. **Grey.** Images larger than 1024 px are first shrunk to 1024 (area average). Any format
//!    the `image` crate decodes (grey, RGB, 16-bit, alpha) becomes luminance in `[0, 1]`
//!    (Rec. 601 weights). Transparent pixels are composited over the colour opposite to the
//!    visible content (white behind dark ink, black behind light ink), so a drawing on a
//!    transparent background keeps its strokes.
//! 2. **Ink is white.** When the mean of the one-pixel border is above 0.5 the background is light
//!    and the image is inverted.
//! 3. **Background removed, contrast stretched.** The border's median is the background level; ink
//!    is `(v − bg) / (max − bg)`, then a soft floor (`(ink − 0.1) / 0.9`) drops paper texture and
//!    JPEG noise. An image whose contrast is below 0.1 is blank: the result is all zeros.
//! 4. **Crop** to the bounding box of pixels above 0.2.
//! 5. **Stroke normalisation** (on by default, [`MnistStyle::normalise_strokes`]): the crop is
//!    resampled to a working box (its own longer side, clamped to 40..160 px), rescaled to a
//!    peak of 1, and its stroke width is estimated as `2·area / boundary edges` of the ink
//!    above 0.5. Strokes below 85 % of MNIST's median stroke width ([`MNIST_STROKE_FRACTION`],
//!    0.10 of the box, measured on MNIST itself with the same estimator) are thickened to it by
//!    a soft grey dilation with a disc (the final 20-px downscale softens edges, so converted
//!    Omniglot Latin letters measure 0.088 at the output). Thin-pen photos and Omniglot's 105-px drawings
//!    then have digit-like strokes, so distances compare shapes, not pens. MNIST digits pass
//!    through nearly unchanged (median stroke 0.105 after conversion). Never thins a stroke.
//! 6. **Size normalisation**: the longer side becomes 20 px, aspect ratio kept, with a triangle
//!    (bilinear) filter that widens on downscaling, i.e. anti-aliased like NIST's normalisation.
//! 7. **Centring by mass**: the 20-px box is placed in the 28 × 28 field with the integer shift
//!    that brings its centre of mass closest to the field's centre (14, 14) in continuous
//!    coordinates (pixel `i` spans `[i, i+1)`), clamped so that no ink leaves the field.
//!
//! [`MnistStyle::side`] asks for a larger field (e.g. 40 or 56 for Omniglot's 105-px drawings):
//! the box then keeps MNIST's proportion of it (20/28), so steps 6–7 give the same picture with
//! more pixels; steps 1–5 do not change.

use std::io::Cursor;
use std::path::Path;

use image::{imageops::FilterType, DynamicImage, ImageBuffer, ImageReader, Luma};

use crate::{Error, Result};

/// Side of the MNIST field.
pub const MNIST_SIDE: usize = 28;
/// Longer side of the ink's bounding box in the MNIST field.
pub const MNIST_BOX: usize = 20;
/// Bounds of the working resolution (longer side) used to measure and thicken strokes: the
/// crop's own size, but at least 40 px (MNIST's 20-px digits are measured at 40) and at most
/// 160 px (fine enough to resolve a pen stroke, small enough to dilate quickly).
const WORK_MIN: usize = 40;
const WORK_MAX: usize = 160;

fn work_side(w: usize, h: usize) -> usize {
    w.max(h).clamp(WORK_MIN, WORK_MAX)
}

/// Median stroke width of MNIST digits as a fraction of their box's longer side, measured with
/// [`stroke_fraction`] on the 60,000 training digits (median 0.0995; quartiles 0.084, 0.118).
pub const MNIST_STROKE_FRACTION: f32 = 0.10;
/// Strokes within this factor of [`MNIST_STROKE_FRACTION`] are left alone.
const THICKEN_BELOW: f32 = 0.85;

/// Images whose longer side exceeds this are first shrunk to it (aspect kept).
const MAX_INPUT_SIDE: u32 = 1024;

/// Smallest and largest field side [`MnistStyle::side`] accepts.
pub const MIN_SIDE: usize = MNIST_SIDE;
pub const MAX_SIDE: usize = 112;

/// Options of [`mnist_style_with`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MnistStyle {
    /// Thicken strokes thinner than MNIST's (step 5 of the module docs).
    pub normalise_strokes: bool,
    /// Side of the square output field (MNIST's 28 by default). The ink's box keeps MNIST's
    /// proportion of it, 20/28 ([`MnistStyle::box_side`]), so a larger field holds the same
    /// picture in more pixels.
    pub side: usize,
}

impl Default for MnistStyle {
    fn default() -> Self {
        MnistStyle {
            normalise_strokes: true,
            side: MNIST_SIDE,
        }
    }
}

impl MnistStyle {
    /// The default conversion into a `side × side` field; a side outside
    /// [`MIN_SIDE`]..=[`MAX_SIDE`] is an error naming it.
    pub fn with_side(side: usize) -> Result<Self> {
        check_side(side)?;
        Ok(MnistStyle {
            side,
            ..MnistStyle::default()
        })
    }

    /// Longer side of the ink's box in the field: `side · 20 / 28`, rounded (20 at 28).
    pub fn box_side(&self) -> usize {
        (self.side * MNIST_BOX + MNIST_SIDE / 2) / MNIST_SIDE
    }
}

/// Checks a field side for [`MnistStyle::side`].
pub fn check_side(side: usize) -> Result<()> {
    if !(MIN_SIDE..=MAX_SIDE).contains(&side) {
        return Err(Error::config(
            "--side",
            format!("{side} is not in {MIN_SIDE}..={MAX_SIDE}"),
        ));
    }
    Ok(())
}

/// Opens and decodes an image file (format guessed from its bytes); errors name the file.
pub fn open_image(path: &Path) -> Result<DynamicImage> {
    let bytes = crate::input::read_file(path)?;
    decode_image(&bytes, path)
}

/// Decodes image bytes; `path` only names the file in errors.
pub fn decode_image(bytes: &[u8], path: &Path) -> Result<DynamicImage> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    // Some JPEG decoders fill a truncated scan with grey instead of failing: check the markers.
    if reader.format() == Some(image::ImageFormat::Jpeg) && !crate::input::jpeg_is_complete(bytes) {
        return Err(Error::format(
            path,
            "not a readable image: truncated JPEG (no end-of-image marker)",
        ));
    }
    reader
        .decode()
        .map_err(|e| Error::format(path, format!("not a readable image: {e}")))
}

/// Reads an image file and converts it MNIST-style (784 values in `[0, 1]`).
pub fn load_image_mnist_style(path: impl AsRef<Path>) -> Result<Vec<f32>> {
    Ok(mnist_style(&open_image(path.as_ref())?))
}

/// MNIST-style conversion with the default options (see the module docs).
pub fn mnist_style(img: &DynamicImage) -> Vec<f32> {
    mnist_style_with(img, MnistStyle::default())
}

/// MNIST-style conversion with explicit options.
pub fn mnist_style_with(img: &DynamicImage, opts: MnistStyle) -> Vec<f32> {
    let (ink, w, h) = ink_map(img);
    ink_to_mnist(&ink, w, h, opts)
}

/// Steps 1–3: an ink map (white ink on black, background 0) of the image's own size.
pub fn ink_map(img: &DynamicImage) -> (Vec<f32>, usize, usize) {
    // A photo's megapixels add nothing at a 20-px target: shrink first (area average), so a
    // 12-MP picture does not become a 190-MB float copy.
    let shrunk;
    let img = if img.width().max(img.height()) > MAX_INPUT_SIDE {
        shrunk = img.thumbnail(MAX_INPUT_SIDE, MAX_INPUT_SIDE);
        &shrunk
    } else {
        img
    };
    let rgba = img.to_rgba32f();
    let (w, h) = (rgba.width() as usize, rgba.height() as usize);
    if w == 0 || h == 0 {
        return (Vec::new(), w, h);
    }
    let luma = |p: &image::Rgba<f32>| (0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]).clamp(0.0, 1.0);
    // Composite transparency over the colour opposite to what is visible.
    let (mut weighted, mut alpha_sum) = (0.0f64, 0.0f64);
    for p in rgba.pixels() {
        weighted += (p[3] * luma(p)) as f64;
        alpha_sum += p[3] as f64;
    }
    let behind = if alpha_sum > 0.0 && weighted / alpha_sum < 0.5 {
        1.0
    } else {
        0.0
    };
    let mut grey: Vec<f32> = rgba
        .pixels()
        .map(|p| {
            let a = p[3].clamp(0.0, 1.0);
            a * luma(p) + (1.0 - a) * behind
        })
        .collect();
    let mut border = border_values(&grey, w, h);
    let border_mean = border.iter().sum::<f32>() / border.len() as f32;
    if border_mean > 0.5 {
        grey.iter_mut().for_each(|v| *v = 1.0 - *v);
        border.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    border.sort_by(f32::total_cmp);
    let background = border[border.len() / 2];
    let max = grey.iter().copied().fold(0.0f32, f32::max);
    if max - background < 0.1 {
        return (vec![0.0; w * h], w, h);
    }
    let ink = grey
        .iter()
        .map(|&v| {
            let stretched = ((v - background) / (max - background)).clamp(0.0, 1.0);
            ((stretched - 0.1) / 0.9).max(0.0)
        })
        .collect();
    (ink, w, h)
}

fn border_values(v: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(2 * (w + h));
    for y in 0..h {
        if y == 0 || y == h - 1 {
            out.extend_from_slice(&v[y * w..(y + 1) * w]);
        } else {
            out.push(v[y * w]);
            if w > 1 {
                out.push(v[y * w + w - 1]);
            }
        }
    }
    out
}

/// Steps 4–7: an ink map (white on black, any size) to the MNIST field (28 × 28 unless
/// `opts.side` says otherwise). A map without ink gives a field of zeros.
pub fn ink_to_mnist(ink: &[f32], w: usize, h: usize, opts: MnistStyle) -> Vec<f32> {
    let field = opts.side;
    let blank = vec![0.0; field * field];
    let Some((x0, y0, x1, y1)) = bounding_box(ink, w, h, 0.2) else {
        return blank;
    };
    let (bw, bh) = (x1 - x0, y1 - y0);
    let crop: Vec<f32> = (y0..y1)
        .flat_map(|y| ink[y * w + x0..y * w + x1].iter().copied())
        .collect();
    let (mut cur, mut cw, mut ch) = (crop, bw, bh);
    if opts.normalise_strokes {
        let side = work_side(cw, ch);
        let (work, ww, wh) = work_map(&cur, cw, ch, side);
        let target = MNIST_STROKE_FRACTION * side as f32;
        let width = stroke_width(&work, ww, wh);
        if width < THICKEN_BELOW * target {
            let (thick, tw, th) = dilate_disc(&work, ww, wh, (target - width) / 2.0);
            match bounding_box(&thick, tw, th, 0.2) {
                Some((a0, b0, a1, b1)) => {
                    cur = (b0..b1)
                        .flat_map(|y| thick[y * tw + a0..y * tw + a1].iter().copied())
                        .collect();
                    cw = a1 - a0;
                    ch = b1 - b0;
                }
                None => return blank,
            }
        } else {
            (cur, cw, ch) = (work, ww, wh);
        }
    }
    let (small, sw, sh) = resize_to_box(&cur, cw, ch, opts.box_side());
    let (cx, cy) = centre_of_mass(&small, sw, sh);
    let centre = field as f32 / 2.0;
    let place = |c: f32, size: usize| -> usize {
        let ideal = (centre - c).round();
        ideal.clamp(0.0, (field - size) as f32) as usize
    };
    let (ox, oy) = (place(cx, sw), place(cy, sh));
    let mut out = blank;
    for y in 0..sh {
        for x in 0..sw {
            out[(y + oy) * field + x + ox] = small[y * sw + x].clamp(0.0, 1.0);
        }
    }
    out
}

/// Stroke width of an ink map as a fraction of its ink's longer side, measured as in step 5
/// (crop, resample to the 40-px working box, [`stroke_width`]). `None` without ink.
pub fn stroke_fraction(ink: &[f32], w: usize, h: usize) -> Option<f32> {
    let (x0, y0, x1, y1) = bounding_box(ink, w, h, 0.2)?;
    let crop: Vec<f32> = (y0..y1)
        .flat_map(|y| ink[y * w + x0..y * w + x1].iter().copied())
        .collect();
    let side = work_side(x1 - x0, y1 - y0);
    let (work, ww, wh) = work_map(&crop, x1 - x0, y1 - y0, side);
    Some(stroke_width(&work, ww, wh) / side as f32)
}

/// The crop resampled to the working box, rescaled so its peak is 1 (downsampling fades thin
/// strokes; full contrast makes them measurable and keeps them bright when thickened).
fn work_map(crop: &[f32], w: usize, h: usize, side: usize) -> (Vec<f32>, usize, usize) {
    let (mut work, ww, wh) = resize_to_box(crop, w, h, side);
    let peak = work.iter().copied().fold(0.0f32, f32::max);
    if peak > 0.0 {
        work.iter_mut().for_each(|v| *v = (*v / peak).min(1.0));
    }
    (work, ww, wh)
}

/// Bounding box `(x0, y0, x1, y1)` (exclusive ends) of values above `level`.
fn bounding_box(v: &[f32], w: usize, h: usize, level: f32) -> Option<(usize, usize, usize, usize)> {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if v[y * w + x] > level {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
    }
    (x1 > 0).then_some((x0, y0, x1, y1))
}

/// Resamples so the longer side is `side`, aspect kept (triangle filter, anti-aliased).
fn resize_to_box(v: &[f32], w: usize, h: usize, side: usize) -> (Vec<f32>, usize, usize) {
    let scale = side as f32 / w.max(h) as f32;
    let nw = ((w as f32 * scale).round() as usize).clamp(1, side);
    let nh = ((h as f32 * scale).round() as usize).clamp(1, side);
    if (nw, nh) == (w, h) {
        return (v.to_vec(), w, h);
    }
    let buf: ImageBuffer<Luma<f32>, Vec<f32>> =
        ImageBuffer::from_raw(w as u32, h as u32, v.to_vec()).expect("buffer matches its size");
    let out = image::imageops::resize(&buf, nw as u32, nh as u32, FilterType::Triangle);
    (out.into_raw(), nw, nh)
}

/// Estimated stroke width in pixels: `2·area / boundary edges` of the pixels above 0.5
/// (a long stroke of width `s` and length `L` has area `sL` and about `2L` boundary edges).
/// Zero when there is no such pixel.
pub fn stroke_width(v: &[f32], w: usize, h: usize) -> f32 {
    let on = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < h
            && v[y as usize * w + x as usize] > 0.5
    };
    let (mut area, mut edges) = (0usize, 0usize);
    for y in 0..h as isize {
        for x in 0..w as isize {
            if on(x, y) {
                area += 1;
                edges += [(1, 0), (-1, 0), (0, 1), (0, -1)]
                    .iter()
                    .filter(|(dx, dy)| !on(x + dx, y + dy))
                    .count();
            }
        }
    }
    if edges == 0 {
        0.0
    } else {
        2.0 * area as f32 / edges as f32
    }
}

/// Soft grey dilation by a disc of radius `r` (pixels at distance `d` weigh
/// `clamp(r + 0.5 − d, 0, 1)`), on a canvas padded by `ceil(r)` so nothing is cut.
fn dilate_disc(v: &[f32], w: usize, h: usize, r: f32) -> (Vec<f32>, usize, usize) {
    let pad = r.ceil() as usize;
    let (pw, ph) = (w + 2 * pad, h + 2 * pad);
    let reach = pad as isize;
    let kernel: Vec<(isize, isize, f32)> = (-reach..=reach)
        .flat_map(|dy| (-reach..=reach).map(move |dx| (dx, dy)))
        .filter_map(|(dx, dy)| {
            let d = ((dx * dx + dy * dy) as f32).sqrt();
            let weight = (r + 0.5 - d).clamp(0.0, 1.0);
            (weight > 0.0).then_some((dx, dy, weight))
        })
        .collect();
    let mut out = vec![0.0f32; pw * ph];
    for y in 0..h {
        for x in 0..w {
            let value = v[y * w + x];
            if value <= 0.0 {
                continue;
            }
            let (cx, cy) = ((x + pad) as isize, (y + pad) as isize);
            for &(dx, dy, weight) in &kernel {
                let idx = (cy + dy) as usize * pw + (cx + dx) as usize;
                out[idx] = out[idx].max(value * weight);
            }
        }
    }
    (out, pw, ph)
}

/// Centre of mass `(x, y)` of a `w × h` map in continuous coordinates (pixel `i` spans
/// `[i, i+1)`, so a 28-wide field's centre is 14). The geometric centre when the map is empty.
pub fn centre_of_mass(v: &[f32], w: usize, h: usize) -> (f32, f32) {
    let (mut sx, mut sy, mut total) = (0.0f64, 0.0f64, 0.0f64);
    for y in 0..h {
        for x in 0..w {
            let m = v[y * w + x].max(0.0) as f64;
            sx += m * (x as f64 + 0.5);
            sy += m * (y as f64 + 0.5);
            total += m;
        }
    }
    if total <= 0.0 {
        return (w as f32 / 2.0, h as f32 / 2.0);
    }
    ((sx / total) as f32, (sy / total) as f32)
}
