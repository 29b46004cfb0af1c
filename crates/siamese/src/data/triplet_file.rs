//! Triplet files (seed 003): one `anchor positive negative` triplet of image names per line,
//! separated by white space, names relative to an image folder (`person/photo.jpg`). Blank
//! lines and lines starting with `#` are ignored. By convention the positive (second name) is
//! the image more similar to the anchor, which is what accuracy is measured against.
//!
//! Also makes such files from a labelled folder (`class/*.jpg`): anchor and positive from one
//! class, the negative from another, optionally with a class-disjoint test file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Error, Result};

/// One triplet of image names (relative to the image folder).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Triplet {
    pub anchor: String,
    pub positive: String,
    pub negative: String,
}

impl Triplet {
    /// The three names in file order.
    pub fn names(&self) -> [&str; 3] {
        [&self.anchor, &self.positive, &self.negative]
    }
}

/// A parsed triplet file: the triplets and the line each came from.
#[derive(Debug, Clone)]
pub struct TripletFile {
    pub path: PathBuf,
    pub triplets: Vec<Triplet>,
    /// 1-based line number of each triplet.
    pub lines: Vec<usize>,
}

/// Missing images listed in one error message before "and N more".
const MISSING_SHOWN: usize = 5;

/// Reads and checks a triplet file: every line has exactly three names, no triplet repeats, and
/// every named image exists under `images`. Errors name the file and the line.
pub fn read_triplets(path: &Path, images: &Path) -> Result<TripletFile> {
    let bytes = crate::input::read_file(path)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        Error::format(path, format!("line {line}: not valid UTF-8 text"))
    })?;
    let mut triplets = Vec::new();
    let mut lines = Vec::new();
    let mut seen: HashMap<Triplet, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 3 {
            let hint = if fields.len() < 3 {
                "expected 3 image names (anchor positive negative)"
            } else {
                "expected 3 image names (anchor positive negative; names cannot contain spaces)"
            };
            return Err(Error::format(
                path,
                format!("line {line_no}: {hint}, found {} field(s)", fields.len()),
            ));
        }
        let t = Triplet {
            anchor: fields[0].to_string(),
            positive: fields[1].to_string(),
            negative: fields[2].to_string(),
        };
        if let Some(first) = seen.get(&t) {
            return Err(Error::format(
                path,
                format!("line {line_no}: duplicate of the triplet on line {first}"),
            ));
        }
        seen.insert(t.clone(), line_no);
        triplets.push(t);
        lines.push(line_no);
    }
    if triplets.is_empty() {
        return Err(Error::format(
            path,
            "no triplets (the file is empty or all comments)",
        ));
    }
    let mut missing: Vec<(usize, &str)> = Vec::new();
    let mut checked: HashMap<&str, bool> = HashMap::new();
    for (t, &line_no) in triplets.iter().zip(&lines) {
        for name in t.names() {
            let exists = *checked
                .entry(name)
                .or_insert_with(|| images.join(name).is_file());
            if !exists {
                missing.push((line_no, name));
            }
        }
    }
    if !missing.is_empty() {
        let shown: Vec<String> = missing
            .iter()
            .take(MISSING_SHOWN)
            .map(|(l, n)| format!("line {l}: `{n}`"))
            .collect();
        let more = if missing.len() > MISSING_SHOWN {
            format!(" and {} more", missing.len() - MISSING_SHOWN)
        } else {
            String::new()
        };
        return Err(Error::format(
            path,
            format!(
                "images not found in {}: {}{more}",
                images.display(),
                shown.join(", ")
            ),
        ));
    }
    Ok(TripletFile {
        path: path.to_path_buf(),
        triplets,
        lines,
    })
}

impl TripletFile {
    /// The distinct image names, sorted, and for each triplet the indices of its three images
    /// in that list.
    pub fn image_index(&self) -> (Vec<String>, Vec<[usize; 3]>) {
        let names: Vec<String> = self
            .triplets
            .iter()
            .flat_map(|t| t.names())
            .collect::<std::collections::BTreeSet<&str>>()
            .into_iter()
            .map(str::to_string)
            .collect();
        let at: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let index = self
            .triplets
            .iter()
            .map(|t| {
                [
                    at[t.anchor.as_str()],
                    at[t.positive.as_str()],
                    at[t.negative.as_str()],
                ]
            })
            .collect();
        (names, index)
    }
}

/// Writes triplets, one `anchor positive negative` line each (atomically).
pub fn write_triplets(path: &Path, triplets: &[Triplet]) -> Result<()> {
    let mut text = String::new();
    for t in triplets {
        text.push_str(&format!("{} {} {}\n", t.anchor, t.positive, t.negative));
    }
    crate::output::write_atomic(path, text.as_bytes())
}

