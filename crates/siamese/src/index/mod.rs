//! Nearest-neighbour search over stored embeddings: exact search ([`flat::FlatIndex`], GEMM
//! distances), approximate search ([`hnsw::HnswIndex`], an HNSW graph saved with a staleness
//! header) and the sparse k-nearest-neighbour graph the clustering methods run on
//! ([`knn_graph::KnnGraph`]).

pub mod bench;
pub mod flat;
pub mod hnsw;
pub mod hnsw_graph;
pub mod knn_graph;
pub mod l2;
pub mod synthetic;

pub use flat::{FlatIndex, Hit};
pub use hnsw::{HnswIndex, HnswParams, IndexHeader, Neighbour};
pub use knn_graph::{GraphParams, KnnGraph};
