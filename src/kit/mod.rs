//! A parity kit for other cross-entropy implementations: the recorded
//! libtorch cases, with no libtorch needed, run through your implementation
//! and judged as `ce-parity check` judges its own.
//!
//! Your implementation is a function from a [`CaseView`] (plain `f64` and
//! `i64` slices, shapes and options) to an [`Answer`] (your loss and
//! optionally its gradient, your error, or "unsupported"). [`check_bundled`]
//! runs it over every case of the bundled fixtures that [`Supports`] lets
//! through and returns a [`Report`]; [`check`] does the same for fixtures you
//! load with [`fixtures::load`].
//!
//! Each case is compared with the values libtorch recorded for it, with
//! `torch.testing.assert_close`'s tolerance for the case's dtype
//! ([`Tolerance::default_for`]) unless [`CheckOptions::tolerance`] overrides it.
//! As in `check`, a float32, float16 or bfloat16 disagreement is settled
//! against the case's float64 answer (computed by this crate's loss, itself
//! checked against libtorch): a value within libtorch's own rounding
//! allowance of the exact answer passes (docs/verdicts.md).
//!
//! The [`Report`] holds, per case and per output (loss, grad_input,
//! grad_target), your values, libtorch's recorded ones, the float64 answer
//! when it was asked, and the worst element ([`OutputResult`]); its
//! `Display` groups the failures by [`Kind`], dtype and features with one
//! example each.
//!
//! [`CheckOptions`] narrow the run ([`CheckOptions::case`], [`CheckOptions::file`]), ask
//! for matching rejection messages ([`CheckOptions::same_error_messages`],
//! [`CheckOptions::rejections_match`]), and turn panics into rejections
//! ([`CheckOptions::panics_as_rejections`]). [`Supports::skip_when`] skips cases
//! by any condition on the [`CaseView`].
//!
//! A CLIP-step implementation (OpenCLIP's loss from embeddings with a
//! learnable logit_scale) is checked the same way with
//! [`check_bundled_clip_steps`]: a [`ClipStepView`] in, a [`ClipStepAnswer`]
//! (loss and the three gradients) out.

mod answer;
mod clip_step;
mod options;
mod panics;
mod report;
mod run;
mod supports;
mod view;

pub use answer::Answer;
pub use clip_step::{check_bundled_clip_steps, check_clip_steps, ClipStepAnswer, ClipStepView};
pub use options::CheckOptions;
pub use report::{CaseResult, FailureGroup, Kind, OutputResult, Report, Totals};
pub use supports::{Feature, Supports};
pub use view::{CaseView, Floats, Targets};

// The few ce-parity types a user needs, so `use ce_parity::kit::*` suffices.
pub use crate::compare::Tolerance;
pub use crate::loss::Reduction;
pub use crate::tensor::DType;

use crate::fixtures::Values;
use crate::fixtures::{self, Case, Fixture, FixtureError, Recorded};
use crate::runner::Outcome;
use crate::tensor::Tensor;
use run::{call, run_cases, Made};
use view::Widened;

