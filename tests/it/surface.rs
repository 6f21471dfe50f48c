//! The whole F.cross_entropy surface against closed forms and libtorch's
//! recorded values: K-dim, unbatched, probability targets, half types and
//! non-finite values.

use ce_parity::fixtures::Values;
use std::path::Path;

use ce_parity::fixtures::{self, Case, Recorded};
use ce_parity::loss::{cross_entropy, cross_entropy_backward, Options, Reduction, Target, View};
use ce_parity::runner::{run_rust, Outcome};
use half::{bf16, f16};

fn recorded_case(file: &str, name: &str) -> Case {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(file);
    fixtures::load(&path)
        .unwrap()
        .cases
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

fn recorded_values(case: &Case) -> (Vec<f64>, Vec<f64>) {
    match &case.expected.as_ref().unwrap().result {
        Recorded::Values(Values { loss, grad_input, .. }) => (loss.to_f64(), grad_input.as_ref().unwrap().to_f64()),
        Recorded::Error(e) => panic!("{e}"),
    }
}

fn rust_values(case: &Case) -> (Vec<f64>, Vec<f64>, Option<Vec<f64>>) {
    match run_rust(case) {
        Outcome::Values(Values {
            loss,
            grad_input,
            grad_target,
            ..
        }) => (
            loss.to_f64(),
            grad_input.unwrap().to_f64(),
            grad_target.map(|g| g.to_f64()),
        ),
        other => panic!("{other:?}"),
    }
}

/// (N, C, d1, d2) moved to (N·d1·d2, C).
fn flatten_kdim(x: &[f64], n: usize, c: usize, inner: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for b in 0..n {
        for s in 0..inner {
            for k in 0..c {
                out[(b * inner + s) * c + k] = x[b * c * inner + k * inner + s];
            }
        }
    }
    out
}

#[test]
fn kdim_equals_the_flattened_problem_and_libtorch() {
    let (n, c, d1, d2) = (2, 3, 2, 2);
    let x: Vec<f64> = (0..n * c * d1 * d2)
        .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.7)
        .collect();
    let y = [0i64, 2, 1, -100, 2, 2, 0, 1];
    let w = [0.5, 1.5, 2.0];
    for reduction in Reduction::ALL {
        let options = Options {
            weight: Some(&w),
            reduction,
            label_smoothing: 0.15,
            ..Options::default()
        };
        let kdim = cross_entropy(
            View::new(&x, &[n, c, d1, d2]),
            Target::Classes(View::new(&y, &[n, d1, d2])),
            &options,
        )
        .unwrap();
        let flat_x = flatten_kdim(&x, n, c, d1 * d2);
        let flat = cross_entropy(
            View::new(&flat_x, &[n * d1 * d2, c]),
            Target::Classes(View::new(&y, &[8])),
            &options,
        )
        .unwrap();
        assert_eq!(kdim.values.len(), flat.values.len());
        for (a, b) in kdim.values.iter().zip(&flat.values) {
            assert!((a - b).abs() < 1e-14, "{reduction}: {a} vs {b}");
        }
        let expected_shape: Vec<usize> = if reduction == Reduction::None {
            vec![n, d1, d2]
        } else {
            vec![]
        };
        assert_eq!(kdim.shape, expected_shape);
    }
    // And libtorch agrees on every recorded K-dim case.
    for dims in ["kdim3", "kdim4", "kdim5"] {
        let case = recorded_case("surface.json", &format!("{dims}/float64/none/eps0.2"));
        let (loss, grad) = recorded_values(&case);
        let (rust_loss, rust_grad, _) = rust_values(&case);
        for (a, e) in rust_loss.iter().chain(&rust_grad).zip(loss.iter().chain(&grad)) {
            assert!((a - e).abs() <= 1e-12 + 1e-10 * e.abs(), "{dims}: {a} vs {e}");
        }
    }
}

