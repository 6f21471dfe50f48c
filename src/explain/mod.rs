//! A case's computation step by step, as the article does it: softmax
//! probabilities, the smoothed target distribution, each sample's smoothed
//! cross-entropy and the reduction — each step computed in Rust and checked
//! against libtorch — and the document's printed numbers audited.
//!
//! Where the values come from:
//! - steps 1–2 (softmax, smoothed target) are closed forms in f64, the same
//!   helpers that audit claims ([`runner::softmax`], [`runner::smoothed_target`]);
//! - steps 3–4 are the crate's loss itself ([`run_rust`]) under reduction
//!   "none" and under the case's reduction, never a re-derivation.
//!
//! A "sample" is one position of the loss: a row of (N, C) input, one
//! (n, d1, …) of K-dim input (in row-major order), the only one of (C,) input.
//!
//! libtorch checks steps 1–2 with `softmax` and one-hot arithmetic, and steps
//! 3–4 with `cross_entropy` under "none" and under the case's reduction; steps
//! 3–4 get the same verdict as `ce-parity check` (float32 close calls settled
//! by a float64 run, [`runner::verdict`]). Without libtorch, step 4 (and step 3 when
//! the case's reduction is "none") is checked against the case's recorded
//! values where it has them, and the other steps are unchecked.
//!
//! A `clip_step` case (OpenCLIP's loss step from embeddings) has steps of
//! its own: [`explain_clip_step`].

mod check;
mod clip_step;
mod formula;
mod view;

pub use clip_step::{explain_clip_step, ClipStage, ClipStepExplanation, CLIP_STAGES};
pub use formula::plain_number;
pub use view::{Geometry, Layout, Window, SHOWN};

use crate::fixtures::Values;
use std::fmt;

use crate::compare::{Difference, Tolerance};
use crate::fixtures::{Case, LossKind, Quantity};
use crate::loss::Reduction;
use crate::runner::{self, run_rust, ClaimReport, Outcome};
use crate::tensor::{DType, Data, Tensor};

/// What the Rust steps are checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Against {
    /// Live libtorch through tch, and the case's recorded values. In a build
    /// without the `torch` feature this falls back to [`Against::Recorded`].
    Libtorch,
    /// Only the values recorded in the case (`expected`), without running libtorch.
    Recorded,
}

/// A step's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the dtype's tolerance of every reference it was compared with.
    Agree,
    /// Outside tolerance of a reference, or one side rejects the case.
    Disagree,
    /// Nothing to compare with.
    Unchecked,
}

impl Verdict {
    /// A whole explanation's verdict from its steps': disagree if any step
    /// disagrees, else agree if any step was checked, else unchecked.
    pub fn of_steps(steps: impl IntoIterator<Item = Verdict>) -> Verdict {
        let verdicts: Vec<Verdict> = steps.into_iter().collect();
        if verdicts.contains(&Verdict::Disagree) {
            Verdict::Disagree
        } else if verdicts.contains(&Verdict::Agree) {
            Verdict::Agree
        } else {
            Verdict::Unchecked
        }
    }

    /// `agree`, `disagree` or `unchecked`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Agree => "agree",
            Verdict::Disagree => "disagree",
            Verdict::Unchecked => "unchecked",
        }
    }
}

/// How one step's Rust values compare with the reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// Agree, disagree or unchecked.
    pub verdict: Verdict,
    /// What the Rust values were compared with, e.g. "libtorch and the
    /// recorded values"; empty when unchecked.
    pub against: String,
    /// Worst differences over every value of the step; None when unchecked.
    pub difference: Option<Difference>,
    /// Why the step disagrees or is unchecked, or how a close call was settled.
    pub note: String,
}

/// One step of the computation.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Which quantity the step computes (the names claims use).
    pub quantity: Quantity,
    /// The formula the step computes, with the case's ε, C and reduction.
    pub formula: String,
    /// The Rust values, in the step's natural shape (input's for steps 1–2,
    /// the target's for step 3, the loss's for step 4). Ignored samples have
    /// no smoothed target: NaN there.
    pub rust: Tensor,
    /// libtorch's values (live, or as recorded in the case); None when unchecked.
    pub libtorch: Option<Tensor>,
    /// The Rust values against libtorch's (or the recorded values).
    pub check: Check,
}

