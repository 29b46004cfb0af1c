//! AVX-512 versions of the fused pool's two row loops ([`super::conv_pool`]): 16 windows at a
//! time, the even and odd columns of each row pair split with one permute each. The compiler
//! does not vectorise the portable loops (stride-2 reads, a first-maximum select chain, byte
//! stores), so these are written with intrinsics; tests compare them with the portable loops.
//!
//! Shapes: a row pair `top`, `bottom` of `2·len` pixels → `len` pooled values and index bytes;
//! and back: `len` gradients and index bytes → `2·len`-pixel rows of the convolution's gradient.

use std::arch::x86_64::*;

use super::pool::NO_GRADIENT;

/// Lanes of the even (`EVEN`) and odd (`ODD`) elements of two concatenated 16-float vectors.
const EVEN: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
const ODD: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];
/// Interleaving two 16-float vectors `a`, `b` into `a0 b0 a1 b1 …` (low half, then high half).
const LOW: [i32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
const HIGH: [i32; 16] = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];

/// The first `n` (≤ 16) lanes.
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xFFFF
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// [`super::dropout::hash`] of `seed` and 16 counters.
#[inline]
#[target_feature(enable = "avx512f")]
fn hash16(seed: __m512i, i: __m512i) -> __m512i {
    let mut x = _mm512_xor_si512(
        _mm512_mullo_epi32(i, _mm512_set1_epi32(0x9E37_79B9_u32 as i32)),
        seed,
    );
    x = _mm512_xor_si512(x, _mm512_srli_epi32::<16>(x));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7FEB_352D));
    x = _mm512_xor_si512(x, _mm512_srli_epi32::<15>(x));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x846C_A68B_u32 as i32));
    _mm512_xor_si512(x, _mm512_srli_epi32::<16>(x))
}

/// Pools one row of windows (see `conv_pool::pool_row`): `out[j]`, and `codes[j]` when given.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL; `top` and `bottom` hold at least `2·out.len()`
/// values and `codes`, when given, `out.len()` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn pool_row(
    (top, bottom): (&[f32], &[f32]),
    out: &mut [f32],
    mut codes: Option<&mut [u8]>,
    e0: u32,
    (seed, threshold, scale): (u32, u64, f32),
) {
    let len = out.len();
    assert!(top.len() >= 2 * len && bottom.len() >= 2 * len);
    assert!(codes.as_ref().is_none_or(|c| c.len() >= len));
    let (even, odd) = (
        _mm512_loadu_si512(EVEN.as_ptr().cast()),
        _mm512_loadu_si512(ODD.as_ptr().cast()),
    );
    let seed = _mm512_set1_epi32(seed as i32);
    let keep_all = threshold >= 1 << 32;
    let threshold = _mm512_set1_epi32(threshold.min(u32::MAX as u64) as u32 as i32);
    let (scale, zero) = (_mm512_set1_ps(scale), _mm512_setzero_ps());
    let steps = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let mut j = 0;
    while j < len {
        let n = (len - j).min(16);
        let (lo, hi) = (lanes((2 * n).min(16)), lanes((2 * n).saturating_sub(16)));
        // SAFETY: masked loads read only lanes below 2·len from j (asserted above).
        let (t0, t1, b0, b1) = unsafe {
            (
                _mm512_maskz_loadu_ps(lo, top.as_ptr().add(2 * j)),
                _mm512_maskz_loadu_ps(hi, top.as_ptr().wrapping_add(2 * j + 16)),
                _mm512_maskz_loadu_ps(lo, bottom.as_ptr().add(2 * j)),
                _mm512_maskz_loadu_ps(hi, bottom.as_ptr().wrapping_add(2 * j + 16)),
            )
        };
        let (a, b) = (
            _mm512_permutex2var_ps(t0, even, t1),
            _mm512_permutex2var_ps(t0, odd, t1),
        );
        let (c, d) = (
            _mm512_permutex2var_ps(b0, even, b1),
            _mm512_permutex2var_ps(b0, odd, b1),
        );
        let m = _mm512_max_ps(_mm512_max_ps(a, b), _mm512_max_ps(c, d));
        let kept = if keep_all {
            0xFFFF
        } else {
            let counters =
                _mm512_add_epi32(_mm512_set1_epi32(e0.wrapping_add(j as u32) as i32), steps);
            _mm512_cmplt_epu32_mask(hash16(seed, counters), threshold)
        };
        let value = _mm512_maskz_mul_ps(kept, _mm512_max_ps(m, zero), scale);
        // SAFETY: lanes below n < len - j + 1 are inside `out`.
        unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(j), lanes(n), value) };
        if let Some(codes) = codes.as_deref_mut() {
            // The first maximum in window order: set 3, then overwrite by 2, 1, 0 where equal.
            let mut at = _mm512_set1_epi32(3);
            at = _mm512_mask_mov_epi32(at, _mm512_cmpeq_ps_mask(c, m), _mm512_set1_epi32(2));
            at = _mm512_mask_mov_epi32(at, _mm512_cmpeq_ps_mask(b, m), _mm512_set1_epi32(1));
            at = _mm512_mask_mov_epi32(at, _mm512_cmpeq_ps_mask(a, m), _mm512_setzero_si512());
            let passes = kept & _mm512_cmp_ps_mask::<_CMP_GT_OQ>(m, zero);
            let code = _mm512_mask_mov_epi32(_mm512_set1_epi32(NO_GRADIENT as i32), passes, at);
            let bytes = _mm512_cvtepi32_epi8(code);
            // SAFETY: lanes below n are inside `codes` (asserted above).
            unsafe { _mm_mask_storeu_epi8(codes.as_mut_ptr().add(j).cast(), lanes(n), bytes) };
        }
        j += n;
    }
}

