//! The loop both kits share: select the cases, let the implementation make
//! something of each, and judge it against libtorch's recorded result by
//! `check`'s rule, output by output.

use crate::fixtures::Values;
use std::cell::RefCell;

use super::panics::guarded;
use super::report::{CaseResult, Kind, OutputResult, Report};
use super::{CheckOptions, Feature};
use crate::compare::{Difference, Tolerance};
use crate::fixtures::{Case, Fixture, Recorded};
use crate::runner::{
    first_line, paired_tensors, run_rust, verdict_named, CaseReport, Disagreement, Outcome, SideNames, Status,
};

/// The implementation under test in notes, against libtorch's recording.
const SIDES: SideNames = SideNames {
    tested: "yours",
    reference: "libtorch",
};

/// What an implementation made of a case, before judging.
pub(super) enum Made {
    /// Values, or a rejection with your whole message.
    Outcome(Outcome),
    /// Not run, and why.
    Skipped(String),
    /// A failure the kit saw before judging (a panic, a malformed answer).
    Failed(Kind, String),
}

/// Runs `make` over the cases of `fixtures` that `include` and the options'
/// filters select, and judges what it made of each.
pub(super) fn run_cases(
    fixtures: &[(String, Fixture)],
    options: &CheckOptions,
    include: impl Fn(&Case) -> bool,
    make: impl Fn(&Case) -> Made,
) -> Report {
    let cases = fixtures
        .iter()
        .flat_map(|(file, fixture)| fixture.cases.iter().map(move |case| (file, case)))
        .filter(|(file, case)| include(case) && options.selects(file, &case.name))
        .map(|(file, case)| judge(file, case, make(case), options))
        .collect();
    Report { cases }
}

/// Calls the implementation and makes its answer into `Made` with `then`;
/// a panic fails the case, or is its rejection under
/// [`CheckOptions::panics_as_rejections`].
pub(super) fn call<A>(
    options: &CheckOptions,
    implementation: impl FnOnce() -> A,
    then: impl FnOnce(A) -> Made,
) -> Made {
    let quiet = options.panics_as_rejections;
    match guarded(quiet, implementation) {
        Ok(answer) => then(answer),
        Err(message) if quiet => Made::Outcome(Outcome::Error(format!("panicked: {message}"))),
        Err(message) => Made::Failed(Kind::Panicked, format!("the implementation panicked: {message}")),
    }
}

/// The tolerance a case is judged with: the option's, else assert_close's
/// for the input's dtype (float32's for an integer input, which libtorch rejects).
pub(super) fn tolerance(case: &Case, options: &CheckOptions) -> Tolerance {
    let dtype = if case.input.dtype.is_float() {
        case.input.dtype
    } else {
        crate::tensor::DType::Float32
    };
    options.tolerance.unwrap_or_else(|| Tolerance::default_for(dtype))
}

fn judge(file: &str, case: &Case, made: Made, options: &CheckOptions) -> CaseResult {
    let recorded = case.expected.as_ref().map(|e| &e.result);
    let libtorch_error = match recorded {
        Some(Recorded::Error(message)) => Some(first_line(message)),
        _ => None,
    };
    let mut result = CaseResult {
        file: file.to_string(),
        dtype: case.input.dtype,
        features: Feature::ALL.into_iter().filter(|f| f.of(case)).collect(),
        kind: Kind::Skipped,
        outputs: Vec::new(),
        yours_error: None,
        libtorch_error,
        yours_loss: None,
        libtorch_loss: match recorded {
            Some(Recorded::Values(Values { loss, .. })) => Some(loss.clone()),
            _ => None,
        },
        report: unjudged(case, Status::Skipped, String::new()),
        gradient_checked: false,
    };
    let outcome = match made {
        Made::Outcome(outcome) => outcome,
        Made::Skipped(why) => {
            result.report.note = why;
            return result;
        }
        Made::Failed(kind, note) => {
            result.kind = kind;
            result.report = unjudged(case, Status::Failed, note);
            return result;
        }
    };
    if let Outcome::Values(Values { loss, .. }) = &outcome {
        result.yours_loss = Some(loss.clone());
    }
    // A rejection of a case libtorch rejects is judged as libtorch's own
    // when the options take it as the same one.
    let mut reworded = false;
    let outcome = match (outcome, recorded) {
        (Outcome::Error(yours), Some(Recorded::Error(theirs))) => {
            result.yours_error = Some(yours.clone());
            reworded = options.same_rejection(&first_line(theirs), &yours);
            Outcome::Error(if reworded { theirs.clone() } else { first_line(&yours) })
        }
        (Outcome::Error(yours), _) => {
            result.yours_error = Some(yours.clone());
            Outcome::Error(first_line(&yours))
        }
        (outcome, _) => outcome,
    };
    // The float64 answer, kept when the verdict asks for it.
    let exact = RefCell::new(None);
    let in_float64 = |c: &Case| {
        let outcome = run_rust(c);
        *exact.borrow_mut() = Some(outcome.clone());
        outcome
    };
    let mut report = verdict_named(SIDES, case, &outcome, None, in_float64, tolerance(case, options));
    // Claims audit a document's numbers, not the implementation under test.
    report.claims.clear();
    if reworded && report.status == Status::Passed {
        let (yours, theirs) = (result.yours_error.as_deref(), result.libtorch_error.as_deref());
        report.note = format!(
            "rejected as libtorch does; yours: {:?}, libtorch: {:?}",
            yours.unwrap_or(""),
            theirs.unwrap_or("")
        );
    }
    let comparison = report
        .comparisons
        .iter()
        .find(|c| c.between == (SIDES.tested, "expected"));
    result.kind = match (&report.status, comparison.and_then(|c| c.disagreement.as_ref())) {
        (Status::Skipped, _) => Kind::Skipped,
        (Status::Passed, _) if matches!(outcome, Outcome::Error(_)) => Kind::BothReject,
        (Status::Passed, _) => Kind::Agrees,
        (Status::Failed, Some(Disagreement::FirstRejects(_))) => Kind::YouReject,
        (Status::Failed, Some(Disagreement::SecondRejects(_))) => Kind::YouCompute,
        (Status::Failed, Some(Disagreement::Errors(..))) => Kind::RejectionDiffers,
        (Status::Failed, _) => Kind::ValuesDiffer,
    };
    if let (Some(comparison), Some(recorded)) = (comparison, recorded) {
        let recorded = Outcome::from_recorded(recorded);
        let exact = exact.into_inner();
        for (output, yours, theirs) in paired_tensors(&outcome, &recorded) {
            let Some(difference) = comparison.outputs.iter().find(|o| o.output == output) else {
                continue;
            };
            let float64 = exact
                .as_ref()
                .and_then(|e| paired_tensors(e, e).into_iter().find(|(name, ..)| *name == output))
                .map(|(_, t, _)| t.clone());
            result.outputs.push(OutputResult {
                output,
                yours: yours.clone(),
                recorded: theirs.clone(),
                float64,
                difference: difference.clone(),
            });
        }
    }
    result.gradient_checked = result.outputs.iter().any(|o| o.output != "loss");
    result.report = report;
    result
}

/// A report made without comparing anything: a skip, or a failure the kit saw first.
pub(super) fn unjudged(case: &Case, status: Status, note: String) -> CaseReport {
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
