//! OpenCLIP's loss step explained: normalised embeddings, the scale, the
//! logits, each direction's smoothed cross-entropy, the loss, and the
//! gradients back to logit_scale and both embeddings — each step computed by
//! the crate's Rust ([`clip_step_forward`], [`clip_step`], the cross-entropy
//! under reduction "none", [`clip_loss_with_grad`]) and checked against
//! libtorch's value at the same point of the composition
//! ([`crate::reference::steps::clip_step`], autograd for the gradients).
//!
//! Without libtorch, the loss and the three gradients are checked against
//! the case's recorded values; the intermediate steps, which a fixture does
//! not record, are unchecked.

use crate::fixtures::Values;
use half::{bf16, f16};

use super::{Against, Check, ExplainError, Verdict};
use crate::compare::{compare, Difference, Tolerance};
use crate::fixtures::{Case, LossKind, Recorded};
use crate::loss::{
    clip_loss_with_grad, clip_step, clip_step_forward, cross_entropy, Element, LossError, Options, Reduction, Target,
    View, NORMALIZE_EPS,
};
use crate::runner::first_line;
use crate::tensor::{DType, Tensor};

/// One step of the CLIP step.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipStage {
    /// A short name for JSON: `image_features`, `logits`, `grad_logit_scale`, …
    pub name: &'static str,
    /// A title: "Normalise the image embeddings", …
    pub title: &'static str,
    /// The formula, with the case's ε, N and values.
    pub formula: String,
    /// The Rust values in the case's dtype: N×D, N×N, (N,) or 0-d.
    pub rust: Tensor,
    /// The reference's values (libtorch live, else recorded); None when unchecked.
    pub reference: Option<Tensor>,
    /// The Rust values against libtorch and the recorded values.
    pub check: Check,
}

/// A `clip_step` case explained step by step.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipStepExplanation<'a> {
    /// The case explained.
    pub case: &'a Case,
    /// logit_scale, as the case gives it.
    pub logit_scale: f64,
    /// The tolerance every step was judged with (the dtype's assert_close default).
    pub tolerance: Tolerance,
    /// Whether libtorch ran live.
    pub live: bool,
    /// The steps, in the order the composition computes them.
    pub steps: Vec<ClipStage>,
}

impl ClipStepExplanation<'_> {
    /// Disagree if any step disagrees, else agree if any step was checked,
    /// else unchecked.
    pub fn verdict(&self) -> Verdict {
        Verdict::of_steps(self.steps.iter().map(|s| s.check.verdict))
    }

    /// How many steps have `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.steps.iter().filter(|s| s.check.verdict == verdict).count()
    }

    /// N, the number of image–text pairs.
    pub fn pairs(&self) -> usize {
        self.case.input.shape.first().copied().unwrap_or(0)
    }
}