/// Writes one row pair of the convolution's gradient from `len` pooled gradients and their
/// index bytes: the gradient (times `scale`) at each window's recorded position, 0 elsewhere.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL; `codes` and `g` hold `len` values, `top` and
/// `bottom` at least `2·len`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn unpool_row(codes: &[u8], g: &[f32], scale: f32, top: &mut [f32], bottom: &mut [f32]) {
    let len = codes.len();
    assert!(g.len() >= len && top.len() >= 2 * len && bottom.len() >= 2 * len);
    let (low, high) = (
        _mm512_loadu_si512(LOW.as_ptr().cast()),
        _mm512_loadu_si512(HIGH.as_ptr().cast()),
    );
    let scale = _mm512_set1_ps(scale);
    let mut j = 0;
    while j < len {
        let n = (len - j).min(16);
        // SAFETY: masked loads of lanes below n, inside `codes` and `g`.
        let (code, gv) = unsafe {
            (
                _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes(n), codes.as_ptr().add(j).cast())),
                _mm512_maskz_loadu_ps(lanes(n), g.as_ptr().add(j)),
            )
        };
        let gv = _mm512_mul_ps(gv, scale);
        let pick =
            |k: i32| _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(code, _mm512_set1_epi32(k)), gv);
        let (a, b, c, d) = (pick(0), pick(1), pick(2), pick(3));
        let (lo, hi) = (lanes((2 * n).min(16)), lanes((2 * n).saturating_sub(16)));
        // SAFETY: masked stores of lanes below 2·n from 2·j, inside `top` and `bottom`.
        unsafe {
            _mm512_mask_storeu_ps(
                top.as_mut_ptr().add(2 * j),
                lo,
                _mm512_permutex2var_ps(a, low, b),
            );
            _mm512_mask_storeu_ps(
                top.as_mut_ptr().wrapping_add(2 * j + 16),
                hi,
                _mm512_permutex2var_ps(a, high, b),
            );
            _mm512_mask_storeu_ps(
                bottom.as_mut_ptr().add(2 * j),
                lo,
                _mm512_permutex2var_ps(c, low, d),
            );
            _mm512_mask_storeu_ps(
                bottom.as_mut_ptr().wrapping_add(2 * j + 16),
                hi,
                _mm512_permutex2var_ps(c, high, d),
            );
        }
        j += n;
    }
}
