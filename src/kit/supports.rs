//! Which cases an implementation takes: the features a case asks for, and a
//! filter over them, so a partial implementation is checked on what it does.

use std::fmt;
use std::sync::Arc;

use super::view::{CaseView, Widened};

use crate::fixtures::{Case, LossKind, Recorded};
use crate::loss::Reduction;
use crate::tensor::{DType, Data, Tensor};

/// Something a case asks of an implementation beyond a plain `(N, C)` input
/// with class-index targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Feature {
    /// A 1-D `(C)` input: one sample, no batch dim.
    Unbatched,
    /// An `(N, C, d1, …)` input: class dim second, spatial dims after.
    KDim,
    /// Targets that are class probabilities instead of indices.
    ProbabilityTargets,
    /// A `weight` per class.
    ClassWeights,
    /// Some target equals `ignore_index`.
    IgnoredTargets,
    /// A label smoothing ε other than 0.
    LabelSmoothing,
    /// An upstream gradient other than ones.
    GradOutput,
    /// A NaN or an infinity among the input, target, weight or grad_output.
    NonFinite,
    /// A tensor with no elements.
    Empty,
    /// A target, weight or grad_output of another floating dtype than the input.
    MixedDtypes,
    /// libtorch rejects the case with an error.
    Rejection,
}

impl Feature {
    /// Every feature, in the order a skip reason names the first one unsupported.
    pub const ALL: [Feature; 11] = [
        Feature::Unbatched,
        Feature::KDim,
        Feature::ProbabilityTargets,
        Feature::ClassWeights,
        Feature::IgnoredTargets,
        Feature::LabelSmoothing,
        Feature::GradOutput,
        Feature::NonFinite,
        Feature::Empty,
        Feature::MixedDtypes,
        Feature::Rejection,
    ];

    /// Whether `case` asks for this feature.
    pub fn of(self, case: &Case) -> bool {
        let optional = [case.weight.as_ref(), case.grad_output.as_ref()];
        let tensors = || {
            [Some(&case.input), Some(&case.target)]
                .into_iter()
                .chain(optional)
                .flatten()
        };
        match self {
            Feature::Unbatched => case.input.shape.len() == 1,
            Feature::KDim => case.input.shape.len() > 2,
            Feature::ProbabilityTargets => case.target.dtype.is_float(),
            Feature::ClassWeights => case.weight.is_some(),
            Feature::IgnoredTargets => {
                matches!(&case.target.data, Data::Int(t) if t.contains(&case.ignore_index))
            }
            Feature::LabelSmoothing => case.label_smoothing != 0.0,
            Feature::GradOutput => case.grad_output.is_some(),
            Feature::NonFinite => tensors().any(has_non_finite),
            Feature::Empty => tensors().any(Tensor::is_empty),
            Feature::MixedDtypes => tensors().any(|t| t.dtype.is_float() && t.dtype != case.input.dtype),
            Feature::Rejection => {
                matches!(&case.expected, Some(e) if matches!(e.result, Recorded::Error(_)))
            }
        }
    }
}

fn has_non_finite(tensor: &Tensor) -> bool {
    matches!(&tensor.data, Data::Float(v) if v.iter().any(|x| !x.is_finite()))
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Feature::Unbatched => "unbatched (C) input",
            Feature::KDim => "K-dimensional (N, C, d1, ...) input",
            Feature::ProbabilityTargets => "probability targets",
            Feature::ClassWeights => "class weights",
            Feature::IgnoredTargets => "targets equal to ignore_index",
            Feature::LabelSmoothing => "label smoothing",
            Feature::GradOutput => "a grad_output other than ones",
            Feature::NonFinite => "NaN or infinite values",
            Feature::Empty => "empty tensors",
            Feature::MixedDtypes => "mixed floating dtypes",
            Feature::Rejection => "inputs libtorch rejects",
        })
    }
}

