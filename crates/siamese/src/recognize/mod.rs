//! recognize (placeholder: filled in by its owner).
