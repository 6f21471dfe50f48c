//! One runner for every case (PyTorch OpInfo's shape): the case is data, the
//! implementations are functions from a case to an [`Outcome`], and [`judge`]
//! compares every pair that is available.

use half::{bf16, f16};

use crate::compare::{compare, Difference, Overrides, Tolerance};
use crate::fixtures::{Case, Claim, LossKind, Quantity, Recorded};
use crate::loss::{
    self, check_signature, check_smoothing_shapes, Element, LossError, Options, Signature, Target, View,
};
use crate::tensor::{DType, Data, Tensor};

/// What one implementation made of a case.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The implementation computed the case.
    Values {
        /// The loss, shaped as the case's reduction makes it.
        loss: Tensor,
        /// d(loss·grad_output)/d input; None when not computed.
        grad_input: Option<Tensor>,
        /// The same w.r.t. a probability target; None for class targets.
        grad_target: Option<Tensor>,
    },
    /// The first line of the error message.
    Error(String),
    /// This implementation cannot run the case (e.g. an unsupported dtype mix).
    Skipped(String),
}

impl Outcome {
    /// The outcome a fixture's `expected` records.
    pub fn from_recorded(recorded: &Recorded) -> Outcome {
        match recorded {
            Recorded::Values {
                loss,
                grad_input,
                grad_target,
            } => Outcome::Values {
                loss: loss.clone(),
                grad_input: grad_input.clone(),
                grad_target: grad_target.clone(),
            },
            Recorded::Error(e) => Outcome::Error(e.clone()),
        }
    }

    /// The outcome as a fixture's `expected` result; None for a skip.
    pub fn to_recorded(&self) -> Option<Recorded> {
        match self {
            Outcome::Values {
                loss,
                grad_input,
                grad_target,
            } => Some(Recorded::Values {
                loss: loss.clone(),
                grad_input: grad_input.clone(),
                grad_target: grad_target.clone(),
            }),
            Outcome::Error(e) => Some(Recorded::Error(e.clone())),
            Outcome::Skipped(_) => None,
        }
    }
}

/// An implementation of the loss under test: a case in, an outcome out.
pub type Implementation<'a> = &'a (dyn Fn(&Case) -> Outcome + Sync);

/// First line of a message.
pub fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("").trim_end().to_string()
}

/// The tolerance `check` judges a case with: assert_close's for the input's
/// dtype (float32's for a non-floating input, which only a rejection has),
/// with the user's `--rtol`/`--atol` over it.
pub fn tolerance(case: &Case, overrides: Overrides) -> Tolerance {
    let dtype = if case.input.dtype.is_float() {
        case.input.dtype
    } else {
        DType::Float32
    };
    overrides.for_dtype(dtype)
}

/// The dtypes and shapes of a case, as the loss's validation sees them.
fn signature(case: &Case) -> Signature<'_> {
    Signature {
        input: (case.input.dtype, &case.input.shape),
        target: (case.target.dtype, &case.target.shape),
        weight: case.weight.as_ref().map(|w| (w.dtype, w.shape.as_slice())),
        ignore_index: case.ignore_index,
        label_smoothing: case.label_smoothing,
        reduction: case.reduction,
    }
}

/// Runs a case through the pure-Rust loss: forward and gradient.
pub fn run_rust(case: &Case) -> Outcome {
    let sig = signature(case);
    // A contrastive case has no target or weight to validate here; its loss
    // validates the similarity matrix.
    let probabilities = match case.loss {
        LossKind::Clip { .. } => false,
        LossKind::CrossEntropy => match check_signature(&sig) {
            Ok(accepted) => accepted.probabilities,
            Err(e) => return Outcome::Error(first_line(&e.to_string())),
        },
    };
    // libtorch promotes mixed dtypes where it accepts them (probability
    // targets, grad_output); the typed loss has one element type.
    let dtype = case.input.dtype;
    let mixed = [
        ("target", probabilities.then_some(&case.target)),
        ("weight", case.weight.as_ref().filter(|_| probabilities)),
        ("grad_output", case.grad_output.as_ref()),
    ];
    for (field, tensor) in mixed {
        if let Some(t) = tensor.filter(|t| t.dtype != dtype) {
            return Outcome::Skipped(format!(
                "{field} is {} but input is {dtype}; mixed dtypes are not supported",
                t.dtype
            ));
        }
    }
    let outcome = match dtype {
        DType::Float32 => run_typed::<f32>(case),
        DType::Float64 => run_typed::<f64>(case),
        DType::Float16 => run_typed::<f16>(case),
        DType::BFloat16 => run_typed::<bf16>(case),
        other => return Outcome::Skipped(format!("input dtype {other} is not floating")),
    };
    // A weight that is not 1-D passes nll_loss2d's numel check, but libtorch's
    // smoothing term cannot use it; the typed call saw it flattened.
    if case.weight.as_ref().is_some_and(|w| w.shape.len() != 1) && matches!(outcome, Outcome::Values { .. }) {
        if let Err(e) = check_smoothing_shapes(&sig, true) {
            return Outcome::Error(first_line(&e.to_string()));
        }
    }
    outcome
}

