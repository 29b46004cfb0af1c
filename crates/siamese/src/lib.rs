//! siamese: metric learning with triplet loss — data, embedding networks, losses and mining,
//! training, evaluation, open-set recognition, faces and reports.
//!
//! The modules follow the data's path:
//! `assets → data → sampling → model → loss → train → embed → {eval, recognize, cluster, index} → viz/report`.

pub mod assets;
pub mod cluster;
pub mod data;
pub mod distance;
pub mod embed;
pub mod error;
pub mod eval;
pub mod faces;
pub mod index;
pub mod input;
pub mod kernels;
pub mod loss;
pub mod memory;
pub mod model;
pub mod output;
pub mod recognize;
pub mod report;
pub mod run;
pub mod sampling;
pub mod store;
pub mod train;
pub mod viz;

pub use error::{Error, Result};
