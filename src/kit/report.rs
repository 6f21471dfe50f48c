//! The kit's report: per case, what was compared output by output (yours,
//! libtorch's recorded values, the float64 answer, the worst element), the
//! kind of result, totals, and a listing of failures grouped by kind and
//! features for a test's panic message.

use std::collections::BTreeMap;
use std::fmt;

use super::Feature;
use crate::compare::Worst;
use crate::runner::{CaseReport, OutputDifference, Status};
use crate::tensor::{DType, Tensor};

/// What became of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// You computed, and every output agrees with libtorch's.
    Agrees,
    /// You rejected a case libtorch rejects.
    BothReject,
    /// You and libtorch computed, and some output differs.
    ValuesDiffer,
    /// You rejected (or panicked, under
    /// [`CheckOptions::panics_as_rejections`](super::CheckOptions::panics_as_rejections))
    /// where libtorch computes.
    YouReject,
    /// You computed where libtorch rejects.
    YouCompute,
    /// Both rejected, but your message does not match libtorch's under
    /// [`CheckOptions::rejections_match`](super::CheckOptions::rejections_match).
    RejectionDiffers,
    /// Your implementation panicked.
    Panicked,
    /// Your answer does not fit its shapes (e.g. a reduced loss shaped `[1]`).
    Malformed,
    /// Not run: unsupported, or nothing recorded to compare with.
    Skipped,
}

impl Kind {
    /// The status this kind counts as.
    pub fn status(self) -> Status {
        match self {
            Kind::Agrees | Kind::BothReject => Status::Passed,
            Kind::Skipped => Status::Skipped,
            _ => Status::Failed,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Agrees => "agrees",
            Kind::BothReject => "both reject",
            Kind::ValuesDiffer => "values differ",
            Kind::YouReject => "you reject, libtorch computes",
            Kind::YouCompute => "you compute, libtorch rejects",
            Kind::RejectionDiffers => "both reject, with other messages",
            Kind::Panicked => "you panic",
            Kind::Malformed => "malformed answer",
            Kind::Skipped => "skipped",
        })
    }
}

/// One output (`loss`, `grad_input`, `grad_target`, or a CLIP step's named
/// gradient) that both you and libtorch computed, compared.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputResult {
    /// Which output.
    pub output: &'static str,
    /// Your values, rounded to libtorch's dtype for it.
    pub yours: Tensor,
    /// libtorch's recorded values.
    pub recorded: Tensor,
    /// The case computed in float64 (by this crate's loss, checked against
    /// libtorch), when values differed beyond tolerance and the rule's
    /// second clause was asked.
    pub float64: Option<Tensor>,
    /// The comparison: tolerance, max abs/rel/ULP error of this output
    /// alone, elements outside tolerance, and the worst elements.
    pub difference: OutputDifference,
}

impl OutputResult {
    /// Whether this output agrees.
    pub fn passed(&self) -> bool {
        self.difference.passed()
    }

    /// The element with the greatest absolute difference: its index, your
    /// value (`actual`) and libtorch's (`expected`), and the difference.
    pub fn worst(&self) -> Option<&Worst> {
        self.difference.difference.greatest_abs.as_ref()
    }

    /// The float64 answer at `index`, when there is one.
    pub fn float64_at(&self, index: &[usize]) -> Option<f64> {
        let exact = self.float64.as_ref()?;
        let flat = index
            .iter()
            .zip(&exact.shape)
            .try_fold(0usize, |flat, (&i, &dim)| (i < dim).then_some(flat * dim + i))?;
        exact.to_f64().get(flat).copied()
    }
}