/// Image file extensions a class folder may hold.
const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "gif", "webp"];

/// The classes of a labelled folder: `class name → sorted image names ("class/file")`.
/// Sub-folders without images are ignored; names with white space are refused (a triplet file
/// could not hold them).
pub fn list_classes(images: &Path) -> Result<Classes> {
    let entries = std::fs::read_dir(images).map_err(|e| Error::io(images, e))?;
    let mut classes = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(images, e))?;
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let class = entry.file_name().to_string_lossy().into_owned();
        let mut files = Vec::new();
        for f in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let f = f.map_err(|e| Error::io(&dir, e))?.path();
            let is_image = f.is_file()
                && f.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| IMAGE_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()));
            if !is_image {
                continue;
            }
            let name = format!(
                "{class}/{}",
                f.file_name().unwrap_or_default().to_string_lossy()
            );
            if name.chars().any(char::is_whitespace) {
                return Err(Error::format(
                    &f,
                    "image names with white space cannot be written to a triplet file",
                ));
            }
            files.push(name);
        }
        if !files.is_empty() {
            files.sort();
            classes.insert(class, files);
        }
    }
    Ok(classes)
}

/// Class name → image names (`class/file`), as [`list_classes`] returns them.
pub type Classes = BTreeMap<String, Vec<String>>;

/// How [`make_triplets`] draws.
#[derive(Debug, Clone, Copy)]
pub struct MakeOptions {
    /// Triplets to draw.
    pub n: usize,
    pub seed: u64,
}

/// Draws `n` distinct triplets from `classes`: the anchor's class uniformly among classes with
/// at least two images (so a class with 500 photos does not dominate), anchor and positive two
/// different images of it, the negative a random image of a uniformly drawn other class.
pub fn make_triplets(classes: &Classes, options: MakeOptions, what: &Path) -> Result<Vec<Triplet>> {
    let names: Vec<&String> = classes.keys().collect();
    let multi: Vec<&String> = names
        .iter()
        .copied()
        .filter(|c| classes[*c].len() >= 2)
        .collect();
    if names.len() < 2 || multi.is_empty() {
        return Err(Error::format(
            what,
            format!(
                "needs at least 2 class folders and one with 2+ images (found {} classes, {} with 2+ images)",
                names.len(),
                multi.len()
            ),
        ));
    }
    if options.n == 0 {
        return Err(Error::config("n", "must be at least 1"));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut out = Vec::with_capacity(options.n);
    let mut seen = HashSet::new();
    let max_tries = options.n.saturating_mul(50).max(1000);
    for _ in 0..max_tries {
        if out.len() == options.n {
            break;
        }
        let class = *multi.choose(&mut rng).expect("non-empty");
        let files = &classes[class];
        let mut pair = files.choose_multiple(&mut rng, 2);
        let (a, p) = (
            pair.next().expect("2 images"),
            pair.next().expect("2 images"),
        );
        let other = loop {
            let c = names[rng.random_range(0..names.len())];
            if c != class {
                break c;
            }
        };
        let negative = classes[other].choose(&mut rng).expect("non-empty");
        let t = Triplet {
            anchor: a.clone(),
            positive: p.clone(),
            negative: negative.clone(),
        };
        if seen.insert(t.clone()) {
            out.push(t);
        }
    }
    if out.len() < options.n {
        return Err(Error::format(
            what,
            format!(
                "only {} distinct triplets could be drawn, {} were asked for",
                out.len(),
                options.n
            ),
        ));
    }
    Ok(out)
}

/// Splits class names into `(train, test)` with about `test_fraction` of the classes in test,
/// deterministically under `seed`, so the two triplet files share no class (no person).
pub fn split_classes(
    classes: &Classes,
    test_fraction: f64,
    seed: u64,
) -> Result<(Classes, Classes)> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(Error::config(
            "test-fraction",
            format!("{test_fraction} is not strictly between 0 and 1"),
        ));
    }
    let mut names: Vec<&String> = classes.keys().collect();
    names.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_c1a5));
    let n_test = ((names.len() as f64) * test_fraction).round() as usize;
    let n_test = n_test.clamp(1, names.len().saturating_sub(1));
    let test: HashSet<&String> = names[..n_test].iter().copied().collect();
    let (mut train, mut held) = (BTreeMap::new(), BTreeMap::new());
    for (k, v) in classes {
        if test.contains(k) {
            held.insert(k.clone(), v.clone());
        } else {
            train.insert(k.clone(), v.clone());
        }
    }
    Ok((train, held))
}
