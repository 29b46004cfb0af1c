//! Large output buffers that a kernel fills image by image: allocated without the zero fill
//! that `vec![0.0; n]` does in one pass over the whole buffer (to memory, before any kernel
//! touches it), and zeroed one image at a time by the worker that then writes it, while the
//! image's slice is in that worker's cache.

use std::mem::{ManuallyDrop, MaybeUninit};

/// `len` floats, not yet initialised.
pub(super) fn unfilled(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: `MaybeUninit` needs no initialisation; the capacity is `len`.
    unsafe { v.set_len(len) };
    v
}

/// Zeroes `chunk` and returns it as floats.
#[inline]
pub(super) fn zeroed(chunk: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    chunk.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was just initialised, and `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Fills each `row_len`-long row `r` of `chunk` with `values[r]` and returns it as floats (the
/// bias a GEMM then accumulates onto: one pass instead of zeroing first).
#[inline]
pub(super) fn filled_rows<'a>(
    chunk: &'a mut [MaybeUninit<f32>],
    row_len: usize,
    values: &[f32],
) -> &'a mut [f32] {
    assert_eq!(chunk.len(), row_len * values.len());
    for (row, &v) in chunk.chunks_exact_mut(row_len.max(1)).zip(values) {
        row.fill(MaybeUninit::new(v));
    }
    // SAFETY: every element was just initialised (`row_len · values.len()` of them).
    unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Copies `src` into `chunk` (same length) and returns it as floats.
#[inline]
pub(super) fn copied<'a>(chunk: &'a mut [MaybeUninit<f32>], src: &[f32]) -> &'a mut [f32] {
    assert_eq!(chunk.len(), src.len());
    for (d, &v) in chunk.iter_mut().zip(src) {
        *d = MaybeUninit::new(v);
    }
    // SAFETY: every element was just initialised.
    unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Copies `row` into every `row.len()`-long row of `chunk` and returns it as floats (the bias of
/// a row-major `[rows, row.len()]` output that a GEMM then accumulates onto).
#[inline]
pub(super) fn repeated<'a>(chunk: &'a mut [MaybeUninit<f32>], row: &[f32]) -> &'a mut [f32] {
    assert_eq!(chunk.len() % row.len().max(1), 0);
    for d in chunk.chunks_exact_mut(row.len().max(1)) {
        d.iter_mut()
            .zip(row)
            .for_each(|(d, v)| *d = MaybeUninit::new(*v));
    }
    // SAFETY: every element was just initialised (the rows cover `chunk`, asserted above).
    unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// `chunk` as floats.
///
/// # Safety
/// Every element of `chunk` must be initialised.
#[inline]
pub(super) unsafe fn assume_init_mut(chunk: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: initialised per the caller's promise; `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// The floats of a buffer every element of which went through [`zeroed`], [`filled_rows`],
/// [`repeated`] or [`copied`].
///
/// # Safety
/// Every element of `v` must be initialised.
pub(super) unsafe fn assume_filled(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = ManuallyDrop::new(v);
    let (ptr, len, capacity) = (v.as_mut_ptr(), v.len(), v.capacity());
    // SAFETY: same allocation, layout and length; initialised per the caller's promise.
    unsafe { Vec::from_raw_parts(ptr.cast::<f32>(), len, capacity) }
}

/// The first `n` floats of a worker's reusable buffer, grown with zeros when it is shorter
/// (what it held before stays: callers write before they read).
pub(super) fn at_least(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// Copies `row` into every `row.len()`-long row of `dst` (the bias a GEMM then accumulates
/// onto). A plain loop, not `copy_from_slice`: a `memmove` call per row of 16-320 floats costs
/// more than the copy.
#[inline(always)]
pub(super) fn fill_rows(dst: &mut [f32], row: &[f32]) {
    for d in dst.chunks_exact_mut(row.len()) {
        d.iter_mut().zip(row).for_each(|(d, v)| *d = *v);
    }
}
