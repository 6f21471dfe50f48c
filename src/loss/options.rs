//! The options of `F.cross_entropy`, with PyTorch's defaults.

use std::fmt;
use std::str::FromStr;

/// How per-position losses are combined.
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
    pub const ALL: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

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

/// PyTorch's default `ignore_index`.
pub const DEFAULT_IGNORE_INDEX: i64 = -100;

/// Options of the loss, as keyword arguments of `F.cross_entropy`.
///
/// `weight` has one entry per class and the input's element type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options<'a, T> {
    pub weight: Option<&'a [T]>,
    pub ignore_index: i64,
    pub reduction: Reduction,
    /// ε in [0, 1]; negative values behave as 0, as in PyTorch.
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
