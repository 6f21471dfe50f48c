//! The judge: every available pair among Rust, live libtorch and the recorded
//! values, compared output by output, with typed differences.
//!
//! The rule (docs/verdicts.md): two values agree when they are within
//! torch.testing.assert_close's tolerance of each other, or when both are
//! acceptable roundings of the exact answer — within the tolerance plus
//! libtorch's own rounding allowance ([`super::allowance`](mod@super::allowance)) of the case
//! computed in float64. The second clause is what makes a verdict the same
//! on every CPU: a value recorded by one ATen kernel and a value computed by
//! another differ by their roundings, and both are judged against the same
//! float64 answer and the same bound.

use crate::fixtures::Values;
use std::fmt;

use super::allowance::{allowance, Allowance};
use super::claims::{audit_claim, ClaimReport};
use super::outcome::{first_line, paired_tensors, Outcome};
use super::rust::in_float64;
use crate::compare::{compare_arbitrated, Difference, Float64Answer, Tolerance};
use crate::fixtures::Case;
use crate::tensor::{DType, Tensor};

/// Verdict on one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every available comparison held.
    Passed,
    /// At least one comparison failed.
    Failed,
    /// Nothing could be compared, or a side could not run the case.
    Skipped,
}

/// How two outcomes disagree, as a type (the writers render it).
#[derive(Clone, Debug, PartialEq)]
pub enum Disagreement {
    /// Both computed, and some output differs ([`Comparison::outputs`] says where).
    Values,
    /// Both rejected the case, with different first lines.
    Errors(String, String),
    /// The first side rejected (its first line), the second computed.
    FirstRejects(String),
    /// The first side computed, the second rejected (its first line).
    SecondRejects(String),
}

/// One output (loss, grad_input or grad_target) of two sides, compared.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputDifference {
    /// `"loss"`, `"grad_input"` or `"grad_target"`.
    pub output: &'static str,
    /// The tolerance it was judged with.
    pub tolerance: Tolerance,
    /// How the two differ, with the worst elements.
    pub difference: Difference,
}

impl OutputDifference {
    /// Whether this output agrees.
    pub fn passed(&self) -> bool {
        self.difference.passed()
    }
}

/// torch.testing.assert_close's wording, prefixed with the output's name.
impl fmt::Display for OutputDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.difference;
        if let Some((a, b)) = &d.shape_mismatch {
            return write!(f, "{}: shapes differ: {a:?} vs {b:?}", self.output);
        }
        let share = 100.0 * d.mismatched as f64 / d.numel.max(1) as f64;
        write!(
            f,
            "{}: Mismatched elements: {} / {} ({share:.1}%)",
            self.output, d.mismatched, d.numel
        )?;
        let at = |w: &crate::compare::Worst| {
            let index: Vec<String> = w.index.iter().map(usize::to_string).collect();
            format!("index ({}) ({} vs {})", index.join(", "), w.actual, w.expected)
        };
        if let Some(w) = &d.greatest_abs {
            write!(
                f,
                "; Greatest absolute difference: {} at {} (up to {} allowed)",
                w.value,
                at(w),
                self.tolerance.atol
            )?;
        }
        if let Some(w) = &d.greatest_rel {
            write!(
                f,
                "; Greatest relative difference: {} at {} (up to {} allowed)",
                w.value,
                at(w),
                self.tolerance.rtol
            )?;
        }
        Ok(())
    }
}

/// One comparison between two outcomes, e.g. "rust vs libtorch".
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The two sides: "rust", "libtorch" or "expected".
    pub between: (&'static str, &'static str),
    /// Whether the two agree (within the rule, or reject with the same message).
    pub passed: bool,
    /// Each output both sides computed.
    pub outputs: Vec<OutputDifference>,
    /// The worst differences over `outputs`.
    pub difference: Difference,
    /// How they disagree; None when they agree.
    pub disagreement: Option<Disagreement>,
    /// Why it failed, in words (empty when it passed).
    pub detail: String,
}

