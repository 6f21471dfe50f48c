//! The loss's mathematics, written once. Every kernel (the f64 reference,
//! the fused lanes, the half-precision path), `explain` and the audit of a
//! document's claims take these values from here, so a formula cannot drift
//! between them.
//!
//! With ε the smoothing, C the class count and w the class weights (or 1):
//! - the smoothed target of class c is q_c = (1−ε)·t_c + ε/C, where t is the
//!   one-hot of a class target or a probability target;
//! - a class-target position's loss combines its NLL term and its smoothing
//!   term as (1−ε)·nll + (ε/C)·smooth, each reduced separately first;
//! - the mean divides by Σ w_y over the kept class targets, or by the number
//!   of positions for probability targets ([`Formulas::divisor`]);
//! - the upstream gradient g of a position becomes the coefficients
//!   ([`Formulas::coefficients`]) that seed the gradient w.r.t. the
//!   log-probabilities.
//!
//! The operations are in the order libtorch's autograd graph applies them,
//! so every path that uses them rounds alike.

use super::options::Reduction;
use super::problem::{Problem, Targets};

/// (1−ε, ε/C): what the target class keeps, and what every class receives.
pub(crate) fn keep_and_spread(epsilon: f64, classes: usize) -> (f64, f64) {
    (1.0 - epsilon, epsilon / classes as f64)
}

/// q = t·(1−ε) + ε/C: the smoothed target of a class whose unsmoothed target
/// (one-hot entry or probability) is `t`.
pub(crate) fn smoothed_target(t: f64, epsilon: f64, classes: usize) -> f64 {
    let (keep, spread) = keep_and_spread(epsilon, classes);
    t * keep + spread
}

/// The constants of one validated call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Formulas {
    /// (1−ε, ε/C) when smoothing is active (ε > 0, as libtorch branches).
    smoothing: Option<(f64, f64)>,
    probabilities: bool,
    /// The mean's divisor; 1 under the other reductions.
    divisor: f64,
    per_position: bool,
}

impl Formulas {
    pub fn of(problem: &Problem) -> Formulas {
        Formulas {
            smoothing: problem.smoothing.map(|e| keep_and_spread(e, problem.classes)),
            probabilities: problem.targets == Targets::Probabilities,
            divisor: problem.divisor,
            per_position: problem.reduction == Reduction::None,
        }
    }

    /// (1−ε, ε/C), or (1, 0) without smoothing.
    pub fn keep_and_spread(&self) -> (f64, f64) {
        self.smoothing.unwrap_or((1.0, 0.0))
    }

    /// What the mean divides by (1 under `sum` and `none`).
    pub fn divisor(&self) -> f64 {
        self.divisor
    }

    /// Replaces probability targets `t` by q = t·(1−ε) + ε/C when smoothing.
    pub fn smooth_targets(&self, t: &mut [f64]) {
        if let Some((keep, spread)) = self.smoothing {
            for v in t.iter_mut() {
                *v = *v * keep + spread;
            }
        }
    }

    /// One loss value from the NLL and smoothing terms, each already reduced
    /// (summed, or divided by the divisor): (1−ε)·nll + smooth·(ε/C) for
    /// class targets with smoothing, else the NLL term alone — so 0·inf and
    /// inf−inf come out as libtorch's.
    pub fn combine(&self, nll: f64, smooth: f64) -> f64 {
        match self.smoothing {
            Some((keep, spread)) if !self.probabilities => keep * nll + smooth * spread,
            _ => nll,
        }
    }

    /// The one upstream gradient of a reduced loss; None under `none`.
    pub fn shared_upstream(&self, upstream: &[f64]) -> Option<f64> {
        (!self.per_position).then(|| upstream[0])
    }

    /// The upstream gradient of position `p`: its own under `none`, else the
    /// one value of the reduced loss.
    pub fn upstream_at(&self, upstream: &[f64], p: usize) -> f64 {
        if self.per_position {
            upstream[p]
        } else {
            upstream[0]
        }
    }

    /// (nll coefficient, smoothing coefficient) of a class-target position
    /// with upstream gradient `g`: the gradient w.r.t. the log-probabilities
    /// is −smooth·w_c at every class, plus w_y·nll at the target class.
    pub fn coefficients(&self, g: f64) -> (f64, f64) {
        let (g_nll, g_smooth) = match self.smoothing {
            Some((keep, spread)) => (keep * g, g * spread),
            None => (g, 0.0),
        };
        (-(g_nll / self.divisor), g_smooth / self.divisor)
    }

    /// s = −g (over the divisor under mean): a probability-target position's
    /// gradient w.r.t. lp_c is s·w_c·q_c, and w.r.t. its target s·w_c·lp_c·(1−ε).
    pub fn probability_scale(&self, g: f64) -> f64 {
        -(g / self.divisor)
    }
}

/// The loss's shape: the target's (N, d1, …, dk) under `none` (`[]` for
/// unbatched input), else `[]`.
pub(crate) fn output_shape(problem: &Problem) -> Vec<usize> {
    if problem.reduction == Reduction::None {
        problem.loss_shape.clone()
    } else {
        vec![]
    }
}

/// Seeds `grad` with the gradient w.r.t. the log-probabilities of a
/// class-target position with target `y`, from [`Formulas::coefficients`].
pub(crate) fn seed_class_gradient(
    grad: &mut [f64],
    y: usize,
    (nll_coef, smooth_coef): (f64, f64),
    smoothing: bool,
    weight: Option<&[f64]>,
) {
    let w = |c: usize| weight.map_or(1.0, |w| w[c]);
    if smoothing {
        for (c, slot) in grad.iter_mut().enumerate() {
            *slot = -(smooth_coef * w(c));
        }
    }
    grad[y] += w(y) * nll_coef;
}