/// The verdict on one case, and where the case came from.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseResult {
    /// The fixture file, e.g. `fixtures/article.json`.
    pub file: String,
    /// The input's dtype.
    pub dtype: DType,
    /// The features the case asks for.
    pub features: Vec<Feature>,
    /// What became of it.
    pub kind: Kind,
    /// Each output you and libtorch both computed, compared (empty when
    /// either side rejected or the case was not judged).
    pub outputs: Vec<OutputResult>,
    /// Your rejection's message, or your panic's (`panicked: …`).
    pub yours_error: Option<String>,
    /// The first line of libtorch's recorded error, when it rejects the case.
    pub libtorch_error: Option<String>,
    /// Your loss, when you computed one (also where libtorch rejects).
    pub yours_loss: Option<Tensor>,
    /// libtorch's recorded loss, when it computed one (also where you reject).
    pub libtorch_loss: Option<Tensor>,
    /// `check`'s report: the case's name, status, comparisons and note.
    /// `yours` names the implementation under test and `expected`
    /// libtorch's recorded result (e.g. `yours vs expected: loss: …`).
    pub report: CaseReport,
    /// Whether a gradient was compared (you gave one and libtorch's was recorded).
    pub gradient_checked: bool,
}

impl CaseResult {
    /// The case's name in its file.
    pub fn name(&self) -> &str {
        &self.report.name
    }

    /// Passed, failed or skipped.
    pub fn status(&self) -> Status {
        self.report.status.clone()
    }

    /// What you answered and what libtorch recorded, each in a few words,
    /// where they differ most: for differing values, the worst element of
    /// the first output that fails (with the float64 answer there, when
    /// there is one); for a rejection, the message's first line (quoted),
    /// and the other side's loss. `None` for a case that did not fail.
    pub fn sides(&self) -> Option<(String, String)> {
        let message = |m: &Option<String>| format!("{:?}", m.as_deref().unwrap_or("").lines().next().unwrap_or(""));
        Some(match self.kind {
            Kind::ValuesDiffer => {
                let output = self.outputs.iter().find(|o| !o.passed())?;
                let Some(worst) = output.worst() else {
                    let (a, b) = &output.difference.difference.shape_mismatch.as_ref()?;
                    return Some((format!("{} shaped {a:?}", output.output), format!("shaped {b:?}")));
                };
                let index: Vec<String> = worst.index.iter().map(usize::to_string).collect();
                let dtype = output.recorded.dtype;
                let float64 = output
                    .float64_at(&worst.index)
                    .map(|e| format!(" (float64 {e:.9})"))
                    .unwrap_or_default();
                let at = if index.is_empty() {
                    String::new()
                } else {
                    format!("[{}]", index.join(", "))
                };
                (
                    format!("{}{at} = {}", output.output, shortest(worst.actual, dtype)),
                    format!("{}{float64}", shortest(worst.expected, dtype)),
                )
            }
            Kind::YouReject => (message(&self.yours_error), values(self.libtorch_loss.as_ref())),
            Kind::YouCompute => (values(self.yours_loss.as_ref()), message(&self.libtorch_error)),
            Kind::RejectionDiffers => (message(&self.yours_error), message(&self.libtorch_error)),
            Kind::Panicked | Kind::Malformed => (self.report.note.clone(), values(self.libtorch_loss.as_ref())),
            Kind::Agrees | Kind::BothReject | Kind::Skipped => return None,
        })
    }

    /// The output named `output`, if both sides computed it.
    pub fn output(&self, output: &str) -> Option<&OutputResult> {
        self.outputs.iter().find(|o| o.output == output)
    }
}

/// Case counts by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Cases that agree with libtorch's recorded result, rejections included.
    pub passed: usize,
    /// Of `passed`, the cases that passed by rejecting what libtorch rejects.
    pub passed_by_rejection: usize,
    /// Cases that differ, or where the implementation panicked or answered malformed.
    pub failed: usize,
    /// Cases not run: unsupported, or nothing recorded to compare with.
    pub skipped: usize,
}

/// Every case's verdict, in fixture order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// One result per case of the fixtures given (those the filters select).
    pub cases: Vec<CaseResult>,
}

/// Failure groups listed before the listing is cut short.
const LISTED: usize = 40;

