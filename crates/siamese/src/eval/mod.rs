//! eval (placeholder: filled in by its owner).
