//! The formula each step computes, written with the case's ε, C, weight and
//! reduction, as libtorch computes it (`cross_entropy_loss_label_smoothing`).

use super::Geometry;
use crate::fixtures::{Case, Quantity};
use crate::loss::Reduction;
use crate::tensor::Data;

/// The formula of `quantity`'s step for `case`. `per_sample_sum` is Σ ℓ_i,
/// shown as the mean's numerator.
pub(super) fn formula(quantity: Quantity, case: &Case, geometry: Geometry, per_sample_sum: f64) -> String {
    let targets = Targets::of(case, geometry);
    match quantity {
        Quantity::Softmax => format!(
            "p[i,c] = exp(x[i,c]) / Σ_k exp(x[i,k]) over the C = {} classes",
            geometry.classes
        ),
        Quantity::SmoothedTarget => smoothed_target(case, geometry, &targets),
        Quantity::LossPerSample => per_sample(case, &targets),
        Quantity::Loss => reduction(case, &targets, per_sample_sum),
    }
}

/// What the formulas need to know about the target.
struct Targets {
    /// Class indices (else probabilities).
    classes: bool,
    /// How many samples have y = ignore_index.
    ignored: usize,
    /// How many samples count (index targets: not ignored).
    kept: usize,
    /// Σ `w[y_i]` over the kept samples, when there is a weight.
    kept_weight: Option<f64>,
}

impl Targets {
    fn of(case: &Case, geometry: Geometry) -> Targets {
        let weight = case.weight.as_ref().map(|w| w.to_f64());
        match &case.target.data {
            Data::Int(ys) => {
                let kept: Vec<i64> = ys.iter().copied().filter(|&y| y != case.ignore_index).collect();
                let kept_weight = weight.map(|w| {
                    kept.iter()
                        .filter_map(|&y| usize::try_from(y).ok().and_then(|y| w.get(y)))
                        .sum()
                });
                Targets {
                    classes: true,
                    ignored: ys.len() - kept.len(),
                    kept: kept.len(),
                    kept_weight,
                }
            }
            Data::Float(_) => Targets {
                classes: false,
                ignored: 0,
                kept: geometry.samples(),
                kept_weight: None,
            },
        }
    }

    /// "; none where y_i = ignore_index (-100)"-style suffix, when a sample is ignored.
    fn ignored_note(&self, case: &Case, what: &str) -> String {
        if self.ignored == 0 {
            return String::new();
        }
        let samples = if self.ignored == 1 { "sample" } else { "samples" };
        format!(
            "; {what} where y_i = ignore_index ({}, {} {samples})",
            case.ignore_index, self.ignored
        )
    }
}

/// ε as libtorch uses it: smoothing is off unless ε > 0.
fn epsilon(case: &Case) -> f64 {
    case.label_smoothing.max(0.0)
}

fn smoothed_target(case: &Case, geometry: Geometry, targets: &Targets) -> String {
    let e = epsilon(case);
    let c = geometry.classes;
    let t = if targets.classes { "[c = y_i]" } else { "t[i,c]" };
    let ignored = targets.ignored_note(case, "none");
    if e == 0.0 {
        return format!("q[i,c] = {t} (no smoothing: ε = 0){ignored}");
    }
    let (keep, off) = crate::loss::keep_and_spread(e, c);
    format!(
        "q[i,c] = (1 − ε)·{t} + ε/C = {}·{t} + {off:.4} (ε = {}, C = {c}){ignored}",
        plain_number(keep),
        plain_number(e)
    )
}

