//! The GEMM calls of the CPU kernels: one strided product over the `gemm` crate (which picks its
//! micro-kernel for the CPU at run time), and the 16 independent products of a Winograd
//! F(2x2, 3x3) step. Single-threaded: callers parallelise over images with rayon.
//!
//! Under [`Precision::Bf16`] (`--precision bf16`, AMX CPUs only) the products big enough to pay
//! for the packing run on AMX tiles in bf16 with fp32 sums ([`super::gemm_bf16`]).

use std::sync::atomic::{AtomicBool, Ordering};

/// The arithmetic of the kernels' products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// fp32 inputs and sums (the default).
    #[default]
    F32,
    /// Inputs rounded to bf16, fp32 sums and fp32 outputs (weights stay fp32).
    Bf16,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

static BF16: AtomicBool = AtomicBool::new(false);

/// Sets the process-wide precision of the kernels' products. bf16 needs AMX (`amx_bf16`):
/// elsewhere this is an error saying so, and fp32 stays.
pub fn set_precision(precision: Precision) -> Result<(), String> {
    if precision == Precision::Bf16 && !super::gemm_bf16::available() {
        return Err(
            "bf16 needs AMX tiles (amx_tile, amx_bf16: Intel Xeon Sapphire Rapids or later),              which this CPU or kernel does not offer"
                .into(),
        );
    }
    BF16.store(precision == Precision::Bf16, Ordering::Relaxed);
    Ok(())
}

/// The precision [`set_precision`] set last.
pub fn precision() -> Precision {
    if BF16.load(Ordering::Relaxed) {
        Precision::Bf16
    } else {
        Precision::F32
    }
}

/// Sets a precision for as long as it lives, then puts back the one before (a training run's
/// bf16 does not leak into what the process does after it).
#[must_use]
pub struct PrecisionScope(Precision);

impl PrecisionScope {
    /// [`set_precision`] until this value drops.
    pub fn set(precision: Precision) -> Result<Self, String> {
        let before = self::precision();
        set_precision(precision)?;
        Ok(PrecisionScope(before))
    }
}

impl Drop for PrecisionScope {
    fn drop(&mut self) {
        BF16.store(self.0 == Precision::Bf16, Ordering::Relaxed);
    }
}

/// Below this many multiply-adds packing costs more than AMX saves.
const BF16_MIN_WORK: usize = 1 << 16;

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
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || lhs.len() > max_index(m, k, lhs_strides));
    assert!(n == 0 || k == 0 || rhs.len() > max_index(k, n, rhs_strides));
    if k >= 16 && m * n * k >= BF16_MIN_WORK && BF16.load(Ordering::Relaxed) {
        super::gemm_bf16::gemm(m, n, k, dst, accumulate, lhs, lhs_strides, rhs, rhs_strides);
        return;
    }
    // SAFETY: dst is row-major [m, n] (asserted long enough), borrowed mutably.
    unsafe {
        gemm_f32_raw(
            (m, n, k),
            dst.as_mut_ptr(),
            n,
            accumulate,
            (lhs, lhs_strides),
            (rhs, rhs_strides),
        )
    }
}

/// `dst [m, n] = accumulate·dst + lhs [m, k] · rhs [k, n]` in fp32 whatever the precision, with
/// `dst`'s row stride `dst_row_stride` (≥ n). The dense layers' products, which
/// `--precision bf16` leaves in fp32.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_f32_into(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_row_stride: usize,
    accumulate: bool,
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
) {
    assert!(dst_row_stride >= n);
    assert!(m == 0 || n == 0 || dst.len() > max_index(m, n, (dst_row_stride, 1)));
    // SAFETY: dst covers every element the stride reaches (asserted above), borrowed mutably.
    unsafe {
        gemm_f32_raw(
            (m, n, k),
            dst.as_mut_ptr(),
            dst_row_stride,
            accumulate,
            (lhs, lhs_strides),
            (rhs, rhs_strides),
        )
    }
}

/// The largest index a `rows × cols` matrix with `(row, column)` strides reaches.
fn max_index(rows: usize, cols: usize, (rs, cs): (usize, usize)) -> usize {
    (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs
}

/// [`gemm_f32_into`] on a raw `dst`, so that threads can each write a block of columns of one
/// matrix (its rows interleave, so no `&mut` slice can hold one block alone).
///
/// # Safety
/// `dst` must be valid for reads and writes at `r · dst_row_stride + c` for every `r < m`,
/// `c < n`, `dst_row_stride ≥ n`, and nothing else may touch those elements during the call.
pub(crate) unsafe fn gemm_f32_raw(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_row_stride: usize,
    accumulate: bool,
    (lhs, lhs_strides): (&[f32], (usize, usize)),
    (rhs, rhs_strides): (&[f32], (usize, usize)),
) {
    assert!(dst_row_stride >= n);
    assert!(m == 0 || k == 0 || lhs.len() > max_index(m, k, lhs_strides));
    assert!(n == 0 || k == 0 || rhs.len() > max_index(k, n, rhs_strides));
    // SAFETY: lhs and rhs reach only inside their slices (asserted above); dst per the caller's
    // promise, rows apart (stride ≥ n), not aliasing lhs or rhs (they are shared borrows while
    // dst's elements are the caller's alone). With alpha 0 `gemm` does not read dst.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_row_stride as isize,
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
