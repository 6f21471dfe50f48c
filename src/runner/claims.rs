//! Auditing the numbers a document printed: each claim's quantity is
//! computed here and held to the claim's own precision.

use super::outcome::Outcome;
use super::rust::run_rust;
use crate::compare::Tolerance;
use crate::fixtures::Values;
use crate::fixtures::{Case, Claim, Quantity};
use crate::loss;
use crate::tensor::{Data, Tensor};

/// A claim, audited.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimReport {
    /// The claim as the fixture states it.
    pub claim: Claim,
    /// The value computed here; None when it cannot be computed.
    pub actual: Option<Vec<f64>>,
    /// Whether every claimed value is within the claim's `atol` of `actual`.
    pub holds: bool,
    /// Flat indices of the values that do not hold.
    pub wrong: Vec<usize>,
}

/// Computes a claimed quantity here (closed form, or the Rust loss, which the
/// same case checks against libtorch) and tests the claim. `loss` is the
/// case's loss from the most trusted source at hand, for [`Quantity::Loss`].
pub fn audit_claim(case: &Case, claim: &Claim, loss: Option<&Tensor>) -> ClaimReport {
    let actual: Option<Vec<f64>> = match claim.quantity {
        Quantity::Loss => loss.map(Tensor::to_f64),
        Quantity::LossPerSample => {
            let mut per_sample = case.clone();
            per_sample.reduction = loss::Reduction::None;
            match run_rust(&per_sample) {
                Outcome::Values(Values { loss, .. }) => Some(loss.to_f64()),
                _ => None,
            }
        }
        Quantity::Softmax => softmax(&case.input),
        Quantity::SmoothedTarget => smoothed_target(case),
    };
    let tolerance = Tolerance {
        rtol: 0.0,
        atol: claim.atol,
    };
    let wrong: Vec<usize> = match &actual {
        Some(a) if a.len() == claim.value.len() => a
            .iter()
            .zip(&claim.value)
            .enumerate()
            .filter(|(_, (a, c))| !tolerance.close(**a, **c))
            .map(|(i, _)| i)
            .collect(),
        _ => (0..claim.value.len()).collect(),
    };
    ClaimReport {
        claim: claim.clone(),
        holds: wrong.is_empty() && actual.is_some(),
        actual,
        wrong,
    }
}

/// Geometry of the class dim: (outer, classes, inner); None for a 0-d shape.
pub fn class_geometry(shape: &[usize]) -> Option<(usize, usize, usize)> {
    match shape.len() {
        0 => None,
        1 => Some((1, shape[0], 1)),
        _ => Some((shape[0], shape[1], shape[2..].iter().product())),
    }
}

/// softmax over the class dim, in f64, by the loss's own log-softmax; None
/// for a 0-d input.
pub fn softmax(input: &Tensor) -> Option<Vec<f64>> {
    let (outer, classes, inner) = class_geometry(&input.shape)?;
    let x = input.to_f64();
    let mut out = vec![0.0; x.len()];
    let mut row = vec![0.0; classes];
    for b in 0..outer {
        for s in 0..inner {
            let at = |c: usize| b * classes * inner + c * inner + s;
            row.iter_mut().enumerate().for_each(|(c, v)| *v = x[at(c)]);
            loss::log_softmax_in_place(&mut row);
            for (c, lp) in row.iter().enumerate() {
                out[at(c)] = lp.exp();
            }
        }
    }
    Some(out)
}

/// q = t·(1−ε) + ε/C, with t one-hot for index targets (all zero for ignored
/// rows); None when the target does not fit the input or a class is out of range.
pub fn smoothed_target(case: &Case) -> Option<Vec<f64>> {
    let (outer, classes, inner) = class_geometry(&case.input.shape)?;
    let e = case.label_smoothing.max(0.0);
    let mut t = vec![0.0; case.input.numel()];
    match &case.target.data {
        Data::Float(v) if v.len() == t.len() => t.clone_from(v),
        Data::Int(v) if v.len() == outer * inner => {
            for (p, &y) in v.iter().enumerate() {
                if y == case.ignore_index {
                    continue;
                }
                let (b, s) = (p / inner, p % inner);
                if y < 0 || y as usize >= classes {
                    return None;
                }
                t[b * classes * inner + y as usize * inner + s] = 1.0;
            }
            let q = t.iter().map(|&x| loss::smoothed_target(x, e, classes)).collect();
            return Some(q);
        }
        _ => return None,
    }
    Some(t.iter().map(|&x| loss::smoothed_target(x, e, classes)).collect())
}