#[test]
fn unbatched_mean_divides_by_the_target_weight() {
    let x = [0.3, -1.2, 2.0, 0.1];
    let w = [1.0, 3.0, 0.5, 2.0];
    let lse = x.iter().map(|v: &f64| v.exp()).sum::<f64>().ln();
    let lp: Vec<f64> = x.iter().map(|v| v - lse).collect();
    let e = 0.1;
    let smooth = -lp.iter().zip(&w).map(|(l, w)| l * w).sum::<f64>();
    let loss = |reduction, y: i64| {
        let options = Options {
            weight: Some(&w),
            reduction,
            label_smoothing: e,
            ..Options::default()
        };
        cross_entropy(View::new(&x, &[4]), Target::Classes(View::new(&[y], &[])), &options).unwrap()
    };
    let mean = loss(Reduction::Mean, 1);
    assert_eq!(mean.shape, Vec::<usize>::new());
    let expected = ((1.0 - e) * -w[1] * lp[1] + e / 4.0 * smooth) / w[1];
    assert!((mean.values[0] - expected).abs() < 1e-14);
    let none = loss(Reduction::None, 1);
    assert_eq!(none.shape, Vec::<usize>::new());
    assert!((none.values[0] - expected * w[1]).abs() < 1e-14);
    // Ignored: NaN under mean, 0 under sum and none.
    assert!(loss(Reduction::Mean, -100).values[0].is_nan());
    assert_eq!(loss(Reduction::Sum, -100).values, vec![0.0]);
    assert_eq!(loss(Reduction::None, -100).values, vec![0.0]);
}

#[test]
fn probability_targets_closed_form_and_target_gradient() {
    // Unnormalised, partly negative targets; mean divides by the number of positions.
    let x: [f64; 6] = [1.0, 2.0, 0.5, -1.0, 0.0, 0.3];
    let t = [0.2, 0.9, -0.1, 0.5, 0.5, 0.5];
    let w = [2.0, 1.0, 0.5];
    let e = 0.3;
    let options = Options {
        weight: Some(&w),
        label_smoothing: e,
        ..Options::default()
    };
    let target = Target::Probabilities(View::new(&t, &[2, 3]));
    let loss = cross_entropy(View::new(&x, &[2, 3]), target, &options).unwrap().values[0];
    let mut expected = 0.0;
    let mut grad_t = [0.0; 6];
    for r in 0..2 {
        let row = &x[r * 3..r * 3 + 3];
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        for c in 0..3 {
            let q = t[r * 3 + c] * (1.0 - e) + e / 3.0;
            expected -= w[c] * q * (row[c] - lse);
            grad_t[r * 3 + c] = -(1.0 - e) * w[c] * (row[c] - lse) / 2.0;
        }
    }
    assert!((loss - expected / 2.0).abs() < 1e-14, "{loss} vs {}", expected / 2.0);
    let grads = cross_entropy_backward(View::new(&x, &[2, 3]), target, &options, None).unwrap();
    for (a, b) in grads.target.unwrap().iter().zip(&grad_t) {
        assert!((a - b).abs() < 1e-14);
    }
    // libtorch's recorded target gradient, for a K-dim case.
    let case = recorded_case("surface.json", "probabilities_kdim/float64/mean/eps0.2");
    let Some(Recorded::Values(Values {
        grad_target: Some(recorded),
        ..
    })) = case.expected.as_ref().map(|e| e.result.clone())
    else {
        panic!("grad_target not recorded")
    };
    let (_, _, rust) = rust_values(&case);
    for (a, e) in rust.unwrap().iter().zip(recorded.to_f64()) {
        assert!((a - e).abs() <= 1e-12 + 1e-10 * e.abs());
    }
}

#[test]
fn index_targets_equal_one_hot_probabilities_under_sum() {
    let x: [f64; 6] = [0.4, -0.3, 1.1, 2.0, 0.0, -1.0];
    let y = [2i64, 0];
    let one_hot = [0.0, 0.0, 1.0, 1.0, 0.0, 0.0];
    for e in [0.0, 0.25] {
        let options = Options {
            reduction: Reduction::Sum,
            label_smoothing: e,
            ..Options::default()
        };
        let a = cross_entropy(View::new(&x, &[2, 3]), Target::Classes(View::new(&y, &[2])), &options).unwrap();
        let b = cross_entropy(
            View::new(&x, &[2, 3]),
            Target::Probabilities(View::new(&one_hot, &[2, 3])),
            &options,
        )
        .unwrap();
        assert!((a.values[0] - b.values[0]).abs() < 1e-14);
    }
}

