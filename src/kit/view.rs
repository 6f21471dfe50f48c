//! What an implementation under test sees of a case: plain slices and
//! numbers, no ce-parity tensor type to learn.

use super::Feature;
use crate::fixtures::Case;
use crate::loss::Reduction;
use crate::tensor::{DType, Data, Tensor};

/// A tensor that PyTorch expects to be floating, row-major.
///
/// `values` are exact for every dtype: an `f16`, `bf16` or `f32` value
/// widens to `f64` without loss, so converting back with `as f32` (or
/// `half::f16::from_f64`) gives the recorded bits. [`DType::round`] rounds an
/// `f64` to the dtype. In the few cases libtorch rejects for an integer
/// input or weight, `dtype` is `int64` or `uint8` and `values` are the
/// integers (a typed library would not compile such a call: answer
/// [`Answer::rejected`](super::Answer::rejected)).
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
///
/// The loss an implementation answers is shaped as PyTorch's: the target's
/// shape for `none`, and 0-d (`[]`, [`Answer::scalar`](super::Answer::scalar))
/// for `mean` and `sum`. A reduced loss shaped `[1]` fails the case.
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
    /// The case itself, for [`features`](Self::features).
    case: &'a Case,
}

impl<'a> CaseView<'a> {
    /// The view of a cross-entropy case. Integer tensors where floats are
    /// expected (cases libtorch rejects for their dtype) are given as their
    /// values in `f64`, from `widened`.
    pub(crate) fn of(case: &'a Case, widened: &'a Widened) -> CaseView<'a> {
        let target = match &case.target.data {
            Data::Int(classes) if !case.target.dtype.is_float() => Targets::Classes {
                dtype: case.target.dtype,
                shape: &case.target.shape,
                classes,
            },
            _ => Targets::Probabilities(floats(&case.target, &[])),
        };
        CaseView {
            name: &case.name,
            input: floats(&case.input, &widened.input),
            target,
            weight: case.weight.as_ref().map(|w| floats(w, &widened.weight)),
            reduction: case.reduction,
            ignore_index: case.ignore_index,
            label_smoothing: case.label_smoothing,
            grad_output: case.grad_output.as_ref().map(|g| floats(g, &widened.grad_output)),
            case,
        }
    }

    /// The features this case asks for, in [`Feature::ALL`]'s order.
    ///
    /// ```
    /// use ce_parity::kit::{self, Answer, CaseView, Feature, CheckOptions};
    ///
    /// let article = ce_parity::fixtures::bundled_file("fixtures/article.json")?.unwrap();
    /// let seen = std::sync::Mutex::new(Vec::new());
    /// let spy = |case: &CaseView| {
    ///     seen.lock().unwrap().push((case.name.to_string(), case.features()));
    ///     Answer::unsupported("only looking")
    /// };
    /// kit::check(spy, &[("fixtures/article.json".into(), article)], &CheckOptions::new());
    /// let seen = seen.into_inner().unwrap();
    /// let weighted = seen.iter().find(|(name, _)| name == "article/weighted/mean").unwrap();
    /// assert_eq!(weighted.1, [Feature::ClassWeights, Feature::LabelSmoothing]);
    /// # Ok::<(), ce_parity::fixtures::FixtureError>(())
    /// ```
    pub fn features(&self) -> Vec<Feature> {
        Feature::ALL.into_iter().filter(|f| f.of(self.case)).collect()
    }

    /// Whether this case asks for `feature`.
    pub fn has(&self, feature: Feature) -> bool {
        feature.of(self.case)
    }
}

/// `f64` copies of a case's integer tensors that the view gives as floats.
#[derive(Debug, Default)]
pub(crate) struct Widened {
    input: Vec<f64>,
    weight: Vec<f64>,
    grad_output: Vec<f64>,
}

impl Widened {
    pub(crate) fn of(case: &Case) -> Widened {
        let widen = |t: Option<&Tensor>| match t.map(|t| &t.data) {
            Some(Data::Int(values)) => values.iter().map(|&v| v as f64).collect(),
            _ => Vec::new(),
        };
        Widened {
            input: widen(Some(&case.input)),
            weight: widen(case.weight.as_ref()),
            grad_output: widen(case.grad_output.as_ref()),
        }
    }
}

/// The tensor's values as `f64`: its own for a floating tensor, else `widened`.
fn floats<'a>(tensor: &'a Tensor, widened: &'a [f64]) -> Floats<'a> {
    let values = match &tensor.data {
        Data::Float(values) => values,
        Data::Int(_) => widened,
    };
    Floats {
        dtype: tensor.dtype,
        shape: &tensor.shape,
        values,
    }
}
