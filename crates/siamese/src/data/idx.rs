//! IDX files (LeCun's MNIST format): unsigned-byte image stacks (magic `0x00000803`,
//! `n × rows × cols`) and label vectors (magic `0x00000801`, `n`), plus the MNIST loader.
//!
//! Every header is checked against the file's length before any pixel is read: a wrong magic
//! number, a truncated file, a zero dimension, a dimension product that overflows, or bytes
//! left over after the data all give [`Error::format`] naming the file.

use std::path::{Path, PathBuf};

use crate::data::LabelledImages;
use crate::{Error, Result};

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// Which half of MNIST to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MnistSplit {
    /// The 60,000 training digits.
    Train,
    /// The 10,000 test digits.
    Test,
}

impl MnistSplit {
    /// File names `(images, labels)` of this split inside the MNIST cache folder.
    pub fn file_names(self) -> (&'static str, &'static str) {
        match self {
            MnistSplit::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            MnistSplit::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        }
    }

    /// Number of images the official split holds.
    pub fn expected_len(self) -> usize {
        match self {
            MnistSplit::Train => 60_000,
            MnistSplit::Test => 10_000,
        }
    }
}

/// Reads and decodes an IDX image file: `(pixels, n, rows, cols)`, pixels row-major, image after image.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<(Vec<u8>, usize, usize, usize)> {
    let path = path.as_ref();
    let bytes = crate::input::read_file(path)?;
    parse_idx_images(&bytes, path)
}

/// Reads and decodes an IDX label file.
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let bytes = crate::input::read_file(path)?;
    parse_idx_labels(&bytes, path)
}

/// Decodes the bytes of an IDX image file; `path` only names the file in errors.
pub fn parse_idx_images(bytes: &[u8], path: &Path) -> Result<(Vec<u8>, usize, usize, usize)> {
    let dims = parse_header(bytes, path, IDX_IMAGES_MAGIC, 3, "images")?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    let header = 4 + 4 * 3;
    Ok((bytes[header..].to_vec(), n, rows, cols))
}

/// Decodes the bytes of an IDX label file; `path` only names the file in errors.
pub fn parse_idx_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    parse_header(bytes, path, IDX_LABELS_MAGIC, 1, "labels")?;
    Ok(bytes[8..].to_vec())
}

/// Checks magic, dimensions and length; returns the dimensions.
fn parse_header(
    bytes: &[u8],
    path: &Path,
    magic: u32,
    rank: usize,
    kind: &str,
) -> Result<Vec<usize>> {
    let header_len = 4 + 4 * rank;
    if bytes.len() < header_len {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX {kind} file: {} bytes, shorter than its {header_len}-byte header",
                bytes.len()
            ),
        ));
    }
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let found = word(0);
    if found != magic {
        return Err(Error::format(
            path,
            format!("not an IDX {kind} file: magic number 0x{found:08x}, expected 0x{magic:08x}"),
        ));
    }
    let dims: Vec<usize> = (0..rank).map(|d| word(4 + 4 * d) as usize).collect();
    if let Some(d) = dims.iter().position(|&v| v == 0) {
        return Err(Error::format(
            path,
            format!("impossible IDX dimensions {dims:?}: dimension {d} is zero"),
        ));
    }
    let data_len = dims
        .iter()
        .try_fold(1usize, |acc, &v| acc.checked_mul(v))
        .filter(|&v| v.checked_add(header_len).is_some())
        .ok_or_else(|| {
            Error::format(
                path,
                format!("impossible IDX dimensions {dims:?}: their product overflows"),
            )
        })?;
    let have = bytes.len() - header_len;
    if have < data_len {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX {kind} file: dimensions {dims:?} need {data_len} data bytes, found {have}"
            ),
        ));
    }
    if have > data_len {
        return Err(Error::format(
            path,
            format!(
                "IDX {kind} file longer than its dimensions {dims:?}: {} extra bytes",
                have - data_len
            ),
        ));
    }
    Ok(dims)
}

/// Encodes an IDX image file (`n × rows × cols` unsigned bytes).
pub fn encode_idx_images(pixels: &[u8], n: usize, rows: usize, cols: usize) -> Vec<u8> {
    debug_assert_eq!(pixels.len(), n * rows * cols);
    let mut out = Vec::with_capacity(16 + pixels.len());
    for v in [IDX_IMAGES_MAGIC, n as u32, rows as u32, cols as u32] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// Encodes an IDX label file.
pub fn encode_idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&IDX_LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

/// Reads an IDX image/label pair into a one-channel [`LabelledImages`] with pixels scaled to
/// `[0, 1]`. Checks the two files agree on `n` and every label is below `class_names.len()`.
/// A missing file gives [`Error::MissingAsset`] naming `asset` (the `siamese fetch` target).
pub fn load_idx_pair(
    images_path: &Path,
    labels_path: &Path,
    class_names: Vec<String>,
    asset: &str,
) -> Result<LabelledImages> {
    for p in [images_path, labels_path] {
        if !p.is_file() {
            return Err(Error::MissingAsset {
                path: p.to_path_buf(),
                what: asset.to_string(),
            });
        }
    }
    let (raw, n, rows, cols) = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels_path)?;
    if labels.len() != n {
        return Err(Error::format(
            labels_path,
            format!(
                "{} labels, but {} holds {n} images",
                labels.len(),
                images_path.display()
            ),
        ));
    }
    if let Some(bad) = labels.iter().find(|&&l| l as usize >= class_names.len()) {
        return Err(Error::format(
            labels_path,
            format!("label {bad} out of range 0..{}", class_names.len()),
        ));
    }
    Ok(LabelledImages {
        pixels: raw.iter().map(|&b| b as f32 / 255.0).collect(),
        labels: labels.into_iter().map(u32::from).collect(),
        class_names,
        channels: 1,
        height: rows,
        width: cols,
    })
}

/// The MNIST cache folder, `<home>/mnist`.
pub fn mnist_dir() -> PathBuf {
    crate::assets::home().join("mnist")
}

/// Loads an MNIST split from the cache: `1 × 28 × 28` images in `[0, 1]`, classes "0".."9".
/// A missing cache gives [`Error::MissingAsset`] telling the user to run `siamese fetch mnist`.
pub fn load_mnist(split: MnistSplit) -> Result<LabelledImages> {
    let dir = mnist_dir();
    let (images, labels) = split.file_names();
    let set = load_idx_pair(
        &dir.join(images),
        &dir.join(labels),
        (0..10).map(|d| d.to_string()).collect(),
        "mnist",
    )?;
    if set.height != 28 || set.width != 28 {
        return Err(Error::format(
            dir.join(images),
            format!(
                "MNIST images must be 28x28, found {}x{}",
                set.height, set.width
            ),
        ));
    }
    Ok(set)
}
