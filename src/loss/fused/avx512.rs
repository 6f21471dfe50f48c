//! The f32 row loops written out with AVX-512 intrinsics: one 16-lane
//! vector holds exactly the portable loop's 16 lanes (`lanes::row_sums`).
//!
//! Like `avx2.rs`, it performs the portable loop's operations in the same
//! order — lane l sums the elements i ≡ l (mod 16), the exp is `fast_exp`'s
//! step by step — so every level gives the same bits (tests compare it with
//! the scalar level). The max, the sweep and the gradient's scaling each
//! take one instruction per 16 elements where the AVX2 code takes two.

use std::arch::x86_64::*;

use super::super::fast_exp::{LN2_HI, LN2_LO, LOG2_E, MIN_INPUT, POLY, ROUNDER};
use super::lanes::{finish_block, prefetch, BLOCK, LANES};

/// e^d for sixteen d ≤ 0: `fast_exp::exp_nonpositive_f32` lane by lane.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp16(d: __m512) -> __m512 {
    // `max` with NaN in the first operand returns the second, as f32::max does.
    let clamped = _mm512_max_ps(d, _mm512_set1_ps(MIN_INPUT));
    let rounder = _mm512_set1_ps(ROUNDER);
    let shifted = _mm512_fmadd_ps(clamped, _mm512_set1_ps(LOG2_E), rounder);
    let n = _mm512_sub_ps(shifted, rounder);
    let n_bits = _mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_castps_si512(rounder));
    // fma(−n, c, x) and fnmadd(n, c, x) round the same exact value once.
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), clamped);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(POLY[0]);
    for &c in &POLY[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let e_r = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0));
    let biased = _mm512_max_epi32(_mm512_add_epi32(n_bits, _mm512_set1_epi32(127)), _mm512_setzero_si512());
    _mm512_mul_ps(e_r, _mm512_castsi512_ps(_mm512_slli_epi32::<23>(biased)))
}

/// `lanes::row_max` for f32: the max ignoring NaN, lane l over i ≡ l (mod 16).
#[target_feature(enable = "avx512f")]
pub(super) fn row_max(x: &[f32]) -> f32 {
    let mut acc = _mm512_set1_ps(f32::NEG_INFINITY);
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        // SAFETY: the chunk holds 16 f32.
        let v = unsafe { _mm512_loadu_ps(chunk.as_ptr()) };
        // max(v, acc) is v where v > acc, else acc — `if v > acc`, NaN v ignored.
        acc = _mm512_max_ps(v, acc);
    }
    let mut lanes = [0.0f32; LANES];
    // SAFETY: `lanes` holds 16 f32.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc) };
    for (l, &v) in rest.iter().enumerate() {
        lanes[l] = if v > lanes[l] { v } else { lanes[l] };
    }
    lanes.iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// `lanes::row_sums` for f32: S and L over a row given its max.
///
/// # Safety
/// The CPU must support AVX-512 F. `a` must be as long as `x` when `COEF`,
/// and `out` when `WRITE`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn row_sums<const COEF: bool, const WRITE: bool>(
    x: &[f32],
    a: &[f32],
    out: &mut [f32],
    max: f32,
    next: &[f32],
) -> (f64, f64) {
    assert!((!COEF || a.len() >= x.len()) && (!WRITE || out.len() >= x.len()));
    let m = _mm512_set1_ps(max);
    let (mut sum_exp, mut sum_shifted) = (0.0, 0.0);
    let mut start = 0;
    while start < x.len() {
        let end = (start + BLOCK).min(x.len());
        let full = start + (end - start) / LANES * LANES;
        let mut e_acc = _mm512_setzero_ps();
        let mut s_acc = _mm512_setzero_ps();
        let mut i = start;
        while i < full {
            if let Some(v) = next.get(i) {
                prefetch(v);
            }
            // SAFETY: i + 16 ≤ full ≤ x.len(), and a and out are at least as
            // long as x where they are read or written (asserted above).
            unsafe {
                let d = _mm512_sub_ps(_mm512_loadu_ps(x.as_ptr().add(i)), m);
                let e = exp16(d);
                e_acc = _mm512_add_ps(e_acc, e);
                s_acc = match COEF {
                    true => _mm512_fmadd_ps(d, _mm512_loadu_ps(a.as_ptr().add(i)), s_acc),
                    false => _mm512_add_ps(s_acc, d),
                };
                if WRITE {
                    _mm512_storeu_ps(out.as_mut_ptr().add(i), e);
                }
            }
            i += LANES;
        }
        let mut e_lanes = [0.0f32; LANES];
        let mut s_lanes = [0.0f32; LANES];
        // SAFETY: each array holds 16 f32.
        unsafe {
            _mm512_storeu_ps(e_lanes.as_mut_ptr(), e_acc);
            _mm512_storeu_ps(s_lanes.as_mut_ptr(), s_acc);
        }
        // The block's last few elements and the fold, as the portable loop does them.
        let (e, s) = finish_block::<f32, COEF, WRITE>(x, a, out, max, full..end, &mut e_lanes, &mut s_lanes);
        sum_exp += e;
        sum_shifted += s;
        start = end;
    }
    (sum_exp, sum_shifted)
}

/// `lanes::row_apply` for f32: e·scale_p + a·scale_a (a = 1 without `COEF`),
/// a product and a sum rounded apart, as the portable loop does.
#[target_feature(enable = "avx512f")]
pub(super) fn row_apply<const COEF: bool>(row: &mut [f32], a: &[f32], scale_p: f32, scale_a: f32) {
    assert!(!COEF || a.len() >= row.len());
    let (sp, sa) = (_mm512_set1_ps(scale_p), _mm512_set1_ps(scale_a));
    let full = row.len() / LANES * LANES;
    let mut i = 0;
    while i < full {
        // SAFETY: i + 16 ≤ full ≤ row.len() ≤ a.len() where `a` is read.
        unsafe {
            let e = _mm512_loadu_ps(row.as_ptr().add(i));
            let shift = match COEF {
                true => _mm512_mul_ps(_mm512_loadu_ps(a.as_ptr().add(i)), sa),
                false => sa,
            };
            _mm512_storeu_ps(row.as_mut_ptr().add(i), _mm512_add_ps(_mm512_mul_ps(e, sp), shift));
        }
        i += LANES;
    }
    for i in full..row.len() {
        let shift = if COEF { a[i] * scale_a } else { scale_a };
        row[i] = row[i] * scale_p + shift;
    }
}
