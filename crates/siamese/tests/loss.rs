//! The triplet margin loss against hand-computed reference values, for every distance.

use burn::tensor::{Device, Tensor, TensorData};
use siamese::distance::Distance;
use siamese::loss::TripletLossConfig;

fn rows(v: &[[f32; 2]]) -> Tensor<2> {
    let flat: Vec<f32> = v.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [v.len(), 2]), &Device::default())
}

fn loss(
    distance: Distance,
    margin: f64,
    a: &[[f32; 2]],
    p: &[[f32; 2]],
    n: &[[f32; 2]],
) -> Vec<f32> {
    TripletLossConfig::new()
        .with_margin(margin)
        .with_distance(distance)
        .init()
        .unwrap()
        .forward_no_reduction(rows(a), rows(p), rows(n))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

fn close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "got {got:?}, want {want:?}");
    }
}

// Triplet 1: a=(0,0), p=(3,4), n=(1,0): d(a,p) = 5 (L2), 25 (L2²), 7 (L1); d(a,n) = 1 for all.
// Triplet 2: a=(1,2), p=(1,2), n=(4,6): positive equals anchor; d(a,n) = 5, 25, 7.
const A: [[f32; 2]; 2] = [[0.0, 0.0], [1.0, 2.0]];
const P: [[f32; 2]; 2] = [[3.0, 4.0], [1.0, 2.0]];
const N: [[f32; 2]; 2] = [[1.0, 0.0], [4.0, 6.0]];

#[test]
fn euclidean_matches_hand_computed_values() {
    // max(0, 5 − 1 + 0.2) = 4.2; max(0, 0 − 5 + 0.2) = 0.
    close(&loss(Distance::Euclidean, 0.2, &A, &P, &N), &[4.2, 0.0]);
    // With margin 6 the easy triplet is active: 0 − 5 + 6 = 1.
    close(&loss(Distance::Euclidean, 6.0, &A, &P, &N), &[10.0, 1.0]);
}

#[test]
fn squared_euclidean_matches_hand_computed_values() {
    // 25 − 1 + 0.2 = 24.2; 0 − 25 + 30 = 5.
    close(
        &loss(Distance::SquaredEuclidean, 0.2, &A, &P, &N),
        &[24.2, 0.0],
    );
    close(
        &loss(Distance::SquaredEuclidean, 30.0, &A, &P, &N),
        &[54.0, 5.0],
    );
}

#[test]
fn l1_matches_hand_computed_values() {
    // 7 − 1 + 0.2 = 6.2; 0 − 7 + 8 = 1.
    close(&loss(Distance::L1, 0.2, &A, &P, &N), &[6.2, 0.0]);
    close(&loss(Distance::L1, 8.0, &A, &P, &N), &[14.0, 1.0]);
}

#[test]
fn cosine_matches_hand_computed_values() {
    // a=(1,0), p=(0,1): cos 0 → d = 1; n=(1,1): cos 1/√2 → d = 1 − 0.70710678.
    // loss = 1 − 0.29289322 + 0.2 = 0.90710678.
    let got = loss(
        Distance::Cosine,
        0.2,
        &[[1.0, 0.0]],
        &[[0.0, 1.0]],
        &[[1.0, 1.0]],
    );
    close(&got, &[0.907_106_8]);
    // Scale does not matter for cosine: (2,0), (0,5), (3,3) gives the same.
    let got = loss(
        Distance::Cosine,
        0.2,
        &[[2.0, 0.0]],
        &[[0.0, 5.0]],
        &[[3.0, 3.0]],
    );
    close(&got, &[0.907_106_8]);
}

#[test]
fn mean_reduction_and_gradient_are_finite_when_anchor_equals_positive() {
    let device = Device::default().autodiff();
    let a =
        Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 2]), &device).require_grad();
    let p = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 2]), &device);
    let n = Tensor::<2>::from_data(TensorData::new(vec![1.5f32, 2.0], [1, 2]), &device);
    let loss = TripletLossConfig::new()
        .init()
        .unwrap()
        .forward(a.clone(), p, n);
    // 0 − 0.5 + 0.2 < 0 → 0, and the gradient through sqrt(0) must not be NaN.
    let value: f32 = loss.clone().into_scalar();
    assert!(value.abs() < 1e-6);
    let grads = loss.backward();
    let g = a
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(g.iter().all(|v| v.is_finite()), "gradient {g:?}");
}

#[test]
fn negative_margin_is_rejected() {
    let err = TripletLossConfig::new()
        .with_margin(-0.1)
        .init()
        .unwrap_err();
    assert!(err.to_string().contains("margin"), "{err}");
}
