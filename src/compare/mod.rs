//! Comparison: tolerances (the pass rule), ULP distances (reported), and the
//! comparison of two tensors.
//!
//! [`compare`] is what `check` and the fuzzer use to hold one implementation's
//! tensor against another's: it returns a [`Difference`] that both decides
//! (with a [`Tolerance`]) and describes (largest absolute, relative and ULP
//! error) the disagreement. [`compare_arbitrated`] adds the float64 rule
//! (docs/verdicts.md): an element also agrees when both sides are within
//! libtorch's rounding allowance of the exact (float64) answer.

mod tolerance;
mod ulp;

pub use tolerance::{OverrideError, Overrides, Tolerance};
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
    /// Elements compared.
    pub numel: usize,
    /// Elements outside assert_close's tolerance of each other that agree
    /// only because both are within libtorch's rounding of the float64 answer.
    pub by_float64: usize,
    /// The element with the greatest absolute difference (as assert_close reports it).
    pub greatest_abs: Option<Worst>,
    /// The element with the greatest relative difference.
    pub greatest_rel: Option<Worst>,
    /// Set when the shapes disagree (then nothing else is compared).
    pub shape_mismatch: Option<(Vec<usize>, Vec<usize>)>,
}

/// One element of a comparison: where it is and both values there.
#[derive(Clone, Debug, PartialEq)]
pub struct Worst {
    /// The difference there (absolute or relative, as the field says).
    pub value: f64,
    /// Its index in the tensor, one entry per dimension (empty for a 0-d tensor).
    pub index: Vec<usize>,
    /// The value under test there.
    pub actual: f64,
    /// The value it is compared with there.
    pub expected: f64,
}

/// The exact answer and how far from it libtorch's own rounding may land,
/// element by element, for [`compare_arbitrated`].
#[derive(Clone, Copy, Debug)]
pub struct Float64Answer<'a> {
    /// The case computed in float64.
    pub exact: &'a [f64],
    /// libtorch's rounding allowance for each element (see `runner::allowance`).
    pub allowance: &'a [f64],
}

impl Float64Answer<'_> {
    /// How far from element `i` of the exact answer an acceptable rounding
    /// may land: `atol + rtol·(|e| + b) + b`, with e the exact value and b
    /// libtorch's rounding allowance there.
    ///
    /// ```
    /// use ce_parity::compare::{Float64Answer, Tolerance};
    ///
    /// let answer = Float64Answer { exact: &[-2.0], allowance: &[1e-6] };
    /// let tolerance = Tolerance { rtol: 1e-3, atol: 1e-5 };
    /// let allowed = answer.allowed(0, tolerance);
    /// assert!((allowed - (1e-5 + 1e-3 * (2.0 + 1e-6) + 1e-6)).abs() < 1e-18);
    /// ```
    pub fn allowed(&self, i: usize, tolerance: Tolerance) -> f64 {
        let (e, b) = (self.exact[i], self.allowance[i]);
        tolerance.atol + tolerance.rtol * (e.abs() + b) + b
    }

    /// Whether `x` is an acceptable rounding of element `i` of the exact
    /// answer: within [`allowed`](Self::allowed) of it. Non-finite values
    /// must match exactly.
    pub fn accepts(&self, i: usize, x: f64, tolerance: Tolerance) -> bool {
        let e = self.exact[i];
        if x.is_nan() || e.is_nan() || x.is_infinite() || e.is_infinite() {
            return tolerance.close(x, e);
        }
        (x - e).abs() <= self.allowed(i, tolerance)
    }
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
        self.numel += other.numel;
        self.by_float64 += other.by_float64;
        let greater = |a: &Option<Worst>, b: &Option<Worst>| match (a, b) {
            (Some(x), Some(y)) if y.value > x.value => b.clone(),
            (None, _) => b.clone(),
            _ => a.clone(),
        };
        self.greatest_abs = greater(&self.greatest_abs, &other.greatest_abs);
        self.greatest_rel = greater(&self.greatest_rel, &other.greatest_rel);
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
    compare_arbitrated(actual, expected, tolerance, None)
}

/// [`compare`], where an element outside tolerance of `expected` still
/// agrees when both sides are acceptable roundings of the float64 answer
/// ([`Float64Answer::accepts`]); such elements are counted in `by_float64`.
/// The answer must have one value per element of `expected`.
pub fn compare_arbitrated(
    actual: &Tensor,
    expected: &Tensor,
    tolerance: Tolerance,
    float64: Option<Float64Answer<'_>>,
) -> Difference {
    let mut diff = Difference::default();
    if actual.shape != expected.shape {
        diff.shape_mismatch = Some((actual.shape.clone(), expected.shape.clone()));
        return diff;
    }
    let float64 = float64.filter(|f| f.exact.len() == expected.numel() && f.allowance.len() == expected.numel());
    let (a, e) = (actual.to_f64(), expected.to_f64());
    diff.numel = a.len();
    for (i, (&a, &e)) in a.iter().zip(&e).enumerate() {
        let same_special = (a.is_nan() && e.is_nan()) || (a.is_infinite() && a == e);
        if !same_special {
            let abs = (a - e).abs();
            let abs = if abs.is_nan() { f64::INFINITY } else { abs };
            let rel = if e == 0.0 {
                if abs == 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                abs / e.abs()
            };
            let worst = |value| Worst {
                value,
                index: unravel(i, &expected.shape),
                actual: a,
                expected: e,
            };
            if diff.greatest_abs.is_none() || abs > diff.max_abs {
                diff.greatest_abs = Some(worst(abs));
            }
            if diff.greatest_rel.is_none() || rel > diff.max_rel {
                diff.greatest_rel = Some(worst(rel));
            }
            diff.max_abs = diff.max_abs.max(abs);
            diff.max_rel = diff.max_rel.max(rel);
        }
        diff.max_ulp = diff.max_ulp.max(ulp_distance(a, e, expected.dtype));
        if !tolerance.close(a, e) {
            match float64 {
                Some(f) if f.accepts(i, a, tolerance) && f.accepts(i, e, tolerance) => diff.by_float64 += 1,
                _ => diff.mismatched += 1,
            }
        }
    }
    diff
}

/// The multi-dimensional index of flat (row-major) position `flat` in `shape`.
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &dim) in index.iter_mut().zip(shape).rev() {
        if dim > 0 {
            *slot = flat % dim;
            flat /= dim;
        }
    }
    index
}
