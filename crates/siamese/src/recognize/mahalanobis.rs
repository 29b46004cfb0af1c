//! Mahalanobis distance with one covariance shared by the classes (Lee et al. 2018): the fit
//! (class means, the inverse of `Σ + λI` by Cholesky) and the nearest class under it. Used by the
//! `mahalanobis` score on embeddings and by the `ensemble` score on conv1's summaries.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Class means and the inverse of the covariance shared by all classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MahalanobisFit {
    pub dim: usize,
    /// `[classes, dim]` class means.
    pub means: Vec<f32>,
    /// `[dim, dim]` inverse of the shared within-class covariance (plus a small ridge).
    pub precision: Vec<f64>,
}

/// Relative ridge added to the covariance's diagonal (times its mean variance): L2-normalised
/// embeddings lie on a sphere, so their covariance is close to singular in one direction.
const RIDGE: f64 = 1e-6;

impl MahalanobisFit {
    /// Fits the shared covariance `Σ = 1/N Σᵢ (xᵢ − μ_yᵢ)(xᵢ − μ_yᵢ)ᵀ` around the class `means`
    /// (`[classes, dim]`), and inverts `Σ + λI`.
    pub fn fit(embeddings: &[f32], labels: &[u32], means: &[f32], dim: usize) -> Result<Self> {
        if dim == 0 || embeddings.len() != labels.len() * dim || labels.is_empty() {
            return Err(Error::config(
                "Mahalanobis fit",
                format!(
                    "{} values for {} labels of dimension {dim}",
                    embeddings.len(),
                    labels.len()
                ),
            ));
        }
        let mut cov = vec![0f64; dim * dim];
        let mut centred = vec![0f64; dim];
        for (row, &label) in embeddings.chunks_exact(dim).zip(labels) {
            let mean = means
                .get(label as usize * dim..(label as usize + 1) * dim)
                .ok_or_else(|| {
                    Error::config(
                        "Mahalanobis fit",
                        format!("label {label} has no class mean"),
                    )
                })?;
            for ((c, &x), &m) in centred.iter_mut().zip(row).zip(mean) {
                *c = x as f64 - m as f64;
            }
            for i in 0..dim {
                let ci = centred[i];
                for (j, &cj) in centred.iter().enumerate().skip(i) {
                    cov[i * dim + j] += ci * cj;
                }
            }
        }
        let n = labels.len() as f64;
        for i in 0..dim {
            for j in i..dim {
                let v = cov[i * dim + j] / n;
                cov[i * dim + j] = v;
                cov[j * dim + i] = v;
            }
        }
        let mean_variance = (0..dim).map(|i| cov[i * dim + i]).sum::<f64>() / dim as f64;
        let ridge = RIDGE * mean_variance.max(1e-12);
        for i in 0..dim {
            cov[i * dim + i] += ridge;
        }
        Ok(MahalanobisFit {
            dim,
            means: means.to_vec(),
            precision: invert_spd(&cov, dim)?,
        })
    }

    /// `(x − μ)ᵀ P (x − μ)` for one mean.
    pub fn distance_to(&self, x: &[f32], mean: &[f32]) -> f64 {
        let d: Vec<f64> = x
            .iter()
            .zip(mean)
            .map(|(&a, &b)| a as f64 - b as f64)
            .collect();
        self.precision
            .chunks_exact(self.dim)
            .zip(&d)
            .map(|(row, &di)| di * row.iter().zip(&d).map(|(p, dj)| p * dj).sum::<f64>())
            .sum()
    }

    /// For each row of `x`: the class with the smallest Mahalanobis distance, and that distance.
    pub fn predict(&self, x: &[f32]) -> Vec<(u32, f32)> {
        x.chunks_exact(self.dim)
            .map(|row| {
                self.means
                    .chunks_exact(self.dim)
                    .enumerate()
                    .map(|(c, mean)| (c as u32, self.distance_to(row, mean)))
                    .fold(
                        (0, f64::INFINITY),
                        |best, m| if m.1 < best.1 { m } else { best },
                    )
            })
            .map(|(c, d)| (c, d as f32))
            .collect()
    }
}

/// The inverse of a symmetric positive-definite `[n, n]` matrix, by Cholesky factorisation.
pub fn invert_spd(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let v = a[i * n + i] - s;
                if !(v > 0.0 && v.is_finite()) {
                    return Err(Error::Other(
                        "the embeddings' covariance is not positive definite".to_string(),
                    ));
                }
                l[i * n + i] = v.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    // L⁻¹ by forward substitution, then A⁻¹ = L⁻ᵀ L⁻¹.
    let mut li = vec![0f64; n * n];
    for col in 0..n {
        for i in col..n {
            let s: f64 = (col..i).map(|k| l[i * n + k] * li[k * n + col]).sum();
            let rhs = if i == col { 1.0 } else { 0.0 };
            li[i * n + col] = (rhs - s) / l[i * n + i];
        }
    }
    let mut inv = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v: f64 = (i..n).map(|k| li[k * n + i] * li[k * n + j]).sum();
            inv[i * n + j] = v;
            inv[j * n + i] = v;
        }
    }
    Ok(inv)
}