/// The case in element type T, through the loss it names.
fn run_typed<T: Element>(case: &Case) -> Outcome {
    match case.loss {
        LossKind::CrossEntropy => run_cross_entropy::<T>(case),
        LossKind::Clip { temperature } => run_clip::<T>(case, temperature),
    }
}

/// A `clip` case through [`loss::clip_loss_with_grad`].
fn run_clip<T: Element>(case: &Case, temperature: f64) -> Outcome {
    let similarity: Vec<T> = typed(&case.input);
    let grad_output = match &case.grad_output {
        None => None,
        Some(g) if g.numel() == 1 => Some(T::from_f64(g.to_f64()[0])),
        Some(g) => return Outcome::Error(format!("grad_output must have the loss's shape [], got {:?}", g.shape)),
    };
    let view = View::new(&similarity, &case.input.shape);
    match loss::clip_loss_with_grad(view, temperature, case.label_smoothing, grad_output) {
        Ok((loss, grad)) => Outcome::Values {
            loss: to_tensor(&[loss], &[]),
            grad_input: Some(to_tensor(&grad, &case.input.shape)),
            grad_target: None,
        },
        Err(e) => Outcome::Error(first_line(&e.to_string())),
    }
}

fn typed<T: Element>(t: &Tensor) -> Vec<T> {
    t.to_f64().into_iter().map(T::from_f64).collect()
}

fn to_tensor<T: Element>(values: &[T], shape: &[usize]) -> Tensor {
    Tensor::float(T::DTYPE, shape.to_vec(), values.iter().map(|v| v.to_f64()).collect())
}

fn run_cross_entropy<T: Element>(case: &Case) -> Outcome {
    let input: Vec<T> = typed(&case.input);
    let weight: Option<Vec<T>> = case.weight.as_ref().map(typed);
    let grad_output: Option<Vec<T>> = case.grad_output.as_ref().map(typed);
    let (ints, bytes, probabilities): (Vec<i64>, Vec<u8>, Vec<T>) = match (&case.target.data, case.target.dtype) {
        (Data::Int(v), DType::UInt8) => (vec![], v.iter().map(|&x| x as u8).collect(), vec![]),
        (Data::Int(v), _) => (v.clone(), vec![], vec![]),
        (Data::Float(_), _) => (vec![], vec![], typed(&case.target)),
    };
    let target_shape = case.target.shape.as_slice();
    let target = match case.target.dtype {
        DType::UInt8 => Target::ClassesU8(View::new(&bytes, target_shape)),
        DType::Int64 => Target::Classes(View::new(&ints, target_shape)),
        _ => Target::Probabilities(View::new(&probabilities, target_shape)),
    };
    let options = Options {
        weight: weight.as_deref(),
        ignore_index: case.ignore_index,
        reduction: case.reduction,
        label_smoothing: case.label_smoothing,
    };
    let view = View::new(&input, &case.input.shape);
    let result = (|| -> Result<Outcome, LossError> {
        let loss = loss::cross_entropy(view, target, &options)?;
        let go_shape = case.grad_output.as_ref().map(|g| g.shape.clone()).unwrap_or_default();
        let grad_view = grad_output.as_deref().map(|g| View::new(g, &go_shape));
        let grads = loss::cross_entropy_backward(view, target, &options, grad_view)?;
        Ok(Outcome::Values {
            loss: to_tensor(&loss.values, &loss.shape),
            grad_input: Some(to_tensor(&grads.input, &case.input.shape)),
            grad_target: grads.target.map(|g| to_tensor(&g, &case.input.shape)),
        })
    })();
    result.unwrap_or_else(|e| Outcome::Error(first_line(&e.to_string())))
}

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

/// One comparison between two outcomes, e.g. "rust vs libtorch".
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// The two sides: "rust", "libtorch" or "expected".
    pub between: (&'static str, &'static str),
    /// Whether the two agree within tolerance (or reject with the same message).
    pub passed: bool,
    /// The largest differences between their values.
    pub difference: Difference,
    /// Why it failed, in words (empty when it passed).
    pub detail: String,
}

