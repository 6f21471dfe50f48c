//! OpenCLIP's ClipLoss step as PyTorch code writes it, run by libtorch:
//!
//! ```python
//! u = F.normalize(image_embeds, dim=-1)
//! v = F.normalize(text_embeds, dim=-1)
//! logits = logit_scale.exp() * u @ v.t()
//! labels = torch.arange(image_embeds.size(0))
//! loss = (F.cross_entropy(logits, labels, label_smoothing=eps)
//!         + F.cross_entropy(logits.t(), labels, label_smoothing=eps)) * 0.5
//! ```
//! with the gradients w.r.t. the embeddings and logit_scale from autograd on
//! `loss * grad_output`. `F.normalize` is spelled out as its source does it:
//! `x / x.norm(2, -1, keepdim=True).clamp_min(1e-12).expand_as(x)`.

use tch::{Device, Kind, Tensor as TchTensor};

use super::{backward, from_torch, leaf, to_torch, ReferenceError};
use crate::fixtures::{Case, CLIP_STEP_GRADS};
use crate::loss::NORMALIZE_EPS;
use crate::runner::Outcome;
use crate::tensor::Tensor;

pub(super) fn run(case: &Case, logit_scale: f64) -> Result<Outcome, ReferenceError> {
    let image = leaf(&case.input)?;
    let text = leaf(&case.target)?;
    let scale = Tensor::float(case.input.dtype, vec![], vec![logit_scale]);
    let scale = to_torch(&scale).and_then(|t| t.f_set_requires_grad(true))?;
    let normalize = |x: &TchTensor| -> Result<TchTensor, tch::TchError> {
        let norm = x.f_norm_scalaropt_dim(2, [-1i64].as_slice(), true)?;
        x.f_div(&norm.f_clamp_min(NORMALIZE_EPS)?.f_expand_as(x)?)
    };
    let u = normalize(&image)?;
    let v = normalize(&text)?;
    // Python evaluates `s * u @ v.t()` left to right: (s * u) @ v.t().
    let su = scale.f_exp().and_then(|s| s.f_mul(&u))?;
    let logits = su.f_matmul(&v.f_tr()?)?;
    let n = case.input.shape.first().copied().unwrap_or(0) as i64;
    let labels = TchTensor::f_arange(n, (Kind::Int64, Device::Cpu))?;
    let cross_entropy = |x: &TchTensor| {
        x.f_cross_entropy_loss(
            &labels,
            None::<TchTensor>,
            tch::Reduction::Mean,
            crate::loss::DEFAULT_IGNORE_INDEX,
            case.label_smoothing,
        )
    };
    let images = cross_entropy(&logits)?;
    let texts = cross_entropy(&logits.f_tr()?)?;
    let loss = images.f_add(&texts)?.f_mul_scalar(0.5)?;
    let grads = backward(&loss, case.grad_output.as_ref(), &[&image, &text, &scale])?;
    let [image_name, text_name, scale_name] = CLIP_STEP_GRADS;
    Ok(Outcome::Values {
        loss: from_torch(&loss.detach())?,
        grad_input: None,
        grad_target: None,
        named_grads: vec![
            (image_name, from_torch(&grads[0])?),
            (text_name, from_torch(&grads[1])?),
            (scale_name, from_torch(&grads[2])?),
        ],
    })
}
