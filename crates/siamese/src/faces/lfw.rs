//! Labeled Faces in the Wild: unpacking the deep-funneled tarball into the cache, reading the
//! View 2 pairs protocol (`pairs.txt`: 10 folds × 300 matched + 300 mismatched pairs; found
//! beside the data, or shortened to the first pairs of each fold) and listing people with at
//! least N photos.
//!
//! The tarball's members are `images_deepfunneled/<Name>/<Name>_NNNN.jpg`; they are unpacked
//! once to `<home>/lfw/images_deepfunneled/` (a marker file records completion). The data is
//! read in place and never copied into the repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::assets::backbone::hex;
use crate::assets::{commit_dir, fetch_once, home};
use crate::{Error, Result};

/// Folder name inside the tarball and the cache.
pub const IMAGES_DIR: &str = "images_deepfunneled";
const COMPLETE_MARKER: &str = ".complete";

/// `<home>/lfw`.
pub fn lfw_cache_dir() -> PathBuf {
    home().join("lfw")
}

/// The folder of person folders for `source`: a `.tar` (unpacked into the cache once), a folder
/// holding `images_deepfunneled/`, or a folder of person folders itself.
pub fn resolve_images(source: &Path) -> Result<PathBuf> {
    if source.is_file() {
        return unpack(source);
    }
    if !source.is_dir() {
        return Err(Error::io(
            source,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    }
    let inner = source.join(IMAGES_DIR);
    Ok(if inner.is_dir() {
        inner
    } else {
        source.to_path_buf()
    })
}

/// What identifies a tarball for the cache: its size and the SHA-256 of its first MiB. The file
/// is checked to be a tar archive first (`ustar` magic), so a wrong `--lfw` is an error even when
/// the cache already holds LFW.
fn tarball_identity(tar_path: &Path) -> Result<String> {
    use std::io::Read;
    crate::input::check_regular(tar_path)?;
    let mut file = std::fs::File::open(tar_path).map_err(|e| Error::io(tar_path, e))?;
    let mut head = Vec::with_capacity(1 << 20);
    (&mut file)
        .take(1 << 20)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(tar_path, e))?;
    if head.len() < 512 || &head[257..262] != b"ustar" {
        return Err(Error::format(
            tar_path,
            "not a tar archive (expected LFW's lfw-deepfunneled.tar or its unpacked folder)",
        ));
    }
    let size = file.metadata().map_err(|e| Error::io(tar_path, e))?.len();
    Ok(format!("{size} {}", hex(&sha2::Sha256::digest(&head))))
}

/// Unpacks the LFW tarball into `<home>/lfw/` unless this same tarball is already unpacked there;
/// returns the images folder.
pub fn unpack(tar_path: &Path) -> Result<PathBuf> {
    let identity = tarball_identity(tar_path)?;
    let dir = lfw_cache_dir();
    let images = dir.join(IMAGES_DIR);
    // The marker holds the number of photos unpacked and the tarball's identity; a folder that
    // lost some photos, or came from another tarball, is unpacked again.
    let present = || {
        let marker = std::fs::read_to_string(dir.join(COMPLETE_MARKER)).unwrap_or_default();
        let mut lines = marker.lines();
        let expected = lines.next().and_then(|s| s.trim().parse::<usize>().ok());
        match (expected, lines.next()) {
            (Some(n), Some(source)) if source == identity && count_photos(&images) == n => {
                Some(images.clone())
            }
            _ => None,
        }
    };
    // One unpacking at a time across threads and processes (`fetch_once`'s lock).
    fetch_once("lfw", present, |scratch| {
        let file = std::fs::File::open(tar_path).map_err(|e| Error::io(tar_path, e))?;
        let mut archive = tar::Archive::new(std::io::BufReader::new(file));
        let ready = scratch.join("lfw");
        std::fs::create_dir_all(&ready).map_err(|e| Error::io(&ready, e))?;
        archive
            .unpack(&ready)
            .map_err(|e| Error::format(tar_path, format!("cannot unpack: {e}")))?;
        if !ready.join(IMAGES_DIR).is_dir() {
            return Err(Error::format(
                tar_path,
                format!("has no {IMAGES_DIR}/ folder"),
            ));
        }
        let marker = ready.join(COMPLETE_MARKER);
        let n = count_photos(&ready.join(IMAGES_DIR));
        std::fs::write(&marker, format!("{n}\n{identity}\n")).map_err(|e| Error::io(&marker, e))?;
        commit_dir(&ready, &dir)
    })
}

/// Number of `.jpg` files in the person folders of `images`.
fn count_photos(images: &Path) -> usize {
    let Ok(people) = std::fs::read_dir(images) else {
        return 0;
    };
    people
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_dir(e.path()).ok())
        .map(|photos| {
            photos
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "jpg"))
                .count()
        })
        .sum()
}

