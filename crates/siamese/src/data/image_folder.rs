//! Image folders as data sets: `DIR/class_name/*.png|jpg|jpeg|bmp|gif` (labelled), any folder
//! tree or zip of images (unlabelled "unknowns"), and one alphabet of the Omniglot zips
//! (`Alphabet/characterNN/*.png`, black ink on white, 105 × 105).
//!
//! Output shapes: [`FolderMode::MnistStyle`] gives `1 × 28 × 28` (see [`super::transform`]),
//! [`FolderMode::Rgb`] gives `3 × height × width` (plain resize, no aspect kept). Classes are
//! sorted by name, files by name, so indices are stable. Decoding runs in parallel.

use std::io::Read;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::DynamicImage;
use rayon::prelude::*;

use crate::data::transform::{decode_image, mnist_style, MNIST_SIDE};
use crate::data::LabelledImages;
use crate::{Error, Result};

/// File extensions read as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "bmp", "gif"];

/// How images are turned into tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderMode {
    /// MNIST-style `1 × 28 × 28` ink maps.
    MnistStyle,
    /// `3 × height × width` RGB in `[0, 1]`, resized (triangle filter) without keeping aspect.
    Rgb { width: usize, height: usize },
}

impl FolderMode {
    fn shape(self) -> (usize, usize, usize) {
        match self {
            FolderMode::MnistStyle => (1, MNIST_SIDE, MNIST_SIDE),
            FolderMode::Rgb { width, height } => (3, height, width),
        }
    }

    /// Converts one decoded image to `channels × height × width` values.
    pub fn convert(self, img: &DynamicImage) -> Vec<f32> {
        match self {
            FolderMode::MnistStyle => mnist_style(img),
            FolderMode::Rgb { width, height } => {
                let rgb = img
                    .resize_exact(width as u32, height as u32, FilterType::Triangle)
                    .to_rgb32f();
                let plane = width * height;
                let mut out = vec![0.0f32; 3 * plane];
                for (i, p) in rgb.pixels().enumerate() {
                    for c in 0..3 {
                        out[c * plane + i] = p[c].clamp(0.0, 1.0);
                    }
                }
                out
            }
        }
    }
}

/// Whether `path` has one of [`IMAGE_EXTENSIONS`].
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.starts_with('.'))
        .unwrap_or(false)
}

/// Sorted entries of `dir`, hidden ones (`.name`) left out.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if !is_hidden(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Decodes and converts `files` in parallel, keeping their order; the first failure names its file.
fn convert_files(files: &[PathBuf], mode: FolderMode) -> Result<Vec<f32>> {
    let images: Vec<Vec<f32>> = files
        .par_iter()
        .map(|path| {
            let bytes = crate::input::read_file(path)?;
            Ok(mode.convert(&decode_image(&bytes, path)?))
        })
        .collect::<Result<_>>()?;
    Ok(images.concat())
}