/// Explains a `clip_step` case, each step checked against libtorch (live,
/// when `against` asks and the build has it) and the case's recorded values.
///
/// # Errors
/// [`ExplainError::NotCrossEntropy`] (naming the loss) for a case of another
/// kind; [`ExplainError::Rejected`] when the step rejects the case (libtorch's
/// words); [`ExplainError::Unsupported`] for embeddings of differing or
/// non-floating dtypes.
///
/// # Example
/// ```
/// use ce_parity::explain::{explain_clip_step, Against, Verdict};
///
/// let steps = ce_parity::fixtures::bundled_file("fixtures/clip_step.json")?.unwrap();
/// let case = steps.cases.iter().find(|c| c.name == "clip_step/article/float32").unwrap();
/// let explained = explain_clip_step(case, Against::Recorded)?;
/// let grad = explained.steps.iter().find(|s| s.name == "grad_logit_scale").unwrap();
/// assert_eq!(grad.check.verdict, Verdict::Agree); // libtorch's recorded value
/// assert_eq!(explained.verdict(), Verdict::Agree);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn explain_clip_step(case: &Case, against: Against) -> Result<ClipStepExplanation<'_>, ExplainError> {
    let LossKind::ClipStep { logit_scale } = case.loss else {
        return Err(ExplainError::NotCrossEntropy {
            case: case.name.clone(),
            loss: case.loss.name(),
        });
    };
    let unsupported = |reason: String| ExplainError::Unsupported {
        case: case.name.clone(),
        reason,
    };
    if case.target.dtype != case.input.dtype {
        return Err(unsupported(format!(
            "text_embeds is {} but image_embeds is {}",
            case.target.dtype, case.input.dtype
        )));
    }
    let rust = match case.input.dtype {
        DType::Float32 => rust_steps::<f32>(case, logit_scale),
        DType::Float64 => rust_steps::<f64>(case, logit_scale),
        DType::Float16 => rust_steps::<f16>(case, logit_scale),
        DType::BFloat16 => rust_steps::<bf16>(case, logit_scale),
        other => return Err(unsupported(format!("image_embeds dtype {other} is not floating"))),
    }
    .map_err(|e| ExplainError::Rejected {
        case: case.name.clone(),
        message: first_line(&e.to_string()),
    })?;
    let live = match against {
        Against::Libtorch => live_steps(case),
        Against::Recorded => None,
    };
    let recorded = match case.expected.as_ref().map(|e| &e.result) {
        Some(Recorded::Values(Values { loss, named_grads, .. })) => {
            let mut r: Vec<(&'static str, Tensor)> = named_grads.clone();
            r.push(("loss", loss.clone()));
            r
        }
        _ => Vec::new(),
    };
    let tolerance = Tolerance::default_for(case.input.dtype);
    let formulas = Formulas::new(case, logit_scale, &rust);
    let live_ok = live.as_ref().and_then(|l| l.as_ref().ok());
    let steps = rust
        .into_iter()
        .map(|(name, values)| {
            let from_libtorch = live_ok.and_then(|l| l.iter().find(|(n, _)| *n == name)).map(|(_, t)| t);
            let from_record = recorded.iter().find(|(n, _)| *n == name).map(|(_, t)| t);
            let check = check(&values, from_libtorch, from_record, tolerance, &live, against);
            ClipStage {
                name,
                title: title(name),
                formula: formulas.of(name),
                reference: from_libtorch.or(from_record).cloned(),
                rust: values,
                check,
            }
        })
        .collect();
    Ok(ClipStepExplanation {
        case,
        logit_scale,
        tolerance,
        live: live_ok.is_some(),
        steps,
    })
}

/// The step names, in order.
pub const CLIP_STAGES: [&str; 11] = [
    "image_features",
    "text_features",
    "scale",
    "logits",
    "image_losses",
    "text_losses",
    "loss",
    "grad_logits",
    "grad_logit_scale",
    "grad_image_embeds",
    "grad_text_embeds",
];

fn title(name: &str) -> &'static str {
    match name {
        "image_features" => "Normalise the image embeddings",
        "text_features" => "Normalise the text embeddings",
        "scale" => "The scale: exp(logit_scale)",
        "logits" => "Logits: scaled cosine similarities",
        "image_losses" => "Each image's smoothed cross-entropy over the texts (rows)",
        "text_losses" => "Each text's smoothed cross-entropy over the images (columns)",
        "loss" => "The loss: the mean of the two directions",
        "grad_logits" => "Gradient w.r.t. the logits",
        "grad_logit_scale" => "Gradient w.r.t. logit_scale",
        "grad_image_embeds" => "Gradient w.r.t. image_embeds",
        _ => "Gradient w.r.t. text_embeds",
    }
}

