//! Losses for metric learning: tensor distances, the triplet margin loss, the pair losses
//! (contrastive, multi-similarity, circle, NT-Xent, SupCon) over mined [`pairs::PairSet`]s, and
//! the class-vector losses (Proxy-Anchor, ArcFace, CosFace) with their learnable head.

pub mod arcface;
pub mod circle;
pub mod class_weights;
pub mod config;
pub mod contrastive;
pub mod cosface;
pub mod distance;
pub mod multi_similarity;
pub mod nt_xent;
pub mod pairs;
pub mod proxy_anchor;
pub mod triplet;

pub use class_weights::ClassWeights;
pub use config::{LossConfig, LossOptions};
pub use distance::row_distance;
pub use triplet::{TripletLoss, TripletLossConfig};