/// Loads `DIR/class_name/*.{png,jpg,jpeg,bmp,gif}`: one class per sub-folder (sorted by name),
/// files sorted by name. Loose files in `DIR` and hidden entries are ignored. Errors: a missing
/// folder, no class folders, a class folder without images, a file that is not an image (by
/// extension, or that does not decode) — each naming the path.
pub fn load_image_folder(dir: impl AsRef<Path>, mode: FolderMode) -> Result<LabelledImages> {
    let dir = dir.as_ref();
    if !dir.exists() {
        return Err(Error::io(dir, std::io::ErrorKind::NotFound.into()));
    }
    if !dir.is_dir() {
        return Err(Error::format(dir, "not a folder of class folders"));
    }
    let class_dirs: Vec<PathBuf> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if class_dirs.is_empty() {
        return Err(Error::format(
            dir,
            "no class folders (expected DIR/class_name/*.png|jpg|jpeg|bmp|gif)",
        ));
    }
    let mut files = Vec::new();
    let mut labels = Vec::new();
    let mut class_names = Vec::new();
    for (class, class_dir) in class_dirs.iter().enumerate() {
        let mut count = 0;
        for path in sorted_entries(class_dir)? {
            if path.is_dir() {
                continue;
            }
            crate::input::check_regular(&path)?;
            if !is_image_path(&path) {
                return Err(Error::format(
                    &path,
                    "not an image (expected .png, .jpg, .jpeg, .bmp or .gif)",
                ));
            }
            files.push(path);
            labels.push(class as u32);
            count += 1;
        }
        if count == 0 {
            return Err(Error::format(class_dir, "class folder holds no images"));
        }
        class_names.push(
            class_dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
    }
    let (channels, height, width) = mode.shape();
    Ok(LabelledImages {
        pixels: convert_files(&files, mode)?,
        labels,
        class_names,
        channels,
        height,
        width,
    })
}

/// Rejects a data set that cannot make triplets: fewer than two classes, or a class (folder)
/// with fewer than two images (an anchor needs a positive).
pub fn check_trainable(data: &LabelledImages) -> Result<()> {
    let mut counts = vec![0usize; data.class_names.len()];
    for &l in &data.labels {
        if let Some(c) = counts.get_mut(l as usize) {
            *c += 1;
        }
    }
    if let Some((class, &n)) = counts.iter().enumerate().find(|(_, &n)| n < 2) {
        return Err(Error::config(
            "training data",
            format!(
                "class folder `{}/` has {n} image{}; triplets need at least 2 per class",
                data.class_names[class],
                if n == 1 { "" } else { "s" }
            ),
        ));
    }
    if counts.len() < 2 {
        return Err(Error::config(
            "training data",
            "triplets need at least 2 classes (a negative must differ from the anchor)",
        ));
    }
    Ok(())
}

/// Checks, without reading an image, that `path` is what [`load_unknown_images`] reads: a folder,
/// or a `.zip` that is a regular file.
pub fn check_unknown_images_path(path: &Path) -> Result<()> {
    if path.is_dir() || (has_extension(path, "zip") && crate::input::check_regular(path).is_ok()) {
        Ok(())
    } else if path.exists() {
        Err(Error::format(
            path,
            "expected a folder of images or a .zip of images",
        ))
    } else {
        Err(Error::io(path, std::io::ErrorKind::NotFound.into()))
    }
}

/// Unlabelled images converted MNIST-style (`1 × 28 × 28`, one class "unknown", every label 0):
/// every image file under a folder (recursively, paths sorted), or every image entry of a
/// `.zip` file (names sorted). Non-image files are skipped; an image that fails to decode is an
/// error naming it; no image at all is an error.
pub fn load_unknown_images(path: impl AsRef<Path>) -> Result<LabelledImages> {
    let path = path.as_ref();
    check_unknown_images_path(path)?;
    let pixels = if path.is_file() && has_extension(path, "zip") {
        let entries = read_zip_images(path, |_| true)?;
        let images: Vec<Vec<f32>> = entries
            .par_iter()
            .map(|(name, bytes)| Ok(mnist_style(&decode_image(bytes, &path.join(name))?)))
            .collect::<Result<_>>()?;
        images.concat()
    } else {
        let mut files = Vec::new();
        collect_images(path, &mut files)?;
        convert_files(&files, FolderMode::MnistStyle)?
    };
    let n = pixels.len() / (MNIST_SIDE * MNIST_SIDE);
    if n == 0 {
        return Err(Error::format(
            path,
            "holds no images (.png, .jpg, .jpeg, .bmp or .gif)",
        ));
    }
    Ok(LabelledImages {
        pixels,
        labels: vec![0; n],
        class_names: vec!["unknown".to_string()],
        channels: 1,
        height: MNIST_SIDE,
        width: MNIST_SIDE,
    })
}

/// Checks, without decoding, that the folder `dir` holds at least one image file (recursively);
/// an error naming it otherwise.
pub fn check_holds_images(dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    collect_images(dir, &mut files)?;
    if files.is_empty() {
        return Err(Error::format(
            dir,
            "holds no images (.png, .jpg, .jpeg, .bmp or .gif)",
        ));
    }
    Ok(())
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn collect_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for path in sorted_entries(dir)? {
        if path.is_dir() {
            collect_images(&path, out)?;
        } else if is_image_path(&path) {
            crate::input::check_regular(&path)?;
            out.push(path);
        }
    }
    Ok(())
}

/// Image entries of a zip (names sorted) whose name passes `keep`, with their bytes.
pub(crate) fn read_zip_images(
    zip_path: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Vec<u8>)>> {
    let file = std::fs::File::open(zip_path).map_err(|e| Error::io(zip_path, e))?;
    let bad =
        |e: zip::result::ZipError| Error::format(zip_path, format!("not a readable zip: {e}"));
    let mut archive = zip::ZipArchive::new(file).map_err(bad)?;
    let mut names: Vec<String> = archive
        .file_names()
        .filter(|n| !n.ends_with('/') && is_image_path(Path::new(n)) && keep(n))
        .map(str::to_string)
        .collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let mut entry = archive.by_name(&name).map_err(bad)?;
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| Error::format(zip_path, format!("cannot read entry {name}: {e}")))?;
        out.push((name, bytes));
    }
    Ok(out)
}