/// Why an implementation does not run a case, or `None` when it does.
type Condition = Arc<dyn Fn(&CaseView<'_>) -> Option<String> + Send + Sync>;

/// The cases an implementation supports: by input dtype, reduction,
/// [`Feature`], and any condition of yours on the case
/// ([`skip_when`](Self::skip_when)). The default, [`Supports::all`], is every
/// cross-entropy case.
///
/// ```
/// use ce_parity::kit::{DType, Feature, Supports, Targets};
///
/// let plain = Supports::all()
///     .dtypes([DType::Float32, DType::Float64])
///     .without(Feature::KDim)
///     .without(Feature::ProbabilityTargets)
///     .skip_when(|case| match case.target {
///         Targets::Classes { dtype: DType::UInt8, .. } => Some("uint8 targets".into()),
///         _ => None,
///     })
///     .skip_when(|case| (case.ignore_index < 0).then(|| "negative ignore_index".into()));
/// # let _ = plain;
/// ```
#[derive(Clone)]
pub struct Supports {
    dtypes: Vec<DType>,
    reductions: Vec<Reduction>,
    without: Vec<Feature>,
    conditions: Vec<Condition>,
}

impl Default for Supports {
    fn default() -> Self {
        Supports::all()
    }
}

impl fmt::Debug for Supports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supports")
            .field("dtypes", &self.dtypes)
            .field("reductions", &self.reductions)
            .field("without", &self.without)
            .field("conditions", &self.conditions.len())
            .finish()
    }
}

impl Supports {
    /// Every cross-entropy case, of every input dtype (integer inputs, which
    /// libtorch rejects, included).
    pub fn all() -> Supports {
        Supports {
            dtypes: DType::ALL.to_vec(),
            reductions: Reduction::ALL.to_vec(),
            without: Vec::new(),
            conditions: Vec::new(),
        }
    }

    /// Only cases whose input has one of these dtypes.
    pub fn dtypes(self, dtypes: impl IntoIterator<Item = DType>) -> Supports {
        Supports {
            dtypes: dtypes.into_iter().collect(),
            ..self
        }
    }

    /// Only cases with one of these reductions.
    pub fn reductions(self, reductions: impl IntoIterator<Item = Reduction>) -> Supports {
        Supports {
            reductions: reductions.into_iter().collect(),
            ..self
        }
    }

    /// No case that asks for `feature`.
    pub fn without(mut self, feature: Feature) -> Supports {
        if !self.without.contains(&feature) {
            self.without.push(feature);
        }
        self
    }

    /// No case for which `condition` gives a reason; the case is skipped
    /// with `unsupported: <reason>`. Conditions are asked in the order added,
    /// after the dtype, reduction and feature switches.
    pub fn skip_when<F>(mut self, condition: F) -> Supports
    where
        F: Fn(&CaseView<'_>) -> Option<String> + Send + Sync + 'static,
    {
        self.conditions.push(Arc::new(condition));
        self
    }

    /// Why `case` is not supported, or `None` when it is.
    pub fn reason_to_skip(&self, case: &Case) -> Option<String> {
        let widened = Widened::of(case);
        self.reason_to_skip_view(case, &CaseView::of(case, &widened))
    }

    /// [`reason_to_skip`](Self::reason_to_skip) with the case's view at hand.
    pub(crate) fn reason_to_skip_view(&self, case: &Case, view: &CaseView<'_>) -> Option<String> {
        match case.loss {
            LossKind::Clip { .. } => return Some("not cross-entropy: clip loss".into()),
            LossKind::ClipStep { .. } => {
                return Some("not cross-entropy: clip_step (see kit::check_bundled_clip_steps)".into())
            }
            LossKind::CrossEntropy => {}
        }
        if !self.dtypes.contains(&case.input.dtype) {
            return Some(format!("unsupported: input dtype {}", case.input.dtype));
        }
        if !self.reductions.contains(&case.reduction) {
            return Some(format!("unsupported: reduction {}", case.reduction));
        }
        if let Some(feature) = Feature::ALL
            .into_iter()
            .find(|f| self.without.contains(f) && f.of(case))
        {
            return Some(format!("unsupported: {feature}"));
        }
        let reason = self.conditions.iter().find_map(|condition| condition(view))?;
        Some(format!("unsupported: {reason}"))
    }
}
