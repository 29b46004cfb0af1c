//! Omniglot (Lake et al. 2015) from the zips the user gives: the background sets to train on
//! (`root/Alphabet/characterNN/*.png`) and the 20-way one-shot runs (`runNN/class_labels.txt`,
//! `runNN/training/classNN.png`, `runNN/test/itemNN.png`).
//!
//! Every drawing (105 × 105, one bit, black ink on white) is converted MNIST-style to
//! `1 × 28 × 28` ([`super::transform`]: inverted to white ink, cropped to the ink, the longer
//! side scaled to 20 px with an anti-aliasing filter, thin strokes thickened to MNIST's width,
//! centred by mass), so the seeds' CNN reads it as it reads a digit. The `*_at` loaders take
//! a larger field side (e.g. 40: the 105-px drawing keeps more of its detail in a 29-px box);
//! a run trained at a side is evaluated at the same side.

use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::image_folder::read_zip_images;
use super::transform::{decode_image, mnist_style_with, MnistStyle, MNIST_SIDE};
use super::LabelledImages;
use crate::{Error, Result};

/// `(alphabet, character)` of a background-set entry `…/Alphabet/characterNN/file.png`.
fn alphabet_and_character(name: &str) -> Option<(&str, &str)> {
    let p: Vec<&str> = name.split('/').collect();
    (p.len() >= 3 && p[p.len() - 2].starts_with("character"))
        .then(|| (p[p.len() - 3], p[p.len() - 2]))
}

/// Every alphabet of the background zips, as one data set whose classes are the characters
/// (`Alphabet/characterNN`, sorted by zip, then name). An alphabet already read from an earlier
/// zip is skipped (the small background sets share Greek and Latin). A zip with an image
/// outside that layout, or without any, is an error naming it.
pub fn load_omniglot_background(zips: &[PathBuf]) -> Result<LabelledImages> {
    load_omniglot_background_at(zips, MNIST_SIDE)
}

/// [`load_omniglot_background`] into `side × side` fields ([`MnistStyle::with_side`]).
pub fn load_omniglot_background_at(zips: &[PathBuf], side: usize) -> Result<LabelledImages> {
    let style = MnistStyle::with_side(side)?;
    let mut seen: Vec<String> = Vec::new();
    let mut class_names: Vec<String> = Vec::new();
    let mut labels = Vec::new();
    let mut pixels = Vec::new();
    for zip in zips {
        let entries = read_zip_images(zip, |_| true)?;
        if entries.is_empty() {
            return Err(Error::format(
                zip,
                "holds no images: not an Omniglot background zip",
            ));
        }
        if let Some((name, _)) = entries
            .iter()
            .find(|(n, _)| alphabet_and_character(n).is_none())
        {
            return Err(Error::format(
                zip,
                format!(
                    "entry {name} is not Alphabet/characterNN/*.png: not an Omniglot \
                     background zip"
                ),
            ));
        }
        let new_here: Vec<&(String, Vec<u8>)> = entries
            .iter()
            .filter(|(n, _)| {
                let (a, _) = alphabet_and_character(n).expect("checked above");
                !seen.iter().any(|s| s == a)
            })
            .collect();
        for (name, _) in &new_here {
            let (a, c) = alphabet_and_character(name).expect("checked above");
            let class = format!("{a}/{c}");
            // Entries are sorted, so a class's drawings are contiguous.
            if class_names.last() != Some(&class) {
                class_names.push(class);
            }
            labels.push((class_names.len() - 1) as u32);
        }
        let images: Vec<Vec<f32>> = new_here
            .par_iter()
            .map(|(name, bytes)| {
                Ok(mnist_style_with(
                    &decode_image(bytes, &zip.join(name))?,
                    style,
                ))
            })
            .collect::<Result<_>>()?;
        pixels.extend(images.concat());
        for (name, _) in &entries {
            let (a, _) = alphabet_and_character(name).expect("checked above");
            if !seen.iter().any(|s| s == a) {
                seen.push(a.to_string());
            }
        }
    }
    Ok(LabelledImages {
        pixels,
        labels,
        class_names,
        channels: 1,
        height: side,
        width: side,
    })
}

/// One 20-way one-shot run: one drawing per class, and test drawings with their true class.
#[derive(Debug, Clone)]
pub struct OneShotRun {
    /// `runNN`.
    pub name: String,
    /// The one training drawing of each class, `[classes, 1, side, side]`.
    pub training: LabelledImages,
    /// The test drawings, labelled with the index of their class's training drawing.
    pub test: LabelledImages,
}

/// The runs of a one-shot zip (Lake's `all_runs.zip` layout), sorted by name. Each run's
/// `class_labels.txt` lists `runNN/test/itemXX.png runNN/training/classYY.png` pairs; a run
/// folder without it, a line naming a missing drawing, or a zip without any run is an error
/// naming the file.
pub fn load_oneshot_runs(zip_path: &Path) -> Result<Vec<OneShotRun>> {
    load_oneshot_runs_at(zip_path, MNIST_SIDE)
}