/// The alphabets of an Omniglot zip (`…/Alphabet/characterNN/*.png`), sorted, without reading
/// any image.
pub fn list_zip_alphabets(zip_path: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(zip_path).map_err(|e| Error::io(zip_path, e))?;
    let archive = zip::ZipArchive::new(file)
        .map_err(|e| Error::format(zip_path, format!("not a readable zip: {e}")))?;
    let mut found: Vec<String> = archive
        .file_names()
        .filter(|n| is_image_path(Path::new(n)))
        .filter_map(|n| {
            let p: Vec<&str> = n.split('/').collect();
            (p.len() >= 3).then(|| p[p.len() - 3].to_string())
        })
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

/// One alphabet of an Omniglot zip (`…/Alphabet/characterNN/*.png`) converted MNIST-style,
/// with the character folders (sorted) as classes named `Alphabet/characterNN`.
/// An alphabet the zip lacks is an error listing the ones it has.
pub fn load_omniglot_alphabet(
    zip_path: impl AsRef<Path>,
    alphabet: &str,
) -> Result<LabelledImages> {
    let zip_path = zip_path.as_ref();
    // (alphabet, character) of an entry `…/alphabet/character/file`.
    let parts = |name: &str| -> Option<(String, String)> {
        let p: Vec<&str> = name.split('/').collect();
        (p.len() >= 3).then(|| (p[p.len() - 3].to_string(), p[p.len() - 2].to_string()))
    };
    let entries = read_zip_images(zip_path, |n| parts(n).is_some_and(|(a, _)| a == alphabet))?;
    if entries.is_empty() {
        let mut found: Vec<String> = read_zip_images(zip_path, |_| true)?
            .iter()
            .filter_map(|(n, _)| parts(n).map(|(a, _)| a))
            .collect();
        found.sort();
        found.dedup();
        return Err(Error::format(
            zip_path,
            format!(
                "no Omniglot alphabet `{alphabet}`; alphabets: {}",
                found.join(", ")
            ),
        ));
    }
    let mut class_names: Vec<String> = Vec::new();
    let mut labels = Vec::with_capacity(entries.len());
    for (name, _) in &entries {
        let (a, c) = parts(name).expect("filtered above");
        let class = format!("{a}/{c}");
        // Entries are sorted, so a class's images are contiguous.
        if class_names.last() != Some(&class) {
            class_names.push(class);
        }
        labels.push((class_names.len() - 1) as u32);
    }
    let images: Vec<Vec<f32>> = entries
        .par_iter()
        .map(|(name, bytes)| Ok(mnist_style(&decode_image(bytes, &zip_path.join(name))?)))
        .collect::<Result<_>>()?;
    Ok(LabelledImages {
        pixels: images.concat(),
        labels,
        class_names,
        channels: 1,
        height: MNIST_SIDE,
        width: MNIST_SIDE,
    })
}