/// A claim, audited.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimReport {
    /// The claim as the fixture states it.
    pub claim: Claim,
    /// The value computed here; None when it cannot be computed.
    pub actual: Option<Vec<f64>>,
    /// Whether every claimed value is within the claim's `atol` of `actual`.
    pub holds: bool,
    /// Flat indices of the values that do not hold.
    pub wrong: Vec<usize>,
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
    /// Why the case failed or was skipped.
    pub note: String,
    /// The case's claims, audited.
    pub claims: Vec<ClaimReport>,
    /// The loss (first value) from the most trusted source: libtorch, else recorded, else Rust.
    pub loss: Option<Tensor>,
}

/// Compares every available pair among Rust, live libtorch and the recorded values.
pub fn judge(case: &Case, rust: &Outcome, libtorch: Option<&Outcome>, tolerance: Tolerance) -> CaseReport {
    let recorded = case.expected.as_ref().map(|e| Outcome::from_recorded(&e.result));
    let mut comparisons = Vec::new();
    let mut note = String::new();
    let sides: Vec<(&'static str, &Outcome)> = [
        Some(("rust", rust)),
        libtorch.map(|o| ("libtorch", o)),
        recorded.as_ref().map(|o| ("expected", o)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let skipped: Vec<String> = sides
        .iter()
        .filter_map(|(who, o)| match o {
            Outcome::Skipped(why) => Some(format!("{who}: {why}")),
            _ => None,
        })
        .collect();
    for i in 0..sides.len() {
        for j in i + 1..sides.len() {
            if let Some(c) = compare_outcomes(sides[i], sides[j], tolerance) {
                comparisons.push(c);
            }
        }
    }
    let mut difference = Difference::default();
    for c in &comparisons {
        difference.merge(&c.difference);
    }
    let failed: Vec<&Comparison> = comparisons.iter().filter(|c| !c.passed).collect();
    let status = if !failed.is_empty() {
        note = failed
            .iter()
            .map(|c| format!("{} vs {}: {}", c.between.0, c.between.1, c.detail))
            .collect::<Vec<_>>()
            .join("; ");
        Status::Failed
    } else if !skipped.is_empty() || comparisons.is_empty() {
        note = if skipped.is_empty() {
            "nothing to compare with (no libtorch, nothing recorded)".into()
        } else {
            skipped.join("; ")
        };
        Status::Skipped
    } else {
        Status::Passed
    };
    let best = [libtorch, recorded.as_ref(), Some(rust)]
        .into_iter()
        .flatten()
        .find_map(|o| match o {
            Outcome::Values { loss, .. } => Some(loss.clone()),
            _ => None,
        });
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
        claims,
        loss: best,
    }
}

fn compare_outcomes(
    a: (&'static str, &Outcome),
    b: (&'static str, &Outcome),
    tolerance: Tolerance,
) -> Option<Comparison> {
    let between = (a.0, b.0);
    let (passed, difference, detail) = match (a.1, b.1) {
        (Outcome::Skipped(_), _) | (_, Outcome::Skipped(_)) => return None,
        (Outcome::Error(x), Outcome::Error(y)) => {
            let same = first_line(x) == first_line(y);
            (
                same,
                Difference::default(),
                if same {
                    String::new()
                } else {
                    format!("errors differ: {x:?} vs {y:?}")
                },
            )
        }
        (Outcome::Error(x), Outcome::Values { .. }) => (
            false,
            Difference::default(),
            format!("{} rejects ({x:?}), {} computes", a.0, b.0),
        ),
        (Outcome::Values { .. }, Outcome::Error(y)) => (
            false,
            Difference::default(),
            format!("{} computes, {} rejects ({y:?})", a.0, b.0),
        ),
        (Outcome::Values { .. }, Outcome::Values { .. }) => {
            let mut difference = Difference::default();
            let mut problems = Vec::new();
            for (what, x, y) in paired_tensors(a.1, b.1) {
                let d = compare(x, y, tolerance);
                if let Some((sx, sy)) = &d.shape_mismatch {
                    problems.push(format!("{what} shapes differ: {sx:?} vs {sy:?}"));
                } else if d.mismatched > 0 {
                    problems.push(format!(
                        "{what}: {} element(s) outside tolerance, max abs err {:.3e}",
                        d.mismatched, d.max_abs
                    ));
                }
                difference.merge(&d);
            }
            (problems.is_empty(), difference, problems.join(", "))
        }
    };
    Some(Comparison {
        between,
        passed,
        difference,
        detail,
    })
}

/// Computes a claimed quantity here (closed form, or the Rust loss, which the
/// same case checks against libtorch) and tests the claim. `loss` is the
/// case's loss from the most trusted source at hand, for [`Quantity::Loss`].
pub fn audit_claim(case: &Case, claim: &Claim, loss: Option<&Tensor>) -> ClaimReport {
    let actual: Option<Vec<f64>> = match claim.quantity {
        Quantity::Loss => loss.map(Tensor::to_f64),
        Quantity::LossPerSample => {
            let mut per_sample = case.clone();
            per_sample.reduction = loss::Reduction::None;
            match run_rust(&per_sample) {
                Outcome::Values { loss, .. } => Some(loss.to_f64()),
                _ => None,
            }
        }
        Quantity::Softmax => softmax(&case.input),
        Quantity::SmoothedTarget => smoothed_target(case),
    };
    let tolerance = Tolerance {
        rtol: 0.0,
        atol: claim.atol,
    };
    let wrong: Vec<usize> = match &actual {
        Some(a) if a.len() == claim.value.len() => a
            .iter()
            .zip(&claim.value)
            .enumerate()
            .filter(|(_, (a, c))| !tolerance.close(**a, **c))
            .map(|(i, _)| i)
            .collect(),
        _ => (0..claim.value.len()).collect(),
    };
    ClaimReport {
        claim: claim.clone(),
        holds: wrong.is_empty() && actual.is_some(),
        actual,
        wrong,
    }
}

/// Geometry of the class dim: (outer, classes, inner); None for a 0-d shape.
pub fn class_geometry(shape: &[usize]) -> Option<(usize, usize, usize)> {
    match shape.len() {
        0 => None,
        1 => Some((1, shape[0], 1)),
        _ => Some((shape[0], shape[1], shape[2..].iter().product())),
    }
}

/// softmax over the class dim, in f64; None for a 0-d input.
pub fn softmax(input: &Tensor) -> Option<Vec<f64>> {
    let (outer, classes, inner) = class_geometry(&input.shape)?;
    let x = input.to_f64();
    let mut out = vec![0.0; x.len()];
    for b in 0..outer {
        for s in 0..inner {
            let at = |c: usize| b * classes * inner + c * inner + s;
            let max = (0..classes).map(|c| x[at(c)]).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..classes).map(|c| (x[at(c)] - max).exp()).sum();
            for c in 0..classes {
                out[at(c)] = (x[at(c)] - max).exp() / sum;
            }
        }
    }
    Some(out)
}

/// q = t·(1−ε) + ε/C, with t one-hot for index targets (all zero for ignored
/// rows); None when the target does not fit the input or a class is out of range.
pub fn smoothed_target(case: &Case) -> Option<Vec<f64>> {
    let (outer, classes, inner) = class_geometry(&case.input.shape)?;
    let e = case.label_smoothing.max(0.0);
    let mut t = vec![0.0; case.input.numel()];
    match &case.target.data {
        Data::Float(v) if v.len() == t.len() => t.clone_from(v),
        Data::Int(v) if v.len() == outer * inner => {
            for (p, &y) in v.iter().enumerate() {
                if y == case.ignore_index {
                    continue;
                }
                let (b, s) = (p / inner, p % inner);
                if y < 0 || y as usize >= classes {
                    return None;
                }
                t[b * classes * inner + y as usize * inner + s] = 1.0;
            }
            let q = t.iter().map(|&x| x * (1.0 - e) + e / classes as f64).collect();
            return Some(q);
        }
        _ => return None,
    }
    Some(t.iter().map(|&x| x * (1.0 - e) + e / classes as f64).collect())
}

/// The case with every floating tensor in float64 (values are exact).
pub fn in_float64(case: &Case) -> Case {
    let widen = |t: &Tensor| {
        if t.dtype.is_float() {
            Tensor::float(DType::Float64, t.shape.clone(), t.to_f64())
        } else {
            t.clone()
        }
    };
    Case {
        input: widen(&case.input),
        target: widen(&case.target),
        weight: case.weight.as_ref().map(widen),
        grad_output: case.grad_output.as_ref().map(widen),
        expected: None,
        claims: Vec::new(),
        ..case.clone()
    }
}

/// Settles a float32 disagreement in values with the reference's own float64
/// result. libtorch's float32 pipeline (log-probabilities rounded to float32,
/// float32 sums over thousands of classes) can be further from its own
/// float64 answer than assert_close's float32 tolerance, or so near its edge
/// that a more accurate result lands outside it. When the implementation is
/// within tolerance of that float64 answer and at least as close to it as the
/// reference's float32 answer (in units of the tolerance, element by element),
/// and the reference is within plausible float32 rounding of it (1e-4 plus 16
/// float32 ULPs of the largest logit), the disagreement is the reference's rounding,
/// and the case passes with a note saying so. Anything else stays failed.
pub fn arbitrate(
    report: CaseReport,
    case: &Case,
    actual: &Outcome,
    reference: &Outcome,
    reference_f64: &Outcome,
    tolerance: Tolerance,
) -> CaseReport {
    let values_only = report
        .comparisons
        .iter()
        .filter(|c| !c.passed)
        .all(|c| c.between.0 == "rust" && c.detail.contains("outside tolerance") && !c.detail.contains("shapes"));
    if report.status != Status::Failed || case.input.dtype != DType::Float32 || !values_only {
        return report;
    }
    let (Some(ours), Some(theirs)) = (
        compare_outcomes(("rust", actual), ("libtorch float64", reference_f64), tolerance),
        compare_outcomes(("libtorch", reference), ("libtorch float64", reference_f64), tolerance),
    ) else {
        return report;
    };
    // Rust must be within tolerance of libtorch's float64 answer and at least
    // as close to it as libtorch's own float32 answer, and the reference's
    // distance must look like rounding (a corrupted recorded value does not).
    // float32 rounds log-probabilities to a few ULPs of the largest logit, and
    // p = exp(lp) carries that as a relative error.
    let largest = case
        .input
        .to_f64()
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let slack = 1e-4 + 16.0 * f32::EPSILON as f64 * largest;
    let rounding = Tolerance {
        rtol: slack,
        atol: slack,
    };
    let plausible =
        compare_outcomes(("reference", reference), ("float64", reference_f64), rounding).is_some_and(|c| c.passed);
    let closer = scaled_error(actual, reference_f64, tolerance) <= scaled_error(reference, reference_f64, tolerance);
    if !ours.passed || !closer || !plausible {
        return report;
    }
    CaseReport {
        status: Status::Passed,
        note: format!(
            "libtorch's float32 rounding: {:.1e} from its own float64 result (Rust {:.1e})",
            theirs.difference.max_abs, ours.difference.max_abs
        ),
        ..report
    }
}

/// `check`'s verdict on one case: [`judge`], then [`arbitrate`] a float32
/// disagreement in values with a float64 run of the case — libtorch's when it
/// runs live, else (recorded values only) the Rust loss's own float64 path.
pub fn verdict(
    case: &Case,
    rust: &Outcome,
    libtorch: Option<&Outcome>,
    run_float64: impl FnOnce(&Case) -> Outcome,
    tolerance: Tolerance,
) -> CaseReport {
    let report = judge(case, rust, libtorch, tolerance);
    if report.status != Status::Failed || case.input.dtype != DType::Float32 {
        return report;
    }
    let recorded = case.expected.as_ref().map(|e| Outcome::from_recorded(&e.result));
    let Some(reference) = libtorch.or(recorded.as_ref()) else {
        return report;
    };
    let precise = run_float64(&in_float64(case));
    arbitrate(report, case, rust, reference, &precise, tolerance)
}

/// The largest |a − e| / (atol + rtol·|e|) over the loss and gradients: 1 is
/// the edge of the tolerance, so values of different scales weigh alike.
fn scaled_error(actual: &Outcome, expected: &Outcome, tolerance: Tolerance) -> f64 {
    if !matches!((actual, expected), (Outcome::Values { .. }, Outcome::Values { .. })) {
        return f64::INFINITY;
    }
    let mut worst = 0.0f64;
    for (_, a, e) in paired_tensors(actual, expected) {
        for (a, e) in a.to_f64().into_iter().zip(e.to_f64()) {
            if (a.is_nan() && e.is_nan()) || a == e {
                continue;
            }
            worst = worst.max((a - e).abs() / (tolerance.atol + tolerance.rtol * e.abs()));
        }
    }
    if worst.is_nan() {
        f64::INFINITY
    } else {
        worst
    }
}

/// The tensors two computed outcomes both have — loss, and each gradient
/// present on both sides — named; nothing for an error or a skip.
fn paired_tensors<'a>(a: &'a Outcome, b: &'a Outcome) -> Vec<(&'static str, &'a Tensor, &'a Tensor)> {
    let tensors = |o: &'a Outcome| match o {
        Outcome::Values {
            loss,
            grad_input,
            grad_target,
        } => [
            ("loss", Some(loss)),
            ("grad_input", grad_input.as_ref()),
            ("grad_target", grad_target.as_ref()),
        ],
        _ => [("loss", None), ("grad_input", None), ("grad_target", None)],
    };
    tensors(a)
        .into_iter()
        .zip(tensors(b))
        .filter_map(|((what, x), (_, y))| Some((what, x?, y?)))
        .collect()
}
