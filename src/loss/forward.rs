//! The forward pass: per-position terms from the kernel, then libtorch's reduction.

use super::element::Element;
use super::error::LossError;
use super::formulas::{output_shape, Formulas};
use super::fused;
use super::input::{Target, View};
use super::kernel;
use super::options::{Options, Reduction};
use super::outputs::Loss;
use super::path::{self, Path};
use super::problem::{validate, Problem, Targets};
use super::reduced;

/// `F.cross_entropy(input, target, weight, ignore_index=…, reduction=…, label_smoothing=…)`.
///
/// The class dimension is 1 (0 for unbatched input of shape `(C,)`). For
/// the gradient too, use [`cross_entropy_with_grad`](super::cross_entropy_with_grad),
/// which computes both in one pass.
///
/// The example is the article's call; libtorch 2.13 gives 0.596669.
///
/// ```
/// use ce_parity::loss::{cross_entropy, Options, Target, View};
/// let logits = [2.0f64, 1.0, 0.1, 0.5, 1.5, 0.8];
/// let targets = [0i64, 1];
/// let loss = cross_entropy(
///     View::new(&logits, &[2, 3]),
///     Target::Classes(View::new(&targets, &[2])),
///     &Options { label_smoothing: 0.1, ..Options::default() },
/// )?;
/// assert!((loss.item().unwrap() - 0.596669).abs() < 1e-6);
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
///
/// # Errors
/// [`LossError`] for input libtorch rejects (with libtorch's message), for a
/// NaN `label_smoothing`, and for buffers whose length disagrees with their shape.
pub fn cross_entropy<T: Element>(
    input: View<'_, T>,
    target: Target<'_, T>,
    options: &Options<'_, T>,
) -> Result<Loss<T>, LossError> {
    let problem = validate(input, &target, options)?;
    let values = match path::choose::<T>(&problem) {
        Path::HalfPrecision => reduced::forward(&problem, input, &target),
        Path::Fused => {
            let terms = fused::forward_terms(&problem, input.data, &target)
                .unwrap_or_else(|| position_terms(&problem, input, &target));
            reduce(&problem, &terms)
        }
        Path::Reference => reduce(&problem, &position_terms(&problem, input, &target)),
    };
    Ok(loss_of_values(&problem, values))
}

/// The loss from its values (exact values of `T`).
pub(crate) fn loss_of_values<T: Element>(problem: &Problem, values: Vec<f64>) -> Loss<T> {
    Loss {
        values: values.into_iter().map(T::from_f64).collect(),
        shape: output_shape(problem),
    }
}

/// Per-position (nll, smoothing) terms; for probability targets the loss is in `.0`.
/// Ignored positions contribute (0, 0) — even when their logits are NaN.
pub(crate) fn position_terms<T: Element>(
    problem: &Problem,
    input: View<'_, T>,
    target: &Target<'_, T>,
) -> Vec<(f64, f64)> {
    let weight = problem.weight.as_deref();
    let formulas = Formulas::of(problem);
    let mut row = vec![0.0; problem.classes];
    let mut q = vec![0.0; problem.classes];
    (0..problem.positions())
        .map(|p| {
            kernel::gather_row(problem, input.data, p, T::to_f64, &mut row);
            kernel::log_softmax_in_place(&mut row);
            match (&problem.targets, target) {
                (Targets::Classes(classes), _) => {
                    kernel::class_terms(&row, classes.get(p), weight, problem.smoothing.is_some())
                }
                (Targets::Probabilities, Target::Probabilities(t)) => {
                    kernel::gather_row(problem, t.data, p, T::to_f64, &mut q);
                    formulas.smooth_targets(&mut q);
                    (kernel::probability_term(&row, &q, weight), 0.0)
                }
                _ => unreachable!("validate pairs probability targets with Target::Probabilities"),
            }
        })
        .collect()
}

/// libtorch's combination: (1−ε)·reduce(nll) + reduce(smooth)·(ε/C), with the
/// two terms reduced separately (so 0·inf and inf−inf behave as in libtorch).
pub(crate) fn reduce(problem: &Problem, terms: &[(f64, f64)]) -> Vec<f64> {
    let formulas = Formulas::of(problem);
    let combine = |nll: f64, smooth: f64| formulas.combine(nll, smooth);
    match problem.reduction {
        Reduction::None => terms.iter().map(|&(n, s)| combine(n, s)).collect(),
        Reduction::Sum | Reduction::Mean => {
            // Pairwise, in a fixed order: accurate, and the same for any thread count.
            let (nll, smooth) = fused::pairwise_sum(terms);
            if problem.reduction == Reduction::Sum {
                return vec![combine(nll, smooth)];
            }
            // libtorch: an empty input (no positions, or no classes with
            // probability targets) has a NaN mean.
            if terms.is_empty() || (problem.classes == 0 && problem.targets == Targets::Probabilities) {
                return vec![f64::NAN];
            }
            let divisor = formulas.divisor();
            vec![combine(nll / divisor, smooth / divisor)]
        }
    }
}
