//! dlib's shape predictor (an ensemble of regression trees, Kazemi & Sullivan 2014), read from
//! dlib's own serialisation (`shape_predictor_5_face_landmarks.dat`) and run in plain Rust.
//!
//! Given a face rectangle, the predictor starts from a mean shape in the rectangle's unit square
//! and applies a cascade of forests. Each cascade level samples grey pixels at positions fixed
//! relative to the current shape (anchor landmark + offset, warped by the similarity between
//! the mean and the current shape) and each tree, comparing pixel pairs against thresholds,
//! picks a leaf whose vector is added to the shape. The 5-point model returns, in image terms:
//! outer (0) and inner (1) corner of the eye on the image's right, outer (2) and inner (3)
//! corner of the eye on the image's left, and the bottom of the nose (4).
//!
//! Format (dlib `serialize.h`): integers are a control byte (length in the low nibble, 0x80 for
//! negative) followed by that many little-endian bytes; floats are an integer mantissa and an
//! integer exponent (`mantissa · 2^exponent`); `std::vector` is a length then its items;
//! `matrix<float,0,1>` is rows and columns (negated in the newer format) then the values.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A face rectangle in dlib's convention: inclusive integer-like bounds in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DlibRect {
    pub left: f32,
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
}

impl DlibRect {
    /// Maps a point of the unit square (shape space) into the image.
    fn to_image(self, p: [f32; 2]) -> [f32; 2] {
        [
            self.left + p[0] * (self.right - self.left),
            self.top + p[1] * (self.bottom - self.top),
        ]
    }
}

/// A grey image as dlib sees an RGB one: `(r + g + b) / 3`, integer division.
#[derive(Debug, Clone)]
pub struct GreyImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl GreyImage {
    /// dlib's intensity of an RGB image (`get_pixel_intensity` of `rgb_pixel`).
    pub fn from_rgb(img: &image::RgbImage) -> Self {
        let pixels = img
            .pixels()
            .map(|p| ((p[0] as u32 + p[1] as u32 + p[2] as u32) / 3) as u8)
            .collect();
        GreyImage {
            width: img.width() as usize,
            height: img.height() as usize,
            pixels,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Split {
    idx1: u32,
    idx2: u32,
    thresh: f32,
}

#[derive(Debug, Clone)]
struct Tree {
    splits: Vec<Split>,
    /// Leaf vectors, each `2 × parts` long, concatenated.
    leaves: Vec<f32>,
}

/// dlib's shape predictor.
#[derive(Debug, Clone)]
pub struct ShapePredictor {
    /// Mean shape in the unit square, `[x0, y0, x1, y1, ...]`.
    initial: Vec<f32>,
    forests: Vec<Vec<Tree>>,
    anchors: Vec<Vec<u32>>,
    deltas: Vec<Vec<[f32; 2]>>,
}

/// Cursor over dlib's serialised bytes; every read names the file on failure.
struct DlibReader<'a> {
    bytes: &'a [u8],
    at: usize,
    path: PathBuf,
}

impl DlibReader<'_> {
    fn fail(&self, what: &str) -> Error {
        Error::format(
            &self.path,
            format!("not a dlib shape predictor: {what} at byte {}", self.at),
        )
    }

    fn byte(&mut self) -> Result<u8> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| self.fail("file ends early"))?;
        self.at += 1;
        Ok(b)
    }

    /// A packed integer; `signed` selects dlib's signed encoding.
    fn int(&mut self, signed: bool) -> Result<i64> {
        let control = self.byte()?;
        let negative = signed && control & 0x80 != 0;
        let size = if signed {
            control & 0x0F
        } else {
            control & 0x8F
        };
        if size == 0 || size > 8 {
            return Err(self.fail("bad integer"));
        }
        let mut value: u64 = 0;
        for i in 0..size {
            value |= (self.byte()? as u64) << (8 * i);
        }
        let value = value as i64;
        Ok(if negative { -value } else { value })
    }

    fn usize(&mut self, limit: usize) -> Result<usize> {
        let v = self.int(false)?;
        if v < 0 || v as usize > limit {
            return Err(self.fail("implausible length or index"));
        }
        Ok(v as usize)
    }

    fn float(&mut self) -> Result<f32> {
        if self.bytes.get(self.at).is_some_and(|b| b & 0x70 != 0) {
            return Err(self.fail("old text float format"));
        }
        let mantissa = self.int(true)?;
        let exponent = self.int(true)?;
        Ok(match exponent {
            32000 => f32::INFINITY,
            32001 => f32::NEG_INFINITY,
            32002 => f32::NAN,
            e => (mantissa as f64 * 2f64.powi(e as i32)) as f32,
        })
    }

    /// A column vector `matrix<float,0,1>`.
    fn column(&mut self) -> Result<Vec<f32>> {
        let rows = self.int(true)?.unsigned_abs() as usize;
        let cols = self.int(true)?.unsigned_abs() as usize;
        if cols != 1 || rows > 10_000 {
            return Err(self.fail("bad shape matrix"));
        }
        (0..rows).map(|_| self.float()).collect()
    }
}

