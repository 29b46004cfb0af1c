//! viz (placeholder: filled in by its owner).
