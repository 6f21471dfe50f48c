//! e^lp for every float16 and every bfloat16 value lp, as the half-type
//! kernel's exp gives it (`fast_exp::exp_half`, NaN kept as NaN, as the
//! portable backward step does): the gradient's e^(lp_c) looked up instead
//! of computed.
//!
//! Why a table: libtorch rounds lp to the half type before its exp, so the
//! exp takes one of 2^16 inputs. A gather of 16 entries runs on the load
//! ports, beside the vector units' work; at the AVX-512 level float16 rows
//! gather half their exps and compute the other half (the same bits), so
//! that both kinds of units work (`Half16::COMPUTED_EXPS` in
//! `avx512.rs`). The rows the kernel sees touch a few kilobytes of each
//! table: their lp span a narrow range.

use std::sync::OnceLock;

use half::{bf16, f16};

use super::super::super::fast_exp::exp_half;
use super::Bits;

/// Entries of a table: one per 16-bit pattern, so any pattern indexes it.
pub(crate) const PATTERNS: usize = 1 << 16;

/// A half type's table of e^lp, indexed by lp's bits.
pub(crate) trait ExpTable: Bits {
    /// Entry p is e^lp for the value lp of bits p.
    fn exp_table() -> &'static [f32; PATTERNS];
}

impl ExpTable for f16 {
    fn exp_table() -> &'static [f32; PATTERNS] {
        static TABLE: OnceLock<Box<[f32; PATTERNS]>> = OnceLock::new();
        TABLE.get_or_init(build::<f16>)
    }
}

impl ExpTable for bf16 {
    fn exp_table() -> &'static [f32; PATTERNS] {
        static TABLE: OnceLock<Box<[f32; PATTERNS]>> = OnceLock::new();
        TABLE.get_or_init(build::<bf16>)
    }
}

/// Every pattern's e^lp, on the heap (256 KiB would crowd a thread's stack).
fn build<H: Bits>() -> Box<[f32; PATTERNS]> {
    let table: Box<[f32]> = (0..PATTERNS)
        .map(|bits| {
            let lp = H::of_bits(bits as u16).widen_f32();
            if lp.is_nan() {
                lp
            } else {
                exp_half(lp)
            }
        })
        .collect();
    table.try_into().expect("one entry per pattern")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::ulp_distance;
    use crate::tensor::DType;

    /// The tables agree with `exp_half` itself on every value, and with
    /// f64's exp to 2 f32 ULPs where the result is normal: an entry at the
    /// wrong index would miss both.
    fn matches_exp<H: ExpTable>() {
        let table = H::exp_table();
        for bits in 0..=u16::MAX {
            let lp = H::of_bits(bits).widen_f32();
            let entry = table[bits as usize];
            if lp.is_nan() {
                assert!(entry.is_nan(), "{bits:#06x}");
                continue;
            }
            assert_eq!(entry.to_bits(), exp_half(lp).to_bits(), "{bits:#06x}");
            let exact = (lp as f64).exp();
            if lp <= 0.0 && exact >= f32::MIN_POSITIVE as f64 {
                let ulps = ulp_distance(entry as f64, exact, DType::Float32);
                assert!(ulps <= 2, "{bits:#06x}: {entry} against {exact}");
            }
        }
    }

    #[test]
    fn float16_table_is_exp_half_of_every_value() {
        matches_exp::<f16>();
    }

    #[test]
    fn bfloat16_table_is_exp_half_of_every_value() {
        matches_exp::<bf16>();
    }
}
