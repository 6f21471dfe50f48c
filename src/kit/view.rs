//! What an implementation under test sees of a case: plain slices and
//! numbers, no ce-parity tensor type to learn.

use crate::fixtures::Case;
use crate::loss::Reduction;
use crate::tensor::{DType, Data, Tensor};

/// A floating tensor, row-major.
///
/// `values` are exact for every dtype: an `f16`, `bf16` or `f32` value
/// widens to `f64` without loss, so converting back with `as f32` (or
/// `half::f16::from_f64`) gives the recorded bits. [`DType::round`] rounds an
/// `f64` to the dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Floats<'a> {
    /// The tensor's dtype in PyTorch (the values are exactly representable in it).
    pub dtype: DType,
    /// Dimensions, outermost first.
    pub shape: &'a [usize],
    /// `shape.iter().product()` values.
    pub values: &'a [f64],
}

/// The target of a case.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Targets<'a> {
    /// Class indices (dtype `int64` or `uint8`), shaped like the input
    /// without its class dim. They may be out of range or equal
    /// `ignore_index`, as in PyTorch.
    Classes {
        /// `int64` or `uint8` in PyTorch.
        dtype: DType,
        /// The input's shape without its class dim (`[]` for unbatched input).
        shape: &'a [usize],
        /// One class index per position, row-major.
        classes: &'a [i64],
    },
    /// A probability per class, shaped like the input.
    Probabilities(Floats<'a>),
}

/// One call of `F.cross_entropy(input, target, weight, ignore_index,
/// reduction, label_smoothing)`, followed by a backward pass with
/// `grad_output` as the upstream gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CaseView<'a> {
    /// The case's name in its fixture, e.g. `article/smoothing_0.1/mean`.
    pub name: &'a str,
    /// Logits: `(C)`, `(N, C)` or `(N, C, d1, …)`.
    pub input: Floats<'a>,
    /// Class indices or probabilities.
    pub target: Targets<'a>,
    /// One weight per class (other shapes appear in cases libtorch rejects).
    pub weight: Option<Floats<'a>>,
    /// `none`, `mean` or `sum`.
    pub reduction: Reduction,
    /// Class index whose positions add nothing to the loss and its divisor (PyTorch's default: -100).
    pub ignore_index: i64,
    /// ε: PyTorch's target is `(1−ε)·one_hot + ε/C`; a negative ε behaves as 0.
    pub label_smoothing: f64,
    /// The upstream gradient, shaped like the loss; `None` means ones.
    pub grad_output: Option<Floats<'a>>,
}

impl<'a> CaseView<'a> {
    /// The view of a cross-entropy case, or why it cannot be given as one
    /// (a tensor that should be floating is not: only libtorch's type checks
    /// can see such a case).
    pub(crate) fn of(case: &'a Case) -> Result<CaseView<'a>, String> {
        let target = match (&case.target.data, case.target.dtype.is_float()) {
            (Data::Int(classes), false) => Targets::Classes {
                dtype: case.target.dtype,
                shape: &case.target.shape,
                classes,
            },
            _ => Targets::Probabilities(floats("target", &case.target)?),
        };
        Ok(CaseView {
            name: &case.name,
            input: floats("input", &case.input)?,
            target,
            weight: case.weight.as_ref().map(|w| floats("weight", w)).transpose()?,
            reduction: case.reduction,
            ignore_index: case.ignore_index,
            label_smoothing: case.label_smoothing,
            grad_output: case
                .grad_output
                .as_ref()
                .map(|g| floats("grad_output", g))
                .transpose()?,
        })
    }
}

fn floats<'a>(field: &str, tensor: &'a Tensor) -> Result<Floats<'a>, String> {
    match &tensor.data {
        Data::Float(values) if tensor.dtype.is_float() => Ok(Floats {
            dtype: tensor.dtype,
            shape: &tensor.shape,
            values,
        }),
        _ => Err(format!(
            "{field} dtype {} is not floating (the kit passes values as f64)",
            tensor.dtype
        )),
    }
}
