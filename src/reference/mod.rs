//! The reference: libtorch's own `cross_entropy_loss` through `tch`, with the
//! gradient from autograd on `(loss * grad_output).sum()`. libtorch's
//! rejections come back as errors carrying the first line of its message.
//! [`steps`] computes `explain`'s closed-form steps with libtorch's ops.

pub mod steps;

mod clip;
mod clip_step;
mod error;

pub use error::ReferenceError;

use crate::fixtures::Values;
use tch::{Kind, Tensor as TchTensor};

use crate::fixtures::{Case, LossKind};
use crate::runner::{first_line, Outcome};
use crate::tensor::{DType, Data, Tensor};

/// `"libtorch <version> via tch <version>"`, as recorded in fixtures'
/// `expected.producer`.
pub fn producer() -> String {
    format!(
        "libtorch {} via tch {}",
        libtorch_version(),
        env!("CE_PARITY_TCH_VERSION")
    )
}

/// The version of the libtorch this build links (read by build.rs from the
/// installation; "unknown" if it could not tell).
pub fn libtorch_version() -> &'static str {
    env!("CE_PARITY_LIBTORCH_VERSION")
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
pub fn from_torch(t: &TchTensor) -> Result<Tensor, ReferenceError> {
    let dtype = dtype(t.kind()).ok_or_else(|| ReferenceError::Dtype(format!("{:?}", t.kind())))?;
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let flat = t.f_contiguous().and_then(|c| c.f_view([-1i64]))?;
    if dtype.is_float() {
        let values = flat.f_to_kind(Kind::Double)?;
        let values = Vec::<f64>::try_from(&values)?;
        Ok(Tensor::float(dtype, shape, values))
    } else {
        let values = flat.f_to_kind(Kind::Int64)?;
        Ok(Tensor::int(dtype, shape, Vec::<i64>::try_from(&values)?))
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
        Err(error) => Outcome::Error(first_line(&error.to_string())),
    }
}

fn run(case: &Case) -> Result<Outcome, ReferenceError> {
    let input = leaf(&case.input)?;
    let target = leaf(&case.target)?;
    let weight = case.weight.as_ref().map(to_torch).transpose()?;
    let target_is_float = case.target.dtype.is_float();
    let loss = input.f_cross_entropy_loss(
        &target,
        weight.as_ref(),
        reduction(case.reduction),
        case.ignore_index,
        case.label_smoothing,
    )?;
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
    Ok(Outcome::Values(Values {
        loss,
        grad_input: Some(grad_input),
        grad_target,
        named_grads: Vec::new(),
    }))
}

/// A libtorch copy of `t` that records gradients when it is floating. Only
/// floating tensors can; an integer input is left as is, so that libtorch
/// itself rejects it in the op.
fn leaf(t: &Tensor) -> Result<TchTensor, ReferenceError> {
    let torch = to_torch(t)?;
    if t.dtype.is_float() {
        Ok(torch.f_set_requires_grad(true)?)
    } else {
        Ok(torch)
    }
}

/// The gradients of `(loss * grad_output).sum()` w.r.t. `wrt`, as
/// `loss.backward(grad_output)` gives them; `grad_output` defaults to ones.
fn backward(
    loss: &TchTensor,
    grad_output: Option<&Tensor>,
    wrt: &[&TchTensor],
) -> Result<Vec<TchTensor>, ReferenceError> {
    let grad_output = match grad_output {
        Some(g) => to_torch(g)?,
        None => loss.f_ones_like()?,
    };
    let total = loss.f_mul(&grad_output)?.f_sum(None::<Kind>)?;
    Ok(TchTensor::f_run_backward(&[&total], wrt, false, false)?)
}
