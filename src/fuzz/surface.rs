//! Which parts of `F.cross_entropy`'s surface the generator draws from.
//! The default holds what the Rust loss is known to match libtorch on; the
//! rest can be switched on by name while it is being finished.

use std::fmt;

/// One part of the surface beyond 2-D float32/float64 input with int64 class targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SurfaceFeature {
    /// (N, C, d1, …, dk) input with k from 1 to 3.
    KDim,
    /// (C,) input with a 0-d target.
    Unbatched,
    /// Class-probability targets shaped like the input.
    Probabilities,
    /// uint8 class targets (2-D input only, as libtorch allows).
    UInt8Targets,
    /// float16 and bfloat16 input, weight and targets.
    Half,
    /// ±inf and NaN injected into the logits.
    NonFinite,
    /// A batch (or a spatial dim) of size 0.
    Empty,
    /// C up to 100 000 in a few cases (most stay small).
    HugeClasses,
    /// Negative class weights and negative probability targets, whose sums can
    /// cancel (e.g. a mean divisor near 0).
    NegativeWeights,
    /// Input both sides must reject with the same message.
    Invalid,
    /// The image–text contrastive loss (`clip` cases) on N×M similarities.
    Clip,
    /// OpenCLIP's loss step from embeddings (`clip_step` cases): its loss
    /// and its gradients w.r.t. both embeddings and logit_scale; float32
    /// and float64 only.
    ClipStep,
}

impl SurfaceFeature {
    /// Every feature, in declaration order.
    pub const ALL: [SurfaceFeature; 12] = [
        SurfaceFeature::KDim,
        SurfaceFeature::Unbatched,
        SurfaceFeature::Probabilities,
        SurfaceFeature::UInt8Targets,
        SurfaceFeature::Half,
        SurfaceFeature::NonFinite,
        SurfaceFeature::Empty,
        SurfaceFeature::HugeClasses,
        SurfaceFeature::NegativeWeights,
        SurfaceFeature::Invalid,
        SurfaceFeature::Clip,
        SurfaceFeature::ClipStep,
    ];

    /// The name `--surface` takes, e.g. `"kdim"`.
    pub fn name(self) -> &'static str {
        match self {
            SurfaceFeature::KDim => "kdim",
            SurfaceFeature::Unbatched => "unbatched",
            SurfaceFeature::Probabilities => "probabilities",
            SurfaceFeature::UInt8Targets => "uint8",
            SurfaceFeature::Half => "half",
            SurfaceFeature::NonFinite => "nonfinite",
            SurfaceFeature::Empty => "empty",
            SurfaceFeature::HugeClasses => "huge",
            SurfaceFeature::NegativeWeights => "negative",
            SurfaceFeature::Invalid => "invalid",
            SurfaceFeature::Clip => "clip",
            SurfaceFeature::ClipStep => "clip_step",
        }
    }
}

/// A set of features.
///
/// ```
/// use ce_parity::fuzz::{Surface, SurfaceFeature};
///
/// let surface = Surface::parse("core,half,kdim")?;
/// assert!(surface.has(SurfaceFeature::Half) && !surface.has(SurfaceFeature::Invalid));
/// assert_eq!(surface.to_string(), "kdim,half");
/// let valid_only = Surface::parse("all,-invalid")?;
/// assert!(valid_only.has(SurfaceFeature::NonFinite) && !valid_only.has(SurfaceFeature::Invalid));
/// # Ok::<(), ce_parity::fuzz::UnknownSurfaceFeature>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Surface {
    features: Vec<SurfaceFeature>,
}

impl Surface {
    /// The default: the whole surface. (The fuzzer's findings on uint8
    /// targets, on float32 rounding over thousands of classes and on the CLIP
    /// step's normalisation backward — which cancels for an embedding whose
    /// gradient is mostly along itself, leaving libtorch and Rust each as far
    /// from the float64 answer, more than assert_close's rtol apart — are
    /// fixed or judged by the float64 rule, see `runner::verdict`; their
    /// cases are in fixtures/regressions/.)
    pub fn supported() -> Surface {
        Surface::all()
    }

    /// The whole surface of issue 4.
    pub fn all() -> Surface {
        Surface::of(&SurfaceFeature::ALL)
    }

    /// 2-D float32/float64 input with int64 class targets and every option.
    pub fn core() -> Surface {
        Surface::of(&[])
    }

    /// Exactly these features (order and repeats do not matter).
    pub fn of(features: &[SurfaceFeature]) -> Surface {
        let mut features = features.to_vec();
        features.sort();
        features.dedup();
        Surface { features }
    }

    /// Whether the generator may draw cases with `feature`.
    pub fn has(&self, feature: SurfaceFeature) -> bool {
        self.features.contains(&feature)
    }

    /// Parses a comma-separated list: `default`, `all`, `core`, feature names,
    /// and `-name` to remove one, e.g. `default,half` or `all,-invalid`.
    ///
    /// # Errors
    /// [`UnknownSurfaceFeature`] naming the unknown word and the known ones.
    pub fn parse(spec: &str) -> Result<Surface, UnknownSurfaceFeature> {
        let mut features: Vec<SurfaceFeature> = Vec::new();
        for word in spec.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let (remove, name) = match word.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, word),
            };
            let named: Vec<SurfaceFeature> = match name {
                "default" => Surface::supported().features,
                "all" => SurfaceFeature::ALL.to_vec(),
                "core" => Vec::new(),
                _ => vec![SurfaceFeature::ALL
                    .into_iter()
                    .find(|f| f.name() == name)
                    .ok_or_else(|| UnknownSurfaceFeature(name.to_string()))?],
            };
            if remove {
                features.retain(|f| !named.contains(f));
            } else {
                features.extend(named);
            }
        }
        Ok(Surface::of(&features))
    }
}

/// A word of a surface spec that names no feature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown surface feature {0:?} (expected default, all, core or one of {known})",
    known = SurfaceFeature::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
)]
pub struct UnknownSurfaceFeature(pub String);

impl Default for Surface {
    fn default() -> Self {
        Surface::supported()
    }
}

impl fmt::Display for Surface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.features.is_empty() {
            return f.write_str("core");
        }
        let names: Vec<&str> = self.features.iter().map(|x| x.name()).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_adds_and_removes() {
        let s = Surface::parse("core,half,kdim").unwrap();
        assert!(s.has(SurfaceFeature::Half) && s.has(SurfaceFeature::KDim) && !s.has(SurfaceFeature::Invalid));
        let s = Surface::parse("all,-half").unwrap();
        assert!(!s.has(SurfaceFeature::Half) && s.has(SurfaceFeature::Invalid));
        assert_eq!(Surface::parse("default").unwrap(), Surface::supported());
        let unknown = Surface::parse("kdim,frobs").unwrap_err();
        assert_eq!(unknown, UnknownSurfaceFeature("frobs".to_string()));
        assert!(unknown.to_string().contains("\"frobs\"") && unknown.to_string().contains("half"));
    }
}