impl Step {
    /// A short title: "Softmax probabilities", "Smoothed target distribution", …
    pub fn title(&self) -> &'static str {
        match self.quantity {
            Quantity::Softmax => "Softmax probabilities",
            Quantity::SmoothedTarget => "Smoothed target distribution",
            Quantity::LossPerSample => "Each sample's smoothed cross-entropy",
            Quantity::Loss => "Reduction",
        }
    }

    /// How the values map to samples and classes.
    pub fn layout(&self) -> Layout {
        match self.quantity {
            Quantity::Softmax | Quantity::SmoothedTarget => Layout::Classes,
            Quantity::LossPerSample => Layout::Samples,
            Quantity::Loss if self.rust.shape.is_empty() => Layout::Scalar,
            Quantity::Loss => Layout::Samples,
        }
    }
}

/// A case explained: its four steps, checked, and its claims audited.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation<'a> {
    /// The case explained.
    pub case: &'a Case,
    /// Samples and classes of the case's input.
    pub geometry: Geometry,
    /// The tolerance every step was judged with (the input dtype's default).
    pub tolerance: Tolerance,
    /// Whether libtorch ran live (else only recorded values were compared).
    pub live: bool,
    /// Softmax, smoothed target, per-sample loss, reduction, in that order.
    pub steps: Vec<Step>,
    /// The case's claims, audited: which printed numbers hold.
    pub claims: Vec<ClaimReport>,
    /// Who computed the loss the claims are audited against: "libtorch", the
    /// recorded values' producer with "(recorded)", or "the Rust loss".
    pub loss_from: String,
}

impl Explanation<'_> {
    /// Disagree if any step disagrees, else agree if any step was checked,
    /// else unchecked.
    pub fn verdict(&self) -> Verdict {
        Verdict::of_steps(self.steps.iter().map(|s| s.check.verdict))
    }

    /// How many steps have `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.steps.iter().filter(|s| s.check.verdict == verdict).count()
    }

    /// The part of the case a screen shows (at most [`SHOWN`] samples and classes).
    pub fn window(&self) -> Window {
        Window::of(self.geometry)
    }
}

/// Why a case cannot be explained.
#[derive(Clone, Debug, PartialEq)]
pub enum ExplainError {
    /// The case computes another loss (e.g. CLIP); explain covers cross-entropy.
    NotCrossEntropy {
        /// The case's name.
        case: String,
        /// The loss's name in fixture files, e.g. `clip`.
        loss: &'static str,
    },
    /// The loss rejects the case (as libtorch does): the first line of its message.
    Rejected {
        /// The case's name.
        case: String,
        /// The first line of the loss's message, libtorch's words.
        message: String,
    },
    /// The Rust loss cannot run the case (e.g. mixed dtypes).
    Unsupported {
        /// The case's name.
        case: String,
        /// Why, e.g. "target is float64 but input is float32; …".
        reason: String,
    },
}

impl fmt::Display for ExplainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExplainError::NotCrossEntropy { case, loss } => write!(
                f,
                "case {case} computes the {loss} loss; explain covers cross_entropy cases \
                 (explain_clip_step covers clip_step)"
            ),
            ExplainError::Rejected { case, message } => write!(
                f,
                "case {case}: the loss rejects it, so there are no steps to explain: {message}"
            ),
            ExplainError::Unsupported { case, reason } => {
                write!(f, "case {case}: the Rust loss cannot run it: {reason}")
            }
        }
    }
}

impl std::error::Error for ExplainError {}

