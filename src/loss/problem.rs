//! Validation: turns the caller's shapes and options into a checked problem,
//! rejecting what libtorch rejects, in libtorch's order and with its messages.
//!
//! The checks that need no data run on a [`Signature`] (dtypes and shapes), so
//! callers holding tensors of any dtype — fixtures, the fuzzer — get libtorch's
//! verdict on combinations the typed API cannot even express (integer input,
//! a weight of another dtype). The order below was read off libtorch 2.13
//! (`cross_entropy_loss_symint`, `nll_loss_nd`, nll_loss's and nll_loss2d's
//! checks) and confirmed against it case by case (fixtures/errors.json).

use super::class_targets::ClassTargets;
use super::element::Element;
use super::error::LossError;
use super::input::{Target, View};
use super::options::{Options, Reduction};
use crate::tensor::DType;

/// A validated loss problem. Element (b, c, s) of the input lives at
/// `b·C·S + c·S + s`; a "position" is one (b, s) pair, p = b·S + s.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Problem<'a> {
    pub batch: usize,
    pub classes: usize,
    /// S: the product of the spatial dims (1 for 1-D and 2-D input).
    pub inner: usize,
    pub loss_shape: Vec<usize>,
    pub reduction: Reduction,
    /// ε when smoothing is active (> 0), else None, as libtorch branches on ε > 0.
    pub smoothing: Option<f64>,
    pub weight: Option<Vec<f64>>,
    pub targets: Targets<'a>,
    /// What the mean divides by: the summed weight of the kept class targets
    /// (in order, as libtorch sums it), or the number of positions for
    /// probability targets; 1 under the other reductions.
    pub divisor: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Targets<'a> {
    /// One class per position, or None where the target equals ignore_index.
    Classes(ClassTargets<'a>),
    Probabilities,
}

impl Problem<'_> {
    pub fn positions(&self) -> usize {
        self.batch * self.inner
    }

    /// Index of class 0 of position `p`; the classes follow at stride `inner`.
    pub fn row_start(&self, p: usize) -> usize {
        (p / self.inner) * self.classes * self.inner + p % self.inner
    }
}

