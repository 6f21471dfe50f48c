//! Loss and gradient in one visit to each row — the way a training step
//! wants them — optionally writing the gradient over the logits.

use super::element::Element;
use super::error::LossError;
use super::forward::{cross_entropy, loss_of_values, reduce};
use super::fused;
use super::gradient::{cross_entropy_backward, upstream};
use super::input::{Target, View};
use super::options::Options;
use super::outputs::{Gradients, Loss};
use super::path::{self, Path};
use super::problem::{validate, Problem};
use super::reduced;

fn loss_of<T: Element>(problem: &Problem, terms: &[(f64, f64)]) -> Loss<T> {
    loss_of_values(problem, reduce(problem, terms))
}

/// The loss and the gradient of `(loss * grad_output).sum()` together.
///
/// For f32 and f64 input this is one fused pass: each position is read once
/// and its gradient written in the same visit (the gradient w.r.t.
/// probability targets takes one more pass). Half types take one visit per
/// position too, rounding as libtorch rounds them.
///
/// ```
/// use ce_parity::loss::{cross_entropy_with_grad, Options, Target, View};
/// let logits = [2.0f32, 1.0, 0.1, 0.5, 1.5, 0.8];
/// let (loss, grad) = cross_entropy_with_grad(
///     View::new(&logits, &[2, 3]),
///     Target::Classes(View::new(&[0, 1], &[2])),
///     &Options { label_smoothing: 0.1, ..Options::default() },
///     None,
/// )?;
/// assert!((loss.values[0] - 0.596669).abs() < 1e-6);
/// assert!((grad.input[0] - -0.137166).abs() < 1e-6);
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
///
/// # Errors
/// As [`cross_entropy_backward`].
pub fn cross_entropy_with_grad<T: Element>(
    input: View<'_, T>,
    target: Target<'_, T>,
    options: &Options<'_, T>,
    grad_output: Option<View<'_, T>>,
) -> Result<(Loss<T>, Gradients<T>), LossError> {
    let problem = validate(input, &target, options)?;
    let up = upstream(&problem, grad_output)?;
    let path = path_of(&problem, input, &target);
    if path == Path::Fused {
        if let Some((grads, terms)) = fused::forward_backward(&problem, input.data, &target, &up) {
            return Ok((loss_of(&problem, &terms), grads));
        }
    }
    if path == Path::HalfPrecision {
        let mut out = vec![T::from_f64(0.0); input.data.len()];
        let (values, grad_target) = reduced::forward_backward_into(&problem, input, &target, &up, &mut out);
        let grads = Gradients {
            input: out,
            target: grad_target,
        };
        return Ok((loss_of_values(&problem, values), grads));
    }
    let loss = cross_entropy(input, target, options)?;
    let grads = cross_entropy_backward(input, target, options, grad_output)?;
    Ok((loss, grads))
}

/// As [`cross_entropy_with_grad`], writing the gradient w.r.t. the input into
/// `out` (shaped like the input), so a training loop reuses one buffer.
/// Returns the loss.
///
/// ```
/// use ce_parity::loss::{cross_entropy_with_grad_into, Options, Reduction, Target, View};
/// let logits = [0.0f32, 0.0];
/// let mut grad = [9.0f32; 2];
/// let loss = cross_entropy_with_grad_into(
///     View::new(&logits, &[1, 2]),
///     Target::Classes(View::new(&[1], &[1])),
///     &Options { reduction: Reduction::Sum, ..Options::default() },
///     None,
///     &mut grad,
/// )?;
/// assert!((loss.values[0] - 2f32.ln()).abs() < 1e-7);
/// assert_eq!(grad, [0.5, -0.5]);
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
///
/// # Errors
/// As [`cross_entropy_backward`], plus [`LossError::DataLength`] when `out`
/// is not as long as the input; on error `out` is unchanged.
pub fn cross_entropy_with_grad_into<T: Element>(
    input: View<'_, T>,
    target: Target<'_, T>,
    options: &Options<'_, T>,
    grad_output: Option<View<'_, T>>,
    out: &mut [T],
) -> Result<Loss<T>, LossError> {
    let problem = validate(input, &target, options)?;
    if out.len() != input.data.len() {
        return Err(LossError::DataLength {
            what: "out",
            shape: input.shape.to_vec(),
            len: out.len(),
        });
    }
    let up = upstream(&problem, grad_output)?;
    let path = path_of(&problem, input, &target);
    if path == Path::Fused {
        if let Some(terms) = fused::forward_backward_into(&problem, input.data, &target, &up, out) {
            return Ok(loss_of(&problem, &terms));
        }
    }
    if path == Path::HalfPrecision {
        let (values, _) = reduced::forward_backward_into(&problem, input, &target, &up, out);
        return Ok(loss_of_values(&problem, values));
    }
    let (loss, grads) = cross_entropy_with_grad(input, target, options, grad_output)?;
    out.copy_from_slice(&grads.input);
    Ok(loss)
}

/// As [`cross_entropy_with_grad`], but the gradient replaces the logits
/// (as Liger-Kernel does), so a training step needs no N×C buffer beyond the
/// logits themselves. Returns the loss.
///
/// ```
/// use ce_parity::loss::{cross_entropy_with_grad_in_place, Options, Target, View};
/// let mut logits = vec![0.0f64, 0.0];
/// let loss = cross_entropy_with_grad_in_place(
///     &mut logits, &[1, 2], Target::Classes(View::new(&[1], &[1])), &Options::default(), None)?;
/// assert!((loss.values[0] - 2f64.ln()).abs() < 1e-15);
/// assert_eq!(logits, vec![0.5, -0.5]);
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
///
/// # Errors
/// As [`cross_entropy_backward`]; on error the logits are unchanged.
pub fn cross_entropy_with_grad_in_place<T: Element>(
    logits: &mut [T],
    shape: &[usize],
    target: Target<'_, T>,
    options: &Options<'_, T>,
    grad_output: Option<View<'_, T>>,
) -> Result<Loss<T>, LossError> {
    let problem = validate(View::new(logits, shape), &target, options)?;
    let up = upstream(&problem, grad_output)?;
    if path_of(&problem, View::new(logits, shape), &target) == Path::Fused {
        if let Some(terms) = fused::forward_backward_in_place(&problem, logits, &target, &up) {
            return Ok(loss_of(&problem, &terms));
        }
    }
    let (loss, grads) = cross_entropy_with_grad(View::new(logits, shape), target, options, grad_output)?;
    logits.copy_from_slice(&grads.input);
    Ok(loss)
}

/// [`path::choose`], except that 1-D input with a `[1]`-shaped class target
/// goes the long way: libtorch's backward rejects it, and
/// `cross_entropy_backward` says so.
fn path_of<T: Element>(problem: &Problem, input: View<'_, T>, target: &Target<'_, T>) -> Path {
    let unbatched_index_target =
        input.shape.len() == 1 && target.shape().len() == 1 && !matches!(target, Target::Probabilities(_));
    match unbatched_index_target {
        true => Path::Reference,
        false => path::choose::<T>(problem),
    }
}
