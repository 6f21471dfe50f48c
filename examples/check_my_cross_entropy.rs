//! A hand-written cross-entropy, checked against libtorch's recorded results
//! with ce-parity's kit: what another library's test would do.
//!
//! The loss below is written plainly, as a library author would: f64, (N, C)
//! logits, class-index targets, class weights, ignore_index, label smoothing,
//! the three reductions, and the gradient w.r.t. the logits. It knows nothing
//! of ce-parity; `answer` adapts one case to it.
//!
//! Run: `cargo run --example check_my_cross_entropy` (exits 1 if a case fails).

use std::process::ExitCode;

use ce_parity::kit::{self, Answer, CaseView, CheckOptions, DType, Feature, Reduction, Supports, Targets};

/// The options of the hand-written loss.
struct Settings<'a> {
    weight: Option<&'a [f64]>,
    ignore_index: i64,
    label_smoothing: f64,
    reduction: Reduction,
}

/// The loss (one value per row for `None`, else one value) and d(Σ loss·upstream)/d logits.
struct LossAndGrad {
    loss: Vec<f64>,
    grad: Vec<f64>,
}

/// Cross-entropy of `rows × classes` logits against class indices, PyTorch's
/// way: the target is (1−ε)·one_hot + ε/C, each class term weighted, ignored
/// rows contribute nothing, and `Mean` divides by the total weight of the
/// rows kept. `upstream` is the gradient flowing in: one per row for `None`,
/// else one value.
fn cross_entropy(
    logits: &[f64],
    classes: usize,
    targets: &[i64],
    settings: &Settings,
    upstream: &[f64],
) -> Result<LossAndGrad, String> {
    let rows = targets.len();
    if logits.len() != rows * classes {
        return Err(format!(
            "{rows} targets for {} logits of {classes} classes",
            logits.len()
        ));
    }
    let weight: Vec<f64> = match settings.weight {
        Some(w) if w.len() != classes => return Err(format!("{} weights for {classes} classes", w.len())),
        Some(w) => w.to_vec(),
        None => vec![1.0; classes],
    };
    let eps = settings.label_smoothing.max(0.0); // a negative ε means no smoothing
    if eps > 1.0 {
        return Err(format!("label_smoothing must be at most 1, got {eps}"));
    }
    let weight_sum: f64 = weight.iter().sum();

    let mut losses = vec![0.0; rows];
    let mut probabilities = vec![0.0; rows * classes];
    let mut kept_weight = 0.0; // Mean's divisor
    for (i, &target) in targets.iter().enumerate() {
        if target == settings.ignore_index {
            continue;
        }
        if target < 0 || target as usize >= classes {
            return Err(format!("Target {target} is out of bounds."));
        }
        let y = target as usize;
        let row = &logits[i * classes..(i + 1) * classes];
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_sum_exp = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        let log_p = |c: usize| row[c] - log_sum_exp;
        let mut loss = -(1.0 - eps) * weight[y] * log_p(y);
        if eps > 0.0 {
            // Only with smoothing: 0·(−∞) for a −∞ logit would be NaN.
            loss -= eps / classes as f64 * (0..classes).map(|c| weight[c] * log_p(c)).sum::<f64>();
        }
        losses[i] = loss;
        for c in 0..classes {
            probabilities[i * classes + c] = log_p(c).exp();
        }
        kept_weight += weight[y];
    }

    // How much each row's loss feeds the output.
    let scale = |i: usize| match settings.reduction {
        Reduction::None => upstream[i],
        Reduction::Sum => upstream[0],
        Reduction::Mean => upstream[0] / kept_weight,
    };
    let mut grad = vec![0.0; rows * classes];
    for (i, &target) in targets.iter().enumerate() {
        if target == settings.ignore_index {
            continue;
        }
        let y = target as usize;
        for c in 0..classes {
            let p = probabilities[i * classes + c];
            let one_hot = if c == y { 1.0 } else { 0.0 };
            let mut d = (1.0 - eps) * weight[y] * (p - one_hot);
            if eps > 0.0 {
                d += eps / classes as f64 * (p * weight_sum - weight[c]);
            }
            grad[i * classes + c] = d * scale(i);
        }
    }

    let loss = match settings.reduction {
        Reduction::None => losses,
        Reduction::Sum => vec![losses.iter().sum()],
        Reduction::Mean => vec![losses.iter().sum::<f64>() / kept_weight],
    };
    Ok(LossAndGrad { loss, grad })
}

/// One case of the kit, through the hand-written loss.
fn answer(case: &CaseView) -> Answer {
    let Targets::Classes { classes: targets, .. } = case.target else {
        return Answer::unsupported("probability targets");
    };
    let &[_, classes] = case.input.shape else {
        return Answer::rejected("logits must be 2-D");
    };
    if case.weight.is_some_and(|w| w.shape.len() != 1) {
        return Answer::rejected("weight must be 1-D");
    }
    // libtorch's gradient of an ignored row is NaN when its logits hold a
    // NaN (softmax's backward reads them); this loss gives it zeros, by design.
    let rows = case.input.values.chunks(classes.max(1));
    let ignored_nan = rows
        .zip(targets)
        .any(|(row, &t)| t == case.ignore_index && row.iter().any(|x| x.is_nan()));
    if ignored_nan {
        return Answer::unsupported("NaN logits in an ignored row");
    }
    let settings = Settings {
        weight: case.weight.map(|w| w.values),
        ignore_index: case.ignore_index,
        label_smoothing: case.label_smoothing,
        reduction: case.reduction,
    };
    let rows = targets.len();
    let upstream = match (case.grad_output, case.reduction) {
        (Some(g), _) => g.values.to_vec(),
        (None, Reduction::None) => vec![1.0; rows],
        (None, _) => vec![1.0],
    };
    match cross_entropy(case.input.values, classes, targets, &settings, &upstream) {
        Ok(result) => {
            let shape = if case.reduction == Reduction::None {
                vec![rows]
            } else {
                vec![]
            };
            Answer::loss(result.loss, shape).with_grad_input(result.grad)
        }
        Err(message) => Answer::rejected(message),
    }
}

fn main() -> ExitCode {
    // What this implementation does, honestly: f64, 2-D input, class
    // indices; its weight is f64 like its input, so no mixed dtypes.
    let supports = Supports::all()
        .dtypes([DType::Float64])
        .without(Feature::Unbatched)
        .without(Feature::KDim)
        .without(Feature::ProbabilityTargets)
        .without(Feature::MixedDtypes);
    let report = match kit::check_bundled(answer, &CheckOptions::new().supports(supports)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("cannot read the bundled fixtures: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{report}");
    if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