/// What validation needs to know about a call: dtypes and shapes, no data.
///
/// Unlike the typed API it can describe any call a Python user could make,
/// e.g. int64 logits or a float64 weight beside float32 input, so code that
/// holds dynamically typed tensors asks [`check_signature`] for libtorch's
/// verdict before choosing an element type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Signature<'a> {
    /// The input's dtype and shape.
    pub input: (DType, &'a [usize]),
    /// The target's dtype and shape; a shape equal to the input's means
    /// probabilities, as in PyTorch.
    pub target: (DType, &'a [usize]),
    /// The weight's dtype and shape, if any.
    pub weight: Option<(DType, &'a [usize])>,
    /// As [`Options::ignore_index`].
    pub ignore_index: i64,
    /// As [`Options::label_smoothing`].
    pub label_smoothing: f64,
    /// As [`Options::reduction`].
    pub reduction: Reduction,
}

/// What a signature that passes tells about the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Class-probability targets (the target has the input's shape).
    pub probabilities: bool,
    /// C, the size of the class dim.
    pub classes: usize,
}

fn weight_numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Checks a call's dtypes and shapes as libtorch does, in libtorch's order.
/// Target values (out-of-range classes) are checked later, with the data.
///
/// ```
/// use ce_parity::loss::{check_signature, Reduction, Signature};
/// use ce_parity::tensor::DType;
///
/// let mut call = Signature {
///     input: (DType::Float32, &[8, 10]),
///     target: (DType::Int64, &[8]),
///     weight: None,
///     ignore_index: -100,
///     label_smoothing: 0.1,
///     reduction: Reduction::Mean,
/// };
/// let accepted = check_signature(&call)?;
/// assert_eq!((accepted.probabilities, accepted.classes), (false, 10));
///
/// // Integer logits: libtorch's log_softmax has no kernel for them.
/// call.input.0 = DType::Int64;
/// assert_eq!(
///     check_signature(&call).unwrap_err().to_string(),
///     "\"log_softmax_lastdim_kernel_impl\" not implemented for 'Long'"
/// );
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
///
/// # Errors
/// The [`LossError`] libtorch would raise first.
pub fn check_signature(sig: &Signature<'_>) -> Result<Accepted, LossError> {
    let (input_dtype, shape) = sig.input;
    let (target_dtype, target_shape) = sig.target;
    let dims = shape.len();
    let epsilon = sig.label_smoothing;
    if epsilon.is_nan() {
        return Err(LossError::LabelSmoothingNan);
    }
    let epsilon_too_big = epsilon > 1.0;
    let not_implemented = || {
        let kernel = if dims <= 2 {
            "log_softmax_lastdim_kernel_impl"
        } else {
            "log_softmax_kernel_impl"
        };
        LossError::Rejected(format!(
            "\"{kernel}\" not implemented for '{}'",
            input_dtype.torch_name()
        ))
    };

    if shape == target_shape {
        // Same shape: libtorch reads the target as class probabilities.
        if !target_dtype.is_float() {
            return Err(LossError::ProbabilityTargetNotFloat(target_dtype));
        }
        if sig.ignore_index >= 0 {
            return Err(LossError::IgnoreIndexWithProbabilities);
        }
        if dims == 0 {
            return Err(LossError::Rejected(
                "Dimension specified as 1 but tensor has no dimensions".into(),
            ));
        }
        let classes = shape[usize::from(dims != 1)];
        if let Some((_, w)) = sig.weight {
            if w.len() != 1 || w[0] != classes {
                return Err(LossError::WeightShape {
                    classes,
                    shape: w.to_vec(),
                    probabilities: true,
                });
            }
        }
        if !input_dtype.is_float() {
            return Err(not_implemented());
        }
        if epsilon_too_big {
            return Err(LossError::LabelSmoothingOutOfRange(epsilon));
        }
        return Ok(Accepted {
            probabilities: true,
            classes,
        });
    }

    if epsilon_too_big {
        return Err(LossError::LabelSmoothingOutOfRange(epsilon));
    }
    if dims == 0 {
        return Err(LossError::Rejected(
            "Dimension out of range (expected to be in range of [-1, 0], but got 1)".into(),
        ));
    }
    if !input_dtype.is_float() {
        return Err(not_implemented());
    }
    if dims != 1 {
        // A 0-d target counts as batch size 0 here.
        let target_batch = target_shape.first().copied().unwrap_or(0);
        if target_batch != shape[0] {
            return Err(LossError::BatchSizeMismatch {
                input: shape[0],
                target: target_batch,
            });
        }
    } else if target_shape.len() == 1 && target_shape[0] != 1 && !target_dtype.is_float() {
        return Err(LossError::Rejected(format!(
            "For 1D input, 1D target must have size 1, but got target size: {}",
            target_shape[0]
        )));
    }
    let classes = shape[usize::from(dims != 1)];
    let weight_dtype_check = || match sig.weight {
        Some((w, _)) if w != input_dtype => Err(LossError::DTypeMismatch {
            expected: input_dtype,
            found: w,
        }),
        _ => Ok(()),
    };
    if dims <= 2 {
        // nll_loss
        if dims == 1 && target_shape.len() == 1 && target_dtype.is_float() {
            return Err(LossError::FloatClassTarget(target_dtype));
        }
        if target_shape.len() > 1 {
            return Err(LossError::Rejected(
                "0D or 1D target tensor expected, multi-target not supported".into(),
            ));
        }
        if target_dtype.is_float() {
            return Err(LossError::FloatClassTarget(target_dtype));
        }
        if let Some((_, w)) = sig.weight {
            if w.len() != 1 || w[0] != classes {
                return Err(LossError::WeightShape {
                    classes,
                    shape: w.to_vec(),
                    probabilities: false,
                });
            }
        }
        weight_dtype_check()?;
        return Ok(Accepted {
            probabilities: false,
            classes,
        });
    }
    // nll_loss2d, directly (4-D) or on the input viewed as (N, C, 1, S).
    let mut expected = vec![shape[0]];
    expected.extend_from_slice(&shape[2..]);
    if dims == 4 {
        if target_shape.len() != 3 {
            return Err(LossError::Rejected(format!(
                "only batches of spatial targets supported (3D tensors) but got targets of dimension: {}",
                target_shape.len()
            )));
        }
    } else if target_shape != expected.as_slice() {
        return Err(LossError::TargetSize {
            expected,
            got: target_shape.to_vec(),
        });
    }
    if target_dtype.is_float() {
        return Err(LossError::FloatClassTarget(target_dtype));
    }
    if let Some((_, w)) = sig.weight {
        if weight_numel(w) != classes {
            return Err(LossError::WeightNumel);
        }
    }
    // nll_loss2d compares (N, H, W); K-dim input arrives viewed as (N, C, 1, S),
    // or (N, C, 0, 0) when empty, and its target as (N, 1, S) or (N, 0, 0).
    let (input_4d, target_3d) = if dims == 4 {
        (shape.to_vec(), target_shape.to_vec())
    } else {
        let input_4d = if shape.iter().product::<usize>() > 0 {
            vec![shape[0], classes, 1, shape[2..].iter().product()]
        } else {
            vec![shape[0], classes, 0, 0]
        };
        let target_3d = if target_shape.iter().product::<usize>() > 0 {
            vec![target_shape[0], 1, target_shape[1..].iter().product()]
        } else {
            vec![target_shape[0], 0, 0]
        };
        (input_4d, target_3d)
    };
    if input_4d[0] != target_3d[0] || input_4d[2] != target_3d[1] || input_4d[3] != target_3d[2] {
        return Err(LossError::Rejected(format!(
            "size mismatch (got input: {input_4d:?} , target: {target_3d:?}"
        )));
    }
    weight_dtype_check()?;
    if target_dtype != DType::Int64 {
        return Err(LossError::DTypeMismatch {
            expected: DType::Int64,
            found: target_dtype,
        });
    }
    Ok(Accepted {
        probabilities: false,
        classes,
    })
}

/// Errors libtorch raises only after the nll has been computed (and so after
/// out-of-range targets): the smoothing term's shape and dtype handling.
/// `any_kept`: whether any class target is not ignored.
pub(crate) fn check_smoothing_shapes(sig: &Signature<'_>, any_kept: bool) -> Result<(), LossError> {
    if sig.label_smoothing <= 0.0 {
        return Ok(());
    }
    let dims = sig.input.1.len();
    let target_dims = sig.target.1.len();
    // 1-D input with a [1]-shaped target: the 0-d smoothing term cannot take
    // the [1]-shaped ignore mask in place.
    if dims == 1 && target_dims == 1 {
        return Err(LossError::Rejected(
            "output with shape [] doesn't match the broadcast shape [1]".into(),
        ));
    }
    let Some((_, w)) = sig.weight else { return Ok(()) };
    if dims > 2 {
        // weight.view(1, C, 1, …) with C taken from weight.size(0).
        let Some(&first) = w.first() else {
            return Err(LossError::Rejected(
                "Dimension specified as 0 but tensor has no dimensions".into(),
            ));
        };
        if w.len() != 1 {
            let mut view = vec![1usize; dims];
            view[1] = first;
            if first != weight_numel(w) {
                return Err(LossError::Rejected(format!(
                    "shape '{view:?}' is invalid for input of size {}",
                    weight_numel(w)
                )));
            }
            if sig.reduction == Reduction::Mean {
                return Err(LossError::Rejected(
                    "Index tensor must have the same number of dimensions as input tensor".into(),
                ));
            }
        }
    }
    // The smoothing mean gathers the weights of the kept targets with the
    // targets as indices, which must be int32 or int64 (an empty gather passes).
    if sig.reduction == Reduction::Mean && sig.target.0 == DType::UInt8 && any_kept {
        return Err(LossError::Rejected(
            "gather(): Expected dtype int32/int64 for index".into(),
        ));
    }
    Ok(())
}

fn check_len(what: &'static str, shape: &[usize], len: usize) -> Result<(), LossError> {
    // checked_mul: a hostile shape must not overflow into a match.
    let needed = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if needed != Some(len) {
        return Err(LossError::DataLength {
            what,
            shape: shape.to_vec(),
            len,
        });
    }
    Ok(())
}

/// Validates a typed call: lengths, then the signature, then target values.
pub(crate) fn validate<'a, T: Element>(
    input: View<'_, T>,
    target: &Target<'a, T>,
    options: &Options<'_, T>,
) -> Result<Problem<'a>, LossError> {
    check_len("input", input.shape, input.data.len())?;
    check_len("target", target.shape(), target.len())?;
    let weight_shape = options.weight.map(|w| [w.len()]);
    let target_dtype = match target {
        Target::Classes(_) => DType::Int64,
        Target::ClassesU8(_) => DType::UInt8,
        Target::Probabilities(_) => T::DTYPE,
    };
    let sig = Signature {
        input: (T::DTYPE, input.shape),
        target: (target_dtype, target.shape()),
        weight: weight_shape.as_ref().map(|s| (T::DTYPE, s.as_slice())),
        ignore_index: options.ignore_index,
        label_smoothing: options.label_smoothing,
        reduction: options.reduction,
    };
    validate_values(&sig, input.shape, target, options)
}

