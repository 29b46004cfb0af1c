//! The GEMM calls of the CPU kernels: one strided product over the `gemm` crate (which picks its
//! micro-kernel for the CPU at run time), and the 16 independent products of a Winograd
//! F(2x2, 3x3) step. Single-threaded: callers parallelise over images with rayon.

/// `dst [m, n] = alpha·dst + lhs [m, k] · rhs [k, n]` with explicit (row, column) strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) {
    let max_index = |rows: usize, cols: usize, (rs, cs): (usize, usize)| {
        (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs
    };
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || lhs.len() > max_index(m, k, lhs_strides));
    assert!(n == 0 || k == 0 || rhs.len() > max_index(k, n, rhs_strides));
    // SAFETY: every index the strides can reach is inside its slice (asserted above); dst is
    // row-major [m, n] and does not alias lhs or rhs (distinct borrows). `gemm` computes
    // dst = alpha·dst + beta·lhs·rhs and reads dst only when `accumulate` is set.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.1 as isize,
            lhs_strides.0 as isize,
            rhs.as_ptr(),
            rhs_strides.1 as isize,
            rhs_strides.0 as isize,
            if accumulate { 1.0f32 } else { 0.0f32 },
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The 16 products `out[ξ] (m×n) = lhs[ξ] · rhs[ξ]` with per-ξ strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm16(
    m: usize,
    n: usize,
    k: usize,
    out: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) {
    let (ls, rs, os) = (lhs.len() / 16, rhs.len() / 16, m * n);
    for xi in 0..16 {
        gemm_strided(
            m,
            n,
            k,
            &mut out[xi * os..(xi + 1) * os],
            accumulate,
            &lhs[xi * ls..(xi + 1) * ls],
            lhs_strides,
            &rhs[xi * rs..(xi + 1) * rs],
            rhs_strides,
        );
    }
}
