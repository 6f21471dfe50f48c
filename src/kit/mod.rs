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
//! ([`Tolerance::default_for`]) unless [`Options::tolerance`] overrides it.
//! As in `check`, a float32 disagreement is settled against the case's
//! float64 answer (computed by this crate's loss, itself checked against
//! libtorch): a result more accurate than libtorch's float32 rounding passes.
//!
//! A CLIP-step implementation (OpenCLIP's loss from embeddings with a
//! learnable logit_scale) is checked the same way with
//! [`check_bundled_clip_steps`]: a [`ClipStepView`] in, a [`ClipStepAnswer`]
//! (loss and the three gradients) out.

mod answer;
mod clip_step;
mod report;
mod supports;
mod view;

use std::panic::{catch_unwind, AssertUnwindSafe};

pub use answer::Answer;
pub use clip_step::{check_bundled_clip_steps, check_clip_steps, ClipStepAnswer, ClipStepView};
pub use report::{CaseResult, Report, Totals};
pub use supports::{Feature, Supports};
pub use view::{CaseView, Floats, Targets};

// The few ce-parity types a user needs, so `use ce_parity::kit::*` suffices.
pub use crate::compare::Tolerance;
pub use crate::loss::Reduction;
pub use crate::tensor::DType;

use crate::compare::Difference;
use crate::fixtures::{self, Case, Fixture, FixtureError, Recorded};
use crate::runner::{first_line, run_rust, verdict, CaseReport, Outcome, Status};
use crate::tensor::Tensor;

/// How [`check`] judges: which cases run, the tolerance, error wording.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    supports: Supports,
    tolerance: Option<Tolerance>,
    same_error_messages: bool,
}

impl Options {
    /// Every cross-entropy case, `check`'s tolerances, any error wording.
    pub fn new() -> Options {
        Options::default()
    }

    /// Runs only the cases `supports` lets through; the rest are skipped with the reason.
    pub fn supports(self, supports: Supports) -> Options {
        Options { supports, ..self }
    }

    /// One tolerance for every dtype instead of assert_close's per-dtype defaults.
    pub fn tolerance(self, tolerance: Tolerance) -> Options {
        Options {
            tolerance: Some(tolerance),
            ..self
        }
    }

