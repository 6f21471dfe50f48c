//! The contrastive (CLIP) loss as PyTorch code writes it, run by libtorch:
//!
//! ```python
//! x = S / tau
//! t = torch.arange(N)
//! loss = (F.cross_entropy(x, t, label_smoothing=eps)
//!         + F.cross_entropy(x[:, :N].t(), t, label_smoothing=eps)) * 0.5
//! ```
//! with the gradient w.r.t. S from autograd on `loss * grad_output`.

use crate::fixtures::Values;
use tch::{Device, Kind, Tensor as TchTensor};

use super::{backward, from_torch, leaf, ReferenceError};
use crate::fixtures::Case;
use crate::runner::Outcome;

pub(super) fn run(case: &Case, temperature: f64) -> Result<Outcome, ReferenceError> {
    let similarity = leaf(&case.input)?;
    let n = case.input.shape.first().copied().unwrap_or(0) as i64;
    let targets = TchTensor::f_arange(n, (Kind::Int64, Device::Cpu))?;
    let cross_entropy = |x: &TchTensor| {
        x.f_cross_entropy_loss(
            &targets,
            None::<TchTensor>,
            tch::Reduction::Mean,
            crate::loss::DEFAULT_IGNORE_INDEX,
            case.label_smoothing,
        )
    };
    let x = similarity.f_div_scalar(temperature)?;
    let images = cross_entropy(&x)?;
    let texts = cross_entropy(&x.f_narrow(1, 0, n)?.f_tr()?)?;
    let loss = images.f_add(&texts)?.f_mul_scalar(0.5)?;
    let grads = backward(&loss, case.grad_output.as_ref(), &[&similarity])?;
    Ok(Outcome::Values(Values {
        loss: from_torch(&loss.detach())?,
        grad_input: Some(from_torch(&grads[0])?),
        grad_target: None,
        named_grads: Vec::new(),
    }))
}