#[test]
fn half_types_meet_default_tolerances_against_recorded_libtorch() {
    // Every float16/bfloat16 case of the surface and non-finite fixtures: within
    // assert_close's defaults, and most of them bit-identical.
    let mut compared = 0;
    let mut identical = 0;
    for file in ["surface.json", "nonfinite.json"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(file);
        for case in fixtures::load(&path).unwrap().cases {
            if !matches!(
                case.input.dtype,
                ce_parity::tensor::DType::Float16 | ce_parity::tensor::DType::BFloat16
            ) {
                continue;
            }
            let (loss, grad) = recorded_values(&case);
            let (rust_loss, rust_grad, _) = rust_values(&case);
            let tolerance = ce_parity::compare::Tolerance::default_for(case.input.dtype);
            for (a, e) in rust_loss.iter().chain(&rust_grad).zip(loss.iter().chain(&grad)) {
                assert!(tolerance.close(*a, *e), "{}: {a} vs {e}", case.name);
                compared += 1;
                identical += usize::from(a.to_bits() == e.to_bits() || (a.is_nan() && e.is_nan()));
            }
        }
    }
    assert!(compared > 3000, "{compared}");
    assert!(
        identical * 100 >= compared * 99,
        "{identical} of {compared} bit-identical"
    );
}

#[test]
fn half_api_takes_half_slices() {
    let x: Vec<f16> = [2.0f32, 1.0, 0.1, 0.5, 1.5, 0.8]
        .iter()
        .map(|&v| f16::from_f32(v))
        .collect();
    let y = [0i64, 1];
    let options = Options {
        label_smoothing: 0.1,
        ..Options::default()
    };
    let loss = cross_entropy(View::new(&x, &[2, 3]), Target::Classes(View::new(&y, &[2])), &options).unwrap();
    // libtorch 2.13: F.cross_entropy(x.half(), y, label_smoothing=0.1) = 0.5967 (float16)
    assert!((loss.values[0].to_f32() - 0.596669).abs() < 1e-3);
    let xb: Vec<bf16> = x.iter().map(|v| bf16::from_f32(v.to_f32())).collect();
    let loss = cross_entropy(
        View::new(&xb, &[2, 3]),
        Target::Classes(View::new(&y, &[2])),
        &Options::<bf16> {
            label_smoothing: 0.1,
            ..Options::default()
        },
    )
    .unwrap();
    assert!((loss.values[0].to_f32() - 0.596669).abs() < 1e-2);
}

#[test]
fn non_finite_values_land_where_libtorch_puts_them() {
    // −inf on a non-target class with ε > 0: infinite loss, finite gradient −ε/C at that class.
    let case = recorded_case("nonfinite.json", "neginf_other_class/float64/none/eps0.1");
    let (loss, grad, _) = rust_values(&case);
    assert_eq!(loss[0], f64::INFINITY);
    assert!(grad.iter().all(|g| g.is_finite()));
    assert!((grad[1] - (-0.1 / 3.0)).abs() < 1e-15);
    assert_eq!(recorded_values(&case).0[0], f64::INFINITY);
    // +inf or NaN in a row: that row NaN, the other row untouched.
    for name in [
        "posinf/float32/none/eps0",
        "nan/float32/none/eps0",
        "all_neginf_row/float32/none/eps0",
    ] {
        let case = recorded_case("nonfinite.json", &name.replace("eps0", "eps0.0"));
        let (loss, grad, _) = rust_values(&case);
        assert!(loss[0].is_nan() && loss[1].is_finite(), "{name}: {loss:?}");
        assert!(grad[..3].iter().all(|g| g.is_nan()) && grad[3..].iter().all(|g| g.is_finite()));
    }
    // An ignored NaN row does not poison a reduced loss.
    let case = recorded_case("nonfinite.json", "ignored_nan_row/float64/mean/eps0.1");
    assert!(rust_values(&case).0[0].is_finite());
    // Weight 0 on a −inf class with ε > 0: NaN.
    let case = recorded_case("nonfinite.json", "zero_weight_on_neginf/float64/sum/eps0.1");
    assert!(rust_values(&case).0[0].is_nan());
    // Empty batch: mean NaN, sum 0, none empty.
    let loss = |r: &str| {
        rust_values(&recorded_case(
            "nonfinite.json",
            &format!("empty_batch/float32/{r}/eps0.1"),
        ))
        .0
    };
    assert!(loss("mean")[0].is_nan());
    assert_eq!(loss("sum"), vec![0.0]);
    assert!(loss("none").is_empty());
}
