//! burn's `CrossEntropyLossConfig` (weights, smoothing, pad_tokens) and
//! `cross_entropy_with_logits` for probability targets, as a burn user calls
//! them: (N, C) logits on the ndarray backend with autodiff, the mean loss
//! (a `[1]` tensor), the gradient through `backward`.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::loss::cross_entropy_with_logits;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use ce_parity::kit::{self, Answer, CaseView, Feature, Reduction, Supports, Targets};

/// What burn's loss can be asked: the mean of (N, C) float32 logits (the
/// device's default float; it is set once per process), `Int` targets,
/// weights and ε as `f32`, pad tokens as `usize`; probability targets
/// without weights, smoothing or an ignore_index.
pub fn supports() -> Supports {
    Supports::all()
        .dtypes([kit::DType::Float32])
        .reductions([Reduction::Mean])
        .without(Feature::Unbatched)
        .without(Feature::KDim)
        .without(Feature::MixedDtypes)
        .skip_when(|case| match case.target {
            Targets::Classes {
                dtype: kit::DType::UInt8,
                ..
            } => Some("uint8 targets".into()),
            Targets::Probabilities(_) if case.weight.is_some() || case.label_smoothing != 0.0 => {
                Some("probability targets with weights or smoothing".into())
            }
            Targets::Probabilities(_) if case.ignore_index != -100 => {
                Some("probability targets with an ignore_index".into())
            }
            _ => None,
        })
        .skip_when(|case| {
            (case.ignore_index < 0 && case.has(Feature::IgnoredTargets)).then(|| "negative ignore_index".into())
        })
        .skip_when(|case| {
            let eps = case.label_smoothing;
            (eps > 1.0 && eps as f32 <= 1.0).then(|| "ε above 1 by less than f32 can tell".into())
        })
}

pub fn answer(case: &CaseView) -> Answer {
    // ndarray, as burn 0.22 users on the CPU have it (deprecated for flex in 0.22).
    #[allow(deprecated)]
    let device = Device::ndarray().autodiff();
    if case.input.dtype != kit::DType::Float32 {
        return Answer::rejected("burn's logits are a float tensor");
    }
    let dtype = DType::F32;
    let floats = |values: &[f64], shape: &[usize]| {
        Tensor::<2>::from_data(TensorData::new(values.to_vec(), shape.to_vec()), (&device, dtype))
    };
    let [n, c] = [case.input.shape[0], case.input.shape[1]];
    let logits = floats(case.input.values, &[n, c]).require_grad();
    let loss = match case.target {
        Targets::Probabilities(p) => cross_entropy_with_logits(logits.clone(), floats(p.values, &[n, c])),
        Targets::Classes { classes, .. } => {
            let targets = Tensor::<1, Int>::from_data(TensorData::new(classes.to_vec(), [n]), &device);
            let config = CrossEntropyLossConfig::new()
                .with_weights(case.weight.map(|w| w.values.iter().map(|&v| v as f32).collect()))
                .with_smoothing((case.label_smoothing != 0.0).then_some(case.label_smoothing as f32))
                .with_pad_tokens((case.ignore_index >= 0).then(|| vec![case.ignore_index as usize]));
            config.init(&device).forward(logits.clone(), targets)
        }
    };
    let upstream = case.grad_output.map_or(1.0, |g| g.values[0]);
    let grads = loss.clone().mul_scalar(upstream).backward();
    let values = |t: Tensor<2>| t.into_data().try_into_vec_as::<f64>();
    let value = loss.into_data().try_into_vec_as::<f64>();
    let grad = logits.grad(&grads).map(values);
    match (value, grad) {
        // burn's mean is shaped [1]; PyTorch's is 0-d.
        (Ok(value), Some(Ok(grad))) => Answer::scalar(value[0]).with_grad_input(grad),
        (Ok(value), None) => Answer::scalar(value[0]),
        (Err(e), _) | (_, Some(Err(e))) => Answer::rejected(format!("{e:?}")),
    }
}
