//! A branch-free double-precision natural log that LLVM vectorises inside
//! loops, for the K-dim kernel, which needs one ln per position and has
//! hundreds of thousands of positions of a few classes each.
//!
//! x = 2^k · m with m in [√½, √2); ln x = k·ln 2 + ln m, and with
//! f = (m − 1)/(m + 1), |f| ≤ 0.1716, ln m = 2·atanh f = 2f·Σ f^(2i)/(2i+1).
//! Eleven terms leave a truncation below 1e-18 relative; the result is within
//! 3 ULPs of `f64::ln` (see the test). Inputs that are not positive normal
//! numbers (0, subnormals, negatives, infinities, NaN) go to `f64::ln`.

/// ln 2 in its top 32 significant bits (k·LN2_HI is exact for any exponent k), and the rest.
pub(crate) const LN2_HI: f64 = 0.693_147_180_369_123_8;
pub(crate) const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
const SQRT_2: f64 = std::f64::consts::SQRT_2;
const MANTISSA: u64 = (1 << 52) - 1;
const EXPONENT_ONE: u64 = 1023 << 52;
/// 1/(2i+1) for i = 0..=10.
const INVERSE_ODD: [f64; 11] = [
    1.0,
    1.0 / 3.0,
    1.0 / 5.0,
    1.0 / 7.0,
    1.0 / 9.0,
    1.0 / 11.0,
    1.0 / 13.0,
    1.0 / 15.0,
    1.0 / 17.0,
    1.0 / 19.0,
    1.0 / 21.0,
];

/// ln x for a positive normal finite x (other inputs give a wrong value,
/// which [`ln_into`] replaces).
#[inline(always)]
fn ln_normal(x: f64) -> f64 {
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((bits & MANTISSA) | EXPONENT_ONE);
    // Fold m into [√½, √2) so that |f| stays small.
    let high = m >= SQRT_2;
    let m = if high { m * 0.5 } else { m };
    let k = (exponent + i64::from(high)) as f64;
    let f = (m - 1.0) / (m + 1.0);
    let f2 = f * f;
    let mut series = INVERSE_ODD[10];
    for &c in INVERSE_ODD[..10].iter().rev() {
        series = series.mul_add(f2, c);
    }
    let ln_m = (2.0 * f) * series;
    k.mul_add(LN2_HI, k.mul_add(LN2_LO, ln_m))
}

/// out = ln(x), element by element. Positive normal values take the
/// vectorised path; the rest (rare: the kernel's sums are ≥ 1) `f64::ln`.
#[inline(always)]
pub(crate) fn ln_into(x: &[f64], out: &mut [f64]) {
    let mut unusual = false;
    for (o, &v) in out.iter_mut().zip(x) {
        unusual |= !(v.is_normal() && v > 0.0);
        *o = ln_normal(v);
    }
    if unusual {
        for (o, &v) in out.iter_mut().zip(x) {
            if !(v.is_normal() && v > 0.0) {
                *o = v.ln();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::ulp_distance;
    use crate::tensor::DType;

    #[test]
    fn within_two_ulps_of_std() {
        let mut worst = 0;
        let mut x = 1e-300f64;
        while x < 1e300 {
            for y in [
                x,
                x * 1.000_000_1,
                x * SQRT_2 * 0.999_999_9,
                x * SQRT_2 * 1.000_000_1,
                x * 1.999_999_9,
            ] {
                let mut v = [0.0];
                ln_into(&[y], &mut v);
                worst = worst.max(ulp_distance(v[0], y.ln(), DType::Float64));
            }
            x *= 1.013;
        }
        assert!(worst <= 3, "worst {worst} ULPs");
        let mut exact = [0.0; 7];
        ln_into(&[1.0, 2.0, 0.0, -1.0, f64::INFINITY, f64::NAN, 1e-310], &mut exact);
        assert_eq!(exact[0], 0.0);
        assert_eq!(exact[1], std::f64::consts::LN_2);
        assert_eq!(exact[2], f64::NEG_INFINITY);
        assert!(exact[3].is_nan() && exact[5].is_nan());
        assert_eq!(exact[4], f64::INFINITY);
        assert_eq!(exact[6], 1e-310f64.ln());
    }
}
