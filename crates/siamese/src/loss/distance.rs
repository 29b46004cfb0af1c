//! Distances between matching rows of two embedding tensors, differentiable.
//!
//! Shapes: `a`, `b`: `[N, D]` → `[N]`. The same [`Distance`] names as the host-side
//! [`crate::distance`] module, so a model trained with one is evaluated with the same.

use burn::tensor::Tensor;

use crate::distance::Distance;

/// Keeps `sqrt` differentiable at zero (an anchor equal to its positive): the gradient of
/// `sqrt(x)` is infinite at 0, so a tiny floor is added before the root.
const SQRT_EPS: f64 = 1e-12;

/// `d(a_i, b_i)` for every row `i`: `[N, D] × [N, D] → [N]`.
pub fn row_distance(distance: Distance, a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    match distance {
        Distance::Euclidean => squared(a, b).add_scalar(SQRT_EPS).sqrt(),
        Distance::SquaredEuclidean => squared(a, b),
        Distance::L1 => (a - b).abs().sum_dim(1).squeeze_dim(1),
        Distance::Cosine => {
            let dot = (a.clone() * b.clone()).sum_dim(1);
            let na = a.powi_scalar(2).sum_dim(1);
            let nb = b.powi_scalar(2).sum_dim(1);
            let cos = dot / (na * nb).add_scalar(SQRT_EPS).sqrt();
            cos.neg().add_scalar(1.0).squeeze_dim(1)
        }
    }
}

fn squared(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    (a - b).powi_scalar(2).sum_dim(1).squeeze_dim(1)
}
