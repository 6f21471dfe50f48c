//! float16 and bfloat16 to and from f32 with integer and float operations
//! only, so that LLVM vectorises loops of them. The `half` crate gives the
//! same values (the tests compare bit patterns), but it checks for F16C on
//! every call, which keeps a loop scalar.
//!
//! Rounding is to nearest, ties to even, as libtorch's conversions; a NaN
//! stays NaN with its quiet bit set.

use half::{bf16, f16};

/// A half type's bits and rounding.
pub(crate) trait HalfBits: Copy + Send + Sync {
    /// The value as f32 (exact).
    fn widen(self) -> f32;
    /// `v` rounded to this type (exact when `v` is one of its values).
    fn narrow(v: f32) -> Self;
    /// `v` rounded to this type, kept as f32: `narrow(v).widen()`.
    fn round(v: f32) -> f32;
}

/// 2^112: moves an f16 exponent, placed in f32's exponent field, to f32's bias.
const F16_BIAS_SHIFT: f32 = 5.192_297e33;
/// The smallest normal f16, 2^−14, as f32 bits.
const F16_MIN_NORMAL: u32 = 0x3880_0000;
/// 65520 as f32 bits: from here on an f32 rounds to f16's infinity.
const F16_OVERFLOW: u32 = 0x477f_f000;
const F32_INFINITY: u32 = 0x7f80_0000;
const F32_QUIET: u32 = 0x0040_0000;

impl HalfBits for f16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        let h = u32::from(self.to_bits());
        let sign = (h & 0x8000) << 16;
        let magnitude = (h & 0x7fff) << 13;
        // Subnormal f16 become normal f32 here, exactly.
        let finite = (f32::from_bits(magnitude) * F16_BIAS_SHIFT).to_bits();
        // Infinity, or NaN made quiet (as F16C's conversion does).
        let quiet = if h & 0x03ff != 0 { F32_QUIET } else { 0 };
        let bits = if h & 0x7c00 == 0x7c00 {
            magnitude | F32_INFINITY | quiet
        } else {
            finite
        };
        f32::from_bits(bits | sign)
    }

    #[inline(always)]
    fn narrow(v: f32) -> Self {
        // One rounding straight to f16 bits (what `round` then a repacking
        // give, in about half the operations).
        let bits = v.to_bits();
        let sign = (bits >> 16) & 0x8000;
        let a = bits & 0x7fff_ffff;
        // Normal f16: rebias, drop 13 mantissa bits to nearest, ties to
        // even; a carry moves into the exponent, as it should.
        let normal = a.wrapping_sub(0x3800_0000).wrapping_add(0xfff + ((a >> 13) & 1)) >> 13;
        // 0.5 + m·2^−24 holds m, rounded, in its low mantissa bits.
        let subnormal = (f32::from_bits(a) + 0.5).to_bits().wrapping_sub(0x3f00_0000);
        // A NaN keeps its top payload bits and is made quiet.
        let nan = 0x7e00 | ((a & 0x007f_ffff) >> 13);
        let h = if a > F32_INFINITY {
            nan
        } else if a >= F16_OVERFLOW {
            0x7c00
        } else if a >= F16_MIN_NORMAL {
            normal
        } else {
            subnormal
        };
        f16::from_bits((h | sign) as u16)
    }

    #[inline(always)]
    fn round(v: f32) -> f32 {
        let bits = v.to_bits();
        let sign = bits & 0x8000_0000;
        let a = bits & 0x7fff_ffff;
        // Normal f16: keep 10 mantissa bits, ties to even.
        let normal = a.wrapping_add(0xfff + ((a >> 13) & 1)) & !0x1fff;
        // Subnormal f16: their spacing 2^−24 is the f32 spacing at 0.5.
        let subnormal = ((f32::from_bits(a) + 0.5) - 0.5).to_bits();
        let rounded = if a > F32_INFINITY {
            (a | F32_QUIET) & !0x1fff
        } else if a >= F16_OVERFLOW {
            F32_INFINITY
        } else if a >= F16_MIN_NORMAL {
            normal
        } else {
            subnormal
        };
        f32::from_bits(rounded | sign)
    }
}

impl HalfBits for bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        let bits = u32::from(self.to_bits()) << 16;
        // A NaN made quiet, as the `half` crate does.
        let quiet = if bits & 0x7fff_ffff > F32_INFINITY {
            F32_QUIET
        } else {
            0
        };
        f32::from_bits(bits | quiet)
    }

    #[inline(always)]
    fn narrow(v: f32) -> Self {
        bf16::from_bits((Self::round(v).to_bits() >> 16) as u16)
    }

    #[inline(always)]
    fn round(v: f32) -> f32 {
        let bits = v.to_bits();
        let rounded = if bits & 0x7fff_ffff > F32_INFINITY {
            bits | F32_QUIET
        } else {
            // Carries into the exponent (up to infinity) are the right result.
            bits.wrapping_add(0x7fff + ((bits >> 16) & 1))
        };
        f32::from_bits(rounded & 0xffff_0000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 61st f32 bit pattern (all exponents, both signs), plus the edges.
    fn samples() -> impl Iterator<Item = f32> {
        let edges = [
            0.0f32,
            -0.0,
            65504.0,
            65519.99,
            65520.0,
            -65520.0,
            6.103_515_6e-5,
            5.960_464_5e-8,
            2.980_232_2e-8,
            2.980_233e-8,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN_POSITIVE,
        ];
        (0..=u32::MAX / 61)
            .map(|i| f32::from_bits(i.wrapping_mul(61)))
            .chain(edges)
    }

    #[test]
    fn f16_conversions_match_the_half_crate() {
        for v in samples() {
            let expected = f16::from_f32(v);
            assert_eq!(
                f16::narrow(v).to_bits(),
                expected.to_bits(),
                "narrow {v:e} ({:#x})",
                v.to_bits()
            );
            assert_eq!(f16::round(v).to_bits(), expected.to_f32().to_bits(), "round {v:e}");
        }
        for h in 0..=u16::MAX {
            let h = f16::from_bits(h);
            assert_eq!(h.widen().to_bits(), h.to_f32().to_bits(), "widen {h:?}");
        }
    }

    #[test]
    fn bf16_conversions_match_the_half_crate() {
        for v in samples() {
            let expected = bf16::from_f32(v);
            assert_eq!(bf16::narrow(v).to_bits(), expected.to_bits(), "narrow {v:e}");
            assert_eq!(bf16::round(v).to_bits(), expected.to_f32().to_bits(), "round {v:e}");
        }
        for h in 0..=u16::MAX {
            let h = bf16::from_bits(h);
            assert_eq!(h.widen().to_bits(), h.to_f32().to_bits(), "widen {h:?}");
        }
    }
}