/// One side's distance from the float64 answer.
#[derive(Clone, Debug, PartialEq)]
pub struct SideError {
    /// "rust", "libtorch" or "expected".
    pub side: &'static str,
    /// Largest |value − exact| over every output.
    pub max_abs: f64,
    /// Largest |value − exact| / (what the rule allows there); ≤ 1 is an
    /// acceptable rounding everywhere.
    pub worst_share: f64,
}

/// The float64 answer a case was judged against, and each side's error.
#[derive(Clone, Debug, PartialEq)]
pub struct Float64Report {
    /// Who computed the answer: "libtorch" (live, in float64) or "rust".
    pub source: &'static str,
    /// Each side that computed values.
    pub sides: Vec<SideError>,
}

/// Everything known about one case.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseReport {
    /// The case's name.
    pub name: String,
    /// The verdict.
    pub status: Status,
    /// Every pair of sides that could be compared.
    pub comparisons: Vec<Comparison>,
    /// The largest differences over all comparisons.
    pub difference: Difference,
    /// Why the case failed or was skipped, or how it passed through float64.
    pub note: String,
    /// The float64 answer, when the case needed it.
    pub float64: Option<Float64Report>,
    /// The case's claims, audited.
    pub claims: Vec<ClaimReport>,
    /// The loss (first value) from the most trusted source: libtorch, else recorded, else Rust.
    pub loss: Option<Tensor>,
}

/// What the two implementations a verdict compares are called in reports:
/// ce-parity's Rust and libtorch for `check`, or a user's outputs under test
/// ("yours") and the reference they are judged against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SideNames {
    /// The outcome under test (`rust` in [`verdict`]).
    pub tested: &'static str,
    /// The reference outcome (`libtorch` in [`verdict`]).
    pub reference: &'static str,
}

impl SideNames {
    /// `check`'s sides: ce-parity's Rust against libtorch.
    pub const RUST_LIBTORCH: SideNames = SideNames {
        tested: "rust",
        reference: "libtorch",
    };
}

/// The exact answer and libtorch's rounding allowance, for the rule's second clause.
struct Arbiter<'a> {
    exact: &'a Outcome,
    allowance: &'a Allowance,
}

impl Arbiter<'_> {
    fn answer(&self, output: &'static str) -> Option<Float64Answer<'_>> {
        let Outcome::Values(Values {
            loss,
            grad_input,
            grad_target,
            named_grads,
        }) = self.exact
        else {
            return None;
        };
        let (tensor, bound) = match output {
            "loss" => (Some(loss), Some(&self.allowance.loss)),
            "grad_input" => (grad_input.as_ref(), Some(&self.allowance.grad_input)),
            "grad_target" => (grad_target.as_ref(), self.allowance.grad_target.as_ref()),
            name => (
                named_grads.iter().find(|(n, _)| *n == name).map(|(_, t)| t),
                self.allowance.named.iter().find(|(n, _)| *n == name).map(|(_, b)| b),
            ),
        };
        Some(Float64Answer {
            exact: tensor?.as_f64()?,
            allowance: bound?,
        })
    }
}

/// Compares every available pair among Rust, live libtorch and the recorded
/// values by assert_close's rule alone (no float64 answer).
pub fn judge(case: &Case, rust: &Outcome, libtorch: Option<&Outcome>, tolerance: Tolerance) -> CaseReport {
    judge_with(SideNames::RUST_LIBTORCH, case, rust, libtorch, tolerance, None)
}

/// `check`'s verdict on one case: [`judge`], and where values disagree in a
/// float32 or half case, the rule's second clause with the case computed in
/// float64 by `run_float64` (live libtorch's float64 when it runs, else the
/// Rust loss's float64 path) and libtorch's rounding allowance.
pub fn verdict(
    case: &Case,
    rust: &Outcome,
    libtorch: Option<&Outcome>,
    run_float64: impl FnOnce(&Case) -> Outcome,
    tolerance: Tolerance,
) -> CaseReport {
    verdict_named(SideNames::RUST_LIBTORCH, case, rust, libtorch, run_float64, tolerance)
}

