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
//! [`steps`] keeps every intermediate for `explain --clip-step`.

use crate::fixtures::Values;
use tch::{Device, Kind, Tensor as TchTensor};

use super::{backward, from_torch, leaf, to_torch, ReferenceError};
use crate::fixtures::{Case, CLIP_STEP_GRADS};
use crate::loss::NORMALIZE_EPS;
use crate::runner::Outcome;
use crate::tensor::Tensor;

/// The composition's graph: its leaves and what `explain` shows of it.
struct Graph {
    image: TchTensor,
    text: TchTensor,
    logit_scale: TchTensor,
    u: TchTensor,
    v: TchTensor,
    scale: TchTensor,
    logits: TchTensor,
    labels: TchTensor,
    loss: TchTensor,
}

fn build(case: &Case, logit_scale: f64) -> Result<Graph, ReferenceError> {
    let image = leaf(&case.input)?;
    let text = leaf(&case.target)?;
    let scale = Tensor::float(case.input.dtype, vec![], vec![logit_scale]);
    let logit_scale = to_torch(&scale).and_then(|t| t.f_set_requires_grad(true))?;
    let normalize = |x: &TchTensor| -> Result<TchTensor, tch::TchError> {
        let norm = x.f_norm_scalaropt_dim(2, [-1i64].as_slice(), true)?;
        x.f_div(&norm.f_clamp_min(NORMALIZE_EPS)?.f_expand_as(x)?)
    };
    let u = normalize(&image)?;
    let v = normalize(&text)?;
    // Python evaluates `s * u @ v.t()` left to right: (s * u) @ v.t().
    let scale = logit_scale.f_exp()?;
    let su = scale.f_mul(&u)?;
    let logits = su.f_matmul(&v.f_tr()?)?;
    let n = case.input.shape.first().copied().unwrap_or(0) as i64;
    let labels = TchTensor::f_arange(n, (Kind::Int64, Device::Cpu))?;
    let images = cross_entropy(case, &logits, &labels, tch::Reduction::Mean)?;
    let texts = cross_entropy(case, &logits.f_tr()?, &labels, tch::Reduction::Mean)?;
    let loss = images.f_add(&texts)?.f_mul_scalar(0.5)?;
    Ok(Graph {
        image,
        text,
        logit_scale,
        u,
        v,
        scale,
        logits,
        labels,
        loss,
    })
}

fn cross_entropy(
    case: &Case,
    logits: &TchTensor,
    labels: &TchTensor,
    reduction: tch::Reduction,
) -> Result<TchTensor, tch::TchError> {
    logits.f_cross_entropy_loss(
        labels,
        None::<TchTensor>,
        reduction,
        crate::loss::DEFAULT_IGNORE_INDEX,
        case.label_smoothing,
    )
}

pub(super) fn run(case: &Case, logit_scale: f64) -> Result<Outcome, ReferenceError> {
    let g = build(case, logit_scale)?;
    let grads = backward(&g.loss, case.grad_output.as_ref(), &[&g.image, &g.text, &g.logit_scale])?;
    let [image_name, text_name, scale_name] = CLIP_STEP_GRADS;
    Ok(Outcome::Values(Values {
        loss: from_torch(&g.loss.detach())?,
        grad_input: None,
        grad_target: None,
        named_grads: vec![
            (image_name, from_torch(&grads[0])?),
            (text_name, from_torch(&grads[1])?),
            (scale_name, from_torch(&grads[2])?),
        ],
    }))
}

/// libtorch's value at every step of a CLIP step, in the case's dtype.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipStepSteps {
    /// F.normalize(image_embeds), N×D.
    pub image_features: Tensor,
    /// F.normalize(text_embeds), N×D.
    pub text_features: Tensor,
    /// logit_scale.exp(), 0-d.
    pub scale: Tensor,
    /// (scale·u) @ vᵀ, N×N.
    pub logits: Tensor,
    /// F.cross_entropy(logits, labels, reduction="none"): each image's loss, (N,).
    pub image_losses: Tensor,
    /// F.cross_entropy(logits.t(), labels, reduction="none"): each text's loss, (N,).
    pub text_losses: Tensor,
    /// The step's loss, 0-d.
    pub loss: Tensor,
    /// d(loss·g)/d logits, N×N (autograd through the non-leaf logits).
    pub grad_logits: Tensor,
    /// d(loss·g)/d logit_scale, 0-d.
    pub grad_logit_scale: Tensor,
    /// d(loss·g)/d image_embeds, N×D.
    pub grad_image_embeds: Tensor,
    /// d(loss·g)/d text_embeds, N×D.
    pub grad_text_embeds: Tensor,
}

/// libtorch's intermediate values for a `clip_step` case.
///
/// # Errors
/// libtorch's first error line when it rejects the case, or a note that the
/// case is not a `clip_step` case.
pub fn steps(case: &Case) -> Result<ClipStepSteps, ReferenceError> {
    let crate::fixtures::LossKind::ClipStep { logit_scale } = case.loss else {
        return Err(ReferenceError::NotClipStep(case.name.clone()));
    };
    let g = build(case, logit_scale)?;
    let per_row = |x: &TchTensor| cross_entropy(case, x, &g.labels, tch::Reduction::None);
    let image_losses = per_row(&g.logits)?;
    let text_losses = per_row(&g.logits.f_tr()?)?;
    let grads = backward(
        &g.loss,
        case.grad_output.as_ref(),
        &[&g.logits, &g.logit_scale, &g.image, &g.text],
    )?;
    let values = |t: &TchTensor| from_torch(&t.detach());
    Ok(ClipStepSteps {
        image_features: values(&g.u)?,
        text_features: values(&g.v)?,
        scale: values(&g.scale)?,
        logits: values(&g.logits)?,
        image_losses: values(&image_losses)?,
        text_losses: values(&text_losses)?,
        loss: values(&g.loss)?,
        grad_logits: values(&grads[0])?,
        grad_logit_scale: values(&grads[1])?,
        grad_image_embeds: values(&grads[2])?,
        grad_text_embeds: values(&grads[3])?,
    })
}
