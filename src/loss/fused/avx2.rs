//! The f32 row sweep written out with AVX2+FMA intrinsics.
//!
//! LLVM's vectorisation of the portable loop (`lanes::row_sums`) keeps only
//! a few of the exp's constants in registers and reloads the rest on every
//! block, and it falls back to scalar code on small changes to the loop;
//! this is the hottest loop of the crate, so it is spelled out. It performs
//! exactly the portable loop's operations in the same order — lane l of the
//! 16 sums the elements i ≡ l (mod 16), the exp is `fast_exp`'s, step by
//! step — so it gives the same bits (tests compare it with the scalar level).

use std::arch::x86_64::*;

use super::super::fast_exp::{LN2_HI, LN2_LO, LOG2_E, MIN_INPUT, POLY, ROUNDER};
use super::lanes::{finish_block, prefetch, BLOCK, LANES};

/// e^d for eight d ≤ 0: `fast_exp::exp_nonpositive_f32` lane by lane.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) fn exp8(d: __m256) -> __m256 {
    // `max` with NaN in the first operand returns the second, as f32::max does.
    let clamped = _mm256_max_ps(d, _mm256_set1_ps(MIN_INPUT));
    let rounder = _mm256_set1_ps(ROUNDER);
    let shifted = _mm256_fmadd_ps(clamped, _mm256_set1_ps(LOG2_E), rounder);
    let n = _mm256_sub_ps(shifted, rounder);
    let n_bits = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_castps_si256(rounder));
    // fma(−n, c, x) and fnmadd(n, c, x) round the same exact value once.
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), clamped);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(POLY[0]);
    for &c in &POLY[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let e_r = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0));
    let biased = _mm256_max_epi32(_mm256_add_epi32(n_bits, _mm256_set1_epi32(127)), _mm256_setzero_si256());
    _mm256_mul_ps(e_r, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased)))
}

/// `lanes::row_sums` for f32: S and L over a row given its max.
///
/// # Safety
/// The CPU must support AVX2 and FMA. `a` must be as long as `x` when
/// `COEF`, and `out` when `WRITE`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn row_sums<const COEF: bool, const WRITE: bool>(
    x: &[f32],
    a: &[f32],
    out: &mut [f32],
    max: f32,
    next: &[f32],
) -> (f64, f64) {
    assert!((!COEF || a.len() >= x.len()) && (!WRITE || out.len() >= x.len()));
    let m = _mm256_set1_ps(max);
    let (mut sum_exp, mut sum_shifted) = (0.0, 0.0);
    let mut start = 0;
    while start < x.len() {
        let end = (start + BLOCK).min(x.len());
        let full = start + (end - start) / LANES * LANES;
        // Lanes 0–7 and 8–15 of the portable loop's 16.
        let (mut e_lo, mut e_hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut s_lo, mut s_hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = start;
        while i < full {
            if let Some(v) = next.get(i) {
                prefetch(v);
            }
            // SAFETY: i + 16 ≤ full ≤ x.len(), and a and out are at least as
            // long as x where they are read or written (asserted above).
            unsafe {
                let d_lo = _mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), m);
                let d_hi = _mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i + 8)), m);
                let x_lo = exp8(d_lo);
                let x_hi = exp8(d_hi);
                e_lo = _mm256_add_ps(e_lo, x_lo);
                e_hi = _mm256_add_ps(e_hi, x_hi);
                if COEF {
                    let a_lo = _mm256_loadu_ps(a.as_ptr().add(i));
                    let a_hi = _mm256_loadu_ps(a.as_ptr().add(i + 8));
                    s_lo = _mm256_fmadd_ps(d_lo, a_lo, s_lo);
                    s_hi = _mm256_fmadd_ps(d_hi, a_hi, s_hi);
                } else {
                    s_lo = _mm256_add_ps(s_lo, d_lo);
                    s_hi = _mm256_add_ps(s_hi, d_hi);
                }
                if WRITE {
                    _mm256_storeu_ps(out.as_mut_ptr().add(i), x_lo);
                    _mm256_storeu_ps(out.as_mut_ptr().add(i + 8), x_hi);
                }
            }
            i += LANES;
        }
        let mut e_acc = [0.0f32; LANES];
        let mut s_acc = [0.0f32; LANES];
        // SAFETY: each array holds 16 f32, two unaligned stores of 8.
        unsafe {
            _mm256_storeu_ps(e_acc.as_mut_ptr(), e_lo);
            _mm256_storeu_ps(e_acc.as_mut_ptr().add(8), e_hi);
            _mm256_storeu_ps(s_acc.as_mut_ptr(), s_lo);
            _mm256_storeu_ps(s_acc.as_mut_ptr().add(8), s_hi);
        }
        // The block's last few elements and the fold, as the portable loop does them.
        let (e, s) = finish_block::<f32, COEF, WRITE>(x, a, out, max, full..end, &mut e_acc, &mut s_acc);
        sum_exp += e;
        sum_shifted += s;
        start = end;
    }
    (sum_exp, sum_shifted)
}
