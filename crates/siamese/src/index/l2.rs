//! Squared Euclidean distance between two `f32` rows for the HNSW graph, with the kernel picked
//! once at run time for the CPU in hand (AVX-512F, AVX2 + FMA, or portable code), and a
//! prefetch hint that asks for a row before its distance is needed.
//!
//! The kernels sum in different orders, so their results differ in the last bits (tested within
//! 1e-5 relative); one process always uses one kernel, so its graphs and answers are repeatable.

/// A squared-L2 kernel: both rows have the same length.
pub type L2Kernel = fn(&[f32], &[f32]) -> f32;

/// The fastest kernel this CPU runs, and its name (as `siamese bench index` reports it).
pub fn best() -> (L2Kernel, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return (l2_avx512, "avx512f");
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return (l2_avx2, "avx2+fma");
        }
    }
    (l2_portable, "portable")
}

/// Every kernel this CPU can run, by name (for the tests that compare them).
pub fn available() -> Vec<(L2Kernel, &'static str)> {
    let mut kernels: Vec<(L2Kernel, &'static str)> = vec![(l2_portable, "portable")];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            kernels.push((l2_avx2, "avx2+fma"));
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            kernels.push((l2_avx512, "avx512f"));
        }
    }
    kernels
}

/// Eight independent sums, so the compiler vectorises it on any target.
pub fn l2_portable(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ta.iter().zip(tb) {
        sum += (x - y) * (x - y);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
fn l2_avx512(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: chosen only where the CPU reports AVX-512F (`best`, `available`).
    unsafe { l2_avx512_inner(a, b) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn l2_avx512_inner(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut i = 0;
    // SAFETY: every load reads lanes below `n` (masked for the tail).
    unsafe {
        while i + 32 <= n {
            let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            let d1 = _mm512_sub_ps(
                _mm512_loadu_ps(pa.add(i + 16)),
                _mm512_loadu_ps(pb.add(i + 16)),
            );
            acc0 = _mm512_fmadd_ps(d0, d0, acc0);
            acc1 = _mm512_fmadd_ps(d1, d1, acc1);
            i += 32;
        }
        while i < n {
            let left = n - i;
            let mask: __mmask16 = if left >= 16 {
                0xffff
            } else {
                (1u16 << left) - 1
            };
            let d = _mm512_sub_ps(
                _mm512_maskz_loadu_ps(mask, pa.add(i)),
                _mm512_maskz_loadu_ps(mask, pb.add(i)),
            );
            acc0 = _mm512_fmadd_ps(d, d, acc0);
            i += 16;
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
}

#[cfg(target_arch = "x86_64")]
fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: chosen only where the CPU reports AVX2 and FMA (`best`, `available`).
    unsafe { l2_avx2_inner(a, b) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn l2_avx2_inner(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    // SAFETY: every load reads lanes below `n`; the tail is summed by scalar code.
    let mut sum = unsafe {
        while i + 16 <= n {
            let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            let d1 = _mm256_sub_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
            );
            acc0 = _mm256_fmadd_ps(d0, d0, acc0);
            acc1 = _mm256_fmadd_ps(d1, d1, acc1);
            i += 16;
        }
        if i + 8 <= n {
            let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            acc0 = _mm256_fmadd_ps(d, d, acc0);
            i += 8;
        }
        let s = _mm256_add_ps(acc0, acc1);
        let half = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        let pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)))
    };
    for j in i..n {
        let d = a[j] - b[j];
        sum += d * d;
    }
    sum
}

/// Asks the CPU to bring `row` into cache (one hint per 64-byte line, at most 8 lines) so the
/// distance computed a few neighbours later does not wait on memory; a no-op elsewhere.
#[inline(always)]
pub fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let lines = (row.len() * 4).div_ceil(64).min(8);
        let p = row.as_ptr() as *const i8;
        for l in 0..lines {
            // SAFETY: a prefetch never faults, and the address stays inside `row`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(l * 64)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_matches_a_plain_sum() {
        for dim in [1, 3, 8, 15, 16, 17, 31, 32, 33, 64, 128, 129, 513] {
            let a: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.11).cos() * 0.5).collect();
            let want: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(x - y).powi(2))
                .sum();
            for (kernel, name) in available() {
                let got = f64::from(kernel(&a, &b));
                assert!(
                    (got - want).abs() <= 1e-5 * want.max(1.0),
                    "{name} dim {dim}: {got} vs {want}"
                );
                assert_eq!(kernel(&a, &a), 0.0, "{name}");
            }
        }
        assert!(!available().is_empty());
        assert_eq!(available().last().unwrap().1, best().1);
    }
}
