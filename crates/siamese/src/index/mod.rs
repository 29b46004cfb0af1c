//! Nearest-neighbour search over stored embeddings. Exact search ([`flat::FlatIndex`]) is the
//! default and the only index: at the sizes faces reach here it answers in milliseconds.

pub mod flat;

pub use flat::{FlatIndex, Hit};
