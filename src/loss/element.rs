//! The floating element types the loss accepts.

use crate::tensor::DType;
use half::{bf16, f16};

use super::half_bits::HalfBits;

/// A floating element type: f32, f64, or the half types f16 and bf16 (from
/// the `half` crate).
///
/// The loss is generic over it: input, weight, probability targets, upstream
/// gradient and results all share one element type, as libtorch requires.
/// f32 and f64 run on the fused kernel; f16 and bf16 are computed in f32 and
/// rounded at the steps where libtorch rounds them ([`Element::REDUCED`]).
/// Implemented for those four types only.
///
/// `from_f64` rounds a double to a half type as libtorch casts one: to f32
/// first, then to the half type. (`half`'s own f64 conversions differ:
/// bf16 drops the low 32 bits before rounding, so 46.12502 became 46.0
/// where libtorch gives 46.25.)
///
/// ```
/// use ce_parity::loss::{cross_entropy, Element, Options, Target, View};
/// use half::f16;
///
/// let logits: Vec<f16> = [2.0, 1.0, 0.1, 0.5, 1.5, 0.8].map(f16::from_f64).to_vec();
/// let loss = cross_entropy(
///     View::new(&logits, &[2, 3]),
///     Target::Classes(View::new(&[0, 1], &[2])),
///     &Options { label_smoothing: 0.1, ..Options::default() },
/// )?;
/// // float16 keeps about 3 significant digits of the float32 result 0.596669.
/// assert!((loss.item().unwrap().to_f64() - 0.596669).abs() < 1e-3);
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
pub trait Element: Copy + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    /// The type's [`DType`], as fixtures and libtorch name it.
    const DTYPE: DType;
    /// The value as f64 (exact for all four types).
    fn to_f64(self) -> f64;
    /// `v` rounded to this type as libtorch casts a double (through f32 for
    /// the half types).
    fn from_f64(v: f64) -> Self;
    /// Whether libtorch computes this type in float and rounds back at each
    /// step (f16, bf16); such types take the path in `loss/reduced.rs`.
    const REDUCED: bool = false;
    /// Rounds an f32 to the nearest value of this type.
    fn round_f32(v: f32) -> f32 {
        Self::from_f64(v as f64).to_f64() as f32
    }
    /// The value as f32 (exact for f32 and the half types).
    #[doc(hidden)]
    fn widen_f32(self) -> f32 {
        self.to_f64() as f32
    }
    /// `v` rounded to this type.
    #[doc(hidden)]
    fn narrow_f32(v: f32) -> Self {
        Self::from_f64(f64::from(v))
    }
    /// The slice as f32, when this type is f32 (the fused kernel's types).
    #[doc(hidden)]
    fn as_f32(_data: &[Self]) -> Option<&[f32]> {
        None
    }
    #[doc(hidden)]
    fn as_f32_mut(_data: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
    /// The slice as f64, when this type is f64.
    #[doc(hidden)]
    fn as_f64(_data: &[Self]) -> Option<&[f64]> {
        None
    }
    #[doc(hidden)]
    fn as_f64_mut(_data: &mut [Self]) -> Option<&mut [f64]> {
        None
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::Float64;
    fn as_f64(data: &[Self]) -> Option<&[f64]> {
        Some(data)
    }
    fn as_f64_mut(data: &mut [Self]) -> Option<&mut [f64]> {
        Some(data)
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::Float32;
    fn as_f32(data: &[Self]) -> Option<&[f32]> {
        Some(data)
    }
    fn as_f32_mut(data: &mut [Self]) -> Option<&mut [f32]> {
        Some(data)
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::Float16;
    const REDUCED: bool = true;
    // Branch-free conversions (`half_bits.rs`), the same values as `half`'s.
    #[inline(always)]
    fn round_f32(v: f32) -> f32 {
        <f16 as HalfBits>::round(v)
    }
    #[inline(always)]
    fn widen_f32(self) -> f32 {
        HalfBits::widen(self)
    }
    #[inline(always)]
    fn narrow_f32(v: f32) -> Self {
        HalfBits::narrow(v)
    }
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f32(v as f32)
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BFloat16;
    const REDUCED: bool = true;
    // Branch-free conversions (`half_bits.rs`), the same values as `half`'s.
    #[inline(always)]
    fn round_f32(v: f32) -> f32 {
        <bf16 as HalfBits>::round(v)
    }
    #[inline(always)]
    fn widen_f32(self) -> f32 {
        HalfBits::widen(self)
    }
    #[inline(always)]
    fn narrow_f32(v: f32) -> Self {
        HalfBits::narrow(v)
    }
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    fn from_f64(v: f64) -> Self {
        bf16::from_f32(v as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_round_to_half_types_as_libtorch_casts_them() {
        // Just above the tie 46.125 between bf16 neighbours 46.0 and 46.25:
        // libtorch 2.13's `.to(torch.bfloat16)` of this double gives 46.25.
        assert_eq!(bf16::from_f64(46.125019054816).to_f64(), 46.0, "half's own conversion");
        assert_eq!(<bf16 as Element>::from_f64(46.125019054816).to_f64(), 46.25);
        assert_eq!(<bf16 as Element>::from_f64(46.124980945184).to_f64(), 46.0);
        // f16 neighbours 1.0 and 1 + 2⁻¹⁰: 2⁻³⁰ above the tie is lost in the
        // cast to f32 first, and the tie goes to even — libtorch gives 1.0 too.
        let above_tie = 1.0 + 2f64.powi(-11) + 2f64.powi(-30);
        assert_eq!(<f16 as Element>::from_f64(above_tie).to_f64(), 1.0);
        let clearly_above = 1.0 + 2f64.powi(-11) + 2f64.powi(-20);
        assert_eq!(<f16 as Element>::from_f64(clearly_above).to_f64(), 1.0 + 2f64.powi(-10));
    }
}