/// Runs `implementation` over every case of the bundled fixtures (`fixtures/**/*.json`
/// of this crate, compiled in) and judges each against libtorch's recorded result.
///
/// # Errors
/// A [`FixtureError`] only if a bundled fixture is invalid (a build from a broken checkout).
///
/// # Example
/// A small cross-entropy for `(N, C)` input and class targets, without class
/// weights, checked on the article's cases (the weighted one is skipped):
/// ```
/// use ce_parity::kit::{self, Answer, CaseView, DType, Feature, CheckOptions, Reduction, Supports, Targets};
///
/// fn my_cross_entropy(case: &CaseView) -> Answer {
///     let Targets::Classes { classes, .. } = case.target else {
///         return Answer::unsupported("probability targets");
///     };
///     let (n, c) = (case.input.shape[0], case.input.shape[1]);
///     let eps = case.label_smoothing.max(0.0); // PyTorch: a negative ε is 0
///     let per_row: Vec<f64> = (0..n)
///         .map(|i| {
///             let row = &case.input.values[i * c..(i + 1) * c];
///             let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
///             let log_sum_exp = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
///             let nll = log_sum_exp - row[classes[i] as usize];
///             let uniform = row.iter().map(|x| log_sum_exp - x).sum::<f64>() / c as f64;
///             (1.0 - eps) * nll + eps * uniform
///         })
///         .collect();
///     match case.reduction {
///         Reduction::None => Answer::loss(per_row, vec![n]),
///         Reduction::Sum => Answer::scalar(per_row.iter().sum()),
///         Reduction::Mean => Answer::scalar(per_row.iter().sum::<f64>() / n as f64),
///     }
/// }
///
/// // Computed in f64: half-precision results would not round as libtorch's do.
/// let supports = Supports::all()
///     .dtypes([DType::Float32, DType::Float64])
///     .without(Feature::Unbatched)
///     .without(Feature::KDim)
///     .without(Feature::ProbabilityTargets)
///     .without(Feature::ClassWeights)
///     .without(Feature::IgnoredTargets)
///     .without(Feature::NonFinite)
///     .without(Feature::Rejection);
/// let article = ce_parity::fixtures::bundled_file("fixtures/article.json")?.unwrap();
/// let suites = [("fixtures/article.json".to_string(), article)];
/// let report = kit::check(my_cross_entropy, &suites, &CheckOptions::new().supports(supports.clone()));
/// assert_eq!(report.summary(), "5 passed, 0 failed, 1 skipped");
/// report.assert_passed();
///
/// // Or every bundled suite at once:
/// kit::check_bundled(my_cross_entropy, &CheckOptions::new().supports(supports))?.assert_passed();
/// # Ok::<(), ce_parity::fixtures::FixtureError>(())
/// ```
pub fn check_bundled<F>(implementation: F, options: &CheckOptions) -> Result<Report, FixtureError>
where
    F: Fn(&CaseView<'_>) -> Answer,
{
    Ok(check(implementation, &fixtures::bundled()?, options))
}

/// Runs `implementation` over every case of `fixtures` (file name, fixture)
/// that the options select, and judges each against its recorded result; a
/// case with nothing recorded is skipped. A panic in `implementation` fails
/// that case, with its message, and the other cases still run (or, under
/// [`CheckOptions::panics_as_rejections`], is its rejection).
pub fn check<F>(implementation: F, fixtures: &[(String, Fixture)], options: &CheckOptions) -> Report
where
    F: Fn(&CaseView<'_>) -> Answer,
{
    // Other losses are listed as skipped, with the reason.
    run_cases(
        fixtures,
        options,
        |_| true,
        |case| {
            let widened = Widened::of(case);
            let view = CaseView::of(case, &widened);
            if let Some(why) = options.supports.reason_to_skip_view(case, &view) {
                return Made::Skipped(why);
            }
            call(options, || implementation(&view), |answer| made_of(answer, case))
        },
    )
}

/// The answer as the runner's outcome, its tensors in the recorded dtypes.
fn made_of(answer: Answer, case: &Case) -> Made {
    let (loss, shape, grad_input, grad_target) = match answer {
        Answer::Computed {
            loss,
            shape,
            grad_input,
            grad_target,
        } => (loss, shape, grad_input, grad_target),
        Answer::Rejected(message) => return Made::Outcome(Outcome::Error(message)),
        Answer::Unsupported(why) => return Made::Skipped(why),
    };
    if case.reduction != Reduction::None && shape == [1] {
        let note = "your loss is shaped [1]; a reduced loss is 0-d ([]) in PyTorch: answer Answer::scalar";
        return Made::Failed(Kind::Malformed, note.into());
    }
    let recorded = match case.expected.as_ref().map(|e| &e.result) {
        Some(Recorded::Values(Values {
            loss,
            grad_input,
            grad_target,
            ..
        })) => [Some(loss), grad_input.as_ref(), grad_target.as_ref()],
        _ => [None, None, None],
    };
    // Yours are rounded to libtorch's dtype for each output; with nothing
    // recorded (a rejection), an integer input's values are kept in float64.
    let dtype = |i: usize| {
        let dtype = recorded[i].map_or(case.input.dtype, |t: &Tensor| t.dtype);
        if dtype.is_float() {
            dtype
        } else {
            DType::Float64
        }
    };
    let tensor = |what: &str, i: usize, values: Vec<f64>, shape: &[usize]| {
        let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if numel != Some(values.len()) {
            return Err(format!("your {what} has {} value(s) for shape {shape:?}", values.len()));
        }
        Ok(Tensor::float(dtype(i), shape.to_vec(), values))
    };
    let input_shape = &case.input.shape;
    let outcome = (|| {
        Ok(Outcome::Values(Values {
            loss: tensor("loss", 0, loss, &shape)?,
            grad_input: grad_input
                .map(|g| tensor("grad_input", 1, g, input_shape))
                .transpose()?,
            grad_target: grad_target
                .map(|g| tensor("grad_target", 2, g, input_shape))
                .transpose()?,
            named_grads: Vec::new(),
        }))
    })();
    match outcome {
        Ok(outcome) => Made::Outcome(outcome),
        Err(note) => Made::Failed(Kind::Malformed, note),
    }
}