/// [`load_oneshot_runs`] into `side × side` fields ([`MnistStyle::with_side`]).
pub fn load_oneshot_runs_at(zip_path: &Path, side: usize) -> Result<Vec<OneShotRun>> {
    let style = MnistStyle::with_side(side)?;
    let file = std::fs::File::open(zip_path).map_err(|e| Error::io(zip_path, e))?;
    let bad =
        |e: zip::result::ZipError| Error::format(zip_path, format!("not a readable zip: {e}"));
    let mut archive = zip::ZipArchive::new(file).map_err(bad)?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let mut runs: Vec<String> = names
        .iter()
        .filter(|n| n.contains("/training/") || n.contains("/test/"))
        .filter_map(|n| n.split_once('/').map(|(r, _)| r.to_string()))
        .collect();
    runs.sort();
    runs.dedup();
    if runs.is_empty() {
        return Err(Error::format(
            zip_path,
            "holds no runNN/training and runNN/test folders: not an Omniglot one-shot runs zip",
        ));
    }
    let mut read = |name: &str| -> Result<Vec<u8>> {
        let mut entry = archive
            .by_name(name)
            .map_err(|_| Error::format(zip_path, format!("{name} is missing")))?;
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| Error::format(zip_path, format!("cannot read {name}: {e}")))?;
        Ok(bytes)
    };
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        let labels_name = format!("{run}/class_labels.txt");
        let text = String::from_utf8(read(&labels_name)?)
            .map_err(|_| Error::format(zip_path, format!("{labels_name} is not UTF-8 text")))?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(t), Some(c), None) => pairs.push((t.to_string(), c.to_string())),
                _ => {
                    return Err(Error::format(
                        zip_path,
                        format!(
                            "{labels_name} line {}: expected `test.png training.png`",
                            i + 1
                        ),
                    ))
                }
            }
        }
        let mut classes: Vec<String> = pairs.iter().map(|(_, c)| c.clone()).collect();
        classes.sort();
        classes.dedup();
        let decode = |read: &mut dyn FnMut(&str) -> Result<Vec<u8>>, name: &str| {
            let bytes = read(name)?;
            Ok::<_, Error>(mnist_style_with(
                &decode_image(&bytes, &zip_path.join(name))?,
                style,
            ))
        };
        let mut training = Vec::new();
        for c in &classes {
            training.extend(decode(&mut read, c)?);
        }
        let mut test = Vec::new();
        let mut answers = Vec::new();
        for (t, c) in &pairs {
            test.extend(decode(&mut read, t)?);
            answers.push(classes.binary_search(c).expect("listed above") as u32);
        }
        let set = |pixels: Vec<f32>, labels: Vec<u32>| LabelledImages {
            pixels,
            labels,
            class_names: classes.clone(),
            channels: 1,
            height: side,
            width: side,
        };
        out.push(OneShotRun {
            name: run,
            training: set(training, (0..classes.len() as u32).collect()),
            test: set(test, answers),
        });
    }
    Ok(out)
}

/// `images` followed by three copies turned by 90°, 180° and 270°, each turn's characters new
/// classes (`Alphabet/characterNN rotated 90°`, labels `turn · classes + label`): the class
/// augmentation of Santoro et al. 2016 and Vinyals et al. 2016, four times the characters for a
/// P×K batch to tell apart. A turned character is another shape, not the same one seen
/// askew, so it is a class of its own. Images must be square; the turns are exact pixel
/// permutations, so a field centred by mass stays centred.
pub fn with_rotated_classes(images: &LabelledImages) -> Result<LabelledImages> {
    let (c, n) = (images.channels, images.height);
    if images.width != n {
        return Err(Error::config(
            "rotated classes",
            format!("images are {}x{}, not square", images.height, images.width),
        ));
    }
    let classes = images.class_names.len() as u32;
    let mut out = images.clone();
    for turn in 1..4u32 {
        for i in 0..images.len() {
            let image = images.image(i);
            for plane in image.chunks_exact(n * n) {
                // A quarter turn clockwise `turn` times: `(x, y)` of the output reads the
                // input at the point that lands there.
                out.pixels.extend((0..n * n).map(|p| {
                    let (y, x) = (p / n, p % n);
                    let (sy, sx) = match turn {
                        1 => (n - 1 - x, y),
                        2 => (n - 1 - y, n - 1 - x),
                        _ => (x, n - 1 - y),
                    };
                    plane[sy * n + sx]
                }));
            }
            debug_assert_eq!(out.pixels.len() % (c * n * n), 0);
            out.labels.push(turn * classes + images.labels[i]);
        }
        out.class_names.extend(
            images
                .class_names
                .iter()
                .map(|name| format!("{name} rotated {}°", 90 * turn)),
        );
    }
    Ok(out)
}
