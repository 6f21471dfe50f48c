//! The backward pass: the gradient of `(loss * grad_output).sum()` w.r.t. the
//! input (and w.r.t. probability targets), following libtorch's autograd graph.

use super::element::Element;
use super::error::LossError;
use super::formulas::{output_shape, seed_class_gradient, Formulas};
use super::fused;
use super::input::{Target, View};
use super::kernel;
use super::options::Options;
use super::outputs::Gradients;
use super::path::{self, Path};
use super::problem::{validate, Problem, Targets};
use super::reduced;

/// The gradient of `(cross_entropy(input, target) * grad_output).sum()`.
///
/// `grad_output` is the upstream gradient, shaped like the loss (`[]` when
/// reduced); `None` means ones, as `loss.backward()` on a reduced loss. The
/// result is what libtorch's autograd gives: for index targets without
/// smoothing, softmax minus one-hot, scaled by the weight and the reduction.
///
/// ```
/// use ce_parity::loss::{cross_entropy_backward, Options, Target, View, Reduction};
/// let logits = [0.0f64, 0.0];
/// let grad = cross_entropy_backward(
///     View::new(&logits, &[1, 2]),
///     Target::Classes(View::new(&[1], &[1])),
///     &Options { reduction: Reduction::Sum, ..Options::default() },
///     None,
/// )?;
/// assert_eq!(grad.input, vec![0.5, -0.5]); // softmax minus one-hot
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
///
/// An upstream gradient per row under `none`: ½ for each of the article's two
/// rows gives the gradient of their mean, which libtorch recorded.
///
/// ```
/// use ce_parity::loss::{cross_entropy_backward, Options, Reduction, Target, View};
/// let logits = [2.0f32, 1.0, 0.1, 0.5, 1.5, 0.8];
/// let options = Options { reduction: Reduction::None, label_smoothing: 0.1, ..Options::default() };
/// let grad = cross_entropy_backward(
///     View::new(&logits, &[2, 3]),
///     Target::Classes(View::new(&[0, 1], &[2])),
///     &options,
///     Some(View::new(&[0.5, 0.5], &[2])),
/// )?;
/// let libtorch_mean = [-0.13716608, 0.104549825, 0.03261628, 0.08198884, -0.19849318, 0.116504356];
/// for (ours, theirs) in grad.input.iter().zip(libtorch_mean) {
///     assert!((ours - theirs).abs() < 1e-6);
/// }
/// assert!(grad.target.is_none()); // class indices have no gradient
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
///
/// # Errors
/// As [`cross_entropy`](super::cross_entropy), plus [`LossError::GradOutputShape`]
/// or [`LossError::DataLength`] when `grad_output` does not fit the loss's
/// shape, and libtorch's size mismatch for 1-D input with a `[1]`-shaped
/// class target (its forward takes that, its backward does not).
pub fn cross_entropy_backward<T: Element>(
    input: View<'_, T>,
    target: Target<'_, T>,
    options: &Options<'_, T>,
    grad_output: Option<View<'_, T>>,
) -> Result<Gradients<T>, LossError> {
    let problem = validate(input, &target, options)?;
    if input.shape.len() == 1 && target.shape().len() == 1 && !matches!(problem.targets, Targets::Probabilities) {
        // libtorch's forward takes a [1]-shaped target for 1-D input, but
        // nll_loss's backward checks the sizes as if the input were batched.
        return Err(LossError::Rejected(format!(
            "size mismatch (got input: {:?}, target: {:?})",
            input.shape,
            target.shape()
        )));
    }
    let upstream = upstream(&problem, grad_output)?;
    let fused = match path::choose::<T>(&problem) {
        Path::HalfPrecision => {
            let (input, target) = reduced::backward(&problem, input, &target, &upstream);
            return Ok(Gradients { input, target });
        }
        Path::Fused => fused::forward_backward(&problem, input.data, &target, &upstream),
        Path::Reference => None,
    };
    Ok(match fused {
        Some((gradients, _)) => gradients,
        None => backward(&problem, input, &target, &upstream),
    })
}

/// The upstream gradient per position (one value when reduced).
pub(crate) fn upstream<T: Element>(problem: &Problem, grad_output: Option<View<'_, T>>) -> Result<Vec<f64>, LossError> {
    let expected = output_shape(problem);
    match grad_output {
        None => Ok(vec![1.0; expected.iter().product()]),
        Some(g) => {
            if g.shape != expected.as_slice() {
                return Err(LossError::GradOutputShape {
                    expected,
                    got: g.shape.to_vec(),
                });
            }
            if g.data.len() != expected.iter().product::<usize>() {
                return Err(LossError::DataLength {
                    what: "grad_output",
                    shape: g.shape.to_vec(),
                    len: g.data.len(),
                });
            }
            Ok(g.data.iter().map(|v| v.to_f64()).collect())
        }
    }
}

pub(crate) fn backward<T: Element>(
    problem: &Problem,
    input: View<'_, T>,
    target: &Target<'_, T>,
    upstream: &[f64],
) -> Gradients<T> {
    let classes = problem.classes;
    let weight = problem.weight.as_deref();
    let weight_of = |c: usize| weight.map_or(1.0, |w| w[c]);
    let formulas = Formulas::of(problem);

    let mut grad_input = vec![T::from_f64(0.0); input.data.len()];
    let mut grad_target = match problem.targets {
        Targets::Probabilities => Some(vec![T::from_f64(0.0); input.data.len()]),
        Targets::Classes(_) => None,
    };
    let mut lp = vec![0.0; classes];
    let mut grad = vec![0.0; classes];
    let mut q = vec![0.0; classes];
    for p in 0..problem.positions() {
        kernel::gather_row(problem, input.data, p, T::to_f64, &mut lp);
        kernel::log_softmax_in_place(&mut lp);
        grad.iter_mut().for_each(|g| *g = 0.0);
        let g = formulas.upstream_at(upstream, p);
        match (&problem.targets, target) {
            (Targets::Classes(targets), _) => {
                if let Some(y) = targets.get(p) {
                    let coefficients = formulas.coefficients(g);
                    seed_class_gradient(&mut grad, y, coefficients, problem.smoothing.is_some(), weight);
                }
            }
            (Targets::Probabilities, Target::Probabilities(t)) => {
                kernel::gather_row(problem, t.data, p, T::to_f64, &mut q);
                formulas.smooth_targets(&mut q);
                let s = formulas.probability_scale(g);
                let (keep, _) = formulas.keep_and_spread();
                for c in 0..classes {
                    grad[c] = s * weight_of(c) * q[c];
                    q[c] = s * weight_of(c) * lp[c] * keep; // reuse q for the target gradient
                }
                if let Some(out) = grad_target.as_mut() {
                    kernel::scatter_row(problem, &q, p, T::from_f64, out);
                }
            }
            _ => unreachable!("validate pairs probability targets with Target::Probabilities"),
        }
        kernel::log_softmax_backward_in_place(&lp, &mut grad);
        kernel::scatter_row(problem, &grad, p, T::from_f64, &mut grad_input);
    }
    Gradients {
        input: grad_input,
        target: grad_target,
    }
}
