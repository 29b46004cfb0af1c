//! Face detection with SeetaFace's frontal detector (the `rustface` crate: a funnel-structured
//! cascade of LAB boosted classifiers and SURF-MLPs over an image pyramid, pure Rust).
//!
//! Boxes are converted to the rectangle dlib's HOG detector would give for the same face,
//! because dlib's landmark regressor was trained from those rectangles: on LFW the HOG box is
//! centred 7.6 % of the box side lower than SeetaFace's and is 3 % smaller (measured on 328
//! LFW photos where both detectors found the face; see [`seeta_to_dlib`]).

use std::path::Path;

use super::landmarks::{DlibRect, GreyImage};
use crate::{Error, Result};

/// Detector settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DetectorOptions {
    /// Smallest face side searched, in pixels of the (possibly downscaled) photo. Default 40.
    pub min_face: u32,
    /// Cascade score a window needs to count as a face. Default 2.0 (rustface's example).
    pub score_threshold: f64,
    /// Photos whose longer side exceeds this are downscaled for detection only. Default 1024.
    pub max_side: u32,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        DetectorOptions {
            min_face: 40,
            score_threshold: 2.0,
            max_side: 1024,
        }
    }
}

/// A detected face box in image pixels (a record of the database, defined there).
pub use crate::store::FaceBox;

/// SeetaFace box → dlib HOG-style rectangle (same face), see the module doc.
pub fn seeta_to_dlib(b: &FaceBox) -> DlibRect {
    let side = 0.97 * b.width.max(b.height);
    let [cx, cy] = b.center();
    let (cx, cy) = (cx + 0.013 * b.width, cy + 0.076 * b.height);
    DlibRect {
        left: cx - side / 2.0,
        top: cy - side / 2.0,
        right: cx + side / 2.0,
        bottom: cy + side / 2.0,
    }
}

/// The box assumed when a photo is known to be a centred face crop and detection found nothing:
/// dlib's HOG box on LFW's deep-funneled 250x250 photos is 41.6 % of the side, centred at
/// (51.6 %, 54.4 %) of the width and height (medians over 328 LFW photos).
pub fn centered_box(width: u32, height: u32) -> FaceBox {
    let side = 0.416 * width.min(height) as f32;
    let (cx, cy) = (0.516 * width as f32, 0.544 * height as f32);
    FaceBox {
        left: cx - side / 2.0,
        top: cy - side / 2.0,
        width: side,
        height: side,
        score: 0.0,
    }
}

/// dlib-style rectangle of an assumed (not detected) box: used as is.
pub fn assumed_to_dlib(b: &FaceBox) -> DlibRect {
    DlibRect {
        left: b.left,
        top: b.top,
        right: b.left + b.width,
        bottom: b.top + b.height,
    }
}

/// SeetaFace's frontal face detector.
#[derive(Clone)]
pub struct FaceDetector {
    model: rustface::Model,
    options: DetectorOptions,
}

impl FaceDetector {
    /// Loads `seeta_fd_frontal_v1.0.bin`.
    pub fn load(path: &Path, options: DetectorOptions) -> Result<Self> {
        if options.min_face < 20 {
            return Err(Error::config("min_face", "must be at least 20 pixels"));
        }
        let bytes = crate::input::read_file(path)?;
        // rustface's parser and cascade panic on some garbage files of the right size: parse the
        // model and run it once on a blank picture with the panic caught (and its message kept
        // off the terminal), so a bad file is one error naming it.
        let checked = quietly_catching_panics(|| {
            let model = rustface::read_model(std::io::Cursor::new(bytes))?;
            let mut probe = rustface::create_detector_with_model(model.clone());
            probe.set_min_face_size(20);
            let blank = vec![128u8; 64 * 64];
            probe.detect(&rustface::ImageData::new(&blank, 64, 64));
            Ok::<_, std::io::Error>(model)
        });
        let model = match checked {
            Some(Ok(model)) => model,
            Some(Err(e)) => {
                return Err(Error::format(
                    path,
                    format!("not a SeetaFace detector model: {e}"),
                ))
            }
            None => {
                return Err(Error::format(
                    path,
                    "not a SeetaFace detector model (its parser failed on the content); run \
                     `siamese fetch face-models` again",
                ))
            }
        };
        Ok(FaceDetector { model, options })
    }

    /// Settings in use.
    pub fn options(&self) -> &DetectorOptions {
        &self.options
    }

    /// Faces in `grey`, highest score first. Large photos are searched downscaled.
    pub fn detect(&self, grey: &GreyImage) -> Vec<FaceBox> {
        if grey.width < 20 || grey.height < 20 {
            return Vec::new();
        }
        let longer = grey.width.max(grey.height) as f32;
        let factor = (self.options.max_side as f32 / longer).min(1.0);
        let scaled;
        let (pixels, w, h) = if factor < 1.0 {
            let w = ((grey.width as f32 * factor).round() as u32).max(20);
            let h = ((grey.height as f32 * factor).round() as u32).max(20);
            let src = image::GrayImage::from_raw(
                grey.width as u32,
                grey.height as u32,
                grey.pixels.clone(),
            )
            .expect("grey buffer matches its size");
            scaled = image::imageops::resize(&src, w, h, image::imageops::FilterType::Triangle);
            (scaled.as_raw().as_slice(), w, h)
        } else {
            (
                grey.pixels.as_slice(),
                grey.width as u32,
                grey.height as u32,
            )
        };
        let mut detector = rustface::create_detector_with_model(self.model.clone());
        detector.set_min_face_size(self.options.min_face);
        detector.set_score_thresh(self.options.score_threshold);
        detector.set_pyramid_scale_factor(0.8);
        detector.set_slide_window_step(4, 4);
        let data = rustface::ImageData::new(pixels, w, h);
        let found =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| detector.detect(&data)))
                .unwrap_or_default();
        let inv = 1.0 / factor;
        let mut boxes: Vec<FaceBox> = found
            .iter()
            .map(|f| {
                let b = f.bbox();
                FaceBox {
                    left: b.x() as f32 * inv,
                    top: b.y() as f32 * inv,
                    width: b.width() as f32 * inv,
                    height: b.height() as f32 * inv,
                    score: f.score() as f32,
                }
            })
            .collect();
        boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
        boxes
    }
}

/// Runs `f`, turning a panic into `None` without printing the panic message.
fn quietly_catching_panics<T>(f: impl FnOnce() -> T) -> Option<T> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
    std::panic::set_hook(previous);
    result
}
