//! How far from the exact (float64) answer libtorch's own rounding may land:
//! a first-order forward error bound of libtorch's algorithm, element by
//! element, for any of its CPU kernels (docs/verdicts.md).
//!
//! libtorch computes `log_softmax` in float32 for float32 and half inputs
//! (stored back in the input's dtype), sums the classes in 8 or 16 lanes (the
//! kernel decides), and builds the loss and its gradient from those
//! log-probabilities. The bound follows that pipeline:
//! - lp_c = x_c − m − ln s, with s = Σ exp(x_k − m): each operation rounds
//!   (unit roundoff u of float32), the sum of C terms in lanes errs by at
//!   most σ_C·u relative, and a half dtype rounds lp_c once more (h·|lp_c|);
//! - the loss is −Σ a_c·lp_c per position (a_c: the target's weighted,
//!   smoothed coefficients), reduced over positions (σ_P·u);
//! - the gradient is g'·(p_c·A − a_c) with p_c = exp(lp_c) and A = Σ a_c, so
//!   an error δ in lp_c becomes p_c·|A|·δ; the gradient w.r.t. lp (g'·a_c) is
//!   rounded in the dtype before it is summed.
//!
//! Every term is computed from the float64 answer's own quantities, so the
//! bound is the same on every machine. σ counts the worst case of a
//! sequential sum in each of 8 lanes, not a statistical estimate: a row of
//! 5000 equal terms errs linearly, and libtorch's kernels show it.

use crate::fixtures::{Case, LossKind};
use crate::loss::{keep_and_spread, smoothed_target, Reduction};
use crate::tensor::{DType, Data, Tensor};

