//! Principal component analysis to 2-D for plots: data row-major `[n, dim]` f32 → `[n]` points.
//!
//! The covariance (`[dim, dim]`, one GEMM) is reduced by subspace iteration to its two leading
//! eigenvectors, ordered by a Rayleigh–Ritz step. Signs are fixed (the largest-magnitude loading
//! of each axis is positive), so the same data always gives the same picture.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The 2-D PCA of a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca2d {
    /// Each row projected on the two principal axes (centred).
    pub points: Vec<[f32; 2]>,
    /// The two unit principal axes, each of length `dim` (an all-zero axis when the data has
    /// fewer than two directions of variance).
    pub axes: [Vec<f32>; 2],
    /// Fraction of the total variance along each axis.
    pub explained_variance_ratio: [f64; 2],
}

/// The first two principal components of each of the `data.len() / dim` rows (a trailing
/// partial row is ignored; `dim == 0` gives no points).
pub fn pca_2d(data: &[f32], dim: usize) -> Vec<[f32; 2]> {
    pca_2d_fit(data, dim).points
}

/// [`pca_2d`] with the axes and explained variance.
pub fn pca_2d_fit(data: &[f32], dim: usize) -> Pca2d {
    let n = data.len().checked_div(dim).unwrap_or(0);
    let empty = Pca2d {
        points: vec![[0.0; 2]; n],
        axes: [vec![0.0; dim], vec![0.0; dim]],
        explained_variance_ratio: [0.0; 2],
    };
    if n < 2 {
        return empty;
    }
    let data = &data[..n * dim];
    let mut mean = vec![0f64; dim];
    for row in data.chunks_exact(dim) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, v)| *m += f64::from(*v));
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let centred: Vec<f32> = data
        .chunks_exact(dim)
        .flat_map(|row| {
            row.iter()
                .zip(&mean)
                .map(|(v, m)| (f64::from(*v) - m) as f32)
        })
        .collect();
    let cov = covariance(&centred, n, dim);
    let total: f64 = (0..dim).map(|i| cov[i * dim + i]).sum();
    if total <= 0.0 || !total.is_finite() {
        return empty;
    }
    let (axes, values) = top_two_eigen(&cov, dim);
    let points = centred
        .chunks_exact(dim)
        .map(|row| {
            let p = |axis: &[f64]| {
                row.iter()
                    .zip(axis)
                    .map(|(v, a)| f64::from(*v) * a)
                    .sum::<f64>() as f32
            };
            [p(&axes[0]), p(&axes[1])]
        })
        .collect();
    Pca2d {
        points,
        axes: [
            axes[0].iter().map(|&v| v as f32).collect(),
            axes[1].iter().map(|&v| v as f32).collect(),
        ],
        explained_variance_ratio: [values[0].max(0.0) / total, values[1].max(0.0) / total],
    }
}

/// Sample covariance `[dim, dim]` (f64) of centred rows, XᵀX / (n − 1) by one GEMM.
fn covariance(centred: &[f32], n: usize, dim: usize) -> Vec<f64> {
    let mut out = vec![0f32; dim * dim];
    // SAFETY: `centred` holds n*dim values and `out` dim*dim; lhs = Xᵀ (dim × n) reads X with
    // column stride `dim` and row stride 1, rhs = X (n × dim) row-major, dst row-major.
    unsafe {
        gemm::gemm(
            dim,
            dim,
            n,
            out.as_mut_ptr(),
            1,
            dim as isize,
            false,
            centred.as_ptr(),
            dim as isize,
            1,
            centred.as_ptr(),
            1,
            dim as isize,
            0.0f32,
            1.0f32 / (n - 1) as f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    out.into_iter().map(f64::from).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalise(v: &mut [f64]) -> f64 {
    let norm = dot(v, v).sqrt();
    if norm > 1e-300 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        v.iter_mut().for_each(|x| *x = 0.0);
    }
    norm
}

/// Gram–Schmidt on two vectors; the second becomes zero when it lies in the first's span.
fn orthonormalise(v: &mut [Vec<f64>; 2]) {
    normalise(&mut v[0]);
    let proj = dot(&v[0], &v[1]);
    let (first, second) = v.split_at_mut(1);
    second[0]
        .iter_mut()
        .zip(&first[0])
        .for_each(|(x, f)| *x -= proj * f);
    if normalise(&mut second[0]) < 1e-12 {
        second[0].iter_mut().for_each(|x| *x = 0.0);
    }
}

fn mat_vec(m: &[f64], v: &[f64]) -> Vec<f64> {
    m.chunks_exact(v.len()).map(|row| dot(row, v)).collect()
}

/// The two leading eigenvectors (unit, sign-fixed) and eigenvalues of a symmetric matrix.
fn top_two_eigen(cov: &[f64], dim: usize) -> ([Vec<f64>; 2], [f64; 2]) {
    // A fixed pseudo-random start is almost surely not orthogonal to the leading eigenvectors.
    let mut rng = ChaCha8Rng::seed_from_u64(0x5ca1ab1e);
    let mut v: [Vec<f64>; 2] = [
        (0..dim).map(|_| rng.random::<f64>() - 0.5).collect(),
        (0..dim).map(|_| rng.random::<f64>() - 0.5).collect(),
    ];
    orthonormalise(&mut v);
    for _ in 0..3000 {
        let mut w = [mat_vec(cov, &v[0]), mat_vec(cov, &v[1])];
        orthonormalise(&mut w);
        let change: f64 = (0..2)
            .map(|k| 1.0 - dot(&w[k], &v[k]).abs())
            .fold(0.0, f64::max);
        v = w;
        if change < 1e-14 {
            break;
        }
    }
    // Rayleigh–Ritz: diagonalise the 2×2 projection so the axes come out ordered and exact.
    let cv = [mat_vec(cov, &v[0]), mat_vec(cov, &v[1])];
    let (a, b, c) = (dot(&v[0], &cv[0]), dot(&v[0], &cv[1]), dot(&v[1], &cv[1]));
    let angle = 0.5 * (2.0 * b).atan2(a - c);
    let (cos, sin) = (angle.cos(), angle.sin());
    let mut axes = [
        v[0].iter()
            .zip(&v[1])
            .map(|(x, y)| cos * x + sin * y)
            .collect::<Vec<f64>>(),
        v[0].iter()
            .zip(&v[1])
            .map(|(x, y)| -sin * x + cos * y)
            .collect::<Vec<f64>>(),
    ];
    let mut values = [0f64; 2];
    for (axis, value) in axes.iter_mut().zip(values.iter_mut()) {
        *value = dot(axis, &mat_vec(cov, axis));
        let pivot = axis
            .iter()
            .copied()
            .fold(0f64, |m, x| if x.abs() > m.abs() { x } else { m });
        if pivot < 0.0 {
            axis.iter_mut().for_each(|x| *x = -*x);
        }
    }
    if values[1] > values[0] {
        axes.swap(0, 1);
        values.swap(0, 1);
    }
    (axes, values)
}
