//! Open-set recognition: a gallery of training embeddings (class prototypes or k-NN), thresholds
//! calibrated from validation data and stored with the model, the seeds' Gini-of-softmax
//! baseline, recognising new images as a known class or `unknown`, the open-set evaluation,
//! embedding plots, the margin sweep, and same/different verification of two images.

pub mod calibration;
pub mod ensemble;
pub mod gallery;
pub mod gini;
pub mod image_index;
pub mod mahalanobis;
pub mod openset;
pub mod plots;
pub mod recognizer;
pub mod scores;
pub mod sweep;
pub mod unknown_sets;
pub mod verify;

pub use calibration::{Calibration, Thresholds, DEFAULT_TARGET_TPR};
pub use gallery::{Gallery, GalleryMode, Match};
pub use recognizer::{calibrate_run, CalibrateOptions, Recognition, RecognizeOptions, Recognizer};
pub use scores::Score;
