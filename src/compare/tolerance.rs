//! Tolerances, in one place.
//!
//! When to use which comparison:
//! - **Absolute + relative** (`|a − e| ≤ atol + rtol·|e|`, torch.testing.assert_close's
//!   rule) decides pass/fail everywhere: it is what a PyTorch user already trusts, and
//!   `atol` keeps values near zero (gradients of well-predicted classes) from
//!   failing on meaningless relative error.
//! - **ULP distance** is reported, never judged: it tells how many representable
//!   values of the dtype lie between the two results, which is the honest measure
//!   for half types and for checking that a fast kernel rounds like libtorch.
//! - **Claims** from documents carry their own `atol` (half a unit of the last
//!   printed digit), because they were printed rounded.

use crate::tensor::DType;

/// A relative and an absolute tolerance: `|a − e| ≤ atol + rtol·|e|` passes.
///
/// ```
/// use ce_parity::compare::Tolerance;
/// use ce_parity::tensor::DType;
///
/// let t = Tolerance::default_for(DType::Float32); // rtol 1.3e-6, atol 1e-5
/// assert!(t.close(0.596_675, 0.596_669)); // 6e-6 ≤ 1e-5 + 1.3e-6 · 0.6
/// assert!(!t.close(0.4122, 0.596_669));
/// assert!(t.close(f64::NAN, f64::NAN)); // NaN where libtorch has NaN is agreement
///
/// let strict = t.with_overrides(None, Some(0.0)); // as `--atol 0`
/// assert!(!strict.close(0.596_675, 0.596_669));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative part, a fraction of |expected|.
    pub rtol: f64,
    /// Absolute part, for values near zero.
    pub atol: f64,
}

impl Tolerance {
    /// torch.testing.assert_close's defaults for `dtype`.
    pub fn default_for(dtype: DType) -> Tolerance {
        let (rtol, atol) = match dtype {
            DType::Float16 => (1e-3, 1e-5),
            DType::BFloat16 => (1.6e-2, 1e-5),
            DType::Float32 => (1.3e-6, 1e-5),
            DType::Float64 => (1e-7, 1e-7),
            // Integers compare exactly.
            DType::Int64 | DType::UInt8 => (0.0, 0.0),
        };
        Tolerance { rtol, atol }
    }

    /// Applies `--rtol`/`--atol` overrides: each replaces its default when set.
    pub fn with_overrides(self, rtol: Option<f64>, atol: Option<f64>) -> Tolerance {
        Tolerance {
            rtol: rtol.unwrap_or(self.rtol),
            atol: atol.unwrap_or(self.atol),
        }
    }

    /// Whether `actual` is close to `expected`: NaN equals NaN, an infinity
    /// equals only itself, otherwise `|a − e| ≤ atol + rtol·|e|`.
    pub fn close(self, actual: f64, expected: f64) -> bool {
        if actual.is_nan() || expected.is_nan() {
            return actual.is_nan() && expected.is_nan();
        }
        if actual.is_infinite() || expected.is_infinite() {
            return actual == expected;
        }
        (actual - expected).abs() <= self.atol + self.rtol * expected.abs()
    }
}

/// A tolerance override that is not a non-negative finite number.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error("{flag} must be a non-negative number, got {value}")]
pub struct OverrideError {
    /// The flag, `--rtol` or `--atol`.
    pub flag: &'static str,
    /// The value given.
    pub value: f64,
}

/// Tolerances the user gives (`--rtol`, `--atol`) over the per-dtype
/// defaults; the default overrides nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Overrides {
    /// Replaces every dtype's relative tolerance when set.
    pub rtol: Option<f64>,
    /// Replaces every dtype's absolute tolerance when set.
    pub atol: Option<f64>,
}

impl Overrides {
    /// Overrides from `--rtol`/`--atol`.
    ///
    /// # Errors
    /// [`OverrideError`], naming the flag, when a value is negative, infinite or NaN.
    pub fn new(rtol: Option<f64>, atol: Option<f64>) -> Result<Overrides, OverrideError> {
        for (flag, value) in [("--rtol", rtol), ("--atol", atol)] {
            if let Some(v) = value.filter(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(OverrideError { flag, value: v });
            }
        }
        Ok(Overrides { rtol, atol })
    }

    /// The tolerance for values of `dtype`: its default, overridden.
    ///
    /// ```
    /// use ce_parity::compare::Overrides;
    /// use ce_parity::tensor::DType;
    /// let loose = Overrides { rtol: None, atol: Some(1e-3) }.for_dtype(DType::Float32);
    /// assert_eq!((loose.rtol, loose.atol), (1.3e-6, 1e-3));
    /// ```
    pub fn for_dtype(self, dtype: DType) -> Tolerance {
        Tolerance::default_for(dtype).with_overrides(self.rtol, self.atol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_infinities() {
        let t = Tolerance::default_for(DType::Float32);
        assert!(t.close(f64::NAN, f64::NAN));
        assert!(!t.close(f64::NAN, 1.0));
        assert!(t.close(f64::INFINITY, f64::INFINITY));
        assert!(!t.close(f64::INFINITY, f64::NEG_INFINITY));
        assert!(!t.close(1e30, f64::INFINITY));
    }

    #[test]
    fn assert_close_rule() {
        let t = Tolerance { rtol: 1e-3, atol: 1e-5 };
        assert!(t.close(1.00101, 1.0)); // 1.01e-3 ≤ 1e-5 + 1e-3
        assert!(!t.close(1.0012, 1.0));
        assert!(t.close(0.0, 1e-5));
    }
}
