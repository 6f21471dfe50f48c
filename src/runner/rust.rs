//! The pure-Rust loss as an implementation: a case in, an [`Outcome`] out.

use crate::fixtures::Values;
use half::{bf16, f16};

use super::outcome::{first_line, Outcome};
use crate::compare::{Overrides, Tolerance};
use crate::fixtures::{Case, LossKind, CLIP_STEP_GRADS};
use crate::loss::{
    self, check_signature, check_smoothing_shapes, Element, LossError, Options, Signature, Target, View,
};
use crate::tensor::{DType, Data, Tensor};

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
        LossKind::Clip { .. } | LossKind::ClipStep { .. } => false,
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
    if case.weight.as_ref().is_some_and(|w| w.shape.len() != 1) && matches!(outcome, Outcome::Values(Values { .. })) {
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
        LossKind::ClipStep { logit_scale } => run_clip_step::<T>(case, logit_scale),
    }
}

/// A `clip_step` case (input: image_embeds, target: text_embeds) through
/// [`loss::clip_step`]; its gradients are named.
fn run_clip_step<T: Element>(case: &Case, logit_scale: f64) -> Outcome {
    if case.target.dtype != case.input.dtype {
        return Outcome::Skipped(format!(
            "text_embeds is {} but image_embeds is {}; mixed dtypes are not supported",
            case.target.dtype, case.input.dtype
        ));
    }
    let image: Vec<T> = typed(&case.input);
    let text: Vec<T> = typed(&case.target);
    let grad_output = match &case.grad_output {
        None => None,
        Some(g) if g.numel() == 1 => Some(T::from_f64(g.to_f64()[0])),
        Some(g) => return Outcome::Error(format!("grad_output must have the loss's shape [], got {:?}", g.shape)),
    };
    let step = loss::clip_step(
        View::new(&image, &case.input.shape),
        View::new(&text, &case.target.shape),
        T::from_f64(logit_scale),
        case.label_smoothing,
        grad_output,
    );
    match step {
        Ok(step) => {
            let [image_name, text_name, scale_name] = CLIP_STEP_GRADS;
            Outcome::Values(Values {
                loss: to_tensor(&[step.loss], &[]),
                grad_input: None,
                grad_target: None,
                named_grads: vec![
                    (image_name, to_tensor(&step.grad_image_embeds, &case.input.shape)),
                    (text_name, to_tensor(&step.grad_text_embeds, &case.target.shape)),
                    (scale_name, to_tensor(&[step.grad_logit_scale], &[])),
                ],
            })
        }
        Err(e) => Outcome::Error(first_line(&e.to_string())),
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
        Ok((loss, grad)) => Outcome::Values(Values {
            loss: to_tensor(&[loss], &[]),
            grad_input: Some(to_tensor(&grad, &case.input.shape)),
            grad_target: None,
            named_grads: Vec::new(),
        }),
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
        Ok(Outcome::Values(Values {
            loss: to_tensor(&loss.values, &loss.shape),
            grad_input: Some(to_tensor(&grads.input, &case.input.shape)),
            grad_target: grads.target.map(|g| to_tensor(&g, &case.input.shape)),
            named_grads: Vec::new(),
        }))
    })();
    result.unwrap_or_else(|e| Outcome::Error(first_line(&e.to_string())))
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
