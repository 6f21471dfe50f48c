//! Comparison: tolerances (the pass rule), ULP distances (reported), and the
//! comparison of two tensors.
//!
//! [`compare`] is what `check` and the fuzzer use to hold one implementation's
//! tensor against another's: it returns a [`Difference`] that both decides
//! (with a [`Tolerance`]) and describes (largest absolute, relative and ULP
//! error) the disagreement.

mod tolerance;
mod ulp;

pub use tolerance::{Overrides, Tolerance};
pub use ulp::ulp_distance;

use crate::tensor::Tensor;

/// How two tensors differ: the worst error of each kind, and how many
/// elements are outside tolerance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Difference {
    /// Largest |actual − expected|; infinite where one side is NaN or an
    /// infinity the other does not match.
    pub max_abs: f64,
    /// Largest |actual − expected| / |expected| (infinite against an exact 0).
    pub max_rel: f64,
    /// Largest ULP distance in the expected tensor's dtype ([`ulp_distance`]).
    pub max_ulp: u64,
    /// Elements outside tolerance.
    pub mismatched: usize,
    /// Set when the shapes disagree (then nothing else is compared).
    pub shape_mismatch: Option<(Vec<usize>, Vec<usize>)>,
}

impl Difference {
    /// Whether the shapes agree and every element is within tolerance.
    pub fn passed(&self) -> bool {
        self.mismatched == 0 && self.shape_mismatch.is_none()
    }

    /// Folds another difference into this one (worst of each).
    pub fn merge(&mut self, other: &Difference) {
        self.max_abs = self.max_abs.max(other.max_abs);
        self.max_rel = self.max_rel.max(other.max_rel);
        self.max_ulp = self.max_ulp.max(other.max_ulp);
        self.mismatched += other.mismatched;
        if self.shape_mismatch.is_none() {
            self.shape_mismatch.clone_from(&other.shape_mismatch);
        }
    }
}

/// Compares `actual` with `expected` element by element, in `expected`'s dtype
/// for ULPs. Matching non-finite values count as zero error.
///
/// The Rust loss against the loss libtorch recorded for the article's call:
///
/// ```
/// use ce_parity::compare::{compare, Tolerance};
/// use ce_parity::loss::{cross_entropy, Options, Target, View};
/// use ce_parity::tensor::{DType, Tensor};
///
/// let logits = [2.0f32, 1.0, 0.1, 0.5, 1.5, 0.8];
/// let options = Options { label_smoothing: 0.1, ..Options::default() };
/// let ours = cross_entropy(View::new(&logits, &[2, 3]), Target::Classes(View::new(&[0, 1], &[2])), &options)?;
/// let ours = Tensor::scalar(DType::Float32, ours.item().unwrap().into());
/// let libtorch = Tensor::scalar(DType::Float32, 0.59666866);
///
/// let difference = compare(&ours, &libtorch, Tolerance::default_for(DType::Float32));
/// assert!(difference.passed());
/// assert!(difference.max_abs < 1e-6 && difference.max_ulp <= 8);
///
/// // The article printed 0.4122: far outside any float32 tolerance.
/// let printed = Tensor::scalar(DType::Float32, 0.4122);
/// let difference = compare(&printed, &libtorch, Tolerance::default_for(DType::Float32));
/// assert!(!difference.passed());
/// assert_eq!(difference.mismatched, 1);
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
pub fn compare(actual: &Tensor, expected: &Tensor, tolerance: Tolerance) -> Difference {
    let mut diff = Difference::default();
    if actual.shape != expected.shape {
        diff.shape_mismatch = Some((actual.shape.clone(), expected.shape.clone()));
        return diff;
    }
    let (a, e) = (actual.to_f64(), expected.to_f64());
    for (&a, &e) in a.iter().zip(&e) {
        let same_special = (a.is_nan() && e.is_nan()) || (a.is_infinite() && a == e);
        if !same_special {
            let abs = (a - e).abs();
            let abs = if abs.is_nan() { f64::INFINITY } else { abs };
            diff.max_abs = diff.max_abs.max(abs);
            let rel = if e == 0.0 {
                if abs == 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                abs / e.abs()
            };
            diff.max_rel = diff.max_rel.max(rel);
        }
        diff.max_ulp = diff.max_ulp.max(ulp_distance(a, e, expected.dtype));
        if !tolerance.close(a, e) {
            diff.mismatched += 1;
        }
    }
    diff
}
