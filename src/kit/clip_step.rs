//! The kit for CLIP-step implementations: the bundled `clip_step` cases
//! (OpenCLIP's loss from embeddings with a learnable logit_scale) run through
//! your function and judged against libtorch's recorded loss and gradients.

use super::run::{call, run_cases, Made};
use super::{CheckOptions, Floats, Kind, Report};
use crate::compare::Tolerance;
use crate::fixtures::Values;
use crate::fixtures::{self, Case, Fixture, FixtureError, LossKind, CLIP_STEP_GRADS};
use crate::runner::Outcome;
use crate::tensor::{DType, Tensor};

/// One CLIP step, as plain `f64` values (exact in the case's dtype):
/// `logits = exp(logit_scale)·normalize(image_embeds)·normalize(text_embeds)ᵀ`,
/// `loss = ½·(CE(logits, arange(N), ε) + CE(logitsᵀ, arange(N), ε))`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClipStepView<'a> {
    /// The case's name.
    pub name: &'a str,
    /// N×D (a rejection case may have another shape).
    pub image_embeds: Floats<'a>,
    /// N×D (a rejection case may have another shape).
    pub text_embeds: Floats<'a>,
    /// The 0-d logit_scale, in the embeddings' dtype.
    pub logit_scale: f64,
    /// ε, for both cross-entropies.
    pub label_smoothing: f64,
    /// The upstream gradient of the loss; None means 1.
    pub grad_output: Option<f64>,
}

/// What your CLIP step made of a case.
#[derive(Clone, Debug, PartialEq)]
pub enum ClipStepAnswer {
    /// The loss and the gradients of `loss·grad_output`, row-major like the embeddings.
    Computed {
        /// The loss.
        loss: f64,
        /// d/d image_embeds.
        grad_image_embeds: Vec<f64>,
        /// d/d text_embeds.
        grad_text_embeds: Vec<f64>,
        /// d/d logit_scale.
        grad_logit_scale: f64,
    },
    /// Your error message: passes where libtorch rejected the case.
    Rejected(String),
    /// The case is outside what your implementation does; skipped with this reason.
    Unsupported(String),
}

/// Runs `implementation` over the `clip_step` cases of the bundled fixtures
/// (fixtures/clip_step.json) and judges the loss and every gradient against
/// libtorch's recorded values with assert_close's tolerance for the dtype (or
/// `tolerance`). Other cases are not included.
///
/// ```
/// use ce_parity::kit::{self, ClipStepAnswer, ClipStepView};
/// use ce_parity::loss::{clip_step, View};
///
/// // ce-parity's own step, computed in f64, as "your" implementation.
/// fn mine(case: &ClipStepView) -> ClipStepAnswer {
///     let (i, t) = (case.image_embeds, case.text_embeds);
///     match clip_step(View::new(i.values, i.shape), View::new(t.values, t.shape),
///                     case.logit_scale, case.label_smoothing, case.grad_output) {
///         Ok(s) => ClipStepAnswer::Computed {
///             loss: s.loss,
///             grad_image_embeds: s.grad_image_embeds,
///             grad_text_embeds: s.grad_text_embeds,
///             grad_logit_scale: s.grad_logit_scale,
///         },
///         Err(e) => ClipStepAnswer::Rejected(e.to_string()),
///     }
/// }
/// let report = kit::check_bundled_clip_steps(mine, None)?;
/// report.assert_passed();
/// assert!(report.cases.len() >= 40);
/// # Ok::<(), ce_parity::fixtures::FixtureError>(())
/// ```
///
/// # Errors
/// A [`FixtureError`] only if a bundled fixture is invalid.
pub fn check_bundled_clip_steps<F>(implementation: F, tolerance: Option<Tolerance>) -> Result<Report, FixtureError>
where
    F: Fn(&ClipStepView<'_>) -> ClipStepAnswer,
{
    Ok(check_clip_steps(implementation, &fixtures::bundled()?, tolerance))
}

/// As [`check_bundled_clip_steps`], over the `clip_step` cases of `fixtures`.
pub fn check_clip_steps<F>(implementation: F, fixtures: &[(String, Fixture)], tolerance: Option<Tolerance>) -> Report
where
    F: Fn(&ClipStepView<'_>) -> ClipStepAnswer,
{
    let options = match tolerance {
        Some(tolerance) => CheckOptions::new().tolerance(tolerance),
        None => CheckOptions::new(),
    };
    let is_step = |case: &Case| matches!(case.loss, LossKind::ClipStep { .. });
    run_cases(fixtures, &options, is_step, |case| {
        let LossKind::ClipStep { logit_scale } = case.loss else {
            return Made::Skipped("not a clip_step case".into());
        };
        made_of(&implementation, case, logit_scale, &options)
    })
}

/// What `implementation` made of one CLIP step.
fn made_of<F>(implementation: &F, case: &Case, logit_scale: f64, options: &CheckOptions) -> Made
where
    F: Fn(&ClipStepView<'_>) -> ClipStepAnswer,
{
    let (Some(image), Some(text)) = (case.input.as_f64(), case.target.as_f64()) else {
        return Made::Skipped("embeddings are not floating".into());
    };
    let view = ClipStepView {
        name: &case.name,
        image_embeds: Floats {
            dtype: case.input.dtype,
            shape: &case.input.shape,
            values: image,
        },
        text_embeds: Floats {
            dtype: case.target.dtype,
            shape: &case.target.shape,
            values: text,
        },
        logit_scale,
        label_smoothing: case.label_smoothing,
        grad_output: case.grad_output.as_ref().and_then(|g| g.to_f64().first().copied()),
    };
    call(options, || implementation(&view), |answer| made_of_answer(answer, case))
}

/// Your step's answer as the runner's outcome, in the embeddings' dtype.
fn made_of_answer(answer: ClipStepAnswer, case: &Case) -> Made {
    let dtype: DType = case.input.dtype;
    match answer {
        ClipStepAnswer::Unsupported(why) => Made::Skipped(why),
        ClipStepAnswer::Rejected(yours) => Made::Outcome(Outcome::Error(yours)),
        ClipStepAnswer::Computed {
            loss,
            grad_image_embeds,
            grad_text_embeds,
            grad_logit_scale,
        } => {
            for (what, values, shape) in [
                ("grad_image_embeds", &grad_image_embeds, &case.input.shape),
                ("grad_text_embeds", &grad_text_embeds, &case.target.shape),
            ] {
                if values.len() != shape.iter().product::<usize>() {
                    let note = format!("your {what} has {} value(s) for shape {shape:?}", values.len());
                    return Made::Failed(Kind::Malformed, note);
                }
            }
            let [image_name, text_name, scale_name] = CLIP_STEP_GRADS;
            Made::Outcome(Outcome::Values(Values {
                loss: Tensor::float(dtype, vec![], vec![loss]),
                grad_input: None,
                grad_target: None,
                named_grads: vec![
                    (
                        image_name,
                        Tensor::float(dtype, case.input.shape.clone(), grad_image_embeds),
                    ),
                    (
                        text_name,
                        Tensor::float(dtype, case.target.shape.clone(), grad_text_embeds),
                    ),
                    (scale_name, Tensor::float(dtype, vec![], vec![grad_logit_scale])),
                ],
            }))
        }
    }
}
