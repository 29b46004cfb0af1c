//! Losses for metric learning: tensor distances and the triplet margin loss.

pub mod distance;
pub mod triplet;

pub use distance::row_distance;
pub use triplet::{TripletLoss, TripletLossConfig};
