//! Accuracy does not regress: on random float32 cases, the fused kernel's
//! error against an f64 computation (libtorch in float64 on the same values)
//! is no larger than libtorch's own float32 error against it.

use ce_parity::fixtures::Case;
use ce_parity::fixtures::Values;
use ce_parity::loss::{cross_entropy_with_grad, Options, Reduction, Target, View};
use ce_parity::reference::run_libtorch;
use ce_parity::runner::Outcome;
use ce_parity::tensor::{DType, Tensor};

use crate::rng::Rng;

/// (loss, gradient w.r.t. the input) from libtorch, as f64.
fn libtorch(case: &Case) -> (Vec<f64>, Vec<f64>) {
    match run_libtorch(case) {
        Outcome::Values(Values {
            loss,
            grad_input: Some(grad),
            ..
        }) => (loss.as_f64().unwrap().to_vec(), grad.as_f64().unwrap().to_vec()),
        other => panic!("{}: libtorch gave {other:?}", case.name),
    }
}

fn max_error(actual: &[f64], exact: &[f64]) -> f64 {
    actual.iter().zip(exact).map(|(a, e)| (a - e).abs()).fold(0.0, f64::max)
}

#[test]
fn fused_f32_is_at_least_as_accurate_as_libtorch_f32() {
    let mut rng = Rng(0xacc);
    let shapes: [&[usize]; 5] = [&[64, 1000], &[16, 32000], &[4, 21, 16, 16], &[256, 10], &[8, 128256]];
    let (mut rust_total, mut torch_total) = (0.0, 0.0);
    for round in 0..20 {
        let shape = shapes[round % shapes.len()];
        let c = shape[1];
        let n: usize = shape.iter().product();
        let scale = [1.0, 5.0, 20.0][round % 3];
        let x: Vec<f32> = (0..n).map(|_| ((rng.uniform() - 0.5) * 2.0 * scale) as f32).collect();
        let target_shape: Vec<usize> = [shape[0]].into_iter().chain(shape[2..].iter().copied()).collect();
        let positions: usize = target_shape.iter().product();
        let probabilities = round % 4 == 3;
        let y: Vec<i64> = (0..positions)
            .map(|_| (rng.uniform() * c as f64) as i64 % c as i64)
            .collect();
        let t: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
        let weight: Option<Vec<f32>> = (round % 2 == 1).then(|| (0..c).map(|_| 0.5 + rng.uniform() as f32).collect());
        let reduction = Reduction::ALL[round % 3];
        let epsilon = [0.1, 0.0][round % 2];

        let options = Options {
            weight: weight.as_deref(),
            reduction,
            label_smoothing: epsilon,
            ..Options::default()
        };
        let target = if probabilities {
            Target::Probabilities(View::new(&t, shape))
        } else {
            Target::Classes(View::new(&y, &target_shape))
        };
        let (loss, grads) = cross_entropy_with_grad(View::new(&x, shape), target, &options, None).unwrap();

        let case = |dtype: DType| {
            let as_f64 = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<_>>();
            let target = if probabilities {
                Tensor::float(dtype, shape.to_vec(), as_f64(&t))
            } else {
                Tensor::int(DType::Int64, target_shape.clone(), y.clone())
            };
            let mut case = Case::new(
                format!("round {round} {shape:?} {dtype:?}"),
                Tensor::float(dtype, shape.to_vec(), as_f64(&x)),
                target,
            );
            case.weight = weight.as_ref().map(|w| Tensor::float(dtype, vec![c], as_f64(w)));
            case.reduction = reduction;
            case.label_smoothing = epsilon;
            case
        };
        let (exact_loss, exact_grad) = libtorch(&case(DType::Float64));
        let (torch_loss, torch_grad) = libtorch(&case(DType::Float32));
        let rust_loss: Vec<f64> = loss.values.iter().map(|&v| v as f64).collect();
        let rust_grad: Vec<f64> = grads.input.iter().map(|&v| v as f64).collect();

        let (rust_l, torch_l) = (max_error(&rust_loss, &exact_loss), max_error(&torch_loss, &exact_loss));
        let (rust_g, torch_g) = (max_error(&rust_grad, &exact_grad), max_error(&torch_grad, &exact_grad));
        println!(
            "round {round:2} {shape:?} {reduction} ε={epsilon} weight={} probabilities={probabilities}: \
             loss error rust {rust_l:.2e} libtorch {torch_l:.2e}; gradient error rust {rust_g:.2e} libtorch {torch_g:.2e}",
            weight.is_some()
        );
        assert!(
            rust_l <= torch_l,
            "round {round}: loss error {rust_l:e} > libtorch's {torch_l:e}"
        );
        assert!(
            rust_g <= torch_g,
            "round {round}: gradient error {rust_g:e} > libtorch's {torch_g:e}"
        );
        rust_total += rust_l + rust_g;
        torch_total += torch_l + torch_g;
    }
    println!("total error: rust {rust_total:.3e}, libtorch {torch_total:.3e}");
}
