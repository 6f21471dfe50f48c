//! The loss against values derived by hand, independent of libtorch.

use ce_parity::loss::{cross_entropy, cross_entropy_backward, LossError, Options, Reduction, Target, View};

fn loss(x: &[f64], shape: &[usize], y: &[i64], options: &Options<f64>) -> Result<Vec<f64>, LossError> {
    let target_shape = [y.len()];
    cross_entropy(
        View::new(x, shape),
        Target::Classes(View::new(y, &target_shape)),
        options,
    )
    .map(|l| l.values)
}

fn log_softmax(row: &[f64]) -> Vec<f64> {
    let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
    row.iter().map(|v| v - lse).collect()
}

#[test]
fn article_case_by_hand() {
    let x = [2.0, 1.0, 0.1, 0.5, 1.5, 0.8];
    let e = 0.1;
    // Per row: (1−ε)·(−lp_y) + ε/C·(−Σ lp).
    let per_row: Vec<f64> = [(0usize, 0usize), (1, 1)]
        .iter()
        .map(|&(row, y)| {
            let lp = log_softmax(&x[row * 3..row * 3 + 3]);
            (1.0 - e) * -lp[y] + e / 3.0 * -lp.iter().sum::<f64>()
        })
        .collect();
    let options = Options {
        label_smoothing: e,
        ..Options::default()
    };
    let mean = loss(&x, &[2, 3], &[0, 1], &options).unwrap()[0];
    assert!((mean - (per_row[0] + per_row[1]) / 2.0).abs() < 1e-15);
    assert!((mean - 0.596669).abs() < 5e-7, "libtorch prints 0.596669, got {mean}");
    let none = loss(
        &x,
        &[2, 3],
        &[0, 1],
        &Options {
            reduction: Reduction::None,
            ..options
        },
    )
    .unwrap();
    assert!((none[0] - per_row[0]).abs() < 1e-15 && (none[1] - per_row[1]).abs() < 1e-15);
}

#[test]
fn uniform_logits_give_log_c_for_any_smoothing() {
    for e in [0.0, 0.1, 1.0] {
        let options = Options {
            label_smoothing: e,
            ..Options::default()
        };
        let l = loss(&[0.3; 8], &[2, 4], &[1, 3], &options).unwrap()[0];
        assert!((l - 4f64.ln()).abs() < 1e-15, "ε={e}: {l}");
    }
}

#[test]
fn full_smoothing_ignores_the_target() {
    // ε = 1: the loss is the mean of −lp over classes, whatever the target.
    let x = [1.0, -2.0, 0.5];
    let lp = log_softmax(&x);
    let expected = -lp.iter().sum::<f64>() / 3.0;
    for y in 0..3 {
        let l = loss(
            &x,
            &[1, 3],
            &[y],
            &Options {
                label_smoothing: 1.0,
                ..Options::default()
            },
        )
        .unwrap()[0];
        assert!((l - expected).abs() < 1e-15);
    }
}

