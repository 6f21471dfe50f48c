//! The options of `F.cross_entropy`, with PyTorch's defaults.

use std::fmt;
use std::str::FromStr;

/// How per-position losses are combined: `F.cross_entropy`'s `reduction`.
///
/// Parses from and prints as PyTorch's spelling (`"none"`, `"mean"`, `"sum"`),
/// which is also the fixture format's.
///
/// ```
/// use ce_parity::loss::Reduction;
/// assert_eq!("sum".parse::<Reduction>(), Ok(Reduction::Sum));
/// assert_eq!(Reduction::default().to_string(), "mean");
/// assert!("avg".parse::<Reduction>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// One loss per position, shaped like the target (0-d for unbatched input).
    None,
    /// Sum divided by the total weight of non-ignored positions (index targets)
    /// or by the number of positions (probability targets).
    #[default]
    Mean,
    /// Plain sum.
    Sum,
}

impl Reduction {
    /// Every reduction, for loops over the surface (tests, the fuzzer).
    pub const ALL: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

    /// PyTorch's name for it, e.g. `"mean"`.
    pub fn name(self) -> &'static str {
        match self {
            Reduction::None => "none",
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
        }
    }
}

impl fmt::Display for Reduction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Reduction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Reduction::None),
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            other => Err(format!(
                "unknown reduction {other:?} (expected \"none\", \"mean\" or \"sum\")"
            )),
        }
    }
}

/// PyTorch's default `ignore_index`: no class index is negative, so by
/// default no target is ignored.
pub const DEFAULT_IGNORE_INDEX: i64 = -100;

/// Options of the loss, as keyword arguments of `F.cross_entropy`.
///
/// [`Options::default()`] is PyTorch's defaults, so a call names only what it
/// changes, as in Python:
///
/// ```
/// use ce_parity::loss::{cross_entropy, Options, Reduction, Target, View};
///
/// // F.cross_entropy(x, y, weight=torch.tensor([1., 3.]), reduction="sum")
/// let weight = [1.0f64, 3.0];
/// let options = Options { weight: Some(&weight), reduction: Reduction::Sum, ..Options::default() };
/// let logits = [0.0f64, 0.0, 0.0, 0.0];
/// let loss = cross_entropy(
///     View::new(&logits, &[2, 2]),
///     Target::Classes(View::new(&[0, 1], &[2])),
///     &options,
/// )?;
/// // Each row is −log(½), scaled by its target's weight: (1 + 3)·ln 2.
/// assert!((loss.item().unwrap() - 4.0 * 2f64.ln()).abs() < 1e-15);
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options<'a, T> {
    /// A rescaling weight per class (`weight`), in the input's element type;
    /// `None` weighs every class 1.
    pub weight: Option<&'a [T]>,
    /// A class target equal to this is skipped: it adds nothing to the loss,
    /// the gradient or the mean's divisor (`ignore_index`). With probability
    /// targets it must be negative, as in PyTorch.
    pub ignore_index: i64,
    /// How per-position losses are combined (`reduction`).
    pub reduction: Reduction,
    /// ε in [0, 1] (`label_smoothing`): the target becomes (1−ε)·target + ε/C.
    /// Negative values behave as 0, as in PyTorch; above 1 is
    /// [`LabelSmoothingOutOfRange`](super::LossError::LabelSmoothingOutOfRange),
    /// NaN [`LabelSmoothingNan`](super::LossError::LabelSmoothingNan).
    pub label_smoothing: f64,
}

impl<T> Default for Options<'_, T> {
    fn default() -> Self {
        Options {
            weight: None,
            ignore_index: DEFAULT_IGNORE_INDEX,
            reduction: Reduction::Mean,
            label_smoothing: 0.0,
        }
    }
}
