//! Errors for input the loss rejects. Where libtorch rejects the same input,
//! the message is libtorch's first line, so a PyTorch user recognises it.

use std::fmt;

use crate::tensor::DType;

/// Why the loss rejected its input.
///
/// Its `Display` is the message libtorch raises for the same call (first
/// line), so an error can be compared with libtorch's verbatim. Three have no
/// libtorch counterpart and word their own message: a NaN `label_smoothing`
/// (which libtorch takes as 0) and the library-only buffer checks.
///
/// ```
/// use ce_parity::loss::{cross_entropy, LossError, Options, Target, View};
///
/// let logits = [0.0f32; 6];
/// let error = cross_entropy(
///     View::new(&logits, &[2, 3]),
///     Target::Classes(View::new(&[0, 3], &[2])),
///     &Options::default(),
/// )
/// .unwrap_err();
/// assert_eq!(error, LossError::TargetOutOfBounds(3));
/// assert_eq!(error.to_string(), "Target 3 is out of bounds.");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum LossError {
    /// `label_smoothing` > 1 (libtorch's message).
    LabelSmoothingOutOfRange(f64),
    /// `label_smoothing` is NaN (libtorch silently treats it as 0; we refuse).
    LabelSmoothingNan,
    /// A class target outside [0, C) that is not `ignore_index`.
    TargetOutOfBounds(i64),
    /// The same for a uint8 target under `none`, which libtorch prints as a
    /// character (the raw byte; bytes above 127 are not UTF-8 and read as U+FFFD).
    TargetOutOfBoundsByte(u8),
    /// Input and target disagree on the batch dimension.
    BatchSizeMismatch {
        /// N, the input's first dim.
        input: usize,
        /// The target's first dim.
        target: usize,
    },
    /// The weight does not have exactly one entry per class.
    WeightShape {
        /// C, the input's class count.
        classes: usize,
        /// The weight's shape as given.
        shape: Vec<usize>,
        /// Whether the target holds probabilities (libtorch then prefixes
        /// its message with `cross_entropy: `).
        probabilities: bool,
    },
    /// Spatial target dims disagree with the input's.
    TargetSize {
        /// The input's shape without its class dim.
        expected: Vec<usize>,
        /// The target's shape.
        got: Vec<usize>,
    },
    /// Class-probability target (same shape as input) with an integer dtype.
    ProbabilityTargetNotFloat(DType),
    /// `ignore_index` ≥ 0 with class-probability targets.
    IgnoreIndexWithProbabilities,
    /// The weight has the wrong number of entries (nll_loss2d's wording, K-dim input).
    WeightNumel,
    /// A class target of floating dtype that is not shaped like the input.
    FloatClassTarget(DType),
    /// An element type the op does not take there, e.g. an integer input or a
    /// weight whose dtype differs from the input's.
    DTypeMismatch {
        /// The dtype libtorch requires there.
        expected: DType,
        /// The dtype given.
        found: DType,
    },
    /// Any other rejection libtorch makes, with its message.
    Rejected(String),
    /// A buffer whose length disagrees with its shape (library-only check).
    DataLength {
        /// Which buffer: `"input"`, `"target"`, `"grad_output"` or `"out"`.
        what: &'static str,
        /// The shape the buffer should fill.
        shape: Vec<usize>,
        /// The buffer's actual length.
        len: usize,
    },
    /// `clip_loss`'s similarity matrix is not 2-D (library-only check).
    SimilarityShape(Vec<usize>),
    /// `clip_loss`'s temperature is not a positive finite number (library-only
    /// check: libtorch would divide by it and return inf or NaN).
    Temperature(f64),
    /// `t()` of a tensor with more than 2 dims (libtorch's message; the CLIP
    /// step transposes text_embeds).
    TransposeDims(usize),
    /// A 0-d operand of matmul: the two operands' dim counts (libtorch's message).
    MatmulZeroDim(usize, usize),
    /// Matrices whose inner sizes differ (libtorch's message).
    MatmulShapes {
        /// The left operand as matmul folds it, rows×cols.
        mat1: [usize; 2],
        /// The right operand, rows×cols.
        mat2: [usize; 2],
    },
    /// 1-D embeddings for the CLIP step (library-only check: libtorch's
    /// message depends on the combination of shapes).
    EmbeddingsShape {
        /// image_embeds' shape.
        image: Vec<usize>,
        /// text_embeds' shape.
        text: Vec<usize>,
    },
    /// `grad_output` not shaped like the loss (library-only check).
    GradOutputShape {
        /// The loss's shape: `[]` when reduced, else the target's.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },
}