impl ShapePredictor {
    /// Reads a dlib `shape_predictor` file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::input::read_file(path)?;
        Self::parse(&bytes, path)
    }

    /// Parses the bytes of a dlib `shape_predictor` file; `path` only names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let mut r = DlibReader {
            bytes,
            at: 0,
            path: path.to_path_buf(),
        };
        if r.int(true)? != 1 {
            return Err(r.fail("unknown version"));
        }
        let initial = r.column()?;
        if initial.is_empty() || initial.len() % 2 != 0 {
            return Err(r.fail("empty or odd initial shape"));
        }
        let dims = initial.len();
        let n_levels = r.usize(1000)?;
        let mut forests = Vec::with_capacity(n_levels);
        for _ in 0..n_levels {
            let n_trees = r.usize(100_000)?;
            let mut trees = Vec::with_capacity(n_trees);
            for _ in 0..n_trees {
                let n_splits = r.usize(1 << 20)?;
                let mut splits = Vec::with_capacity(n_splits);
                for _ in 0..n_splits {
                    let idx1 = r.usize(u32::MAX as usize)? as u32;
                    let idx2 = r.usize(u32::MAX as usize)? as u32;
                    let thresh = r.float()?;
                    splits.push(Split { idx1, idx2, thresh });
                }
                let n_leaves = r.usize(1 << 21)?;
                if n_leaves != n_splits + 1 {
                    return Err(r.fail("tree is not complete"));
                }
                let mut leaves = Vec::with_capacity(n_leaves * dims);
                for _ in 0..n_leaves {
                    let leaf = r.column()?;
                    if leaf.len() != dims {
                        return Err(r.fail("leaf size differs from the shape"));
                    }
                    leaves.extend(leaf);
                }
                trees.push(Tree { splits, leaves });
            }
            forests.push(trees);
        }
        let n = r.usize(1000)?;
        let mut anchors = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.usize(1 << 20)?;
            let level: Vec<u32> = (0..len)
                .map(|_| r.usize(dims / 2 - 1).map(|v| v as u32))
                .collect::<Result<_>>()?;
            anchors.push(level);
        }
        let n = r.usize(1000)?;
        let mut deltas = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.usize(1 << 20)?;
            let level: Vec<[f32; 2]> = (0..len)
                .map(|_| Ok([r.float()?, r.float()?]))
                .collect::<Result<_>>()?;
            deltas.push(level);
        }
        if anchors.len() != forests.len() || deltas.len() != forests.len() {
            return Err(r.fail("cascade levels disagree"));
        }
        for (level, trees) in forests.iter().enumerate() {
            let features = anchors[level].len();
            if deltas[level].len() != features {
                return Err(r.fail("anchors and offsets disagree"));
            }
            let bad = trees
                .iter()
                .flat_map(|t| &t.splits)
                .any(|s| s.idx1 as usize >= features || s.idx2 as usize >= features);
            if bad {
                return Err(r.fail("split refers to a missing feature pixel"));
            }
        }
        if r.at != bytes.len() {
            return Err(r.fail("trailing bytes"));
        }
        Ok(ShapePredictor {
            initial,
            forests,
            anchors,
            deltas,
        })
    }

    /// Number of landmarks.
    pub fn num_parts(&self) -> usize {
        self.initial.len() / 2
    }

    /// Landmarks (image coordinates) of the face in `rect`.
    pub fn predict(&self, img: &GreyImage, rect: &DlibRect) -> Vec<[f32; 2]> {
        let mut shape = self.initial.clone();
        let mut features = Vec::new();
        for (level, trees) in self.forests.iter().enumerate() {
            let m = similarity_2x2(&self.initial, &shape);
            features.clear();
            for (&anchor, d) in self.anchors[level].iter().zip(&self.deltas[level]) {
                let a = anchor as usize;
                let p = [
                    m[0] * d[0] + m[1] * d[1] + shape[2 * a],
                    m[2] * d[0] + m[3] * d[1] + shape[2 * a + 1],
                ];
                let [x, y] = rect.to_image(p);
                // dlib rounds to the nearest pixel; outside the image reads as 0.
                let (x, y) = ((x + 0.5).floor(), (y + 0.5).floor());
                let inside =
                    x >= 0.0 && y >= 0.0 && (x as usize) < img.width && (y as usize) < img.height;
                features.push(if inside {
                    img.pixels[y as usize * img.width + x as usize] as f32
                } else {
                    0.0
                });
            }
            let dims = shape.len();
            for tree in trees {
                let mut i = 0;
                while i < tree.splits.len() {
                    let s = tree.splits[i];
                    i = if features[s.idx1 as usize] - features[s.idx2 as usize] > s.thresh {
                        2 * i + 1
                    } else {
                        2 * i + 2
                    };
                }
                let leaf = i - tree.splits.len();
                let values = &tree.leaves[leaf * dims..(leaf + 1) * dims];
                shape.iter_mut().zip(values).for_each(|(s, v)| *s += v);
            }
        }
        shape
            .chunks_exact(2)
            .map(|p| rect.to_image([p[0], p[1]]))
            .collect()
    }
}

