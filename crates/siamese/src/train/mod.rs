//! Training: hyper-parameters, the loop, loss history and checkpoints in a run folder.

pub mod augment;
pub mod average;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod head;
pub mod head_predict;
pub mod history;
pub mod memory;
pub mod objective;
pub mod outliers;
pub mod schedule;
pub mod trainer;

pub use config::{Sampling, TrainConfig};
pub use history::{EpochRecord, History};
pub use trainer::{train, TrainOptions, TrainOutcome};
