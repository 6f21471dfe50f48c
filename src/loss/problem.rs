//! Validation: turns the caller's shapes and options into a checked problem,
//! rejecting what libtorch rejects, in libtorch's order and with its messages.

use super::element::Element;
use super::error::LossError;
use super::input::{Target, View};
use super::options::{Options, Reduction};
use crate::tensor::DType;

/// A validated loss problem. Element (b, c, s) of the input lives at
/// `b·C·S + c·S + s`; a "position" is one (b, s) pair, p = b·S + s.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Problem {
    pub batch: usize,
    pub classes: usize,
    /// S: the product of the spatial dims (1 for 1-D and 2-D input).
    pub inner: usize,
    pub loss_shape: Vec<usize>,
    pub reduction: Reduction,
    /// ε when smoothing is active (> 0), else None, as libtorch branches on ε > 0.
    pub smoothing: Option<f64>,
    pub weight: Option<Vec<f64>>,
    pub targets: Targets,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Targets {
    /// One class per position, or None where the target equals ignore_index.
    Classes(Vec<Option<usize>>),
    Probabilities,
}

impl Problem {
    pub fn positions(&self) -> usize {
        self.batch * self.inner
    }

    /// Index of class 0 of position `p`; the classes follow at stride `inner`.
    pub fn row_start(&self, p: usize) -> usize {
        (p / self.inner) * self.classes * self.inner + p % self.inner
    }
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

fn dim_out_of_range(dims: usize) -> LossError {
    let low = -(dims.max(1) as i64);
    let high = dims.max(1) as i64 - 1;
    LossError::Unsupported(format!(
        "Dimension out of range (expected to be in range of [{low}, {high}], but got 1)"
    ))
}

pub(crate) fn validate<T: Element>(
    input: View<'_, T>,
    target: &Target<'_, T>,
    options: &Options<'_, T>,
) -> Result<Problem, LossError> {
    check_len("input", input.shape, input.data.len())?;
    check_len("target", target.shape(), target.len())?;
    let epsilon = options.label_smoothing;
    if epsilon.is_nan() {
        return Err(LossError::LabelSmoothingNan);
    }
    let smoothing = (epsilon > 0.0).then_some(epsilon);
    let check_epsilon = || match smoothing {
        Some(e) if e > 1.0 => Err(LossError::LabelSmoothingOutOfRange(e)),
        _ => Ok(()),
    };
    let weight: Option<Vec<f64>> = options.weight.map(|w| w.iter().map(|x| x.to_f64()).collect());
    let shape = input.shape;
    let dims = shape.len();

    if shape == target.shape() {
        // Same shape: libtorch reads the target as class probabilities.
        match target {
            Target::Classes(_) => return Err(LossError::ProbabilityTargetNotFloat(DType::Int64)),
            Target::ClassesU8(_) => return Err(LossError::ProbabilityTargetNotFloat(DType::UInt8)),
            Target::Probabilities(_) => {}
        }
        if options.ignore_index >= 0 {
            return Err(LossError::IgnoreIndexWithProbabilities);
        }
        if dims == 0 {
            return Err(dim_out_of_range(dims));
        }
        let class_dim = usize::from(dims != 1);
        let classes = shape[class_dim];
        if let Some(w) = &weight {
            if w.len() != classes {
                return Err(LossError::WeightShape {
                    classes,
                    len: w.len(),
                    probabilities: true,
                });
            }
        }
        check_epsilon()?;
        let (batch, inner, loss_shape) = layout(shape);
        return Ok(Problem {
            batch,
            classes,
            inner,
            loss_shape,
            reduction: options.reduction,
            smoothing,
            weight,
            targets: Targets::Probabilities,
        });
    }

    let classes_of: Vec<i64> = match target {
        Target::Classes(v) => v.data.to_vec(),
        Target::ClassesU8(v) => v.data.iter().map(|&t| t as i64).collect(),
        Target::Probabilities(_) => {
            return Err(LossError::Unsupported(format!(
                "expected scalar type Long but found {}",
                T::DTYPE.torch_name()
            )))
        }
    };
    check_epsilon()?;
    if dims == 0 {
        return Err(dim_out_of_range(dims));
    }
    let target_shape = target.shape();
    if dims != 1 {
        match target_shape.first() {
            Some(&t) if t != shape[0] => {
                return Err(LossError::BatchSizeMismatch {
                    input: shape[0],
                    target: t,
                })
            }
            None => {
                return Err(LossError::Unsupported(
                    "0D or 1D target tensor expected, multi-target not supported".into(),
                ))
            }
            _ => {}
        }
    }
    let class_dim = usize::from(dims != 1);
    let classes = shape[class_dim];
    match dims {
        1 | 2 => {
            if target_shape.len() > 1 {
                return Err(LossError::Unsupported(
                    "0D or 1D target tensor expected, multi-target not supported".into(),
                ));
            }
            if dims == 1 && target_shape.len() == 1 {
                return Err(LossError::Unsupported(format!(
                    "Expected target to be 0D when input is 1D, but got target.dim ={}",
                    target_shape.len()
                )));
            }
            if let Some(w) = &weight {
                if w.len() != classes {
                    return Err(LossError::WeightShape {
                        classes,
                        len: w.len(),
                        probabilities: false,
                    });
                }
            }
        }
        _ => {
            if target_shape.is_empty() || target_shape[1..] != shape[2..] {
                let mut expected = vec![shape[0]];
                expected.extend_from_slice(&shape[2..]);
                return Err(LossError::TargetSize {
                    expected,
                    got: target_shape.to_vec(),
                });
            }
            if let Some(w) = &weight {
                if w.len() != classes {
                    return Err(LossError::Unsupported(
                        "weight tensor should be defined either for all or no classes".into(),
                    ));
                }
            }
        }
    }
    let mut targets = Vec::with_capacity(classes_of.len());
    for &t in &classes_of {
        if t == options.ignore_index {
            targets.push(None);
        } else if t < 0 || t as u64 >= classes as u64 {
            return Err(LossError::TargetOutOfBounds(t));
        } else {
            targets.push(Some(t as usize));
        }
    }
    let (batch, inner, loss_shape) = layout(shape);
    Ok(Problem {
        batch,
        classes,
        inner,
        loss_shape,
        reduction: options.reduction,
        smoothing,
        weight,
        targets: Targets::Classes(targets),
    })
}

/// (batch, inner, shape of the unreduced loss) for an input shape of ≥ 1 dims.
fn layout(shape: &[usize]) -> (usize, usize, Vec<usize>) {
    if shape.len() == 1 {
        return (1, 1, vec![]);
    }
    let inner = shape[2..].iter().product();
    let mut loss_shape = vec![shape[0]];
    loss_shape.extend_from_slice(&shape[2..]);
    (shape[0], inner, loss_shape)
}