impl fmt::Display for LossError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossError::LabelSmoothingOutOfRange(v) => write!(
                f,
                "label_smoothing must be between 0.0 and 1.0. Got: {}",
                format_like_cpp(*v)
            ),
            LossError::LabelSmoothingNan => f.write_str("label_smoothing must not be NaN"),
            LossError::TargetOutOfBounds(t) => write!(f, "Target {t} is out of bounds."),
            LossError::TargetOutOfBoundsByte(b) => {
                let shown = if b.is_ascii() { char::from(*b) } else { char::REPLACEMENT_CHARACTER };
                write!(f, "Target {shown} is out of bounds.")
            }
            LossError::BatchSizeMismatch { input, target } => write!(
                f,
                "Expected input batch_size ({input}) to match target batch_size ({target})."
            ),
            LossError::WeightShape { classes, shape, probabilities } => write!(
                f,
                "{}weight tensor should be defined either for all {classes} classes or no classes but got weight tensor of shape: {shape:?}",
                if *probabilities { "cross_entropy: " } else { "" }
            ),
            LossError::WeightNumel => f.write_str("weight tensor should be defined either for all or no classes"),
            LossError::FloatClassTarget(dtype) => {
                write!(f, "expected target dtype to be Long or Byte, but got {}", dtype.torch_name())
            }
            LossError::DTypeMismatch { expected, found } => write!(
                f,
                "expected scalar type {} but found {}",
                expected.torch_name(),
                found.torch_name()
            ),
            LossError::TargetSize { expected, got } => {
                write!(f, "Expected target size {expected:?}, got {got:?}")
            }
            LossError::ProbabilityTargetNotFloat(dtype) => write!(
                f,
                "Expected floating point type for target with class probabilities, got {}",
                dtype.torch_name()
            ),
            LossError::IgnoreIndexWithProbabilities => {
                f.write_str("ignore_index is not supported for floating point target")
            }
            LossError::Rejected(message) => f.write_str(message),
            LossError::DataLength { what, shape, len } => write!(
                f,
                "{what} has {len} elements but its shape {shape:?} needs {}",
                shape.iter().product::<usize>()
            ),
            LossError::SimilarityShape(shape) => write!(
                f,
                "clip_loss: the similarity matrix must be 2-D (N×M), got shape {shape:?}"
            ),
            LossError::Temperature(t) => write!(
                f,
                "clip_loss: temperature must be a positive finite number, got {t}"
            ),
            LossError::TransposeDims(dims) => write!(
                f,
                "t() expects a tensor with <= 2 dimensions, but self is {dims}D"
            ),
            LossError::MatmulZeroDim(a, b) => write!(
                f,
                "both arguments to matmul need to be at least 1D, but they are {a}D and {b}D"
            ),
            LossError::MatmulShapes { mat1, mat2 } => write!(
                f,
                "mat1 and mat2 shapes cannot be multiplied ({}x{} and {}x{})",
                mat1[0], mat1[1], mat2[0], mat2[1]
            ),
            LossError::EmbeddingsShape { image, text } => write!(
                f,
                "clip_step: image_embeds and text_embeds must be 2-D (N×D), got shapes {image:?} and {text:?}"
            ),
            LossError::GradOutputShape { expected, got } => write!(
                f,
                "grad_output must have the loss's shape {expected:?}, got {got:?}"
            ),
        }
    }
}

impl std::error::Error for LossError {}

/// Formats a double as C++'s `ostream << double` does (`%g`, 6 significant digits),
/// so our messages match libtorch's byte for byte.
///
/// ```
/// use ce_parity::loss::format_like_cpp;
/// assert_eq!(format_like_cpp(1.5), "1.5");
/// assert_eq!(format_like_cpp(2.0), "2");
/// assert_eq!(format_like_cpp(123456789.0), "1.23457e+08");
/// assert_eq!(format_like_cpp(0.00001), "1e-05");
/// ```
pub fn format_like_cpp(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{v:.5e}");
    let (mantissa, exponent) = sci.split_once('e').expect("{:e} always has an exponent");
    let exponent: i32 = exponent.parse().expect("{:e} exponent is an integer");
    if !(-4..6).contains(&exponent) {
        let mantissa = strip_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        let decimals = (5 - exponent) as usize;
        strip_zeros(&format!("{v:.decimals$}")).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::format_like_cpp;

    #[test]
    fn doubles_print_as_cpp_streams_do() {
        assert_eq!(format_like_cpp(1.5), "1.5");
        assert_eq!(format_like_cpp(2.0), "2");
        assert_eq!(format_like_cpp(1.0000001), "1");
        assert_eq!(format_like_cpp(1e10), "1e+10");
        assert_eq!(format_like_cpp(123456789.0), "1.23457e+08");
        assert_eq!(format_like_cpp(0.0001), "0.0001");
        assert_eq!(format_like_cpp(0.00001), "1e-05");
        assert_eq!(format_like_cpp(-3.25), "-3.25");
    }
}
