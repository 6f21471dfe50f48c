//! Distance in units in the last place: how many values of a dtype lie
//! between two numbers.

use crate::tensor::DType;

/// ULP distance between `a` and `b` in `dtype` (both are rounded to it first).
/// Equal values (including NaN and NaN) are 0; NaN against a number is `u64::MAX`.
///
/// Integer dtypes give the plain difference. −0 and +0 are one value; the
/// count runs through zero between signs.
///
/// ```
/// use ce_parity::compare::ulp_distance;
/// use ce_parity::tensor::DType;
///
/// // 1 and the next float32 above it.
/// let next = f32::from_bits(1f32.to_bits() + 1) as f64;
/// assert_eq!(ulp_distance(1.0, next, DType::Float32), 1);
/// // float16 has 10 fraction bits: 1 + 2⁻¹⁰ is 1's neighbour, 1 + 2⁻⁹ two away.
/// assert_eq!(ulp_distance(1.0, 1.0 + 1.0 / 512.0, DType::Float16), 2);
/// // Both sides round to the dtype first: these are the same float32.
/// assert_eq!(ulp_distance(0.1, 0.1 + 1e-12, DType::Float32), 0);
/// assert_eq!(ulp_distance(0.0, -0.0, DType::Float64), 0);
/// assert_eq!(ulp_distance(f64::NAN, 1.0, DType::Float64), u64::MAX);
/// ```
pub fn ulp_distance(a: f64, b: f64, dtype: DType) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() { 0 } else { u64::MAX };
    }
    let (ia, ib) = match dtype {
        DType::Float64 => (ordered(a.to_bits(), 64), ordered(b.to_bits(), 64)),
        DType::Float32 => (
            ordered((a as f32).to_bits() as u64, 32),
            ordered((b as f32).to_bits() as u64, 32),
        ),
        DType::Float16 => (
            ordered(half::f16::from_f64(a).to_bits() as u64, 16),
            ordered(half::f16::from_f64(b).to_bits() as u64, 16),
        ),
        DType::BFloat16 => (
            ordered(half::bf16::from_f64(a).to_bits() as u64, 16),
            ordered(half::bf16::from_f64(b).to_bits() as u64, 16),
        ),
        DType::Int64 | DType::UInt8 => return (a - b).abs().min(u64::MAX as f64) as u64,
    };
    u64::try_from(ia.abs_diff(ib)).unwrap_or(u64::MAX)
}

/// Maps IEEE bits of width `bits` onto a line where adjacent floats differ by 1
/// and −0 equals +0.
fn ordered(raw: u64, bits: u32) -> i128 {
    let sign = 1u64 << (bits - 1);
    let magnitude = (raw & (sign - 1)) as i128;
    if raw & sign != 0 {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_values_are_one_apart() {
        let x = 1.0f32;
        let next = f32::from_bits(x.to_bits() + 1);
        assert_eq!(ulp_distance(x as f64, next as f64, DType::Float32), 1);
        assert_eq!(ulp_distance(1.0, 1.0 + f64::EPSILON, DType::Float64), 1);
        assert_eq!(ulp_distance(0.0, -0.0, DType::Float64), 0);
        // 1 and 1 + 2^-10 are neighbours in float16.
        assert_eq!(ulp_distance(1.0, 1.0 + 1.0 / 1024.0, DType::Float16), 1);
        assert_eq!(ulp_distance(f64::NAN, f64::NAN, DType::Float32), 0);
        assert_eq!(ulp_distance(f64::NAN, 1.0, DType::Float32), u64::MAX);
        // The smallest positive and negative subnormals are two apart (through zero).
        assert_eq!(ulp_distance(f64::from_bits(1), -f64::from_bits(1), DType::Float64), 2);
    }
}