/// The 2x2 part `[a, b; c, d]` (row-major) of the least-squares similarity transform taking the
/// points of `from` to those of `to` (both `[x0, y0, x1, y1, ...]`). For 2-D points Umeyama's
/// solution without reflection reduces to `[[s, -r], [r, s]]` with the closed forms below.
pub fn similarity_2x2(from: &[f32], to: &[f32]) -> [f32; 4] {
    let (a, b, _) = similarity_params(from, to);
    [a, -b, b, a]
}

/// `(a, b, t)` of the similarity `p ↦ [[a, -b], [b, a]] p + t` that best maps `from` onto `to`.
pub fn similarity_params(from: &[f32], to: &[f32]) -> (f32, f32, [f32; 2]) {
    let n = (from.len() / 2) as f64;
    let mean =
        |v: &[f32], k: usize| v.iter().skip(k).step_by(2).map(|&x| x as f64).sum::<f64>() / n;
    let (fx, fy, tx, ty) = (mean(from, 0), mean(from, 1), mean(to, 0), mean(to, 1));
    let (mut dot, mut cross, mut norm) = (0f64, 0f64, 0f64);
    for (f, t) in from.chunks_exact(2).zip(to.chunks_exact(2)) {
        let (x, y) = (f[0] as f64 - fx, f[1] as f64 - fy);
        let (u, v) = (t[0] as f64 - tx, t[1] as f64 - ty);
        dot += x * u + y * v;
        cross += x * v - y * u;
        norm += x * x + y * y;
    }
    if norm == 0.0 {
        return (1.0, 0.0, [(tx - fx) as f32, (ty - fy) as f32]);
    }
    let (a, b) = (dot / norm, cross / norm);
    let t = [tx - (a * fx - b * fy), ty - (b * fx + a * fy)];
    (a as f32, b as f32, [t[0] as f32, t[1] as f32])
}