fn per_sample(case: &Case, targets: &Targets) -> String {
    let smoothing = epsilon(case) > 0.0;
    let weighted = case.weight.is_some();
    let formula = match (targets.classes, smoothing, weighted) {
        (true, false, false) => "ℓ_i = −log p[i,y_i]".to_string(),
        (true, false, true) => "ℓ_i = −w[y_i]·log p[i,y_i]".to_string(),
        (true, true, false) => {
            "ℓ_i = −Σ_c q[i,c]·log p[i,c] = (1 − ε)·(−log p[i,y_i]) + (ε/C)·Σ_c (−log p[i,c])".to_string()
        }
        (true, true, true) => "ℓ_i = (1 − ε)·w[y_i]·(−log p[i,y_i]) + (ε/C)·Σ_c w[c]·(−log p[i,c])".to_string(),
        (false, _, false) => "ℓ_i = −Σ_c q[i,c]·log p[i,c]".to_string(),
        (false, _, true) => "ℓ_i = −Σ_c w[c]·q[i,c]·log p[i,c]".to_string(),
    };
    format!(
        "{formula} (the loss under reduction \"none\"){}",
        targets.ignored_note(case, "ℓ_i = 0")
    )
}

fn reduction(case: &Case, targets: &Targets, per_sample_sum: f64) -> String {
    let sum = format!("{per_sample_sum:.6}");
    match case.reduction {
        Reduction::None => "loss = ℓ (reduction \"none\": the per-sample losses are the loss)".to_string(),
        Reduction::Sum => format!("loss = Σ_i ℓ_i = {sum} (reduction \"sum\")"),
        Reduction::Mean => match (targets.classes, targets.kept_weight) {
            (true, Some(weight)) => format!(
                "loss = Σ_i ℓ_i / Σ_i w[y_i] over the samples not ignored = {sum} / {} (reduction \"mean\")",
                plain_number(weight)
            ),
            (true, None) if targets.ignored > 0 => format!(
                "loss = Σ_i ℓ_i / (number of samples not ignored) = {sum} / {} (reduction \"mean\")",
                targets.kept
            ),
            (true, None) => format!("loss = Σ_i ℓ_i / N = {sum} / {} (reduction \"mean\")", targets.kept),
            (false, _) => format!(
                "loss = Σ_i ℓ_i / N over every sample (probability targets) = {sum} / {} (reduction \"mean\")",
                targets.kept
            ),
        },
    }
}

/// A number with at most 6 decimals and no trailing zeros, as people write
/// them: 0.9, 1, 0.4122.
pub fn plain_number(v: f64) -> String {
    let text = format!("{v:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{DType, Tensor};

    fn article(weight: Option<Vec<f64>>, targets: Vec<i64>) -> Case {
        let input = Tensor::float(DType::Float32, vec![2, 3], vec![2.0, 1.0, 0.1, 0.5, 1.5, 0.8]);
        let mut case = Case::new("t", input, Tensor::int(DType::Int64, vec![2], targets));
        case.label_smoothing = 0.1;
        case.weight = weight.map(|w| Tensor::float(DType::Float32, vec![3], w));
        case
    }

    #[test]
    fn the_mean_divides_by_the_weight_of_the_kept_targets() {
        let case = article(Some(vec![1.0, 2.0, 0.5]), vec![0, -100]);
        let g = Geometry::of(&case.input.shape).unwrap();
        let mean = formula(Quantity::Loss, &case, g, 1.5);
        assert!(
            mean.contains("Σ_i w[y_i]") && mean.ends_with("= 1.500000 / 1 (reduction \"mean\")"),
            "{mean}"
        );
        let per_sample = formula(Quantity::LossPerSample, &case, g, 0.0);
        assert!(
            per_sample.contains("(1 − ε)·w[y_i]")
                && per_sample.ends_with("ℓ_i = 0 where y_i = ignore_index (-100, 1 sample)")
        );
    }

    #[test]
    fn the_articles_formulas() {
        let case = article(None, vec![0, 1]);
        let g = Geometry::of(&case.input.shape).unwrap();
        assert_eq!(
            formula(Quantity::SmoothedTarget, &case, g, 0.0),
            "q[i,c] = (1 − ε)·[c = y_i] + ε/C = 0.9·[c = y_i] + 0.0333 (ε = 0.1, C = 3)"
        );
        assert_eq!(
            formula(Quantity::Loss, &case, g, 1.1933373),
            "loss = Σ_i ℓ_i / N = 1.193337 / 2 (reduction \"mean\")"
        );
    }
}
