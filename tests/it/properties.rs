//! Properties of the loss that hold whatever the numbers, checked with
//! proptest and without libtorch: each compares two computations that share
//! no code path, or the loss with a closed form.

use proptest::prelude::*;

use ce_parity::loss::{cross_entropy, cross_entropy_backward, Options, Reduction, Target, View};

/// A small problem: logits (n, c) in f64, class targets, optional weights.
#[derive(Clone, Debug)]
struct Problem {
    n: usize,
    c: usize,
    x: Vec<f64>,
    y: Vec<i64>,
    weight: Option<Vec<f64>>,
    epsilon: f64,
    reduction: Reduction,
}

fn reduction() -> impl Strategy<Value = Reduction> {
    prop_oneof![Just(Reduction::None), Just(Reduction::Mean), Just(Reduction::Sum)]
}

/// Logits in [-scale, scale]; positive weights (so the mean divisor stays away from 0).
fn problem(max_n: usize, max_c: usize) -> impl Strategy<Value = Problem> {
    (1..=max_n, 2..=max_c, 0.1f64..20.0).prop_flat_map(|(n, c, scale)| {
        (
            prop::collection::vec(-scale..scale, n * c),
            prop::collection::vec(0..c as i64, n),
            prop::option::of(prop::collection::vec(0.1f64..3.0, c)),
            prop_oneof![Just(0.0), 0.0f64..1.0],
            reduction(),
        )
            .prop_map(move |(x, y, weight, epsilon, reduction)| Problem {
                n,
                c,
                x,
                y,
                weight,
                epsilon,
                reduction,
            })
    })
}

impl Problem {
    fn options(&self) -> Options<'_, f64> {
        Options {
            weight: self.weight.as_deref(),
            reduction: self.reduction,
            label_smoothing: self.epsilon,
            ..Options::default()
        }
    }

    fn shape(&self) -> [usize; 2] {
        [self.n, self.c]
    }

    fn loss(&self) -> Vec<f64> {
        let shape = self.shape();
        cross_entropy(
            View::new(&self.x, &shape),
            Target::Classes(View::new(&self.y, &[self.n])),
            &self.options(),
        )
        .unwrap()
        .values
    }

    fn grad(&self, grad_output: Option<&[f64]>) -> Vec<f64> {
        let shape = self.shape();
        let go_shape: &[usize] = if self.reduction == Reduction::None {
            &[self.n]
        } else {
            &[]
        };
        let go = grad_output.map(|g| View::new(g, go_shape));
        cross_entropy_backward(
            View::new(&self.x, &shape),
            Target::Classes(View::new(&self.y, &[self.n])),
            &self.options(),
            go,
        )
        .unwrap()
        .input
    }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

fn all_close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close(*x, *y, tol))
}