/// Every step's Rust values, by name, in the case's dtype.
fn rust_steps<T: Element>(case: &Case, logit_scale: f64) -> Result<Vec<(&'static str, Tensor)>, LossError> {
    let image: Vec<T> = case.input.to_f64().into_iter().map(T::from_f64).collect();
    let text: Vec<T> = case.target.to_f64().into_iter().map(T::from_f64).collect();
    let (image, text) = (
        View::new(&image, &case.input.shape),
        View::new(&text, &case.target.shape),
    );
    let scale = T::from_f64(logit_scale);
    let eps = case.label_smoothing;
    let grad_output = case.grad_output.as_ref().map(|g| T::from_f64(g.to_f64()[0]));
    let forward = clip_step_forward(image, text, scale, eps)?;
    let step = clip_step(image, text, scale, eps, grad_output)?;
    let (n, d) = (forward.n, forward.d);
    let labels: Vec<i64> = (0..n as i64).collect();
    let options = Options {
        label_smoothing: eps,
        reduction: Reduction::None,
        ..Options::default()
    };
    let square = [n, n];
    let per_row = |logits: &[T]| -> Result<Vec<T>, LossError> {
        let target = Target::Classes(View::new(&labels, &square[..1]));
        Ok(cross_entropy(View::new(logits, &square), target, &options)?.values)
    };
    let transposed: Vec<T> = (0..n * n).map(|k| forward.logits[(k % n) * n + k / n]).collect();
    let (_, grad_logits) = clip_loss_with_grad(View::new(&forward.logits, &square), 1.0, eps, grad_output)?;
    let t = |values: &[T], shape: &[usize]| {
        Tensor::float(T::DTYPE, shape.to_vec(), values.iter().map(|v| v.to_f64()).collect())
    };
    Ok(vec![
        ("image_features", t(&forward.image_features, &[n, d])),
        ("text_features", t(&forward.text_features, &[n, d])),
        ("scale", t(&[forward.scale], &[])),
        ("logits", t(&forward.logits, &square)),
        ("image_losses", t(&per_row(&forward.logits)?, &[n])),
        ("text_losses", t(&per_row(&transposed)?, &[n])),
        ("loss", t(&[forward.loss], &[])),
        ("grad_logits", t(&grad_logits, &square)),
        ("grad_logit_scale", t(&[step.grad_logit_scale], &[])),
        ("grad_image_embeds", t(&step.grad_image_embeds, &[n, d])),
        ("grad_text_embeds", t(&step.grad_text_embeds, &[n, d])),
    ])
}

