//! Face chips: the 150x150 RGB input of the face ResNet, cut out of a photo so that the face
//! sits where dlib's training chips put it.
//!
//! Aligned path (dlib's `get_face_chip_details` + `extract_image_chip`): the five landmarks are
//! matched to dlib's canonical 5-point template, expanded by `padding` (0.25, the value dlib's
//! face recognition model was trained with) on each side; the least-squares similarity
//! (rotation, uniform scale, translation) between chip and image gives the sampling grid; pixels
//! are read with bilinear interpolation, black outside the photo. When the face is more than
//! twice the chip's size the photo is first halved (2x2 means) as often as needed, so that
//! bilinear sampling never skips pixels (dlib uses an image pyramid for the same reason).
//!
//! Unaligned path (`--no-align`, for photos that already are face crops): the whole image is
//! resized to 150x150.

use image::{imageops::FilterType, RgbImage};

use super::landmarks::similarity_params;
use crate::model::face_resnet::CHIP_SIZE;

/// dlib's padding around the face in its recognition chips.
pub const CHIP_PADDING: f32 = 0.25;

/// dlib's canonical positions of the 5-point landmarks in a padding-free unit chip.
pub const TEMPLATE_5: [[f32; 2]; 5] = [
    [0.859_567_46, 0.213_498_15],
    [0.646_060_5, 0.228_967_44],
    [0.120_575_06, 0.213_727_45],
    [0.334_085_06, 0.229_064_24],
    [0.490_112_3, 0.627_797_5],
];

/// dlib's mean face shape (points 17..67 of the 68-point layout, unit chip without padding),
/// `x` then `y`; used when aligning with the 68-point predictor.
const MEAN_FACE_68_X: [f32; 51] = [
    0.000213256,
    0.0752622,
    0.18113,
    0.29077,
    0.393397,
    0.586856,
    0.689483,
    0.799124,
    0.904991,
    0.98004,
    0.490127,
    0.490127,
    0.490127,
    0.490127,
    0.36688,
    0.426036,
    0.490127,
    0.554217,
    0.613373,
    0.121737,
    0.187122,
    0.265825,
    0.334606,
    0.260918,
    0.182743,
    0.645647,
    0.714428,
    0.793132,
    0.858516,
    0.79751,
    0.719335,
    0.254149,
    0.340985,
    0.428858,
    0.490127,
    0.551395,
    0.639268,
    0.726104,
    0.642159,
    0.556721,
    0.490127,
    0.423532,
    0.338094,
    0.290379,
    0.428096,
    0.490127,
    0.552157,
    0.689874,
    0.553364,
    0.490127,
    0.42689,
];
const MEAN_FACE_68_Y: [f32; 51] = [
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915,
    0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345,
    0.587326, 0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077, 0.231733, 0.179852,
    0.178758, 0.216423, 0.244077, 0.245099, 0.780233, 0.745405, 0.727388, 0.742578, 0.727388,
    0.745405, 0.780233, 0.864805, 0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746,
    0.785343, 0.778746, 0.784792, 0.824182, 0.831803, 0.824182,
];

/// Where one chip lies in the photo: centre, rotation and the spacing of its sampling grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChipPlacement {
    /// Centre of the chip in image coordinates.
    pub center: [f32; 2],
    /// Rotation of the chip's x axis in the image, radians.
    pub angle: f32,
    /// Image pixels per chip pixel.
    pub step: f32,
    /// Chip side in pixels.
    pub size: usize,
}

impl ChipPlacement {
    /// Image coordinates of chip pixel `(col, row)`.
    pub fn to_image(&self, col: f32, row: f32) -> [f32; 2] {
        let half = (self.size as f32 - 1.0) / 2.0;
        let (dx, dy) = ((col - half) * self.step, (row - half) * self.step);
        let (s, c) = self.angle.sin_cos();
        [
            self.center[0] + c * dx - s * dy,
            self.center[1] + s * dx + c * dy,
        ]
    }

    /// The four corners in image coordinates (for drawing and bounding boxes).
    pub fn corners(&self) -> [[f32; 2]; 4] {
        let e = self.size as f32 - 1.0;
        [
            self.to_image(0.0, 0.0),
            self.to_image(e, 0.0),
            self.to_image(e, e),
            self.to_image(0.0, e),
        ]
    }
}

/// dlib's chip placement for 5 landmarks (`get_face_chip_details(det, size, padding)`).
pub fn chip_placement(landmarks: &[[f32; 2]; 5], size: usize, padding: f32) -> ChipPlacement {
    placement_from_pairs(
        TEMPLATE_5.iter().copied().zip(landmarks.iter().copied()),
        size,
        padding,
    )
}

/// dlib's chip placement for 5 or 68 landmarks; `None` for any other count. With 68 points dlib
/// matches the inner face (eyes, nose, upper lip: points 27..54 and 60..64) to its mean shape.
pub fn chip_placement_any(
    landmarks: &[[f32; 2]],
    size: usize,
    padding: f32,
) -> Option<ChipPlacement> {
    match landmarks.len() {
        5 => Some(chip_placement(
            &[
                landmarks[0],
                landmarks[1],
                landmarks[2],
                landmarks[3],
                landmarks[4],
            ],
            size,
            padding,
        )),
        68 => {
            let used = (27..68).filter(|i| !((55..=59).contains(i) || (65..=67).contains(i)));
            let pairs = used.map(|i| {
                (
                    [MEAN_FACE_68_X[i - 17], MEAN_FACE_68_Y[i - 17]],
                    landmarks[i],
                )
            });
            Some(placement_from_pairs(pairs, size, padding))
        }
        _ => None,
    }
}

