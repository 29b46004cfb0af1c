//! Reading photos safely: the format is guessed from the content, the header's dimensions are
//! checked before any pixel buffer is allocated (a 20000x20000 header is refused, not decoded),
//! decoding runs under `image`'s memory limits, the EXIF orientation of phone photos is applied,
//! and every failure is one line naming the file. JPEG, PNG, WebP, BMP and GIF are read.

use std::path::Path;

use image::{ImageDecoder, ImageReader, Limits, RgbImage};

use crate::{Error, Result};

/// Largest accepted side, in pixels (a 12000x12000 RGB photo is 432 MB decoded).
pub const MAX_SIDE: u32 = 12_000;
/// Smallest side that can hold a detectable face (the detector's window is 20 px).
pub const MIN_SIDE: u32 = 20;
/// Decoder memory ceiling.
const MAX_ALLOC: u64 = 1 << 30;

/// File extensions treated as photos when scanning folders.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "gif", "webp"];

fn reader(path: &Path) -> Result<ImageReader<std::io::BufReader<std::fs::File>>> {
    crate::input::check_regular(path)?;
    let reader = ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    if reader.format().is_none() {
        return Err(Error::format(path, "not an image (unrecognised content)"));
    }
    Ok(reader)
}

/// `(width, height)` from the header alone.
pub fn dimensions(path: &Path) -> Result<(u32, u32)> {
    reader(path)?
        .into_dimensions()
        .map_err(|e| Error::format(path, format!("unreadable image header: {e}")))
}

/// Decodes a photo to RGB after checking its header (see the module doc).
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let (w, h) = dimensions(path)?;
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(Error::format(
            path,
            format!("header says {w}x{h} pixels; refusing images over {MAX_SIDE} pixels a side"),
        ));
    }
    if w < MIN_SIDE || h < MIN_SIDE {
        return Err(Error::format(
            path,
            format!(
                "image is {w}x{h} pixels: too small to hold a face (minimum {MIN_SIDE}x{MIN_SIDE})"
            ),
        ));
    }
    let mut reader = reader(path)?;
    // Some JPEG decoders fill a truncated scan with grey instead of failing: check the markers.
    if reader.format() == Some(image::ImageFormat::Jpeg) {
        let bytes = crate::input::read_file(path)?;
        if !crate::input::jpeg_is_complete(&bytes) {
            return Err(Error::format(
                path,
                "cannot decode image: truncated JPEG (no end-of-image marker)",
            ));
        }
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let decode_error = |e| Error::format(path, format!("cannot decode image: {e}"));
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    // Phones store photos as the sensor saw them and say in EXIF how to turn them upright; the
    // detector only finds upright faces, so the photo is turned first.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    img.apply_orientation(orientation);
    Ok(img.to_rgb8())
}

/// Whether `path` has one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Every file under `dir` (recursively, sorted), for folder runs. Non-image files are kept: the
/// caller reports them as skipped, so users see what was left out.
pub fn list_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    Ok(list_folder(dir)?.files)
}

/// What a folder walk found: the regular files (links to regular files included), and what it
/// left out with the reason (FIFOs, sockets and devices, which a read would block on or never
/// finish; links to folders, which could loop; broken links).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FolderListing {
    pub files: Vec<std::path::PathBuf>,
    pub skipped: Vec<(std::path::PathBuf, String)>,
}

/// Walks `dir` recursively (hidden entries left out), see [`FolderListing`]; sorted.
pub fn list_folder(dir: &Path) -> Result<FolderListing> {
    let mut out = FolderListing::default();
    crate::input::check_dir(dir)?;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let path = entry.path();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                out.files.push(path);
            } else if kind.is_symlink() {
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => out.files.push(path),
                    Ok(m) if m.is_dir() => {
                        let why = format!("{}: a link to a folder, not followed", path.display());
                        out.skipped.push((path, why));
                    }
                    Ok(m) => {
                        let why = format!(
                            "{}: a link to {}, not read",
                            path.display(),
                            crate::output::kind_of(&m)
                        );
                        out.skipped.push((path, why));
                    }
                    Err(e) => {
                        let why = format!("{}: a broken link ({e})", path.display());
                        out.skipped.push((path, why));
                    }
                }
            } else {
                let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
                let why = format!(
                    "{}: {}, not read",
                    path.display(),
                    crate::output::kind_of(&meta)
                );
                out.skipped.push((path, why));
            }
        }
    }
    out.files.sort();
    out.skipped.sort();
    Ok(out)
}
