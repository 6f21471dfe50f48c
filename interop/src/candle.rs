//! candle-nn's `loss::cross_entropy`, as a candle user calls it: (N, C)
//! logits, u32 class targets, the mean over the batch; the gradient through
//! a `Var` and `backward`. An ignored target is given as `u32::MAX`, the
//! index candle's `gather` reads as 0.

use candle_core::{DType, Device, Tensor, Var};
use ce_parity::kit::{self, Answer, CaseView, Feature, Reduction, Supports, Targets};

/// What `candle_nn::loss::cross_entropy` has: no weights, smoothing,
/// probability targets, other reductions or shapes.
pub fn supports() -> Supports {
    Supports::all()
        .dtypes([
            kit::DType::Float32,
            kit::DType::Float64,
            kit::DType::Float16,
            kit::DType::BFloat16,
        ])
        .reductions([Reduction::Mean])
        .without(Feature::Unbatched)
        .without(Feature::KDim)
        .without(Feature::ProbabilityTargets)
        .without(Feature::ClassWeights)
        .without(Feature::LabelSmoothing)
}

fn dtype(dtype: kit::DType) -> DType {
    match dtype {
        kit::DType::Float16 => DType::F16,
        kit::DType::BFloat16 => DType::BF16,
        kit::DType::Float64 => DType::F64,
        _ => DType::F32,
    }
}

pub fn answer(case: &CaseView) -> Answer {
    run(case).into()
}

fn run(case: &CaseView) -> candle_core::Result<Answer> {
    let Targets::Classes { classes, .. } = case.target else {
        return Ok(Answer::unsupported("probability targets"));
    };
    if !case.input.dtype.is_float() {
        return Ok(Answer::rejected("candle tensors of logits are floating"));
    }
    let device = Device::Cpu;
    let targets = classes
        .iter()
        .map(|&t| match t {
            t if t == case.ignore_index => Ok(u32::MAX),
            t => u32::try_from(t).map_err(|_| candle_core::Error::Msg(format!("negative class {t}"))),
        })
        .collect::<candle_core::Result<Vec<u32>>>()?;
    let targets = Tensor::from_vec(targets, classes.len(), &device)?;
    let logits = Tensor::from_vec(case.input.values.to_vec(), case.input.shape, &device)?;
    let logits = Var::from_tensor(&logits.to_dtype(dtype(case.input.dtype))?)?;
    let loss = candle_nn::loss::cross_entropy(logits.as_tensor(), &targets)?;
    let upstream = case.grad_output.map_or(1.0, |g| g.values[0]);
    let grads = loss.affine(upstream, 0.0)?.backward()?;
    let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let answer = Answer::scalar(value);
    Ok(match grads.get(logits.as_tensor()) {
        Some(grad) => answer.with_grad_input(grad.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?),
        None => answer,
    })
}