fn placement_from_pairs(
    pairs: impl Iterator<Item = ([f32; 2], [f32; 2])>,
    size: usize,
    padding: f32,
) -> ChipPlacement {
    let mut from = Vec::new();
    let mut to = Vec::new();
    for (t, p) in pairs {
        from.push((padding + t[0]) / (2.0 * padding + 1.0) * size as f32);
        from.push((padding + t[1]) / (2.0 * padding + 1.0) * size as f32);
        to.extend_from_slice(&p);
    }
    let (a, b, t) = similarity_params(&from, &to);
    let scale = (a * a + b * b).sqrt();
    let half = size as f32 / 2.0;
    let center = [a * half - b * half + t[0], b * half + a * half + t[1]];
    // dlib's rectangle is `size * scale` wide with inclusive corners, so neighbouring chip
    // pixels are `(size * scale - 1) / (size - 1)` apart.
    let step = (size as f32 * scale - 1.0) / (size as f32 - 1.0);
    ChipPlacement {
        center,
        angle: b.atan2(a),
        step,
        size,
    }
}

/// Halves an image by 2x2 means (odd last row/column dropped).
fn halve(img: &RgbImage) -> RgbImage {
    let (w, h) = ((img.width() / 2).max(1), (img.height() / 2).max(1));
    let mut out = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0u32; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let px = img.get_pixel(
                    (2 * x + dx).min(img.width() - 1),
                    (2 * y + dy).min(img.height() - 1),
                );
                for c in 0..3 {
                    acc[c] += px[c] as u32;
                }
            }
            out.put_pixel(
                x,
                y,
                image::Rgb([(acc[0] / 4) as u8, (acc[1] / 4) as u8, (acc[2] / 4) as u8]),
            );
        }
    }
    out
}

/// Cuts the chip described by `placement` out of `img` (bilinear, black outside).
pub fn extract_chip(img: &RgbImage, placement: &ChipPlacement) -> RgbImage {
    let mut placement = *placement;
    let mut source = std::borrow::Cow::Borrowed(img);
    while placement.step > 2.0 && source.width() >= 4 && source.height() >= 4 {
        source = std::borrow::Cow::Owned(halve(&source));
        // A pixel centre x in the finer image is at (x + 0.5) / 2 - 0.5 in the halved one.
        placement.center = [
            (placement.center[0] + 0.5) / 2.0 - 0.5,
            (placement.center[1] + 0.5) / 2.0 - 0.5,
        ];
        placement.step /= 2.0;
    }
    let size = placement.size as u32;
    let mut chip = RgbImage::new(size, size);
    let (w, h) = (source.width() as i64, source.height() as i64);
    for row in 0..size {
        for col in 0..size {
            let [x, y] = placement.to_image(col as f32, row as f32);
            let (left, top) = (x.floor() as i64, y.floor() as i64);
            if left < 0 || top < 0 || left + 1 >= w || top + 1 >= h {
                continue;
            }
            let (fx, fy) = (x - left as f32, y - top as f32);
            let p = |xx: i64, yy: i64| source.get_pixel(xx as u32, yy as u32);
            let (tl, tr, bl, br) = (
                p(left, top),
                p(left + 1, top),
                p(left, top + 1),
                p(left + 1, top + 1),
            );
            let mut out = [0u8; 3];
            for c in 0..3 {
                let v = (1.0 - fy) * ((1.0 - fx) * tl[c] as f32 + fx * tr[c] as f32)
                    + fy * ((1.0 - fx) * bl[c] as f32 + fx * br[c] as f32);
                // dlib truncates when it stores the interpolated value.
                out[c] = v.clamp(0.0, 255.0) as u8;
            }
            chip.put_pixel(col, row, image::Rgb(out));
        }
    }
    chip
}

/// The aligned 150x150 chip of a face with these 5 landmarks.
pub fn aligned_chip(img: &RgbImage, landmarks: &[[f32; 2]; 5]) -> RgbImage {
    extract_chip(img, &chip_placement(landmarks, CHIP_SIZE, CHIP_PADDING))
}

/// The aligned 150x150 chip from 5 or 68 landmarks (`None` for another count).
pub fn aligned_chip_any(img: &RgbImage, landmarks: &[[f32; 2]]) -> Option<RgbImage> {
    chip_placement_any(landmarks, CHIP_SIZE, CHIP_PADDING).map(|p| extract_chip(img, &p))
}

/// `--no-align`: the whole image resized to 150x150 (for photos that already are face crops).
pub fn unaligned_chip(img: &RgbImage) -> RgbImage {
    image::imageops::resize(
        img,
        CHIP_SIZE as u32,
        CHIP_SIZE as u32,
        FilterType::Triangle,
    )
}