impl Report {
    /// How many cases passed, failed and were skipped.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for case in &self.cases {
            match case.kind.status() {
                Status::Passed => t.passed += 1,
                Status::Failed => t.failed += 1,
                Status::Skipped => t.skipped += 1,
            }
            if case.kind == Kind::BothReject {
                t.passed_by_rejection += 1;
            }
        }
        t
    }

    /// `N passed, M failed`, with ` (R by rejection)` after the passes when
    /// any passed by rejecting, and `, K skipped` when any were skipped.
    pub fn summary(&self) -> String {
        let t = self.totals();
        let mut s = format!("{} passed", t.passed);
        if t.passed_by_rejection > 0 {
            s.push_str(&format!(" ({} by rejection)", t.passed_by_rejection));
        }
        s.push_str(&format!(", {} failed", t.failed));
        if t.skipped > 0 {
            s.push_str(&format!(", {} skipped", t.skipped));
        }
        s
    }

    /// True when nothing failed and at least one case passed: a run that
    /// checked nothing proves nothing, so it is not a success.
    pub fn all_passed(&self) -> bool {
        let t = self.totals();
        t.failed == 0 && t.passed > 0
    }

    /// The cases with a given status.
    pub fn with_status(&self, status: Status) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(move |c| c.kind.status() == status)
    }

    /// The cases of a given kind.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(move |c| c.kind == kind)
    }

    /// The case named `name` (the first, if several files share it).
    pub fn case(&self, name: &str) -> Option<&CaseResult> {
        self.cases.iter().find(|c| c.report.name == name)
    }

    /// The failed cases grouped by kind, input dtype and features, largest
    /// group first; each group's cases in fixture order.
    pub fn failure_groups(&self) -> Vec<FailureGroup<'_>> {
        let mut groups: Vec<FailureGroup> = Vec::new();
        for case in self.with_status(Status::Failed) {
            // The kind already says whether libtorch rejects.
            let features: Vec<Feature> = case
                .features
                .iter()
                .copied()
                .filter(|f| *f != Feature::Rejection)
                .collect();
            let same = |g: &&mut FailureGroup| g.kind == case.kind && g.dtype == case.dtype && g.features == features;
            match groups.iter_mut().find(same) {
                Some(group) => group.cases.push(case),
                None => groups.push(FailureGroup {
                    kind: case.kind,
                    dtype: case.dtype,
                    features,
                    cases: vec![case],
                }),
            }
        }
        groups.sort_by_key(|g| std::cmp::Reverse(g.cases.len()));
        groups
    }

    /// Panics unless [`all_passed`](Self::all_passed), with the report as the
    /// message: totals, the failures by kind and features with an example
    /// each, the skip reasons.
    #[track_caller]
    pub fn assert_passed(&self) {
        if !self.all_passed() {
            panic!("cross-entropy parity check did not pass\n{self}");
        }
    }
}

/// Failed cases of one kind, input dtype and feature set; displayed as
/// `kind — dtype; features`.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureGroup<'a> {
    /// How they failed.
    pub kind: Kind,
    /// Their input dtype.
    pub dtype: DType,
    /// The features they ask for (libtorch's rejection left out: the kind says it).
    pub features: Vec<Feature>,
    /// The cases, in fixture order.
    pub cases: Vec<&'a CaseResult>,
}

impl fmt::Display for FailureGroup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let features = if self.features.is_empty() {
            "no other feature".to_string()
        } else {
            self.features
                .iter()
                .map(Feature::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "{} — {}; {features}", self.kind, self.dtype)
    }
}

/// What one failed case shows as its group's example.
fn example(f: &mut fmt::Formatter<'_>, case: &CaseResult) -> fmt::Result {
    writeln!(f, "    e.g. {}: {}", case.file, case.report.name)?;
    match case.kind {
        Kind::ValuesDiffer => {
            for output in case.outputs.iter().filter(|o| !o.passed()) {
                writeln!(f, "      {}", describe(output))?;
            }
            Ok(())
        }
        Kind::YouReject | Kind::YouCompute | Kind::RejectionDiffers => {
            let (yours, libtorch) = case.sides().unwrap_or_default();
            let (yours_are, libtorch_is) = match case.kind {
                Kind::YouReject => ("yours", "libtorch's loss"),
                Kind::YouCompute => ("your loss", "libtorch"),
                _ => ("yours", "libtorch"),
            };
            writeln!(f, "      {yours_are}: {yours}; {libtorch_is}: {libtorch}")
        }
        _ => writeln!(f, "      {}", case.report.note),
    }
}