#[test]
fn weighted_mean_divides_by_the_weight_of_the_targets() {
    let x = [1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
    let w = [0.5, 2.0, 4.0];
    let lp0 = log_softmax(&x[..3]);
    let lp1 = log_softmax(&x[3..]);
    let expected = (-w[2] * lp0[2] - w[0] * lp1[0]) / (w[2] + w[0]);
    let l = loss(
        &x,
        &[2, 3],
        &[2, 0],
        &Options {
            weight: Some(&w),
            ..Options::default()
        },
    )
    .unwrap()[0];
    assert!((l - expected).abs() < 1e-15);
}

#[test]
fn ignored_rows_drop_out_whatever_the_ignore_index() {
    let x = [1.0, 2.0, 3.0, 3.0, 2.0, 1.0, 0.5, 0.5, 0.0];
    let lp1 = log_softmax(&x[3..6]);
    // -100 (default), another negative, a valid class, and an out-of-range value.
    for ignore in [-100i64, -1, 2, 7] {
        let y = [ignore, 0, ignore];
        let options = Options {
            ignore_index: ignore,
            ..Options::default()
        };
        let mean = loss(&x, &[3, 3], &y, &options).unwrap()[0];
        assert!((mean + lp1[0]).abs() < 1e-15, "ignore_index {ignore}: {mean}");
        let none = loss(
            &x,
            &[3, 3],
            &y,
            &Options {
                reduction: Reduction::None,
                ..options
            },
        )
        .unwrap();
        assert_eq!(none[0], 0.0);
        assert_eq!(none[2], 0.0);
    }
}

#[test]
fn all_rows_ignored_mean_is_nan_with_zero_gradient() {
    let x = [1.0, 2.0, 3.0, 3.0];
    let y = [-100i64, -100];
    for e in [0.0, 0.1] {
        let options = Options {
            label_smoothing: e,
            ..Options::default()
        };
        assert!(loss(&x, &[2, 2], &y, &options).unwrap()[0].is_nan());
        let sum = loss(
            &x,
            &[2, 2],
            &y,
            &Options {
                reduction: Reduction::Sum,
                ..options
            },
        )
        .unwrap()[0];
        assert_eq!(sum, 0.0);
        let grad = cross_entropy_backward(
            View::new(&x, &[2, 2]),
            Target::Classes(View::new(&y, &[2])),
            &options,
            None,
        )
        .unwrap();
        assert_eq!(grad.input, vec![0.0; 4]);
    }
}

#[test]
fn gradient_is_softmax_minus_smoothed_target() {
    let x = [0.2, -1.0, 3.0, 0.7];
    let e = 0.2;
    let p: Vec<f64> = log_softmax(&x).iter().map(|l| l.exp()).collect();
    let grad = cross_entropy_backward(
        View::new(&x, &[1, 4]),
        Target::Classes(View::new(&[2], &[1])),
        &Options {
            label_smoothing: e,
            reduction: Reduction::Sum,
            ..Options::default()
        },
        Some(View::new(&[3.0], &[])),
    )
    .unwrap();
    for c in 0..4 {
        let q = if c == 2 { 1.0 - e + e / 4.0 } else { e / 4.0 };
        assert!((grad.input[c] - 3.0 * (p[c] - q)).abs() < 1e-15);
    }
}

#[test]
fn invalid_input_gives_typed_errors() {
    let x = [0.0; 6];
    let opts = Options::<f64>::default();
    assert_eq!(loss(&x, &[2, 3], &[0, 5], &opts), Err(LossError::TargetOutOfBounds(5)));
    assert_eq!(
        loss(&x, &[2, 3], &[0, -1], &opts),
        Err(LossError::TargetOutOfBounds(-1))
    );
    assert_eq!(
        loss(&x, &[2, 3], &[0, 1, 2], &opts),
        Err(LossError::BatchSizeMismatch { input: 2, target: 3 })
    );
    let w = [1.0, 1.0];
    let err = loss(
        &x,
        &[2, 3],
        &[0, 1],
        &Options {
            weight: Some(&w),
            ..opts
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "weight tensor should be defined either for all 3 classes or no classes but got weight tensor of shape: [2]"
    );
    let err = loss(
        &x,
        &[2, 3],
        &[0, 1],
        &Options {
            label_smoothing: 1.5,
            ..opts
        },
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "label_smoothing must be between 0.0 and 1.0. Got: 1.5");
    assert_eq!(
        loss(
            &x,
            &[2, 3],
            &[0, 1],
            &Options {
                label_smoothing: f64::NAN,
                ..opts
            }
        ),
        Err(LossError::LabelSmoothingNan)
    );
    assert!(matches!(
        loss(&x, &[2, 4], &[0, 1], &opts),
        Err(LossError::DataLength { what: "input", .. })
    ));
    // A negative label_smoothing behaves as 0.
    let a = loss(
        &[1.0, 2.0],
        &[1, 2],
        &[0],
        &Options {
            label_smoothing: -0.5,
            ..opts
        },
    )
    .unwrap();
    let b = loss(&[1.0, 2.0], &[1, 2], &[0], &opts).unwrap();
    assert_eq!(a, b);
    let err = cross_entropy_backward(
        View::new(&x, &[2, 3]),
        Target::Classes(View::new(&[0, 1], &[2])),
        &opts,
        Some(View::new(&[1.0, 1.0], &[2])),
    )
    .unwrap_err();
    assert!(matches!(err, LossError::GradOutputShape { .. }));
}
