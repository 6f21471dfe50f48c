//! Comparison: tolerances (the pass rule), ULP distances (reported), and the
//! comparison of two tensors.

mod tolerance;
mod ulp;

pub use tolerance::Tolerance;
pub use ulp::ulp_distance;

use crate::tensor::Tensor;

/// How two tensors differ.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Difference {
    pub max_abs: f64,
    pub max_rel: f64,
    pub max_ulp: u64,
    /// Elements outside tolerance.
    pub mismatched: usize,
    /// Set when the shapes disagree (then nothing else is compared).
    pub shape_mismatch: Option<(Vec<usize>, Vec<usize>)>,
}

impl Difference {
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
