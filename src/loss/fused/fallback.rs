//! Positions the closed forms cannot take (NaN, ±inf, overflow, a zero
//! divisor) go through the reference kernel in f64, so edge cases keep
//! libtorch's exact semantics. These are the computations of
//! `forward.rs`/`gradient.rs` for one position.

use super::super::formulas::{seed_class_gradient, Formulas};
use super::super::kernel;
use super::super::problem::Problem;
use super::lanes::Lane;

/// A class-index position: its (nll, smoothing) terms and, given the
/// coefficients `(nll_coef, smooth_coef)`, its gradient (into `grad`).
pub(super) fn class_position(
    problem: &Problem,
    mut lp: Vec<f64>,
    y: Option<usize>,
    coefficients: Option<(f64, f64)>,
    grad: &mut [f64],
) -> (f64, f64) {
    kernel::log_softmax_in_place(&mut lp);
    let weight = problem.weight.as_deref();
    let smoothing = problem.smoothing.is_some();
    let terms = kernel::class_terms(&lp, y, weight, smoothing);
    if let Some(coefficients) = coefficients {
        grad.iter_mut().for_each(|g| *g = 0.0);
        if let Some(y) = y {
            seed_class_gradient(grad, y, coefficients, smoothing, weight);
        }
        kernel::log_softmax_backward_in_place(&lp, grad);
    }
    terms
}

/// A probability-target position with target row `q` (as given): its loss
/// term and, given the scale s (−g, over the divisor under mean), its gradient.
pub(super) fn probability_position(
    problem: &Problem,
    mut lp: Vec<f64>,
    mut q: Vec<f64>,
    scale: Option<f64>,
    grad: &mut [f64],
) -> (f64, f64) {
    kernel::log_softmax_in_place(&mut lp);
    Formulas::of(problem).smooth_targets(&mut q);
    let weight = problem.weight.as_deref();
    let term = kernel::probability_term(&lp, &q, weight);
    if let Some(s) = scale {
        for (c, slot) in grad.iter_mut().enumerate() {
            *slot = s * weight.map_or(1.0, |w| w[c]) * q[c];
        }
        kernel::log_softmax_backward_in_place(&lp, grad);
    }
    (term, 0.0)
}

/// Writes a reference gradient (f64) into the kernel's output row, if any.
pub(super) fn write_back<T: Lane>(out: Option<&mut [T]>, values: Vec<f64>) {
    if let Some(out) = out {
        for (o, v) in out.iter_mut().zip(values) {
            *o = T::from_f64(v);
        }
    }
}