/// libtorch's steps by name, or its first error line; None without libtorch.
type Live = Option<Result<Vec<(&'static str, Tensor)>, String>>;

#[cfg(feature = "torch")]
fn live_steps(case: &Case) -> Live {
    let s = match crate::reference::steps::clip_step(case) {
        Ok(s) => s,
        Err(e) => return Some(Err(first_line(&e.to_string()))),
    };
    Some(Ok(vec![
        ("image_features", s.image_features),
        ("text_features", s.text_features),
        ("scale", s.scale),
        ("logits", s.logits),
        ("image_losses", s.image_losses),
        ("text_losses", s.text_losses),
        ("loss", s.loss),
        ("grad_logits", s.grad_logits),
        ("grad_logit_scale", s.grad_logit_scale),
        ("grad_image_embeds", s.grad_image_embeds),
        ("grad_text_embeds", s.grad_text_embeds),
    ]))
}

#[cfg(not(feature = "torch"))]
fn live_steps(_case: &Case) -> Live {
    None
}

/// One step's Rust values against libtorch's and the recorded ones, by
/// assert_close's rule alone: stricter than `check`, whose verdict on the
/// loss and gradients also accepts two values both within libtorch's
/// rounding allowance of the float64 answer.
fn check(
    rust: &Tensor,
    libtorch: Option<&Tensor>,
    recorded: Option<&Tensor>,
    tolerance: Tolerance,
    live: &Live,
    against: Against,
) -> Check {
    let references: Vec<(&str, &Tensor)> = [("libtorch", libtorch), ("the recorded values", recorded)]
        .into_iter()
        .filter_map(|(who, t)| Some((who, t?)))
        .collect();
    if references.is_empty() {
        let why = match (live, against) {
            (Some(Err(e)), _) => format!("libtorch could not compute this step: {e}"),
            (_, Against::Recorded) => {
                "libtorch was not run, and fixtures record only the loss and the gradients".into()
            }
            (_, Against::Libtorch) => "this build has no libtorch (feature `torch` off), and fixtures record only \
                                        the loss and the gradients"
                .into(),
        };
        return Check {
            verdict: Verdict::Unchecked,
            against: String::new(),
            difference: None,
            note: format!("unchecked: {why}"),
        };
    }
    let mut difference = Difference::default();
    let mut failed = Vec::new();
    for (who, reference) in &references {
        let d = compare(rust, reference, tolerance);
        if !d.passed() {
            failed.push(match &d.shape_mismatch {
                Some((a, b)) => format!("{who}: shapes differ: Rust {a:?}, {who} {b:?}"),
                None => format!(
                    "{who}: {} value(s) outside tolerance, max abs err {:.3e}",
                    d.mismatched, d.max_abs
                ),
            });
        }
        difference.merge(&d);
    }
    Check {
        verdict: if failed.is_empty() {
            Verdict::Agree
        } else {
            Verdict::Disagree
        },
        against: references.iter().map(|(who, _)| *who).collect::<Vec<_>>().join(" and "),
        difference: Some(difference),
        note: failed.join("; "),
    }
}

/// The numbers the formulas quote.
struct Formulas {
    n: usize,
    d: usize,
    eps: f64,
    logit_scale: f64,
    scale: f64,
    image_mean: f64,
    text_mean: f64,
    grad_output: Option<f64>,
}

impl Formulas {
    fn new(case: &Case, logit_scale: f64, rust: &[(&'static str, Tensor)]) -> Formulas {
        let value = |name: &str| rust.iter().find(|(n, _)| *n == name).map(|(_, t)| t.to_f64());
        let mean = |name: &str| {
            let v = value(name).unwrap_or_default();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        Formulas {
            n: case.input.shape.first().copied().unwrap_or(0),
            d: case.input.shape.get(1).copied().unwrap_or(0),
            eps: case.label_smoothing,
            logit_scale,
            scale: value("scale").and_then(|v| v.first().copied()).unwrap_or(f64::NAN),
            image_mean: mean("image_losses"),
            text_mean: mean("text_losses"),
            grad_output: case.grad_output.as_ref().map(|g| g.to_f64()[0]),
        }
    }

    fn of(&self, name: &str) -> String {
        let Formulas { n, d, eps, .. } = *self;
        let num = super::plain_number;
        let (g, upstream) = match self.grad_output {
            Some(g) => ("g·", format!(", with the upstream gradient g = {}", num(g))),
            None => ("", String::new()),
        };
        match name {
            "image_features" => format!(
                "u[i] = image_embeds[i] / max(‖image_embeds[i]‖₂, {NORMALIZE_EPS:e})   (F.normalize, dim=-1; {n} rows of D = {d})"
            ),
            "text_features" => format!("v[j] = text_embeds[j] / max(‖text_embeds[j]‖₂, {NORMALIZE_EPS:e})"),
            "scale" => format!(
                "s = exp(logit_scale) = exp({}) = {}   (1/τ: logit_scale = ln(1/0.07) is τ = 0.07)",
                num(self.logit_scale),
                num(self.scale)
            ),
            "logits" => format!("logits[i,j] = s · u[i]·v[j]   ({n}×{n}: image i against text j; targets on the diagonal)"),
            "image_losses" => format!(
                "ℓ_img[i] = −Σ_j q[j]·log softmax(logits[i,:])_j, q[j] = (1−ε)·[j = i] + ε/N, ε = {}, N = {n}; mean {}",
                num(eps),
                num(self.image_mean)
            ),
            "text_losses" => format!(
                "ℓ_txt[j] = −Σ_i q[i]·log softmax(logits[:,j])_i, the same q over the columns; mean {}",
                num(self.text_mean)
            ),
            "loss" => format!(
                "loss = ½·(mean ℓ_img + mean ℓ_txt) = ½·({} + {})",
                num(self.image_mean),
                num(self.text_mean)
            ),
            "grad_logits" => format!(
                "dlogits[i,j] = {g}(softmax(logits[i,:])_j + softmax(logits[:,j])_i − 2·q[i,j]) / (2N){upstream}"
            ),
            "grad_logit_scale" => {
                "d logit_scale = Σ_ij dlogits[i,j]·logits[i,j]   (logits = s·u·vᵀ and ds/d logit_scale = s)".into()
            }
            "grad_image_embeds" => {
                "d image_embeds[i] = (du[i] − u[i]·(u[i]·du[i])) / ‖image_embeds[i]‖, du = s · dlogits @ v".into()
            }
            _ => "d text_embeds[j] = (dv[j] − v[j]·(v[j]·dv[j])) / ‖text_embeds[j]‖, dv = s · dlogitsᵀ @ u".into(),
        }
    }
}
