//! bf16 GEMM on AMX tiles (`--precision bf16`): `dst [m, n] (+)= lhs [m, k] · rhs [k, n]` with
//! the inputs rounded to bf16 (round to nearest even) while they are packed, products summed in
//! fp32 by `tdpbf16ps`, and `dst` kept fp32.
//!
//! Why AMX and not AVX-512 BF16: on Sapphire Rapids `vdpbf16ps` retires one 512-bit
//! instruction a cycle (32 multiply-adds), the same rate as two fp32 FMAs, so it saves nothing;
//! one `tdpbf16ps` does 16·16·32 multiply-adds.
//!
//! Layout: `lhs` is packed into 32-row blocks of two A tiles (16 rows × 32 bf16 each) per 32
//! values of `k`; `rhs` into 32-column blocks of two B tiles in the VNNI order `tdpbf16ps`
//! reads (row `p` holds, for 16 columns, the pair of rows `2p, 2p+1`). Rows, columns and `k` are
//! padded with zeros to those multiples, so one 2×2-tile kernel covers every shape. The tile
//! registers are configured for each call (the state is per thread) and released after.

use std::arch::asm;
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::sync::OnceLock;

/// bf16 values in a tile row and rows in a tile.
const TILE_K: usize = 32;
const TILE_ROWS: usize = 16;
/// u16 values in one tile (1 KiB).
const TILE: usize = TILE_ROWS * TILE_K;

/// Whether this CPU has AMX with bf16, the kernel lets this process use the tile data (asked
/// once, through `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`), and the vector level
/// in force is AVX-512 (`SIAMESE_SIMD=avx2` stands for a machine without it, AMX included).
pub fn available() -> bool {
    super::simd::level() == super::simd::SimdLevel::Avx512 && granted()
}

/// Whether the CPU has AMX bf16 and the kernel grants this process its tile data, whatever
/// the vector level in force.
fn granted() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    *GRANTED.get_or_init(|| {
        // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE; AVX-512 F/BW for the packing.
        let leaf7 = __cpuid_count(7, 0);
        let amx = leaf7.edx & (1 << 22) != 0 && leaf7.edx & (1 << 24) != 0;
        if !amx
            || !std::arch::is_x86_feature_detected!("avx512f")
            || !std::arch::is_x86_feature_detected!("avx512bw")
            || !std::arch::is_x86_feature_detected!("avx512bf16")
        {
            return false;
        }
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: the arch_prctl system call (158 on x86-64) only changes this process's
        // permission to use extended state; rcx and r11 are clobbered by `syscall`.
        unsafe {
            asm!("syscall", inlateout("rax") 158i64 => ret, in("rdi") ARCH_REQ_XCOMP_PERM,
                 in("rsi") XFEATURE_XTILEDATA, lateout("rcx") _, lateout("r11") _,
                 options(nostack));
        }
        ret == 0
    })
}

/// The tile configuration: palette 1; tmm0–3 the 2×2 C tiles, tmm4–5 A, tmm6–7 B; every tile
/// 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

/// Rounds `x` to bf16 (nearest even; finite inputs, as the kernels' are).
fn bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

/// Lane mask of the first `len.min(16)` lanes.
fn lanes(len: usize) -> u16 {
    if len >= 16 {
        u16::MAX
    } else {
        ((1u32 << len) - 1) as u16
    }
}

/// 32 values (16 from `lo`, 16 from `hi`, each `count` long at most) as bf16 in one vector:
/// `lo`'s then `hi`'s.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn convert32(lo: *const f32, lo_len: usize, hi: *const f32, hi_len: usize) -> __m512i {
    let l = _mm512_maskz_loadu_ps(lanes(lo_len), lo);
    let h = _mm512_maskz_loadu_ps(lanes(hi_len), hi);
    // cvtne2ps_pbh(a, b): the low 16 values from b, the high 16 from a.
    std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(h, l))
}

/// Packs `lhs [m, k]` (strides `(rs, cs)`) into A tiles: block `(ib, kb)` at
/// `((ib·kbs + kb)·2 + half)·TILE`, row `r` of the half the lhs row `32·ib + 16·half + r`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_lhs(m: usize, k: usize, lhs: &[f32], (rs, cs): (usize, usize), out: &mut [u16]) {
    let (ibs, kbs) = (m.div_ceil(32), k.div_ceil(TILE_K));
    for ib in 0..ibs {
        for kb in 0..kbs {
            for row in 0..32 {
                let i = ib * 32 + row;
                let at = ((ib * kbs + kb) * 2 + row / 16) * TILE + (row % 16) * TILE_K;
                let dst = &mut out[at..at + TILE_K];
                let k0 = kb * TILE_K;
                let len = k.saturating_sub(k0).min(TILE_K);
                if i >= m || len == 0 {
                    dst.fill(0);
                } else if cs == 1 {
                    let src = lhs.as_ptr().add(i * rs + k0);
                    let v = convert32(src, len, src.wrapping_add(16), len.saturating_sub(16));
                    _mm512_storeu_si512(dst.as_mut_ptr().cast(), v);
                } else {
                    for (t, d) in dst.iter_mut().enumerate() {
                        *d = if t < len {
                            bf16(lhs[i * rs + (k0 + t) * cs])
                        } else {
                            0
                        };
                    }
                }
            }
        }
    }
}

