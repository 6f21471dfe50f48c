//! Checking the Rust steps: against live libtorch (feature `torch`) and the
//! values recorded in the case.

use super::{Against, Check, Verdict};
use crate::compare::{compare, Difference, Tolerance};
use crate::fixtures::Values;
use crate::fixtures::{Case, Quantity};
use crate::runner::{run_rust, verdict, Outcome, Status};
use crate::tensor::Tensor;

/// libtorch's values for each step, when it ran.
#[cfg_attr(not(feature = "torch"), allow(dead_code))]
struct Live {
    softmax: Result<Tensor, String>,
    smoothed_target: Result<Tensor, String>,
    per_sample: Outcome,
    loss: Outcome,
}

/// What the steps of one case are checked against.
pub(super) struct Reference<'a> {
    case: &'a Case,
    against: Against,
    live: Option<Live>,
}

impl<'a> Reference<'a> {
    /// Runs libtorch's steps now when `against` asks for it and this build has libtorch.
    pub fn new(case: &'a Case, against: Against, per_sample_case: &Case) -> Reference<'a> {
        let live = match against {
            Against::Libtorch => run_live(case, per_sample_case),
            Against::Recorded => None,
        };
        Reference { case, against, live }
    }

    pub fn live(&self) -> bool {
        self.live.is_some()
    }

    /// Why a step without recorded values is unchecked.
    fn unchecked(&self) -> Check {
        let why = match self.against {
            Against::Recorded => "libtorch was not run",
            Against::Libtorch => "this build has no libtorch (feature `torch` off)",
        };
        Check {
            verdict: Verdict::Unchecked,
            against: String::new(),
            difference: None,
            note: format!("unchecked: {why}, and the case records no values for this step"),
        }
    }

    /// Checks step 1 or 2 (closed forms) against libtorch's `softmax` or one-hot arithmetic.
    pub fn check_closed_form(
        &self,
        quantity: Quantity,
        rust: &Tensor,
        tolerance: Tolerance,
    ) -> (Option<Tensor>, Check) {
        let Some(live) = &self.live else {
            return (None, self.unchecked());
        };
        let libtorch = match quantity {
            Quantity::Softmax => &live.softmax,
            _ => &live.smoothed_target,
        };
        match libtorch {
            Err(message) => (
                None,
                Check {
                    verdict: Verdict::Unchecked,
                    against: String::new(),
                    difference: None,
                    note: format!("unchecked: libtorch could not compute this step: {message}"),
                },
            ),
            Ok(values) => {
                let difference = compare(rust, values, tolerance);
                let (verdict, note) = if difference.passed() {
                    (Verdict::Agree, String::new())
                } else {
                    (Verdict::Disagree, describe(&difference))
                };
                let check = Check {
                    verdict,
                    against: "libtorch".into(),
                    difference: Some(difference),
                    note,
                };
                (Some(values.clone()), check)
            }
        }
    }

    /// Checks step 3 or 4 (the crate's loss on `step_case`) as `ce-parity
    /// check` does: against libtorch and the recorded values, a float32
    /// close call settled by a float64 run.
    pub fn check_loss(
        &self,
        quantity: Quantity,
        step_case: &Case,
        rust: &Tensor,
        tolerance: Tolerance,
    ) -> (Option<Tensor>, Check) {
        let libtorch = self.live.as_ref().map(|live| match quantity {
            Quantity::LossPerSample => loss_only(&live.per_sample),
            _ => loss_only(&live.loss),
        });
        let rust = Outcome::Values(Values {
            loss: rust.clone(),
            grad_input: None,
            grad_target: None,
            named_grads: Vec::new(),
        });
        let float64 = |c: &Case| self.float64(c);
        let report = verdict(step_case, &rust, libtorch.as_ref(), float64, tolerance);
        let recorded = step_case
            .expected
            .as_ref()
            .and_then(|e| outcome_loss(&Outcome::from_recorded(&e.result)));
        let shown = libtorch.as_ref().and_then(outcome_loss).or(recorded);
        let mut against = Vec::new();
        if report.comparisons.iter().any(|c| c.between.1 == "libtorch") {
            against.push("libtorch");
        }
        if report.comparisons.iter().any(|c| c.between == ("rust", "expected")) {
            against.push("the recorded values");
        }
        let check = match report.status {
            Status::Skipped if report.comparisons.is_empty() => return (None, self.unchecked()),
            Status::Passed | Status::Skipped => Check {
                verdict: Verdict::Agree,
                against: against.join(" and "),
                difference: Some(report.difference),
                note: report.note,
            },
            Status::Failed => Check {
                verdict: Verdict::Disagree,
                against: against.join(" and "),
                difference: Some(report.difference),
                note: report.note,
            },
        };
        (shown, check)
    }

    /// The case's loss from the most trusted source but Rust: libtorch live,
    /// else recorded; with who computed it.
    pub fn best_loss(&self) -> Option<(Tensor, String)> {
        if let Some(loss) = self.live.as_ref().and_then(|live| outcome_loss(&live.loss)) {
            return Some((loss, "libtorch".into()));
        }
        let expected = self.case.expected.as_ref()?;
        let loss = outcome_loss(&Outcome::from_recorded(&expected.result))?;
        Some((loss, format!("{} (recorded)", expected.producer)))
    }

    /// The case in float64 through the most trusted implementation at hand.
    fn float64(&self, case: &Case) -> Outcome {
        match &self.live {
            Some(_) => run_live_loss(case),
            None => run_rust(case),
        }
    }
}

/// "N value(s) outside tolerance, max abs err E" (or the shapes that differ).
fn describe(d: &Difference) -> String {
    match &d.shape_mismatch {
        Some((rust, libtorch)) => format!("shapes differ: Rust {rust:?}, libtorch {libtorch:?}"),
        None => format!(
            "{} value(s) outside tolerance, max abs err {:.3e}",
            d.mismatched, d.max_abs
        ),
    }
}

/// The outcome with its loss only, so that only the loss is compared.
fn loss_only(outcome: &Outcome) -> Outcome {
    match outcome {
        Outcome::Values(Values { loss, .. }) => Outcome::Values(Values {
            loss: loss.clone(),
            grad_input: None,
            grad_target: None,
            named_grads: Vec::new(),
        }),
        other => other.clone(),
    }
}

fn outcome_loss(outcome: &Outcome) -> Option<Tensor> {
    match outcome {
        Outcome::Values(Values { loss, .. }) => Some(loss.clone()),
        _ => None,
    }
}

#[cfg(feature = "torch")]
fn run_live(case: &Case, per_sample_case: &Case) -> Option<Live> {
    use crate::reference::{run_libtorch, steps};
    Some(Live {
        softmax: steps::softmax(&case.input).map_err(|e| e.to_string()),
        smoothed_target: steps::smoothed_target(case).map_err(|e| e.to_string()),
        per_sample: run_libtorch(per_sample_case),
        loss: run_libtorch(case),
    })
}

#[cfg(not(feature = "torch"))]
fn run_live(_case: &Case, _per_sample_case: &Case) -> Option<Live> {
    None
}

#[cfg(feature = "torch")]
fn run_live_loss(case: &Case) -> Outcome {
    crate::reference::run_libtorch(case)
}

#[cfg(not(feature = "torch"))]
fn run_live_loss(case: &Case) -> Outcome {
    run_rust(case)
}