    /// When on, a rejection passes only if its first line is libtorch's.
    /// Off by default: rejecting what libtorch rejects is enough, since
    /// libraries word their errors differently.
    pub fn same_error_messages(self, on: bool) -> Options {
        Options {
            same_error_messages: on,
            ..self
        }
    }
}

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
/// use ce_parity::kit::{self, Answer, CaseView, DType, Feature, Options, Reduction, Supports, Targets};
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
/// let report = kit::check(my_cross_entropy, &suites, &Options::new().supports(supports.clone()));
/// assert_eq!(report.summary(), "5 passed, 0 failed, 1 skipped");
/// report.assert_passed();
///
/// // Or every bundled suite at once:
/// kit::check_bundled(my_cross_entropy, &Options::new().supports(supports))?.assert_passed();
/// # Ok::<(), ce_parity::fixtures::FixtureError>(())
/// ```
pub fn check_bundled<F>(implementation: F, options: &Options) -> Result<Report, FixtureError>
where
    F: Fn(&CaseView<'_>) -> Answer,
{
    Ok(check(implementation, &fixtures::bundled()?, options))
}

/// Runs `implementation` over every case of `fixtures` (file name, fixture)
/// and judges each against its recorded result; a case with nothing recorded
/// is skipped. A panic in `implementation` fails that case, with its message,
/// and the other cases still run (the panic hook prints it as usual; under
/// `panic = "abort"` it ends the process instead).
pub fn check<F>(implementation: F, fixtures: &[(String, Fixture)], options: &Options) -> Report
where
    F: Fn(&CaseView<'_>) -> Answer,
{
    let cases = fixtures
        .iter()
        .flat_map(|(file, fixture)| fixture.cases.iter().map(move |case| (file, case)))
        .map(|(file, case)| {
            let (report, gradient_checked) = check_case(&implementation, case, options);
            CaseResult {
                file: file.clone(),
                report,
                gradient_checked,
            }
        })
        .collect();
    Report { cases }
}

/// One case's report, and whether a gradient was compared.
fn check_case<F>(implementation: &F, case: &Case, options: &Options) -> (CaseReport, bool)
where
    F: Fn(&CaseView<'_>) -> Answer,
{
    if let Some(why) = options.supports.reason_to_skip(case) {
        return (unjudged(case, Status::Skipped, why), false);
    }
    let view = match CaseView::of(case) {
        Ok(view) => view,
        Err(why) => return (unjudged(case, Status::Skipped, why), false),
    };
    let answer = match catch_unwind(AssertUnwindSafe(|| implementation(&view))) {
        Ok(answer) => answer,
        Err(payload) => return (unjudged(case, Status::Failed, panic_note(&*payload)), false),
    };
    let outcome = match outcome_of(answer, case) {
        Ok(Outcome::Skipped(why)) => return (unjudged(case, Status::Skipped, why), false),
        Ok(outcome) => outcome,
        Err(note) => return (unjudged(case, Status::Failed, note), false),
    };
    let recorded = case.expected.as_ref().map(|e| &e.result);
    // judge compares rejections by their first line; unless asked to, any
    // rejection of a case libtorch rejects counts as the same one.
    let (outcome, reworded) = match (&outcome, recorded) {
        (Outcome::Error(yours), Some(Recorded::Error(theirs))) if !options.same_error_messages => {
            (Outcome::Error(theirs.clone()), Some((yours.clone(), theirs.clone())))
        }
        _ => (outcome, None),
    };
    let tolerance = options
        .tolerance
        .unwrap_or_else(|| Tolerance::default_for(case.input.dtype));
    let mut report = verdict(case, &outcome, None, run_rust, tolerance);
    // Claims audit a document's numbers, not the implementation under test.
    report.claims.clear();
    if let Some((yours, theirs)) = reworded {
        report.note = format!("rejected as libtorch does; yours: {yours:?}, libtorch: {theirs:?}");
    }
    let gradient_checked = report.status != Status::Skipped && compares_gradient(&outcome, recorded);
    (report, gradient_checked)
}

/// A report made without comparing anything: a skip, or a failure the kit saw first.
fn unjudged(case: &Case, status: Status, note: String) -> CaseReport {
    CaseReport {
        name: case.name.clone(),
        status,
        comparisons: Vec::new(),
        difference: Difference::default(),
        note,
        float64: None,
        claims: Vec::new(),
        loss: None,
    }
}

fn panic_note(payload: &(dyn std::any::Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("the implementation panicked: {message}")
}

/// The answer as the runner's outcome, its tensors in the recorded dtypes;
/// `Err` with a note when its sizes do not fit their shapes.
fn outcome_of(answer: Answer, case: &Case) -> Result<Outcome, String> {
    let (loss, shape, grad_input, grad_target) = match answer {
        Answer::Computed {
            loss,
            shape,
            grad_input,
            grad_target,
        } => (loss, shape, grad_input, grad_target),
        Answer::Rejected(message) => return Ok(Outcome::Error(first_line(&message))),
        Answer::Unsupported(why) => return Ok(Outcome::Skipped(why)),
    };
    let recorded = match case.expected.as_ref().map(|e| &e.result) {
        Some(Recorded::Values {
            loss,
            grad_input,
            grad_target,
            ..
        }) => [Some(loss), grad_input.as_ref(), grad_target.as_ref()],
        _ => [None, None, None],
    };
    let dtype = |i: usize| recorded[i].map_or(case.input.dtype, |t: &Tensor| t.dtype);
    let tensor = |what: &str, i: usize, values: Vec<f64>, shape: &[usize]| {
        let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if numel != Some(values.len()) {
            return Err(format!("your {what} has {} value(s) for shape {shape:?}", values.len()));
        }
        Ok(Tensor::float(dtype(i), shape.to_vec(), values))
    };
    let input_shape = &case.input.shape;
    Ok(Outcome::Values {
        loss: tensor("loss", 0, loss, &shape)?,
        grad_input: grad_input
            .map(|g| tensor("grad_input", 1, g, input_shape))
            .transpose()?,
        grad_target: grad_target
            .map(|g| tensor("grad_target", 2, g, input_shape))
            .transpose()?,
        named_grads: Vec::new(),
    })
}

/// Whether the outcome and the recorded values both hold some gradient.
fn compares_gradient(outcome: &Outcome, recorded: Option<&Recorded>) -> bool {
    match (outcome, recorded) {
        (
            Outcome::Values {
                grad_input: a,
                grad_target: b,
                ..
            },
            Some(Recorded::Values {
                grad_input: x,
                grad_target: y,
                ..
            }),
        ) => (a.is_some() && x.is_some()) || (b.is_some() && y.is_some()),
        _ => false,
    }
}