/// [`verdict`] with other names for the two sides: the same rule judges a
/// user's own outputs (`tested`) against a reference.
pub fn verdict_named(
    names: SideNames,
    case: &Case,
    rust: &Outcome,
    libtorch: Option<&Outcome>,
    run_float64: impl FnOnce(&Case) -> Outcome,
    tolerance: Tolerance,
) -> CaseReport {
    let report = judge_with(names, case, rust, libtorch, tolerance, None);
    let values_differ = report
        .comparisons
        .iter()
        .any(|c| c.disagreement == Some(Disagreement::Values));
    if report.status != Status::Failed || !values_differ || case.input.dtype == DType::Float64 {
        return report;
    }
    let Some(allowance) = allowance(case) else {
        return report;
    };
    let exact = run_float64(&in_float64(case));
    if !matches!(exact, Outcome::Values(Values { .. })) {
        return report;
    }
    let arbiter = Arbiter {
        exact: &exact,
        allowance: &allowance,
    };
    let mut report = judge_with(names, case, rust, libtorch, tolerance, Some(&arbiter));
    let source = if libtorch.is_some() { names.reference } else { "rust" };
    let sides = sides(names, rust, libtorch, case)
        .into_iter()
        .filter_map(|(side, outcome)| side_error(side, outcome, &arbiter, tolerance))
        .collect::<Vec<_>>();
    let errors = sides
        .iter()
        .map(|s| format!("{} {:.1e}", s.side, s.max_abs))
        .collect::<Vec<_>>()
        .join(", ");
    if report.status == Status::Passed {
        report.note =
            format!("agrees within libtorch's rounding of the float64 answer ({source}); error vs float64: {errors}");
    } else {
        report.note = format!("{}; error vs float64 ({source}): {errors}", report.note);
    }
    report.float64 = Some(Float64Report { source, sides });
    report
}

