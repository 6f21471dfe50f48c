//! libtorch's values for `explain`'s closed-form steps: the softmax over the
//! class dim, and the smoothed target distribution built with libtorch's own
//! ops (one-hot of the class indices). The per-sample loss and the reduction
//! are [`run_libtorch`](super::run_libtorch) under reduction "none" and under
//! the case's reduction. [`clip_step`] gives every intermediate of OpenCLIP's
//! loss step (`explain --clip-step`).

use tch::{Kind, Tensor as TchTensor};

pub use super::clip_step::{steps as clip_step, ClipStepSteps};

use super::{from_torch, to_torch, ReferenceError};
use crate::fixtures::Case;
use crate::tensor::Tensor;

/// The class dim: 0 for unbatched (C,) input, else 1.
fn class_dim(input: &Tensor) -> i64 {
    if input.shape.len() == 1 {
        0
    } else {
        1
    }
}

/// `input.softmax(class_dim)` in the input's dtype.
///
/// # Errors
/// libtorch's message when it rejects the input (e.g. 0-d or integer).
pub fn softmax(input: &Tensor) -> Result<Tensor, ReferenceError> {
    let x = to_torch(input)?;
    let p = x.f_softmax(class_dim(input), None::<Kind>)?;
    from_torch(&p)
}

/// q = (1 − ε)·t + ε/C in the input's dtype, with t = `one_hot(target)` moved
/// to the class dim for class indices (NaN at ignored samples, which have no
/// target), or the probability target itself. Computed in float64 and rounded
/// once to the input's dtype, as the Rust closed form is exact.
///
/// # Errors
/// libtorch's message when an op rejects the tensors (e.g. a class out of range).
pub fn smoothed_target(case: &Case) -> Result<Tensor, ReferenceError> {
    let input = to_torch(&case.input)?;
    let dim = class_dim(&case.input);
    let classes = input
        .size()
        .get(dim as usize)
        .copied()
        .ok_or(ReferenceError::NoClassDim)?;
    let epsilon = case.label_smoothing.max(0.0);
    let target = to_torch(&case.target)?;
    let smooth = |t: &TchTensor| -> Result<TchTensor, tch::TchError> {
        t.f_to_kind(Kind::Double)?
            .f_mul_scalar(1.0 - epsilon)?
            .f_add_scalar(epsilon / classes as f64)
    };
    let q = if case.target.dtype.is_float() {
        smooth(&target)?
    } else {
        let target = target.f_to_kind(Kind::Int64)?;
        let ignored = target.f_eq(case.ignore_index)?;
        // one_hot rejects ignore_index, so ignored samples take class 0 and are masked after.
        let kept_target = target.f_masked_fill(&ignored, 0)?;
        let one_hot = kept_target.f_one_hot(classes).and_then(|t| t.f_movedim_int(-1, dim))?;
        smooth(&one_hot).and_then(|q| q.f_masked_fill(&ignored.f_unsqueeze(dim)?, f64::NAN))?
    };
    from_torch(&q.f_to_kind(input.kind())?)
}
