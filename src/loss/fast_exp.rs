//! A branch-free single-precision exp for the kernel's case, e^d with
//! d = x − max ≤ 0, that LLVM vectorises inside loops.
//!
//! e^d = 2^n · e^r with n = round(d·log2 e) and r = d − n·ln 2 (ln 2 split in
//! two parts, Cody–Waite), |r| ≤ ln 2 / 2; e^r = 1 + r·Q(r) with Q of
//! degree 5 (see [`POLY`]). Measured against f64's exp over [−87.3, 0]: at most 1 ULP
//! (see the test); the half-type kernel's [`exp_half`] takes Q of degree 4
//! ([`HALF_POLY`]), at most 2 ULPs. Fused multiply-adds (`mul_add`, exactly rounded on every
//! target) halve the work where the CPU has FMA and keep the same bits on
//! every instruction set; without FMA hardware they are slow but exact.

pub(crate) const LOG2_E: f32 = std::f32::consts::LOG2_E;
pub(crate) const LN2_HI: f32 = 0.693_145_75; // ln 2 rounded to 17 bits: n·LN2_HI is exact
pub(crate) const LN2_LO: f32 = 1.428_606_8e-6;
/// Adding 1.5·2^23 rounds an f32 in (−2^22, 2^22) to the nearest integer.
pub(crate) const ROUNDER: f32 = 12_582_912.0;
/// Coefficients of (e^r − 1)/r, highest degree first, evaluated by Horner
/// and then e^r = 1 + r·(…): one fused multiply-add per coefficient and
/// one for the 1, with no r² (six operations where 1 + r + r²·P took
/// seven). The four highest come from a degree-4 least-squares fit of
/// (e^r − 1 − r)/r² on 4001 Chebyshev nodes of |r| ≤ ln 2 / 2, weighted by
/// r²; Cephes' degree-5 fit took one more. At most 1 ULP over the test's
/// grid, as Cephes' was, and fewer results off the correctly rounded one
/// (~6.4 % against ~9.5 %).
pub(crate) const POLY: [f32; 6] = [1.394_645_8e-3, 8.369_159e-3, 4.166_626e-2, 1.666_651_7e-1, 0.5, 1.0];
/// [`POLY`] with one coefficient fewer, for the float16/bfloat16 kernel
/// (`exp_half`): its results are rounded to 11 or 8 bits, where an exp off
/// by 2 ULPs of f32 instead of 1 almost never moves a rounding, and one
/// fused multiply-add fewer per exp (two per logit with the gradient)
/// measured 2–5 % of that kernel's time (float16 forward+backward). A degree-3 least-squares fit of
/// (e^r − 1 − r)/r² as [`POLY`]'s, with its constant term free; at most
/// 2 ULPs over the test's grid.
pub(crate) const HALF_POLY: [f32; 5] = [8.369_159e-3, 4.190_083_2e-2, 1.666_651_7e-1, 0.499_991_2, 1.0];
/// d from here on: the exp's n = round(d·log2 e) is at least −126
/// (−87·log2 e ≈ −125.5, and n < −126 only below d ≈ −87.7), so 2^n is a
/// normal f32 and the vector exps may skip their clamp and underflow steps.
pub(crate) const NORMAL_EXP_FLOOR: f32 = -87.0;
/// Inputs are clamped here: low enough that 2^n is below the smallest
/// normal f32 (the result is then exactly 0), high enough that the rounding
/// trick below stays exact.
pub(crate) const MIN_INPUT: f32 = -104.0;

/// e^d for d ≤ 0: exactly 0 where e^d < 2^−126.5 (d below about −87.7).
/// A NaN `d` gives a finite value: the kernel finds NaN rows through
/// Σ(x − max), which NaN does reach.
#[inline(always)]
pub(crate) fn exp_nonpositive_f32(d: f32) -> f32 {
    exp_nonpositive_with(d, &POLY)
}

/// [`exp_nonpositive_f32`] with [`HALF_POLY`]: the half-type kernel's exp,
/// at most 2 ULPs.
#[inline(always)]
pub(crate) fn exp_half(d: f32) -> f32 {
    exp_nonpositive_with(d, &HALF_POLY)
}

/// e^d for d ≤ 0 with `poly` ([`POLY`] or [`HALF_POLY`]) for (e^r − 1)/r.
#[inline(always)]
fn exp_nonpositive_with(d: f32, poly: &[f32]) -> f32 {
    let clamped = d.max(MIN_INPUT);
    let shifted = clamped.mul_add(LOG2_E, ROUNDER);
    let n = shifted - ROUNDER;
    // The low bits of `shifted` hold n as a two's-complement integer.
    let n_bits = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) as i32;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, clamped));
    let mut p = poly[0];
    for &c in &poly[1..] {
        p = p.mul_add(r, c);
    }
    let e_r = p.mul_add(r, 1.0);
    // 2^n for n ∈ [−126, 0]; exactly 0 below, where e^d < 2^−126.5.
    let scale = f32::from_bits(((n_bits + 127).max(0) as u32) << 23);
    e_r * scale
}

