//! Accuracy does not regress: on random float32 cases the fused Rust kernel's
//! error against a float64 computation (libtorch's own, in float64) is no
//! larger than libtorch's float32 error against it.

use ce_parity::fixture::Case;
use ce_parity::loss::Reduction;
use ce_parity::reference::run_libtorch;
use ce_parity::runner::{in_float64, run_rust, Outcome};
use ce_parity::tensor::{DType, Tensor};

fn values(o: Outcome) -> (Vec<f64>, Vec<f64>) {
    match o {
        Outcome::Values { loss, grad_input, .. } => (loss.to_f64(), grad_input.unwrap().to_f64()),
        other => panic!("{other:?}"),
    }
}

fn max_abs_error(a: &[f64], exact: &[f64]) -> f64 {
    a.iter().zip(exact).map(|(a, e)| (a - e).abs()).fold(0.0, f64::max)
}

#[test]
fn rust_is_at_least_as_accurate_as_libtorch_in_float32() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let shapes: [&[usize]; 5] = [&[64, 10], &[16, 1000], &[4, 32000], &[8, 5, 30], &[2, 128_256]];
    let (mut rust_total, mut torch_total) = (0.0, 0.0);
    for (i, shape) in shapes.iter().cycle().take(15).enumerate() {
        let n: usize = shape.iter().product();
        let (c, positions) = (shape[1], n / shape[1]);
        let scale = [1.0, 5.0, 20.0][i % 3];
        let x: Vec<f64> = (0..n).map(|_| (uniform() - 0.5) * 2.0 * scale).collect();
        let y: Vec<i64> = (0..positions).map(|_| (uniform() * c as f64) as i64).collect();
        let mut target_shape = vec![shape[0]];
        target_shape.extend_from_slice(&shape[2..]);
        let mut case = Case::new(
            format!("random/{i}"),
            Tensor::float(DType::Float32, shape.to_vec(), x),
            Tensor::int(DType::Int64, target_shape, y),
        );
        case.label_smoothing = [0.0, 0.1, 0.3][i % 3];
        case.reduction = Reduction::ALL[i % 3];
        if i % 2 == 1 {
            case.weight = Some(Tensor::float(
                DType::Float32,
                vec![c],
                (0..c).map(|_| 0.5 + uniform()).collect(),
            ));
        }
        let (exact_loss, exact_grad) = values(run_libtorch(&in_float64(&case)));
        let (rust_loss, rust_grad) = values(run_rust(&case));
        let (torch_loss, torch_grad) = values(run_libtorch(&case));
        let rust = max_abs_error(&rust_loss, &exact_loss).max(max_abs_error(&rust_grad, &exact_grad));
        let torch = max_abs_error(&torch_loss, &exact_loss).max(max_abs_error(&torch_grad, &exact_grad));
        println!(
            "{:>12?} {:>4} ε={:<4} rust error {rust:.3e}  libtorch error {torch:.3e}",
            shape, case.reduction, case.label_smoothing
        );
        // Per case: no worse than libtorch, give or take half a float32 ULP of the result.
        let half_ulp =
            exact_loss.iter().chain(&exact_grad).fold(0.0f64, |m, v| m.max(v.abs())) * f32::EPSILON as f64 / 2.0;
        assert!(
            rust <= torch + half_ulp,
            "case {i} {shape:?}: rust {rust:e} vs libtorch {torch:e}"
        );
        rust_total += rust;
        torch_total += torch;
    }
    println!("total: rust {rust_total:.3e}, libtorch {torch_total:.3e}");
    assert!(rust_total <= torch_total);
}
