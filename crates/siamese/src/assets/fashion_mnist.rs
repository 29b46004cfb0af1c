//! Fetching Fashion-MNIST (Xiao et al. 2017; an open-set "unknown" set): Debian's
//! `dataset-fashion-mnist` package ships the four gzipped IDX files under
//! `usr/share/datasets/fashion-mnist/`; the test pair (10,000 images of ten clothing classes) is
//! unpacked to `<home>/fashion-mnist/` and checked (magic, counts, 28x28, labels 0..9) before
//! the folder is put in place.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::data::idx::{load_idx_pair, parse_idx_images, parse_idx_labels};
use crate::data::LabelledImages;
use crate::{Error, Result};

/// The Debian package (name=version) that carries Fashion-MNIST.
pub const FASHION_MNIST_PACKAGE: &str = "dataset-fashion-mnist=0.0~git20200523.55506a9-1";

/// The test split's files in the cache (uncompressed).
pub const FILES: [&str; 2] = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// The ten classes, by label.
pub const CLASS_NAMES: [&str; 10] = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
];

const TEST_IMAGES: usize = 10_000;

/// The cache folder, `<home>/fashion-mnist`.
pub fn fashion_mnist_dir() -> PathBuf {
    crate::assets::home().join("fashion-mnist")
}

/// Checks an IDX file's bytes: 10,000 28x28 images, or 10,000 labels below 10.
fn verify(bytes: &[u8], name: &str, path: &Path) -> Result<()> {
    let n = if name.contains("images") {
        let (_, n, rows, cols) = parse_idx_images(bytes, path)?;
        if (rows, cols) != (28, 28) {
            return Err(Error::format(
                path,
                format!("images are {rows}x{cols}, expected 28x28"),
            ));
        }
        n
    } else {
        let labels = parse_idx_labels(bytes, path)?;
        if let Some(bad) = labels.iter().find(|&&l| l > 9) {
            return Err(Error::format(path, format!("label {bad} is out of 0..9")));
        }
        labels.len()
    };
    if n != TEST_IMAGES {
        return Err(Error::format(
            path,
            format!("{n} items, expected {TEST_IMAGES}"),
        ));
    }
    Ok(())
}

/// Whether the cache holds a complete, valid test split.
pub fn is_complete() -> bool {
    let dir = fashion_mnist_dir();
    FILES.iter().all(|name| {
        let path = dir.join(name);
        std::fs::read(&path).is_ok_and(|bytes| verify(&bytes, name, &path).is_ok())
    })
}

/// Makes sure `<home>/fashion-mnist/` holds the valid test pair; returns that folder. When it
/// is already there nothing is downloaded.
pub fn fetch() -> Result<PathBuf> {
    let dir = fashion_mnist_dir();
    crate::assets::fetch_once(
        "fashion-mnist",
        || is_complete().then(|| dir.clone()),
        |scratch| fetch_into(scratch, &dir),
    )
}

/// `apt-get download`s the package into `scratch`, unpacks it with `dpkg-deb`, gunzips and
/// verifies the test pair and moves it to `dir`.
fn fetch_into(scratch: &Path, dir: &Path) -> Result<()> {
    crate::assets::run_command(
        Command::new("apt-get").args(["download", FASHION_MNIST_PACKAGE]),
        scratch,
    )?;
    let deb = std::fs::read_dir(scratch)
        .map_err(|e| Error::io(scratch, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| Error::Command {
            command: format!("apt-get download {FASHION_MNIST_PACKAGE}"),
            message: "no .deb was downloaded".into(),
        })?;
    let unpacked = scratch.join("unpacked");
    crate::assets::run_command(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked),
        scratch,
    )?;
    let data = unpacked.join("usr/share/datasets/fashion-mnist");
    let ready = scratch.join("fashion-mnist");
    std::fs::create_dir_all(&ready).map_err(|e| Error::io(&ready, e))?;
    for name in FILES {
        let gz = data.join(format!("{name}.gz"));
        let file = std::fs::File::open(&gz).map_err(|_| {
            Error::format(
                &deb,
                format!("package {FASHION_MNIST_PACKAGE} has no usr/share/datasets/fashion-mnist/{name}.gz"),
            )
        })?;
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(file)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::format(&gz, format!("cannot gunzip: {e}")))?;
        verify(&bytes, name, &gz)?;
        let dst = ready.join(name);
        std::fs::write(&dst, &bytes).map_err(|e| Error::io(&dst, e))?;
    }
    crate::assets::commit_dir(&ready, dir)
}

/// The Fashion-MNIST test split from the cache (`1 × 28 × 28` in `[0, 1]`, ten classes); a
/// missing cache is an error telling to run `siamese fetch fashion-mnist`.
pub fn load_fashion_mnist() -> Result<LabelledImages> {
    let dir = fashion_mnist_dir();
    load_idx_pair(
        &dir.join(FILES[0]),
        &dir.join(FILES[1]),
        CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        "fashion-mnist",
    )
}