/// log-softmax of one row, written out here independently of the crate.
fn log_softmax(row: &[f64]) -> Vec<f64> {
    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let log_sum = row.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
    row.iter().map(|v| v - log_sum).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// (N, C, D) equals the flattened (N·D, C) problem, loss and gradient.
    #[test]
    fn k_dim_equals_flattened(p in problem(3, 5), d in 1usize..4, seed in any::<u64>()) {
        let (n, c) = (p.n, p.c);
        // Build (N, C, D) logits and (N, D) targets from a flat (N·D, C) problem.
        let rows = n * d;
        let flat_x: Vec<f64> = (0..rows * c).map(|i| p.x[i % p.x.len()] + (i / p.x.len()) as f64 * 0.37).collect();
        let flat_y: Vec<i64> = (0..rows).map(|r| ((seed as usize + r * 7) % c) as i64).collect();
        let mut x = vec![0.0; rows * c];
        for b in 0..n {
            for s in 0..d {
                for k in 0..c {
                    x[b * c * d + k * d + s] = flat_x[(b * d + s) * c + k];
                }
            }
        }
        let options = p.options();
        let kdim_shape = [n, c, d];
        let flat_shape = [rows, c];
        let (kdim_target, flat_target) = ([n, d], [rows]);
        let kdim = (View::new(&x, &kdim_shape), Target::Classes(View::new(&flat_y, &kdim_target)));
        let flat = (View::new(&flat_x, &flat_shape), Target::Classes(View::new(&flat_y, &flat_target)));
        let lk = cross_entropy(kdim.0, kdim.1, &options).unwrap();
        let lf = cross_entropy(flat.0, flat.1, &options).unwrap();
        prop_assert!(all_close(&lk.values, &lf.values, 1e-12));
        let gk = cross_entropy_backward(kdim.0, kdim.1, &options, None).unwrap().input;
        let gf = cross_entropy_backward(flat.0, flat.1, &options, None).unwrap().input;
        for b in 0..n {
            for s in 0..d {
                for k in 0..c {
                    prop_assert!(close(gk[b * c * d + k * d + s], gf[(b * d + s) * c + k], 1e-12));
                }
            }
        }
    }

    /// ε = 0 (and any negative ε) is the plain weighted NLL of log-softmax.
    #[test]
    fn no_smoothing_is_weighted_nll(mut p in problem(4, 6), negative in -1.0f64..0.0) {
        p.epsilon = 0.0;
        let lp: Vec<Vec<f64>> = p.x.chunks(p.c).map(log_softmax).collect();
        let w = |k: usize| p.weight.as_ref().map_or(1.0, |w| w[k]);
        let per_row: Vec<f64> = (0..p.n).map(|i| -w(p.y[i] as usize) * lp[i][p.y[i] as usize]).collect();
        let expected = match p.reduction {
            Reduction::None => per_row,
            Reduction::Sum => vec![per_row.iter().sum()],
            Reduction::Mean => {
                let total_weight: f64 = (0..p.n).map(|i| w(p.y[i] as usize)).sum();
                vec![per_row.iter().sum::<f64>() / total_weight]
            }
        };
        prop_assert!(all_close(&p.loss(), &expected, 1e-12));
        let zero = p.loss();
        p.epsilon = negative;
        prop_assert_eq!(p.loss(), zero);
    }

    /// Under none and sum, index targets equal one-hot probability targets,
    /// with weights and smoothing.
    #[test]
    fn index_targets_equal_one_hot_probabilities(mut p in problem(4, 6), sum in any::<bool>()) {
        p.reduction = if sum { Reduction::Sum } else { Reduction::None };
        let mut one_hot = vec![0.0; p.n * p.c];
        for (i, &y) in p.y.iter().enumerate() {
            one_hot[i * p.c + y as usize] = 1.0;
        }
        let shape = p.shape();
        let probabilities = Target::Probabilities(View::new(&one_hot, &shape));
        let loss = cross_entropy(View::new(&p.x, &shape), probabilities, &p.options()).unwrap();
        prop_assert!(all_close(&loss.values, &p.loss(), 1e-12));
        let grad = cross_entropy_backward(View::new(&p.x, &shape), probabilities, &p.options(), None).unwrap();
        prop_assert!(all_close(&grad.input, &p.grad(None), 1e-12));
    }

    /// Without weights, each row's gradient sums to zero (softmax and the
    /// smoothed target both sum to one).
    #[test]
    fn unweighted_row_gradients_sum_to_zero(mut p in problem(4, 8)) {
        p.weight = None;
        let g = p.grad(None);
        for row in g.chunks(p.c) {
            let scale: f64 = row.iter().map(|v| v.abs()).sum();
            prop_assert!(row.iter().sum::<f64>().abs() <= 1e-12 * (1.0 + scale));
        }
    }

    /// The analytic gradient equals central finite differences of
    /// Σ loss · grad_output, in f64.
    #[test]
    fn gradient_matches_finite_differences(
        mut p in problem(3, 4),
        upstream in prop::collection::vec(-2.0f64..2.0, 3),
    ) {
        for v in p.x.iter_mut() {
            *v = v.clamp(-3.0, 3.0);
        }
        let upstream: Vec<f64> = upstream[..if p.reduction == Reduction::None { p.n } else { 1 }].to_vec();
        let objective = |q: &Problem| q.loss().iter().zip(&upstream).map(|(l, g)| l * g).sum::<f64>();
        let analytic = p.grad(Some(&upstream));
        let h = 1e-5;
        for i in 0..p.x.len() {
            let (mut plus, mut minus) = (p.clone(), p.clone());
            plus.x[i] += h;
            minus.x[i] -= h;
            let numeric = (objective(&plus) - objective(&minus)) / (2.0 * h);
            prop_assert!(close(analytic[i], numeric, 1e-6), "x[{}]: analytic {} vs numeric {}", i, analytic[i], numeric);
        }
    }

    /// Permuting the classes of logits, weights and targets together leaves
    /// the loss unchanged.
    #[test]
    fn permuting_classes_leaves_the_loss_unchanged(p in problem(4, 6), keys in prop::collection::vec(any::<u32>(), 6)) {
        let mut order: Vec<usize> = (0..p.c).collect();
        order.sort_by_key(|&k| keys[k]);
        // Class k moves to position order[k].
        let mut q = p.clone();
        for i in 0..p.n {
            for k in 0..p.c {
                q.x[i * p.c + order[k]] = p.x[i * p.c + k];
            }
            q.y[i] = order[p.y[i] as usize] as i64;
        }
        if let (Some(w), Some(wq)) = (&p.weight, q.weight.as_mut()) {
            for k in 0..p.c {
                wq[order[k]] = w[k];
            }
        }
        prop_assert!(all_close(&q.loss(), &p.loss(), 1e-12));
    }

    /// Scaling grad_output by k scales the gradient by k.
    #[test]
    fn scaling_grad_output_scales_the_gradient(p in problem(4, 6), k in -10.0f64..10.0) {
        let n = if p.reduction == Reduction::None { p.n } else { 1 };
        let ones = vec![1.0; n];
        let scaled = vec![k; n];
        let g1 = p.grad(Some(&ones));
        let gk = p.grad(Some(&scaled));
        prop_assert!(all_close(&gk, &g1.iter().map(|v| v * k).collect::<Vec<_>>(), 1e-12));
        prop_assert!(all_close(&g1, &p.grad(None), 0.0));
    }
}
