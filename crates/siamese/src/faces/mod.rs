//! Faces: detect, find landmarks, align, embed with dlib's pretrained ResNet, store, verify,
//! cluster and search.
//!
//! ```text
//! photo ─► load (checked header) ─► detect (SeetaFace) ─► landmarks (dlib 5-point)
//!       ─► align (dlib chip, 150x150, padding 0.25) ─► [flip / jitter copies]
//!       ─► model::face_resnet ─► store
//!       ─► { verify, eval-lfw, cluster, search, plot }
//! ```

pub mod align;
pub mod bench;
pub mod detect;
pub mod eval_lfw;
pub mod gallery;
pub mod grouping;
pub mod jitter;
pub mod landmarks;
pub mod lfw;
pub mod load;
pub mod people;
pub mod pipeline;
pub mod plot;
pub mod search;
pub mod store;
pub mod verify;
