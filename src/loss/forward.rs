//! The forward pass: per-position terms from the kernel, then libtorch's reduction.

use super::element::Element;
use super::error::LossError;
use super::fused;
use super::input::{Target, View};
use super::kernel;
use super::options::{Options, Reduction};
use super::problem::{validate, Problem, Targets};
use super::reduced;

/// The loss: one value per position under `none` (shaped like the target),
/// else a single value with shape `[]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Loss<T> {
    /// The values, row-major; one value when reduced.
    pub values: Vec<T>,
    /// `[]` when reduced; under `none` the target's shape (N, d1, …, dk),
    /// or `[]` for unbatched input.
    pub shape: Vec<usize>,
}

impl<T: Copy> Loss<T> {
    /// The value of a reduced (0-d) loss; the first value otherwise.
    pub fn item(&self) -> Option<T> {
        self.values.first().copied()
    }
}

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
    let values = if T::REDUCED {
        reduced::forward(&problem, input, &target)
    } else {
        let terms = fused::forward_terms(&problem, input.data, &target)
            .unwrap_or_else(|| position_terms(&problem, input, &target));
        reduce(&problem, &terms)
    };
    let shape = if problem.reduction == Reduction::None {
        problem.loss_shape.clone()
    } else {
        vec![]
    };
    Ok(Loss {
        values: values.into_iter().map(T::from_f64).collect(),
        shape,
    })
}

/// Per-position (nll, smoothing) terms; for probability targets the loss is in `.0`.
/// Ignored positions contribute (0, 0) — even when their logits are NaN.
pub(crate) fn position_terms<T: Element>(
    problem: &Problem,
    input: View<'_, T>,
    target: &Target<'_, T>,
) -> Vec<(f64, f64)> {
    let weight = problem.weight.as_deref();
    let mut row = vec![0.0; problem.classes];
    let mut q = vec![0.0; problem.classes];
    (0..problem.positions())
        .map(|p| {
            kernel::gather_row(problem, input.data, p, T::to_f64, &mut row);
            kernel::log_softmax_in_place(&mut row);
            match (&problem.targets, target) {
                (Targets::Classes(classes), _) => match classes.get(p) {
                    None => (0.0, 0.0),
                    Some(y) => {
                        let smooth = if problem.smoothing.is_some() {
                            kernel::smoothing_term(&row, weight)
                        } else {
                            0.0
                        };
                        (kernel::nll_term(&row, y, weight), smooth)
                    }
                },
                (Targets::Probabilities, Target::Probabilities(t)) => {
                    kernel::gather_row(problem, t.data, p, T::to_f64, &mut q);
                    smoothed_probabilities(problem, &mut q);
                    (kernel::probability_term(&row, &q, weight), 0.0)
                }
                _ => unreachable!("validate pairs probability targets with Target::Probabilities"),
            }
        })
        .collect()
}

/// q = t·(1−ε) + ε/C when smoothing is active.
pub(crate) fn smoothed_probabilities(problem: &Problem, q: &mut [f64]) {
    if let Some(e) = problem.smoothing {
        let spread = e / problem.classes as f64;
        for v in q.iter_mut() {
            *v = *v * (1.0 - e) + spread;
        }
    }
}

/// libtorch's combination: (1−ε)·reduce(nll) + reduce(smooth)·(ε/C), with the
/// two terms reduced separately (so 0·inf and inf−inf behave as in libtorch).
pub(crate) fn reduce(problem: &Problem, terms: &[(f64, f64)]) -> Vec<f64> {
    let combine = |nll: f64, smooth: f64| match (problem.smoothing, &problem.targets) {
        (Some(e), Targets::Classes(_)) => (1.0 - e) * nll + smooth * (e / problem.classes as f64),
        _ => nll,
    };
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
            let divisor = problem.divisor;
            vec![combine(nll / divisor, smooth / divisor)]
        }
    }
}