/// The sides at hand, in report order.
fn sides<'a>(
    names: SideNames,
    rust: &'a Outcome,
    libtorch: Option<&'a Outcome>,
    recorded: &'a Case,
) -> Vec<(&'static str, std::borrow::Cow<'a, Outcome>)> {
    let recorded = recorded
        .expected
        .as_ref()
        .map(|e| std::borrow::Cow::Owned(Outcome::from_recorded(&e.result)));
    [
        Some((names.tested, std::borrow::Cow::Borrowed(rust))),
        libtorch.map(|o| (names.reference, std::borrow::Cow::Borrowed(o))),
        recorded.map(|o| ("expected", o)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn judge_with(
    names: SideNames,
    case: &Case,
    rust: &Outcome,
    libtorch: Option<&Outcome>,
    tolerance: Tolerance,
    arbiter: Option<&Arbiter<'_>>,
) -> CaseReport {
    let sides = sides(names, rust, libtorch, case);
    let skipped: Vec<String> = sides
        .iter()
        .filter_map(|(who, o)| match o.as_ref() {
            Outcome::Skipped(why) => Some(format!("{who}: {why}")),
            _ => None,
        })
        .collect();
    let mut comparisons = Vec::new();
    for i in 0..sides.len() {
        for j in i + 1..sides.len() {
            let (a, b) = (&sides[i], &sides[j]);
            if let Some(c) = compare_outcomes((a.0, &a.1), (b.0, &b.1), tolerance, arbiter) {
                comparisons.push(c);
            }
        }
    }
    let mut difference = Difference::default();
    for c in &comparisons {
        difference.merge(&c.difference);
    }
    let failed: Vec<&Comparison> = comparisons.iter().filter(|c| !c.passed).collect();
    let (status, note) = if !failed.is_empty() {
        let note = failed
            .iter()
            .map(|c| format!("{} vs {}: {}", c.between.0, c.between.1, c.detail))
            .collect::<Vec<_>>()
            .join("; ");
        (Status::Failed, note)
    } else if !skipped.is_empty() || comparisons.is_empty() {
        let note = if skipped.is_empty() {
            "nothing to compare with (no libtorch, nothing recorded)".into()
        } else {
            skipped.join("; ")
        };
        (Status::Skipped, note)
    } else {
        (Status::Passed, String::new())
    };
    // The loss from the most trusted source: libtorch, else recorded, else Rust.
    let loss_of = |o: &Outcome| match o {
        Outcome::Values(Values { loss, .. }) => Some(loss.clone()),
        _ => None,
    };
    let best = sides
        .iter()
        .find(|(who, _)| *who == names.reference)
        .or_else(|| sides.iter().find(|(who, _)| *who == "expected"))
        .and_then(|(_, o)| loss_of(o))
        .or_else(|| loss_of(rust));
    let claims = case
        .claims
        .iter()
        .map(|c| audit_claim(case, c, best.as_ref()))
        .collect();
    CaseReport {
        name: case.name.clone(),
        status,
        comparisons,
        difference,
        note,
        float64: None,
        claims,
        loss: best,
    }
}

fn compare_outcomes(
    a: (&'static str, &Outcome),
    b: (&'static str, &Outcome),
    tolerance: Tolerance,
    arbiter: Option<&Arbiter<'_>>,
) -> Option<Comparison> {
    let between = (a.0, b.0);
    let mut outputs = Vec::new();
    let disagreement = match (a.1, b.1) {
        (Outcome::Skipped(_), _) | (_, Outcome::Skipped(_)) => return None,
        (Outcome::Error(x), Outcome::Error(y)) => {
            (first_line(x) != first_line(y)).then(|| Disagreement::Errors(first_line(x), first_line(y)))
        }
        (Outcome::Error(x), Outcome::Values(Values { .. })) => Some(Disagreement::FirstRejects(first_line(x))),
        (Outcome::Values(Values { .. }), Outcome::Error(y)) => Some(Disagreement::SecondRejects(first_line(y))),
        (Outcome::Values(Values { .. }), Outcome::Values(Values { .. })) => {
            for (output, x, y) in paired_tensors(a.1, b.1) {
                let answer = arbiter.and_then(|arb| arb.answer(output));
                outputs.push(OutputDifference {
                    output,
                    tolerance,
                    difference: compare_arbitrated(x, y, tolerance, answer),
                });
            }
            outputs.iter().any(|o| !o.passed()).then_some(Disagreement::Values)
        }
    };
    let mut difference = Difference::default();
    for o in &outputs {
        difference.merge(&o.difference);
    }
    let detail = match &disagreement {
        None => String::new(),
        Some(Disagreement::Errors(x, y)) => format!("errors differ: {x:?} vs {y:?}"),
        Some(Disagreement::FirstRejects(x)) => format!("{} rejects ({x:?}), {} computes", a.0, b.0),
        Some(Disagreement::SecondRejects(y)) => format!("{} computes, {} rejects ({y:?})", a.0, b.0),
        Some(Disagreement::Values) => outputs
            .iter()
            .filter(|o| !o.passed())
            .map(OutputDifference::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    Some(Comparison {
        between,
        passed: disagreement.is_none(),
        outputs,
        difference,
        disagreement,
        detail,
    })
}

/// One side's distance from the float64 answer, over every output it has.
fn side_error(
    side: &'static str,
    outcome: std::borrow::Cow<'_, Outcome>,
    arbiter: &Arbiter<'_>,
    tolerance: Tolerance,
) -> Option<SideError> {
    let outcome = outcome.as_ref();
    if !matches!(outcome, Outcome::Values(Values { .. })) {
        return None;
    }
    let (mut max_abs, mut worst_share) = (0.0f64, 0.0f64);
    for (output, x, _) in paired_tensors(outcome, arbiter.exact) {
        let Some(answer) = arbiter.answer(output) else {
            continue;
        };
        let values = x.to_f64();
        if values.len() != answer.exact.len() {
            continue;
        }
        for (i, v) in values.into_iter().enumerate() {
            let e = answer.exact[i];
            if (v.is_nan() && e.is_nan()) || v == e {
                continue;
            }
            let err = (v - e).abs();
            let allowed = answer.allowed(i, tolerance);
            max_abs = max_abs.max(if err.is_nan() { f64::INFINITY } else { err });
            worst_share = worst_share.max(if err.is_finite() { err / allowed } else { f64::INFINITY });
        }
    }
    Some(SideError {
        side,
        max_abs,
        worst_share,
    })
}