/// libtorch's rounding allowance for each output of a case, shaped like it.
#[derive(Clone, Debug, PartialEq)]
pub struct Allowance {
    /// For the loss.
    pub loss: Vec<f64>,
    /// For the gradient w.r.t. the input.
    pub grad_input: Vec<f64>,
    /// For the gradient w.r.t. a probability target.
    pub grad_target: Option<Vec<f64>>,
    /// For named gradients (a CLIP step's), by name; empty for cross-entropy.
    pub named: Vec<(&'static str, Vec<f64>)>,
}

/// float32's unit roundoff: libtorch's accumulation precision for float32
/// and half inputs.
pub(super) const U32: f64 = f32::EPSILON as f64 / 2.0;

/// The allowance for `case`'s outputs; None for a float64 case (its own
/// tolerance is already far above float64 rounding), an integer input, or a
/// case whose tensors do not fit each other (libtorch rejects those).
pub fn allowance(case: &Case) -> Option<Allowance> {
    let storage = unit_roundoff(case.input.dtype)?;
    match case.loss {
        LossKind::CrossEntropy => cross_entropy(case, storage, 0.0),
        LossKind::Clip { temperature } => clip(case, storage, temperature),
        LossKind::ClipStep { logit_scale } => super::clip_step_bound::clip_step(case, storage, logit_scale),
    }
}

/// The unit roundoff of the dtype libtorch stores results in; None where
/// no allowance applies.
fn unit_roundoff(dtype: DType) -> Option<f64> {
    match dtype {
        DType::Float32 => Some(U32),
        DType::Float16 => Some(2f64.powi(-11)),
        DType::BFloat16 => Some(2f64.powi(-8)),
        DType::Float64 | DType::Int64 | DType::UInt8 => None,
    }
}

/// Worst-case relative error of a sum of `n` terms in 8 lanes, in units of u.
pub(super) fn lanes_sum(n: usize) -> f64 {
    n as f64 / 8.0 + 8.0
}

/// The cross-entropy bound. `input_rounding` is the relative error of the
/// logits themselves (nonzero when libtorch computed them, as S/τ for clip).
fn cross_entropy(case: &Case, h: f64, input_rounding: f64) -> Option<Allowance> {
    let shape = &case.input.shape;
    let (outer, classes, inner) = match shape.len() {
        0 => return None,
        1 => (1, shape[0], 1),
        _ => (shape[0], shape[1], shape[2..].iter().product()),
    };
    let positions = outer * inner;
    let x = case.input.to_f64();
    let weight = case.weight.as_ref().map(Tensor::to_f64);
    if weight.as_ref().is_some_and(|w| w.len() != classes) {
        return None;
    }
    let w = |c: usize| weight.as_ref().map_or(1.0, |w| w[c]);
    let eps = case.label_smoothing.max(0.0);
    // A half dtype stores lp and the gradient w.r.t. lp, each rounded (h_s).
    let half = case.input.dtype != DType::Float32;
    let h_s = if half { h } else { 0.0 };
    let smoothing_terms = if eps > 0.0 { 3.0 } else { 1.0 };
    // Sums over classes are sequential per lane across positions for K-dim input.
    let sigma_c = if inner > 1 {
        classes as f64 + 8.0
    } else {
        lanes_sum(classes)
    };
    let sigma_p = lanes_sum(positions);

    // Each position's coefficients a_c, or None for an ignored position.
    let targets = &case.target;
    let probabilities = matches!(targets.data, Data::Float(_));
    let t = targets.to_f64();
    let expected_targets = if probabilities { x.len() } else { positions };
    if t.len() != expected_targets {
        return None;
    }
    // Fills `out` with a_c and returns the position's share of the mean's
    // divisor; None for an ignored position.
    let coefficients = |b: usize, s: usize, out: &mut Vec<f64>| -> Option<f64> {
        out.clear();
        if probabilities {
            let q = |c: usize| smoothed_target(t[b * classes * inner + c * inner + s], eps, classes);
            out.extend((0..classes).map(|c| w(c) * q(c)));
            return Some(1.0);
        }
        let y = t[b * inner + s] as i64;
        if y == case.ignore_index || y < 0 || y as usize >= classes {
            return None;
        }
        let one_hot = |c: usize| if c == y as usize { 1.0 } else { 0.0 };
        out.extend((0..classes).map(|c| w(c) * smoothed_target(one_hot(c), eps, classes)));
        Some(w(y as usize))
    };

    let mut a = Vec::with_capacity(classes);
    let mut row = Vec::with_capacity(classes);
    let mut denominator = 0.0;
    // Per position: the loss term ℓ_p, its bound, and whether it is kept.
    let mut terms = vec![(0.0f64, 0.0f64); positions];
    let mut grad_input = vec![0.0; x.len()];
    let mut grad_target = probabilities.then(|| vec![0.0; x.len()]);
    let mut go_scale = vec![0.0; positions];
    // First pass: everything but the upstream gradient's scale, which needs
    // the mean's denominator.
    let mut delta = vec![0.0; x.len()];
    let mut lp_all = vec![0.0; x.len()];
    let mut p_all = vec![0.0; x.len()];
    let mut sums = vec![(0.0f64, 0.0f64); positions];
    for b in 0..outer {
        for s in 0..inner {
            let p = b * inner + s;
            let at = |c: usize| b * classes * inner + c * inner + s;
            let Some(share) = coefficients(b, s, &mut a) else {
                continue;
            };
            denominator += share;
            row.clear();
            row.extend((0..classes).map(|c| x[at(c)]));
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if !m.is_finite() || row.iter().any(|v| v.is_nan() || *v == f64::INFINITY) {
                // NaN or +inf logits make the whole position NaN; those must match exactly.
                continue;
            }
            let ln_s = row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            let (mut loss, mut loss_bound, mut a_sum, mut a_abs) = (0.0, 0.0, 0.0, 0.0);
            for c in 0..classes {
                a_sum += a[c];
                a_abs += a[c].abs();
                if row[c] == f64::NEG_INFINITY {
                    // p = 0 exactly; its loss term is infinite (or NaN), which must match exactly.
                    loss -= a[c] * f64::NEG_INFINITY;
                    continue;
                }
                let lp = row[c] - m - ln_s;
                let d = U32 * ((row[c] - m).abs() + ln_s + lp.abs() + sigma_c)
                    + h_s * lp.abs()
                    + input_rounding * (row[c].abs() + m.abs());
                delta[at(c)] = d;
                lp_all[at(c)] = lp;
                p_all[at(c)] = lp.exp();
                loss -= a[c] * lp;
                loss_bound += a[c].abs() * d + U32 * sigma_c * (a[c] * lp).abs();
            }
            terms[p] = (loss, loss_bound);
            sums[p] = (a_sum, a_abs);
        }
    }
    let mean = case.reduction == Reduction::Mean;
    let divisor = if mean { denominator } else { 1.0 };
    let grad_output = case.grad_output.as_ref().map(Tensor::to_f64);
    for p in 0..positions {
        let g = match &grad_output {
            Some(g) if g.len() == positions && case.reduction == Reduction::None => g[p],
            Some(g) if g.len() == 1 => g[0],
            Some(_) => return None,
            None => 1.0,
        };
        go_scale[p] = (g / divisor).abs();
    }
    // The mean's denominator is itself a sum over positions.
    let den_error = if mean { U32 * sigma_p } else { 0.0 };
    // The gradient w.r.t. lp is rounded in the dtype: once, or twice where
    // autograd adds the smoothing term's share to the NLL's (the target
    // class) or the target itself was smoothed first (probabilities).
    // `a_min` is the position's smallest coefficient: only the target class's is larger.
    let go_rounding = |a_c: f64, a_min: f64| {
        let twice = eps > 0.0 && (probabilities || a_c > a_min);
        if twice {
            2.0 * h
        } else {
            h
        }
    };
    for b in 0..outer {
        for s in 0..inner {
            let p = b * inner + s;
            if coefficients(b, s, &mut a).is_none() {
                continue;
            }
            let (a_sum, a_abs) = sums[p];
            let g = go_scale[p];
            let a_min = a.iter().copied().fold(f64::INFINITY, f64::min);
            let sum_rounding: f64 = a.iter().map(|&a_k| go_rounding(a_k, a_min) * a_k.abs()).sum();
            for c in 0..classes {
                let i = b * classes * inner + c * inner + s;
                let (d, pc) = (delta[i], p_all[i]);
                let value = g * (pc * a_sum - a[c]).abs();
                let rounding = go_rounding(a[c], a_min) * a[c].abs() + pc * sum_rounding;
                grad_input[i] =
                    g * (pc * a_sum.abs() * d + U32 * sigma_c * pc * a_abs + rounding) + (h + den_error) * value;
                if let Some(gt) = grad_target.as_mut() {
                    let scale = g * keep_and_spread(eps, classes).0 * w(c).abs();
                    gt[i] = scale * (d + 2.0 * h_s * lp_all[i].abs()) + (h + den_error) * scale * lp_all[i].abs();
                }
            }
        }
    }
    // A half dtype rounds the NLL and smoothing terms and their combination
    // (three roundings with smoothing, one without) besides the result.
    let combination = (smoothing_terms - 1.0) * h_s;
    let loss = match case.reduction {
        Reduction::None => terms
            .iter()
            .map(|(l, bound)| bound + (combination + h_s + h) * l.abs())
            .collect(),
        Reduction::Sum | Reduction::Mean => {
            let bound: f64 = terms.iter().map(|t| t.1).sum();
            let magnitude: f64 = terms.iter().map(|t| t.0.abs()).sum();
            let total = terms.iter().map(|t| t.0).sum::<f64>() / divisor;
            vec![(bound + U32 * sigma_p * magnitude) / divisor.abs() + (combination + h + den_error) * total.abs()]
        }
    };
    Some(Allowance {
        loss,
        grad_input,
        grad_target,
        named: Vec::new(),
    })
}

/// The contrastive loss ½·(CE(S/τ) + CE(S[:, :N]ᵀ/τ)): the bounds of its two
/// cross-entropies, with the rounding of S/τ, combined as the loss combines them.
fn clip(case: &Case, h: f64, temperature: f64) -> Option<Allowance> {
    let [images, texts] = case.input.shape[..] else {
        return None;
    };
    if images > texts {
        return None;
    }
    let s = case.input.to_f64();
    let scaled = |values: Vec<f64>, shape: Vec<usize>| Tensor::float(case.input.dtype, shape, values);
    let rows: Vec<f64> = s.iter().map(|v| v / temperature).collect();
    let columns: Vec<f64> = (0..images)
        .flat_map(|j| (0..images).map(move |i| (i, j)))
        .map(|(i, j)| s[i * texts + j] / temperature)
        .collect();
    let half_grad = case
        .grad_output
        .as_ref()
        .map(|g| Tensor::float(DType::Float64, vec![], vec![g.to_f64()[0] * 0.5]));
    let part = |input: Tensor| {
        let mut ce = Case::new("clip part", input, Case::diagonal(images));
        ce.label_smoothing = case.label_smoothing;
        ce.grad_output = half_grad
            .clone()
            .or_else(|| Some(Tensor::float(DType::Float64, vec![], vec![0.5])));
        cross_entropy(&ce, h, h)
    };
    let by_rows = part(scaled(rows, vec![images, texts]))?;
    let by_columns = part(scaled(columns, vec![images, images]))?;
    let loss =
        vec![0.5 * (by_rows.loss[0] + by_columns.loss[0]) + h * 2.0 * 0.5 * (by_rows.loss[0] + by_columns.loss[0])];
    // dS = (d rows + d columnsᵀ) / τ, each rounded in the dtype.
    let mut grad_input = by_rows.grad_input;
    for i in 0..images {
        for j in 0..images {
            grad_input[i * texts + j] += by_columns.grad_input[j * images + i];
        }
    }
    for g in &mut grad_input {
        *g = *g * (1.0 + 2.0 * h) / temperature;
    }
    Some(Allowance {
        loss,
        grad_input,
        grad_target: None,
        named: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float64_and_integer_inputs_have_no_allowance() {
        let case = Case::new(
            "f64",
            Tensor::float(DType::Float64, vec![1, 2], vec![0.0, 1.0]),
            Tensor::int(DType::Int64, vec![1], vec![0]),
        );
        assert_eq!(allowance(&case), None);
    }

    #[test]
    fn a_uniform_row_in_float32_is_allowed_a_few_units_of_roundoff() {
        // Two equal logits: lp = −ln 2 for both, p = ½, loss ln 2, grad ±¼.
        let case = Case::new(
            "uniform",
            Tensor::float(DType::Float32, vec![1, 2], vec![0.0, 0.0]),
            Tensor::int(DType::Int64, vec![1], vec![0]),
        );
        let a = allowance(&case).unwrap();
        let ulp_of_ln2 = f32::EPSILON as f64 / 2.0;
        assert!(a.loss[0] > ulp_of_ln2 && a.loss[0] < 40.0 * ulp_of_ln2, "{}", a.loss[0]);
        assert_eq!(a.grad_input.len(), 2);
        assert!(a.grad_input.iter().all(|&b| b > 0.0 && b < 1e-5), "{:?}", a.grad_input);
    }

    #[test]
    fn a_minus_infinity_logit_leaves_the_other_classes_their_allowance() {
        let case = |x: Vec<f64>| {
            Case::new(
                "row",
                Tensor::float(DType::Float32, vec![1, 3], x),
                Tensor::int(DType::Int64, vec![1], vec![0]),
            )
        };
        let finite = allowance(&case(vec![0.0, 0.0, -200.0])).unwrap();
        let masked = allowance(&case(vec![0.0, 0.0, f64::NEG_INFINITY])).unwrap();
        // Class 2 has p ≈ 0 either way: the first two classes keep their bound.
        for c in 0..2 {
            assert!(
                masked.grad_input[c] > 0.5 * finite.grad_input[c],
                "{masked:?} vs {finite:?}"
            );
        }
    }

    #[test]
    fn grows_with_the_class_count() {
        let row = |c: usize| {
            Case::new(
                "row",
                Tensor::float(DType::Float32, vec![1, c], vec![0.0; c]),
                Tensor::int(DType::Int64, vec![1], vec![0]),
            )
        };
        let small = allowance(&row(10)).unwrap();
        let large = allowance(&row(10_000)).unwrap();
        // A sum of 10 000 terms in 8 lanes errs up to 1250 u; of 10, about 9 u.
        assert!(
            large.loss[0] > 10.0 * small.loss[0],
            "{} vs {}",
            large.loss[0],
            small.loss[0]
        );
    }
}