/// A tensor's first values, for a line of text.
fn values(tensor: Option<&Tensor>) -> String {
    let Some(tensor) = tensor else {
        return "none".into();
    };
    let shown: Vec<String> = tensor
        .to_f64()
        .iter()
        .take(4)
        .map(|&v| shortest(v, tensor.dtype))
        .collect();
    let more = if tensor.numel() > 4 { ", …" } else { "" };
    match tensor.shape.as_slice() {
        [] => shown.join(""),
        shape => format!("[{}{more}] (shape {shape:?})", shown.join(", ")),
    }
}

/// One output's worst element and its errors, in a line.
fn describe(output: &OutputResult) -> String {
    let d = &output.difference.difference;
    if let Some((yours, theirs)) = &d.shape_mismatch {
        return format!("{}: shapes differ: yours {yours:?}, libtorch {theirs:?}", output.output);
    }
    let Some(worst) = output.worst() else {
        return format!("{}: differs", output.output);
    };
    let index: Vec<String> = worst.index.iter().map(usize::to_string).collect();
    let float64 = output
        .float64_at(&worst.index)
        .map(|e| format!(", float64 {e}"))
        .unwrap_or_default();
    let ulp = match d.max_ulp {
        u64::MAX => "nan".to_string(),
        n => n.to_string(),
    };
    let dtype = output.recorded.dtype;
    format!(
        "{} at ({}): yours {} vs libtorch {}{float64}; max abs err {:.3e}, max rel err {:.3e}, max ulp {ulp}, {}/{} outside tolerance",
        output.output,
        index.join(", "),
        shortest(worst.actual, dtype),
        shortest(worst.expected, dtype),
        d.max_abs,
        d.max_rel,
        d.mismatched,
        d.numel
    )
}

/// `value` (exact in `dtype`) in the fewest digits that give it back in `dtype`.
fn shortest(value: f64, dtype: DType) -> String {
    match dtype {
        DType::Float32 => (value as f32).to_string(),
        DType::Float16 => half::f16::from_f64(value).to_string(),
        DType::BFloat16 => half::bf16::from_f64(value).to_string(),
        _ => value.to_string(),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.totals();
        let gradients = self.cases.iter().filter(|c| c.gradient_checked).count();
        writeln!(f, "{} (gradients compared in {gradients})", self.summary())?;
        if t.passed == 0 && t.failed == 0 {
            writeln!(
                f,
                "nothing was checked: every one of the {} case(s) was skipped",
                t.skipped
            )?;
        }
        let groups = self.failure_groups();
        if !groups.is_empty() {
            writeln!(f, "failures, by kind, dtype and features:")?;
        }
        for group in groups.iter().take(LISTED) {
            writeln!(f, "  {group}: {} case(s)", group.cases.len())?;
            example(f, group.cases[0])?;
        }
        if groups.len() > LISTED {
            let rest: usize = groups[LISTED..].iter().map(|g| g.cases.len()).sum();
            writeln!(f, "  ... and {} more group(s), {rest} case(s)", groups.len() - LISTED)?;
        }
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for case in self.with_status(Status::Skipped) {
            *reasons.entry(case.report.note.as_str()).or_default() += 1;
        }
        let mut reasons: Vec<(&str, usize)> = reasons.into_iter().collect();
        reasons.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        if !reasons.is_empty() {
            writeln!(f, "skipped, by reason:")?;
        }
        for (reason, count) in reasons {
            writeln!(f, "  {count:>5}  {reason}")?;
        }
        Ok(())
    }
}