/// Packs `rhs [k, n]` (strides `(rs, cs)`) into VNNI B tiles: block `(jb, kb)` at
/// `((jb·kbs + kb)·2 + half)·TILE`; row `p` of a half holds, for its 16 columns `j`, the pair
/// `(rhs[k0 + 2p, j], rhs[k0 + 2p + 1, j])`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_rhs(k: usize, n: usize, rhs: &[f32], (rs, cs): (usize, usize), out: &mut [u16]) {
    let (jbs, kbs) = (n.div_ceil(32), k.div_ceil(TILE_K));
    // Lane 2t of a VNNI row takes value t of the first row, lane 2t + 1 value t of the second.
    let interleave = _mm512_set_epi16(
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4,
        19, 3, 18, 2, 17, 1, 16, 0,
    );
    for jb in 0..jbs {
        for kb in 0..kbs {
            for half in 0..2 {
                let at = ((jb * kbs + kb) * 2 + half) * TILE;
                let tile = &mut out[at..at + TILE];
                let j0 = jb * 32 + half * 16;
                let cols = n.saturating_sub(j0).min(16);
                let k0 = kb * TILE_K;
                let ks = k.saturating_sub(k0).min(TILE_K);
                if cols == 0 || ks == 0 {
                    tile.fill(0);
                } else if cs == 1 {
                    for p in 0..TILE_ROWS {
                        let (r0, r1) = (k0 + 2 * p, k0 + 2 * p + 1);
                        let len0 = if 2 * p < ks { cols } else { 0 };
                        let len1 = if 2 * p + 1 < ks { cols } else { 0 };
                        let base = row_at(rhs, r0.min(k - 1) * rs + j0);
                        let next = row_at(rhs, r1.min(k - 1) * rs + j0);
                        let v = convert32(base, len0, next, len1);
                        let v = _mm512_permutexvar_epi16(interleave, v);
                        _mm512_storeu_si512(tile.as_mut_ptr().add(p * TILE_K).cast(), v);
                    }
                } else if rs == 1 {
                    // Each column's k values are contiguous: convert 32 of them (16 pairs) at
                    // once, then place pair p of column t at dword (p, t).
                    let words: &mut [u32] =
                        std::slice::from_raw_parts_mut(tile.as_mut_ptr().cast(), TILE / 2);
                    let mut pairs = [0u32; 16];
                    for t in 0..16 {
                        if t < cols {
                            let src = rhs.as_ptr().add((j0 + t) * cs + k0);
                            let v = convert32(src, ks, src.wrapping_add(16), ks.saturating_sub(16));
                            _mm512_storeu_si512(pairs.as_mut_ptr().cast(), v);
                        } else {
                            pairs = [0; 16];
                        }
                        for (p, &w) in pairs.iter().enumerate() {
                            words[p * 16 + t] = w;
                        }
                    }
                } else {
                    for p in 0..TILE_ROWS {
                        for t in 0..16 {
                            for e in 0..2 {
                                let kk = 2 * p + e;
                                tile[p * TILE_K + 2 * t + e] = if t < cols && kk < ks {
                                    bf16(rhs[(k0 + kk) * rs + (j0 + t) * cs])
                                } else {
                                    0
                                };
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A pointer to `values[at]` (callers load it with masks that stop inside the slice).
fn row_at(values: &[f32], at: usize) -> *const f32 {
    values[at.min(values.len() - 1)..].as_ptr()
}

thread_local! {
    /// Packed A and B tiles, kept per worker thread between calls.
    static PACKED: RefCell<(Vec<u16>, Vec<u16>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `dst [m, n] (+)= lhs · rhs` in bf16 on AMX. Panics without AMX (callers check
/// [`available`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
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
    assert!(granted(), "bf16 GEMM without AMX");
    assert!(dst.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let max_index =
        |rows: usize, cols: usize, (rs, cs): (usize, usize)| (rows - 1) * rs + (cols - 1) * cs;
    assert!(lhs.len() > max_index(m, k, lhs_strides));
    assert!(rhs.len() > max_index(k, n, rhs_strides));
    let (ibs, jbs, kbs) = (m.div_ceil(32), n.div_ceil(32), k.div_ceil(TILE_K));
    PACKED.with(|packed| {
        let (a, b) = &mut *packed.borrow_mut();
        a.resize(ibs * kbs * 2 * TILE, 0);
        b.resize(jbs * kbs * 2 * TILE, 0);
        // SAFETY: `granted` checked AVX-512 F/BW/BF16 and AMX; the packers write inside
        // `a` and `b` (sized above) and read `lhs`/`rhs` inside the asserted extents.
        unsafe {
            pack_lhs(m, k, lhs, lhs_strides, a);
            pack_rhs(k, n, rhs, rhs_strides, b);
            multiply(m, n, kbs, a, b, dst, accumulate);
        }
    });
}

/// The 2×2-tile kernel over every 32×32 block of `dst`.
#[target_feature(enable = "avx512f")]
unsafe fn multiply(
    m: usize,
    n: usize,
    kbs: usize,
    a: &[u16],
    b: &[u16],
    dst: &mut [f32],
    accumulate: bool,
) {
    let config = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: {
            let mut c = [0u16; 16];
            c[..8].fill(64);
            c
        },
        rows: {
            let mut r = [0u8; 16];
            r[..8].fill(16);
            r
        },
    };
    asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly));
    let mut block = [0f32; 32 * 32];
    let stride = 64usize;
    for jb in 0..n.div_ceil(32) {
        for ib in 0..m.div_ceil(32) {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
            for kb in 0..kbs {
                let a0 = a.as_ptr().add((ib * kbs + kb) * 2 * TILE);
                let b0 = b.as_ptr().add((jb * kbs + kb) * 2 * TILE);
                asm!(
                    "tileloadd tmm4, [{a0} + {s}*1]",
                    "tileloadd tmm5, [{a1} + {s}*1]",
                    "tileloadd tmm6, [{b0} + {s}*1]",
                    "tileloadd tmm7, [{b1} + {s}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a0 = in(reg) a0,
                    a1 = in(reg) a0.add(TILE),
                    b0 = in(reg) b0,
                    b1 = in(reg) b0.add(TILE),
                    s = in(reg) stride,
                    options(nostack, readonly),
                );
            }
            let c = block.as_mut_ptr();
            asm!(
                "tilestored [{c0} + {s}*1], tmm0",
                "tilestored [{c1} + {s}*1], tmm1",
                "tilestored [{c2} + {s}*1], tmm2",
                "tilestored [{c3} + {s}*1], tmm3",
                c0 = in(reg) c,
                c1 = in(reg) c.add(16),
                c2 = in(reg) c.add(16 * 32),
                c3 = in(reg) c.add(16 * 32 + 16),
                s = in(reg) 128usize,
                options(nostack),
            );
            let (i0, j0) = (ib * 32, jb * 32);
            let cols = (n - j0).min(32);
            for r in 0..(m - i0).min(32) {
                let out = &mut dst[(i0 + r) * n + j0..(i0 + r) * n + j0 + cols];
                let got = &block[r * 32..r * 32 + cols];
                if accumulate {
                    out.iter_mut().zip(got).for_each(|(o, g)| *o += g);
                } else {
                    out.copy_from_slice(got);
                }
            }
        }
    }
    asm!("tilerelease", options(nostack, nomem));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(
        m: usize,
        n: usize,
        k: usize,
        lhs: &[f32],
        (lr, lc): (usize, usize),
        rhs: &[f32],
        (rr, rc): (usize, usize),
    ) -> Vec<f32> {
        let round = |x: f32| f32::from_bits((bf16(x) as u32) << 16);
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|t| {
                        round(lhs[i * lr + t * lc]) as f64 * round(rhs[t * rr + j * rc]) as f64
                    })
                    .sum::<f64>() as f32;
            }
        }
        out
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(bf16(1.0), 0x3F80);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
        assert_eq!(bf16(1.0 + 1.0 / 256.0), 0x3F80);
        assert_eq!(bf16(1.0 + 3.0 / 256.0), 0x3F82);
        assert_eq!(bf16(-2.5), 0xC020);
    }

    /// Every packing path (contiguous rows, contiguous columns, neither) on shapes with
    /// partial tiles, against the same sums of bf16-rounded products in f64.
    #[test]
    fn amx_products_equal_the_bf16_rounded_sums() {
        if !granted() {
            eprintln!("skipped: this CPU or kernel has no AMX bf16");
            return;
        }
        let value = |i: usize| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * 3.0;
        for (m, n, k) in [
            (1, 1, 1),
            (64, 576, 288),
            (17, 33, 45),
            (288, 64, 576),
            (5, 40, 64),
        ] {
            let lhs: Vec<f32> = (0..m * k).map(value).collect();
            let rhs: Vec<f32> = (0..k * n).map(|i| value(i + 13)).collect();
            for (ls, rs) in [
                ((k, 1), (n, 1)),
                ((k, 1), (1, k)),
                ((1, m), (n, 1)),
                ((1, m), (1, k)),
            ] {
                let want = reference(m, n, k, &lhs, ls, &rhs, rs);
                for accumulate in [false, true] {
                    let mut got = vec![if accumulate { 1.0 } else { f32::NAN }; m * n];
                    gemm(m, n, k, &mut got, accumulate, &lhs, ls, &rhs, rs);
                    let base = if accumulate { 1.0 } else { 0.0 };
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - base - w).abs() <= 1e-4 * (1.0 + w.abs()),
                            "{m}x{n}x{k} {ls:?} {rs:?}: {g} vs {}",
                            w + base
                        );
                    }
                }
            }
        }
    }
}