/// The signature's checks, then the target values, then the late smoothing checks.
pub(crate) fn validate_values<'a, T: Element>(
    sig: &Signature<'_>,
    shape: &[usize],
    target: &Target<'a, T>,
    options: &Options<'_, T>,
) -> Result<Problem<'a>, LossError> {
    let accepted = check_signature(sig)?;
    let weight: Option<Vec<f64>> = options.weight.map(|w| w.iter().map(|x| x.to_f64()).collect());
    let (batch, inner, loss_shape) = if shape.len() == 1 {
        (1, 1, vec![])
    } else {
        let mut loss_shape = vec![shape[0]];
        loss_shape.extend_from_slice(&shape[2..]);
        (shape[0], shape[2..].iter().product(), loss_shape)
    };
    let mean = options.reduction == Reduction::Mean;
    let (targets, divisor) = if accepted.probabilities {
        let divisor = if mean { (batch * inner) as f64 } else { 1.0 };
        (Targets::Probabilities, divisor)
    } else {
        let classes = match *target {
            Target::Classes(v) => ClassTargets::int64(v.data, options.ignore_index),
            Target::ClassesU8(v) => ClassTargets::uint8(v.data, options.ignore_index),
            Target::Probabilities(_) => unreachable!("check_signature rejects float class targets"),
        };
        // One pass checks the values and counts the kept ones for the mean.
        let kept = match classes.kept_in_range(accepted.classes) {
            Ok(kept) => kept,
            Err(t) => {
                // Under `none` with 2-D input libtorch streams a uint8 target
                // as a character, not a number.
                if matches!(target, Target::ClassesU8(_)) && options.reduction == Reduction::None && shape.len() == 2 {
                    return Err(LossError::TargetOutOfBoundsByte(t as u8));
                }
                return Err(LossError::TargetOutOfBounds(t));
            }
        };
        // What the mean divides by; the weighted sum stays in target order.
        let weight_sum = match (mean, &weight) {
            (false, _) => 1.0,
            (true, None) => kept as f64,
            (true, Some(w)) => classes.iter().flatten().fold(0.0, |sum, y| sum + w[y]),
        };
        // The late checks need to know whether any target is kept only in
        // one corner (uint8 targets under mean).
        check_smoothing_shapes(sig, kept > 0)?;
        (Targets::Classes(classes), weight_sum)
    };
    Ok(Problem {
        batch,
        classes: accepted.classes,
        inner,
        loss_shape,
        reduction: options.reduction,
        smoothing: (options.label_smoothing > 0.0).then_some(options.label_smoothing),
        weight,
        targets,
        divisor,
    })
}
