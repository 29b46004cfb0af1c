//! Tensor helpers of the kernel tests (`kernels.rs`, `conv_infer.rs`): seeded random inputs,
//! host copies, and the relative-error check both compare paths with.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Largest relative error allowed between the fast and the plain path.
pub const TOLERANCE: f32 = 1e-4;

/// Values uniform in [-1, 1) from a generator seeded by `seed` (not the device's).
pub fn random<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Asserts the largest `|a - b| / max(1, |b|)` is within [`TOLERANCE`]; panics on a length
/// mismatch.
pub fn max_error(what: &str, a: &[f32], b: &[f32]) {
    max_error_within(what, a, b, TOLERANCE);
}

/// [`max_error`] with another tolerance.
#[allow(dead_code)]
pub fn max_error_within(what: &str, a: &[f32], b: &[f32], tolerance: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0f32, f32::max);
    println!(
        "{what}: max relative error {worst:.2e} over {} values",
        a.len()
    );
    assert!(worst <= tolerance, "{what}: error {worst} > {tolerance}");
}

/// Asserts `‖a − b‖ / ‖b‖ ≤ tolerance` (the error relative to the values' RMS): for bf16
/// gradients, where a max-pool window whose maximum is a near tie may route its gradient to
/// another element and so move single values whole.
#[allow(dead_code)]
pub fn rms_error_within(what: &str, a: &[f32], b: &[f32], tolerance: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let error: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let scale: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    let relative = (error / scale.max(f64::MIN_POSITIVE)).sqrt();
    println!(
        "{what}: relative RMS error {relative:.2e} over {} values",
        a.len()
    );
    assert!(
        relative <= tolerance,
        "{what}: RMS error {relative} > {tolerance}"
    );
}