/// 1/k! for k = 13 down to 2: Taylor's coefficients of e^r, highest first.
const INVERSE_FACTORIALS: [f64; 12] = [
    1.0 / 6_227_020_800.0,
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
];

/// e^d for d ≤ 0 in f64, branch-free so that LLVM vectorises loops of it.
/// The same reduction as the f32 version, with ln 2 in two parts (its top
/// 32 bits, so n·LN2_HI is exact, and the rest) and Taylor's series to
/// r^13/13! (truncation below 1e-17 for |r| ≤ ln 2 / 2). Exactly 0 where
/// e^d is below the smallest normal f64 (d < about −708.4).
#[inline(always)]
pub(crate) fn exp_nonpositive_f64(d: f64) -> f64 {
    use super::fast_ln::{LN2_HI, LN2_LO};
    // Adding 1.5·2^52 rounds an f64 in (−2^51, 2^51) to the nearest integer.
    const ROUNDER: f64 = 6_755_399_441_055_744.0;
    // From −709 down, n = −1023 (−709·log2 e ≈ −1022.9): the scale below
    // is 0, and so is the result, as e^d is below 2^−1022.5 there.
    let clamped = d.max(-709.0);
    let shifted = clamped.mul_add(std::f64::consts::LOG2_E, ROUNDER);
    let n = shifted - ROUNDER;
    let n_bits = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) as i64;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, clamped));
    let mut p = INVERSE_FACTORIALS[0];
    for &c in &INVERSE_FACTORIALS[1..] {
        p = p.mul_add(r, c);
    }
    let e_r = p.mul_add(r * r, r) + 1.0;
    // n ≥ −1023: a biased exponent of 0 or more, 0 giving the scale 0 (no
    // 64-bit max, which AVX2 lacks: it took a compare and a blend).
    let scale = f64::from_bits(((n_bits + 1023) as u64) << 52);
    e_r * scale
}

/// out = e^x for x ≤ 0, element by element (see [`exp_nonpositive_f64`]).
#[inline(always)]
pub(crate) fn exp_nonpositive_into(x: &[f64], out: &mut [f64]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = exp_nonpositive_f64(v);
    }
}

#[cfg(test)]
mod tests {
    use super::{exp_half, exp_nonpositive_f32, exp_nonpositive_f64};
    use crate::compare::ulp_distance;
    use crate::tensor::DType;

    /// The worst ULP distance of `exp` from f64's exp over [−87.3, 0], and
    /// densely near 0, where the polynomial carries the whole error (n = 0).
    fn worst_ulps(exp: impl Fn(f32) -> f32) -> u64 {
        let mut worst = 0;
        let mut d = -87.3f32;
        while d <= 0.0 {
            let exact = (d as f64).exp();
            worst = worst.max(ulp_distance(exp(d) as f64, exact, DType::Float32));
            d += 0.000_21;
        }
        for i in 0..2_000_000 {
            let d = -0.35 * i as f32 / 2e6;
            worst = worst.max(ulp_distance(exp(d) as f64, (d as f64).exp(), DType::Float32));
        }
        worst
    }

    #[test]
    fn nonpositive_variant_within_one_ulp() {
        let worst = worst_ulps(exp_nonpositive_f32);
        assert!(worst <= 1, "worst {worst} ULPs");
        assert_eq!(exp_nonpositive_f32(0.0), 1.0);
        assert_eq!(exp_nonpositive_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive_f32(-90.0), 0.0);
    }

    #[test]
    fn half_variant_within_two_ulps() {
        let worst = worst_ulps(exp_half);
        assert!(worst <= 2, "worst {worst} ULPs");
        assert_eq!(exp_half(0.0), 1.0);
        assert_eq!(exp_half(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_half(-90.0), 0.0);
    }

    #[test]
    fn f64_variant_within_two_ulps() {
        let mut worst = 0;
        let mut d = -708.0f64;
        while d <= 0.0 {
            for x in [d, d * 0.999_999_9, d / 3.0] {
                worst = worst.max(ulp_distance(exp_nonpositive_f64(x), x.exp(), DType::Float64));
            }
            d += 0.001_37;
        }
        assert!(worst <= 2, "worst {worst} ULPs");
        assert_eq!(exp_nonpositive_f64(0.0), 1.0);
        assert_eq!(exp_nonpositive_f64(-1e300), 0.0);
        // Around the clamp: 0 from n = −1023 on, the smallest normals above.
        assert_eq!(exp_nonpositive_f64(-708.9), 0.0);
        assert_eq!(exp_nonpositive_f64(-709.5), 0.0);
        assert!(exp_nonpositive_f64(-708.3) >= f64::MIN_POSITIVE);
        assert_eq!(exp_nonpositive_f64(f64::NEG_INFINITY), 0.0);
    }
}