/// Path of photo `index` (1-based) of `name`.
pub fn image_path(images: &Path, name: &str, index: usize) -> PathBuf {
    images.join(name).join(format!("{name}_{index:04}.jpg"))
}

/// One pair of the protocol, paths relative to the images folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub a: PathBuf,
    pub b: PathBuf,
    pub same: bool,
    /// Fold index, `0..folds`.
    pub fold: usize,
}

/// Reads `pairs.txt`: header `folds<TAB>n`, then per fold `n` matched lines
/// (`name i j`) followed by `n` mismatched lines (`name1 i name2 j`).
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| Error::format(path, "empty file"))?;
    let head: Vec<usize> = header
        .split_whitespace()
        .map(|t| t.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::format(path, format!("line 1: header {header:?} is not `folds n`")))?;
    let [folds, n] = head[..] else {
        return Err(Error::format(
            path,
            format!("line 1: header {header:?} is not `folds n`"),
        ));
    };
    let mut pairs = Vec::with_capacity(folds * n * 2);
    for fold in 0..folds {
        for k in 0..2 * n {
            let (no, line) = lines.next().ok_or_else(|| {
                Error::format(
                    path,
                    format!("ends early: fold {} has {k} of {} pairs", fold + 1, 2 * n),
                )
            })?;
            let t: Vec<&str> = line.split_whitespace().collect();
            let bad = || Error::format(path, format!("line {}: malformed pair {line:?}", no + 1));
            let num = |s: &str| s.parse::<usize>().map_err(|_| bad());
            let pair = match (k < n, t.len()) {
                (true, 3) => Pair {
                    a: image_rel(t[0], num(t[1])?),
                    b: image_rel(t[0], num(t[2])?),
                    same: true,
                    fold,
                },
                (false, 4) => Pair {
                    a: image_rel(t[0], num(t[1])?),
                    b: image_rel(t[2], num(t[3])?),
                    same: false,
                    fold,
                },
                _ => return Err(bad()),
            };
            pairs.push(pair);
        }
    }
    Ok(pairs)
}

fn image_rel(name: &str, index: usize) -> PathBuf {
    PathBuf::from(name).join(format!("{name}_{index:04}.jpg"))
}

/// People (folder names) with at least `min_images` photos, each with their sorted photos.
pub fn people(images: &Path, min_images: usize) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(images).map_err(|e| Error::io(images, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(images, e))?;
        if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let dir = entry.path();
        let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| super::load::has_image_extension(p))
            .collect();
        if photos.len() >= min_images.max(1) {
            photos.sort();
            out.insert(entry.file_name().to_string_lossy().into_owned(), photos);
        }
    }
    Ok(out.into_iter().collect())
}

/// `pairs.txt` beside the LFW folder or tarball.
pub fn find_pairs(lfw: &Path) -> Option<PathBuf> {
    let mut dirs = vec![lfw.to_path_buf()];
    if let Some(p) = lfw.parent() {
        dirs.push(p.to_path_buf());
    }
    dirs.into_iter()
        .map(|d| d.join("pairs.txt"))
        .find(|p| p.is_file())
}

/// Writes to `dest` a copy of `pairs.txt` keeping the first `n` matched and `n` mismatched pairs of each fold.
pub fn write_reduced_pairs(src: &Path, dest: &Path, n: usize) -> Result<()> {
    let pairs = read_pairs(src)?;
    let folds = pairs.iter().map(|p| p.fold).max().map_or(0, |f| f + 1);
    let name_index = |p: &Path| -> (String, String) {
        let name = p
            .parent()
            .and_then(|d| d.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let idx = stem
            .rsplit('_')
            .next()
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0);
        (name, idx.to_string())
    };
    let mut text = format!("{folds}\t{n}\n");
    for fold in 0..folds {
        for same in [true, false] {
            let chosen: Vec<_> = pairs
                .iter()
                .filter(|p| p.fold == fold && p.same == same)
                .take(n)
                .collect();
            if chosen.len() < n {
                return Err(Error::format(
                    src,
                    format!("fold {} has fewer than {n} pairs of a kind", fold + 1),
                ));
            }
            for p in chosen {
                let (na, ia) = name_index(&p.a);
                let (nb, ib) = name_index(&p.b);
                if same {
                    text.push_str(&format!("{na}\t{ia}\t{ib}\n"));
                } else {
                    text.push_str(&format!("{na}\t{ia}\t{nb}\t{ib}\n"));
                }
            }
        }
    }
    crate::output::write_atomic(dest, text.as_bytes())
}
