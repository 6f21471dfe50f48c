//! The reference: libtorch's own `cross_entropy_loss` through `tch`, with the
//! gradient from autograd on `(loss * grad_output).sum()`. libtorch's
//! rejections come back as errors carrying the first line of its message.
//! [`steps`] computes `explain`'s closed-form steps with libtorch's ops.

pub mod steps;

mod clip;
mod clip_step;

use tch::{Kind, Tensor as TchTensor};

use crate::fixtures::{Case, LossKind};
use crate::runner::{first_line, Outcome};
use crate::tensor::{DType, Data, Tensor};

/// `"libtorch <version>"`, as recorded in fixtures' `expected.producer`.
pub fn producer() -> String {
    format!("libtorch {} via tch 0.26", libtorch_version())
}

/// The libtorch version tch was built against.
pub fn libtorch_version() -> &'static str {
    // torch-sys refuses to build against any other version.
    "2.13.0"
}

fn kind(dtype: DType) -> Kind {
    match dtype {
        DType::Float16 => Kind::Half,
        DType::BFloat16 => Kind::BFloat16,
        DType::Float32 => Kind::Float,
        DType::Float64 => Kind::Double,
        DType::Int64 => Kind::Int64,
        DType::UInt8 => Kind::Uint8,
    }
}

fn dtype(kind: Kind) -> Option<DType> {
    Some(match kind {
        Kind::Half => DType::Float16,
        Kind::BFloat16 => DType::BFloat16,
        Kind::Float => DType::Float32,
        Kind::Double => DType::Float64,
        Kind::Int64 => DType::Int64,
        Kind::Uint8 => DType::UInt8,
        _ => return None,
    })
}

/// Our tensor as a libtorch tensor of the same dtype and shape.
pub fn to_torch(t: &Tensor) -> Result<TchTensor, tch::TchError> {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    let flat = match &t.data {
        // Values are already representable in the dtype, so the cast is exact.
        Data::Float(v) => TchTensor::from_slice(v).f_to_kind(kind(t.dtype))?,
        Data::Int(v) if t.dtype == DType::UInt8 => {
            TchTensor::from_slice(&v.iter().map(|&x| x as u8).collect::<Vec<u8>>())
        }
        Data::Int(v) => TchTensor::from_slice(v),
    };
    flat.f_reshape(shape)
}

/// A libtorch tensor as ours (values copied through f64, exact for every float dtype).
pub fn from_torch(t: &TchTensor) -> Result<Tensor, String> {
    let dtype = dtype(t.kind()).ok_or_else(|| format!("unexpected libtorch dtype {:?}", t.kind()))?;
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let flat = t
        .f_contiguous()
        .and_then(|c| c.f_view([-1i64]))
        .map_err(|e| e.to_string())?;
    if dtype.is_float() {
        let values = flat.f_to_kind(Kind::Double).map_err(|e| e.to_string())?;
        let values = Vec::<f64>::try_from(&values).map_err(|e| e.to_string())?;
        Ok(Tensor::float(dtype, shape, values))
    } else {
        let values = flat.f_to_kind(Kind::Int64).map_err(|e| e.to_string())?;
        Ok(Tensor::int(
            dtype,
            shape,
            Vec::<i64>::try_from(&values).map_err(|e| e.to_string())?,
        ))
    }
}

fn reduction(r: crate::loss::Reduction) -> tch::Reduction {
    match r {
        crate::loss::Reduction::None => tch::Reduction::None,
        crate::loss::Reduction::Mean => tch::Reduction::Mean,
        crate::loss::Reduction::Sum => tch::Reduction::Sum,
    }
}

/// Runs a case through libtorch: forward, then the gradient w.r.t. the input
/// (and w.r.t. a floating target).
pub fn run_libtorch(case: &Case) -> Outcome {
    let result = match case.loss {
        LossKind::CrossEntropy => run(case),
        LossKind::Clip { temperature } => clip::run(case, temperature),
        LossKind::ClipStep { logit_scale } => clip_step::run(case, logit_scale),
    };
    match result {
        Ok(outcome) => outcome,
        Err(message) => Outcome::Error(first_line(&message)),
    }
}

fn run(case: &Case) -> Result<Outcome, String> {
    let err = |e: tch::TchError| e.to_string();
    let input = leaf(&case.input)?;
    let target = leaf(&case.target)?;
    let weight = case.weight.as_ref().map(to_torch).transpose().map_err(err)?;
    let target_is_float = case.target.dtype.is_float();
    let loss = input
        .f_cross_entropy_loss(
            &target,
            weight.as_ref(),
            reduction(case.reduction),
            case.ignore_index,
            case.label_smoothing,
        )
        .map_err(|e| strip_tch_prefix(&e.to_string()))?;
    let mut wrt = vec![&input];
    if target_is_float {
        wrt.push(&target);
    }
    let grads = backward(&loss, case.grad_output.as_ref(), &wrt)?;
    let loss = from_torch(&loss.detach())?;
    let grad_input = from_torch(&grads[0])?;
    let grad_target = if target_is_float {
        Some(from_torch(&grads[1])?)
    } else {
        None
    };
    Ok(Outcome::Values {
        loss,
        grad_input: Some(grad_input),
        grad_target,
        named_grads: Vec::new(),
    })
}

/// A libtorch copy of `t` that records gradients when it is floating. Only
/// floating tensors can; an integer input is left as is, so that libtorch
/// itself rejects it in the op.
fn leaf(t: &Tensor) -> Result<TchTensor, String> {
    let err = |e: tch::TchError| e.to_string();
    let torch = to_torch(t).map_err(err)?;
    if t.dtype.is_float() {
        torch.f_set_requires_grad(true).map_err(err)
    } else {
        Ok(torch)
    }
}

/// The gradients of `(loss * grad_output).sum()` w.r.t. `wrt`, as
/// `loss.backward(grad_output)` gives them; `grad_output` defaults to ones.
fn backward(loss: &TchTensor, grad_output: Option<&Tensor>, wrt: &[&TchTensor]) -> Result<Vec<TchTensor>, String> {
    let err = |e: tch::TchError| strip_tch_prefix(&e.to_string());
    let grad_output = match grad_output {
        Some(g) => to_torch(g).map_err(err)?,
        None => loss.f_ones_like().map_err(err)?,
    };
    let total = loss
        .f_mul(&grad_output)
        .map_err(err)?
        .f_sum(None::<Kind>)
        .map_err(err)?;
    TchTensor::f_run_backward(&[&total], wrt, false, false).map_err(err)
}

/// tch prefixes libtorch's `what()` with "Internal torch error: "; keep libtorch's words.
fn strip_tch_prefix(message: &str) -> String {
    message
        .strip_prefix("Internal torch error: ")
        .unwrap_or(message)
        .to_string()
}
