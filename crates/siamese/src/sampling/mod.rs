//! sampling (placeholder: filled in by its owner).