/// Explains a cross-entropy case step by step, each step checked against
/// libtorch (or the recorded values), with the case's claims audited.
///
/// # Errors
/// [`ExplainError`] when the case is not a cross-entropy case, when the loss
/// rejects it (bad shapes, classes out of range, …), or when the Rust loss
/// cannot run it (mixed dtypes, integer input).
///
/// # Example
/// ```
/// use ce_parity::explain::{explain, Against, Verdict};
/// use ce_parity::fixtures::Quantity;
///
/// let article = ce_parity::fixtures::bundled_file("fixtures/article.json")?.unwrap();
/// let case = &article.cases[0]; // article/smoothing_0.1/mean
/// let explained = explain(case, Against::Recorded)?;
/// let loss = explained.steps.iter().find(|s| s.quantity == Quantity::Loss).unwrap();
/// assert!((loss.rust.to_f64()[0] - 0.596669).abs() < 1e-6);
/// assert_eq!(loss.check.verdict, Verdict::Agree); // the recorded libtorch value
/// // The article printed 0.4122: that claim does not hold.
/// assert!(explained.claims.iter().any(|c| c.claim.value == [0.4122] && !c.holds));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn explain(case: &Case, against: Against) -> Result<Explanation<'_>, ExplainError> {
    if let LossKind::Clip { .. } | LossKind::ClipStep { .. } = case.loss {
        return Err(ExplainError::NotCrossEntropy {
            case: case.name.clone(),
            loss: case.loss.name(),
        });
    }
    // The loss validates the case first, so the helpers below see good shapes.
    let rust_loss = loss_values(case, run_rust(case))?;
    let per_sample_case = per_sample(case);
    let rust_per_sample = loss_values(case, run_rust(&per_sample_case))?;
    let rejected = |what: &str| ExplainError::Rejected {
        case: case.name.clone(),
        message: format!("cannot compute the {what}"),
    };
    let geometry = Geometry::of(&case.input.shape).ok_or_else(|| rejected("class dim"))?;
    let probabilities = runner::softmax(&case.input).ok_or_else(|| rejected("softmax"))?;
    let smoothed = smoothed_target(case, geometry).ok_or_else(|| rejected("smoothed target"))?;
    // The reduction's formula shows its numerator.
    // + 0.0: an empty sum is −0.0, which would print as "-0.000000".
    let per_sample_sum: f64 = rust_per_sample.to_f64().iter().sum::<f64>() + 0.0;
    let as_input = |values: Vec<f64>| Tensor::float(DType::Float64, case.input.shape.clone(), values);

    let tolerance = Tolerance::default_for(case.input.dtype);
    let reference = check::Reference::new(case, against, &per_sample_case);
    let rust_values = [
        (Quantity::Softmax, as_input(probabilities)),
        (Quantity::SmoothedTarget, as_input(smoothed)),
        (Quantity::LossPerSample, rust_per_sample),
        (Quantity::Loss, rust_loss.clone()),
    ];
    let steps = rust_values
        .into_iter()
        .map(|(quantity, rust)| {
            let (libtorch, check) = match quantity {
                Quantity::LossPerSample => reference.check_loss(quantity, &per_sample_case, &rust, tolerance),
                Quantity::Loss => reference.check_loss(quantity, case, &rust, tolerance),
                _ => reference.check_closed_form(quantity, &rust, tolerance),
            };
            Step {
                quantity,
                formula: formula::formula(quantity, case, geometry, per_sample_sum),
                rust,
                libtorch,
                check,
            }
        })
        .collect();
    let (best_loss, loss_from) = reference
        .best_loss()
        .unwrap_or_else(|| (rust_loss, "the Rust loss".to_string()));
    let claims = case
        .claims
        .iter()
        .map(|claim| runner::audit_claim(case, claim, Some(&best_loss)))
        .collect();
    Ok(Explanation {
        case,
        geometry,
        tolerance,
        live: reference.live(),
        steps,
        claims,
        loss_from,
    })
}

/// The case under reduction "none", with its recorded values only if they are
/// of that reduction, and no claims. Its upstream gradient is dropped: it is
/// shaped like the case's loss, and only the forward values are explained.
fn per_sample(case: &Case) -> Case {
    let same_reduction = case.reduction == Reduction::None;
    Case {
        name: format!("{} (reduction none)", case.name),
        reduction: Reduction::None,
        grad_output: case.grad_output.clone().filter(|_| same_reduction),
        expected: case.expected.clone().filter(|_| same_reduction),
        claims: Vec::new(),
        ..case.clone()
    }
}

/// The loss tensor of an outcome of the Rust loss, or why there is none.
fn loss_values(case: &Case, outcome: Outcome) -> Result<Tensor, ExplainError> {
    match outcome {
        Outcome::Values(Values { loss, .. }) => Ok(loss),
        Outcome::Error(message) => Err(ExplainError::Rejected {
            case: case.name.clone(),
            message,
        }),
        Outcome::Skipped(reason) => Err(ExplainError::Unsupported {
            case: case.name.clone(),
            reason,
        }),
    }
}

/// The runner's smoothed target, with NaN at ignored samples (they have none).
fn smoothed_target(case: &Case, geometry: Geometry) -> Option<Vec<f64>> {
    let mut q = runner::smoothed_target(case)?;
    if let Data::Int(targets) = &case.target.data {
        for (sample, _) in targets.iter().enumerate().filter(|(_, &y)| y == case.ignore_index) {
            for class in 0..geometry.classes {
                q[geometry.index(sample, class)] = f64::NAN;
            }
        }
    }
    Some(q)
}
