//! The fused kernel against the reference kernel (which the fixtures tie to
//! libtorch), on random cases with non-finite values, across instruction
//! sets, thread counts and the three entry points.

use super::super::formulas::output_shape;
use super::super::forward::{position_terms, reduce};
use super::super::gradient::{backward, upstream};
use super::super::input::{Target, View};
use super::super::options::{Options, Reduction};
use super::super::problem::validate;
use super::super::simd::{self, SimdLevel};
use super::*;

/// The tests that force a SIMD level (a process-wide setting) take turns,
/// so that none runs at a level another one set.
static LEVEL_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

// The tests' one seeded generator, shared with the integration tests.
#[path = "../../../tests/it/rng.rs"]
#[allow(dead_code)]
mod rng;
use rng::Rng;

struct Case<T> {
    x: Vec<T>,
    shape: Vec<usize>,
    classes: Vec<i64>,
    /// Probability targets, shaped like x, when not class targets.
    probabilities: Option<Vec<T>>,
    weight: Option<Vec<T>>,
    reduction: Reduction,
    epsilon: f64,
    grad_output: Option<Vec<T>>,
}

const SHAPES: [&[usize]; 9] = [
    &[7, 5],
    // K-dim with several tiles per batch, the last one partial.
    &[2, 3, 600],
    &[3, 1000],
    &[2, 2100],
    &[4, 3, 70],
    &[2, 5, 3, 2],
    &[1, 1],
    &[6],
    &[2, 4, 130],
];

fn random_case<T: Lane>(rng: &mut Rng, shape: &[usize], nonfinite: bool) -> Case<T> {
    let n: usize = shape.iter().product();
    let c = if shape.len() == 1 { shape[0] } else { shape[1] };
    let scale = [0.01, 1.0, 30.0][rng.below(3)];
    let mut x: Vec<T> = (0..n)
        .map(|_| T::from_f64((rng.uniform() - 0.5) * 2.0 * scale))
        .collect();
    let mut probabilities =
        (rng.uniform() < 0.3).then(|| (0..n).map(|_| T::from_f64(rng.uniform())).collect::<Vec<T>>());
    if nonfinite {
        for v in [f64::NEG_INFINITY, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -f64::NAN] {
            x[rng.below(n)] = T::from_f64(v);
        }
        if let Some(t) = probabilities.as_mut() {
            t[rng.below(n)] = T::from_f64(f64::NAN);
        }
    }
    let positions = n / c;
    let classes = (0..positions)
        .map(|_| {
            if rng.uniform() < 0.15 {
                -100
            } else {
                rng.below(c) as i64
            }
        })
        .collect();
    let weight = (rng.uniform() < 0.5).then(|| (0..c).map(|_| T::from_f64(rng.uniform() * 2.0)).collect());
    let reduction = Reduction::ALL[rng.below(3)];
    let epsilon = [0.0, 0.1, 1.0, -0.5][rng.below(4)];
    let loss_len = if reduction == Reduction::None && shape.len() > 1 {
        positions
    } else {
        1
    };
    let grad_output =
        (rng.uniform() < 0.5).then(|| (0..loss_len).map(|_| T::from_f64(rng.uniform() * 4.0 - 2.0)).collect());
    Case {
        x,
        shape: shape.to_vec(),
        classes,
        probabilities,
        weight,
        reduction,
        epsilon,
        grad_output,
    }
}

impl<T: Lane> Case<T> {
    fn target_shape(&self) -> Vec<usize> {
        match self.shape.len() {
            1 => vec![],
            _ => [self.shape[0]]
                .into_iter()
                .chain(self.shape[2..].iter().copied())
                .collect(),
        }
    }

    fn options(&self) -> Options<'_, T> {
        Options {
            weight: self.weight.as_deref(),
            reduction: self.reduction,
            label_smoothing: self.epsilon,
            ..Options::default()
        }
    }

    /// Runs `f` with the case's problem, target and upstream gradient.
    fn with<R>(&self, f: impl FnOnce(&Problem, View<'_, T>, &Target<'_, T>, &[f64]) -> R) -> R {
        let target_shape = self.target_shape();
        let target = match &self.probabilities {
            Some(t) => Target::Probabilities(View::new(t, &self.shape)),
            None => Target::Classes(View::new(&self.classes, &target_shape)),
        };
        let input = View::new(&self.x, &self.shape);
        let problem = validate(input, &target, &self.options()).expect("a valid case");
        let loss_shape = if self.reduction == Reduction::None {
            problem.loss_shape.clone()
        } else {
            vec![]
        };
        let g = self.grad_output.as_ref().map(|g| View::new(g.as_slice(), &loss_shape));
        let g = g.filter(|g| g.data.len() == loss_shape.iter().product::<usize>());
        let up = upstream(&problem, g).expect("a matching grad_output");
        f(&problem, input, &target, &up)
    }

    /// Fused: loss, gradient w.r.t. the input, and w.r.t. probability targets.
    fn fused(&self) -> (Vec<f64>, Vec<T>, Option<Vec<T>>) {
        self.with(|problem, input, target, up| {
            let (grads, terms) = forward_backward(problem, input.data, target, up).expect("f32/f64 go fused");
            let forward = forward_terms(problem, input.data, target).expect("f32/f64 go fused");
            assert_eq!(
                bits64(&reduce(problem, &forward)),
                bits64(&reduce(problem, &terms)),
                "forward = with_grad"
            );
            (reduce(problem, &terms), grads.input, grads.target)
        })
    }

    fn reference(&self) -> (Vec<f64>, Vec<T>, Option<Vec<T>>) {
        self.with(|problem, input, target, up| {
            let terms = position_terms(problem, input, target);
            let grads = backward(problem, input, target, up);
            (reduce(problem, &terms), grads.input, grads.target)
        })
    }
}

fn bits64(v: &[f64]) -> Vec<u64> {
    v.iter().map(|v| v.to_bits()).collect()
}

fn bits<T: Lane>(v: &[T]) -> Vec<u64> {
    v.iter().map(|v| v.to_f64().to_bits()).collect()
}

/// Same NaN-ness and infinities, and finite values within rtol·|e| + atol.
fn assert_close(what: &str, actual: &[f64], expected: &[f64], rtol: f64, atol: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let ok = if e.is_nan() || a.is_nan() {
            e.is_nan() && a.is_nan()
        } else if e.is_infinite() || a.is_infinite() {
            a == e
        } else {
            (a - e).abs() <= rtol * e.abs() + atol
        };
        assert!(ok, "{what}[{i}]: fused {a} vs reference {e}");
    }
}

fn to64<T: Lane>(v: &[T]) -> Vec<f64> {
    v.iter().map(|v| v.to_f64()).collect()
}

fn check_against_reference<T: Lane>(seed: u64, rounds: usize, rtol: f64) {
    let mut rng = Rng(seed);
    for round in 0..rounds {
        let shape = SHAPES[round % SHAPES.len()];
        let case = random_case::<T>(&mut rng, shape, round % 3 == 2);
        // Gradient entries are differences of terms of size |g|·w/divisor,
        // so their error is relative to that, not to the entry.
        let grad_scale = case.with(|problem, _, _, up| {
            let g = up.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let w = problem
                .weight
                .as_ref()
                .map_or(1.0, |w| w.iter().fold(1.0f64, |m, v| m.max(*v)));
            let divisor = problem.divisor;
            4.0 * g * w / divisor.abs()
        });
        let (loss, grad, grad_t) = case.fused();
        let (ref_loss, ref_grad, ref_grad_t) = case.reference();
        let what = format!(
            "round {round} {shape:?} {:?} ε={} {} weight={} probabilities={}",
            case.reduction,
            case.epsilon,
            std::any::type_name::<T>(),
            case.weight.is_some(),
            case.probabilities.is_some()
        );
        assert_close(&format!("{what} loss"), &loss, &ref_loss, rtol, rtol);
        let atol = rtol * grad_scale;
        assert_close(&format!("{what} grad"), &to64(&grad), &to64(&ref_grad), rtol, atol);
        assert_eq!(grad_t.is_some(), ref_grad_t.is_some());
        if let (Some(a), Some(e)) = (grad_t, ref_grad_t) {
            assert_close(&format!("{what} target grad"), &to64(&a), &to64(&e), rtol, atol);
        }
    }
}

#[test]
fn f32_matches_the_reference_kernel() {
    check_against_reference::<f32>(42, 400, 2e-5);
}

#[test]
fn f64_matches_the_reference_kernel() {
    check_against_reference::<f64>(43, 400, 1e-9);
}

#[test]
fn into_and_in_place_give_the_same_bits_as_with_grad() {
    let mut rng = Rng(5);
    for round in 0..60 {
        let case = random_case::<f32>(&mut rng, SHAPES[round % SHAPES.len()], round % 3 == 2);
        let (loss, grad, _) = case.fused();
        let (loss_into, out) = case.with(|problem, input, target, up| {
            let mut out = vec![0.0f32; input.data.len()];
            let terms = forward_backward_into(problem, input.data, target, up, &mut out).unwrap();
            (reduce(problem, &terms), out)
        });
        let (loss_in_place, logits) = case.with(|problem, input, target, up| {
            let mut logits = input.data.to_vec();
            let terms = forward_backward_in_place(problem, &mut logits, target, up).unwrap();
            (reduce(problem, &terms), logits)
        });
        assert_eq!(bits64(&loss), bits64(&loss_into), "round {round}");
        assert_eq!(bits64(&loss), bits64(&loss_in_place), "round {round}");
        assert_eq!(bits(&grad), bits(&out), "round {round}");
        assert_eq!(bits(&grad), bits(&logits), "round {round}");
    }
}

/// Every level this CPU runs gives the scalar fallback's bits (a level the
/// CPU lacks runs as the best one it has, so this never executes it).
#[test]
fn every_simd_level_gives_the_scalar_bits() {
    let _forcing = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng(7);
    let cases: Vec<Case<f32>> = (0..24)
        .map(|r| random_case(&mut rng, SHAPES[r % SHAPES.len()], r % 4 == 3))
        .collect();
    let run = |level| {
        simd::set_simd_level(Some(level));
        let out: Vec<_> = cases
            .iter()
            .map(|c| {
                let (loss, grad, _) = c.fused();
                (bits64(&loss), bits(&grad))
            })
            .collect();
        simd::set_simd_level(None);
        out
    };
    let scalar = run(SimdLevel::Scalar);
    for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
        eprintln!("{level:?} runs as {:?}", level.min(simd::detected()));
        assert_eq!(scalar, run(level), "{level:?}");
    }
}

#[test]
fn any_thread_count_gives_the_same_bits() {
    let mut rng = Rng(99);
    let cases: Vec<Case<f32>> = [&[300, 700][..], &[4, 9, 300], &[50, 3000]]
        .iter()
        .map(|s| random_case(&mut rng, s, false))
        .collect();
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            cases
                .iter()
                .map(|c| {
                    let (loss, grad, _) = c.fused();
                    (bits64(&loss), bits(&grad))
                })
                .collect::<Vec<_>>()
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}

/// Random row and K-dim cases whose position count and row length are
/// rarely a multiple of 16, with −inf logits, ignored positions and weights.
fn level_cases<T: Lane>(seed: u64, count: usize) -> Vec<Case<T>> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|round| {
            let shape = match round % 3 {
                0 => vec![1 + rng.below(9), 1 + rng.below(300)],
                1 => vec![1 + rng.below(3), 1 + rng.below(40), 1 + rng.below(300)],
                _ => vec![1 + rng.below(4), 2 + rng.below(2100)],
            };
            let mut case = random_case::<T>(&mut rng, &shape, false);
            for _ in 0..rng.below(4) {
                let i = rng.below(case.x.len());
                case.x[i] = T::from_f64(f64::NEG_INFINITY);
            }
            case
        })
        .collect()
}

/// The fused f32 kernel's loss and gradient bits at `level`.
fn f32_bits_at(level: SimdLevel, cases: &[Case<f32>]) -> Vec<(Vec<u64>, Vec<u64>)> {
    simd::set_simd_level(Some(level));
    let out = cases
        .iter()
        .map(|c| {
            let (loss, grad, _) = c.fused();
            (bits64(&loss), bits(&grad))
        })
        .collect();
    simd::set_simd_level(None);
    out
}

/// Whether this CPU runs the AVX-512 level; if not, the test says it was
/// skipped (the AVX-512 tests run where they can, and say so elsewhere).
fn has_avx512_else_say_skipped() -> bool {
    let has = simd::detected() >= SimdLevel::Avx512;
    if !has {
        eprintln!("skipped: this CPU has no AVX-512 (F, BW, VL, DQ)");
    }
    has
}

/// The native 16-lane AVX-512 loops against the scalar fallback, on CPUs
/// that have AVX-512 (elsewhere the test says it was skipped).
#[test]
fn avx512_gives_the_scalar_bits() {
    let _forcing = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !has_avx512_else_say_skipped() {
        return;
    }
    let cases = level_cases::<f32>(2026, 90);
    assert_eq!(
        f32_bits_at(SimdLevel::Scalar, &cases),
        f32_bits_at(SimdLevel::Avx512, &cases)
    );
}

/// Asserts that two runs' outputs have the same bits, naming the first
/// output and element that differ (whole dumps of thousands of values hide it).
fn assert_same_bits(what: &str, expected: &[Vec<u64>], actual: &[Vec<u64>]) {
    assert_eq!(expected.len(), actual.len(), "{what}: output count");
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        assert_eq!(e.len(), a.len(), "{what}: output {i} length");
        if let Some(j) = (0..e.len()).find(|&j| e[j] != a[j]) {
            let (ev, av) = (f64::from_bits(e[j]), f64::from_bits(a[j]));
            panic!(
                "{what}: output {i} element {j}: {ev} ({:#x}) expected, {av} ({:#x})",
                e[j], a[j]
            );
        }
    }
}

/// Asserts that float16 and bfloat16 give the scalar level's bits on every level.
fn assert_half_levels_agree(cases: &[Case<f32>], upstream: bool) {
    let f16_scalar = half_bits_at::<::half::f16>(SimdLevel::Scalar, cases, upstream);
    let bf16_scalar = half_bits_at::<::half::bf16>(SimdLevel::Scalar, cases, upstream);
    for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
        eprintln!("{level:?} runs as {:?}", level.min(simd::detected()));
        let f16 = half_bits_at::<::half::f16>(level, cases, upstream);
        assert_same_bits(&format!("f16 {level:?}"), &f16_scalar, &f16);
        let bf16 = half_bits_at::<::half::bf16>(level, cases, upstream);
        assert_same_bits(&format!("bf16 {level:?}"), &bf16_scalar, &bf16);
    }
}

#[test]
fn half_types_give_the_same_bits_on_every_level() {
    let _forcing = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    assert_half_levels_agree(&level_cases::<f32>(17, 45), false);
}

/// K-dim cases for `kdim.rs`: position counts per batch rarely a multiple
/// of 16 and often more than one tile, −inf logits (some positions all
/// −inf, which the reference decides), ignored positions, weights,
/// smoothing, every reduction, per-position upstream gradients, blocks
/// large enough for the gradient's streaming stores, more classes than
/// one block of f32 sums, and logits far below their position's max.
fn kdim_cases(seed: u64, count: usize) -> Vec<Case<f32>> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|round| {
            let inner = [
                1 + rng.below(40),
                1 + rng.below(700),
                256 + rng.below(3) * 16 + rng.below(2),
            ][round % 3];
            let mut shape = vec![1 + rng.below(3), 1 + rng.below(30), inner];
            if round % 10 == 7 {
                // A block large enough for streaming stores (`kdim::STREAM_BYTES`).
                shape = vec![2, 21, 70 + rng.below(3), 70];
            }
            if round % 10 == 3 {
                // More classes than one block of the sweeps' f32 sums (`BLOCK / LANES`).
                shape = vec![1, 65 + rng.below(100), 20 + rng.below(200)];
            }
            if round % 4 == 1 {
                shape.push(2 + rng.below(3));
            }
            let mut case = random_case::<f32>(&mut rng, &shape, round % 5 == 4);
            case.reduction = Reduction::ALL[round % 3];
            let (c, s) = (shape[1], shape[2..].iter().product::<usize>());
            for _ in 0..rng.below(6) {
                let i = rng.below(case.x.len());
                case.x[i] = f32::NEG_INFINITY;
            }
            // A few finite logits far below the rest, where the exp needs its
            // clamp (x − max below `NORMAL_EXP_FLOOR`, some below `MIN_INPUT`):
            // a group's min must see them.
            for _ in 0..rng.below(8) {
                let i = rng.below(case.x.len());
                case.x[i] = -80.0 - 40.0 * rng.uniform() as f32;
            }
            if round % 2 == 0 {
                // One position with every class at −inf.
                let (b, j) = (rng.below(shape[0]), rng.below(s));
                for k in 0..c {
                    case.x[(b * c + k) * s + j] = f32::NEG_INFINITY;
                }
            }
            case
        })
        .collect()
}

/// The forward kernel's per-position (nll, smoothing) terms at `level`, as bits.
fn kdim_forward_bits_at(level: SimdLevel, cases: &[Case<f32>]) -> Vec<Vec<u64>> {
    simd::set_simd_level(Some(level));
    let out = cases
        .iter()
        .map(|c| {
            c.with(|problem, input, target, _| {
                let terms = forward_terms(problem, input.data, target).unwrap();
                bits64(&terms.iter().flat_map(|t| [t.0, t.1]).collect::<Vec<_>>())
            })
        })
        .collect();
    simd::set_simd_level(None);
    out
}

/// Every level gives the scalar fallback's bits on K-dim input, forward
/// alone and with the gradient, and the fallback stays within the
/// reference kernel's tolerance.
#[test]
fn kdim_groups_give_the_scalar_bits_on_every_level() {
    let _forcing = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let cases = kdim_cases(1717, 60);
    let scalar = f32_bits_at(SimdLevel::Scalar, &cases);
    let scalar_forward = kdim_forward_bits_at(SimdLevel::Scalar, &cases);
    for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
        eprintln!("{level:?} runs as {:?}", level.min(simd::detected()));
        assert_eq!(scalar, f32_bits_at(level, &cases), "{level:?} with the gradient");
        assert_eq!(scalar_forward, kdim_forward_bits_at(level, &cases), "{level:?} forward");
    }
    simd::set_simd_level(Some(SimdLevel::Scalar));
    for (i, case) in cases.iter().enumerate() {
        let (loss, grad, _) = case.fused();
        let (ref_loss, ref_grad, _) = case.reference();
        assert_close(&format!("case {i} loss"), &loss, &ref_loss, 1e-4, 1e-4);
        let scale = case.with(|problem, _, _, up| {
            let g = up.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let w = problem
                .weight
                .as_ref()
                .map_or(1.0, |w| w.iter().fold(1.0f64, |m, v| m.max(*v)));
            4.0 * g * w / problem.divisor.abs()
        });
        assert_close(
            &format!("case {i} grad"),
            &to64(&grad),
            &to64(&ref_grad),
            1e-4,
            1e-4 * scale,
        );
    }
    simd::set_simd_level(None);
}

/// The half-type kernel's (`loss/reduced.rs`) loss and gradient bits at
/// `level` through the three entry points, which must agree; with
/// `upstream`, the cases' upstream gradients (one shared value or one per
/// position), else ones.
fn half_bits_at<H: Element>(level: SimdLevel, cases: &[Case<f32>], upstream: bool) -> Vec<Vec<u64>> {
    use super::super::{cross_entropy, cross_entropy_with_grad, cross_entropy_with_grad_into};
    let to_h = |v: &[f32]| v.iter().map(|&x| H::from_f64(f64::from(x))).collect::<Vec<H>>();
    let as_bits = |v: &[H]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<u64>>();
    simd::set_simd_level(Some(level));
    let out = cases
        .iter()
        .flat_map(|c| {
            let x = to_h(&c.x);
            let weight = c.weight.as_deref().map(to_h);
            let probabilities = c.probabilities.as_deref().map(to_h);
            let target_shape = c.target_shape();
            let target = match &probabilities {
                Some(t) => Target::Probabilities(View::new(t, &c.shape)),
                None => Target::Classes(View::new(&c.classes, &target_shape)),
            };
            let options = Options {
                weight: weight.as_deref(),
                reduction: c.reduction,
                label_smoothing: c.epsilon,
                ..Options::default()
            };
            let input = View::new(&x, &c.shape);
            let problem = validate(input, &target, &options).expect("a valid case");
            let loss_shape = output_shape(&problem);
            let g = c.grad_output.as_deref().filter(|_| upstream).map(to_h);
            let g = g
                .as_deref()
                .map(|g| View::new(g, &loss_shape))
                .filter(|g| g.data.len() == loss_shape.iter().product::<usize>());
            let forward = cross_entropy(input, target, &options).expect("a valid case");
            let (loss, grads) = cross_entropy_with_grad(input, target, &options, g).expect("a valid case");
            let mut into = vec![H::from_f64(0.0); x.len()];
            let loss_into = cross_entropy_with_grad_into(input, target, &options, g, &mut into).expect("a valid case");
            assert_eq!(as_bits(&forward.values), as_bits(&loss.values), "forward = with_grad");
            assert_eq!(
                as_bits(&loss_into.values),
                as_bits(&loss.values),
                "with_grad_into = with_grad"
            );
            assert_eq!(as_bits(&into), as_bits(&grads.input), "with_grad_into = with_grad");
            [
                as_bits(&loss.values),
                as_bits(&grads.input),
                as_bits(grads.target.as_deref().unwrap_or(&[])),
            ]
        })
        .collect();
    simd::set_simd_level(None);
    out
}

/// The class-target gradient w.r.t. the log-probabilities is made on the
/// fly in 16-lane chunks around the target's (`fused/half.rs`): every level
/// gives the scalar path's bits, with upstream gradients, weights, smoothing,
/// ignored positions, −inf/NaN/+inf logits and targets in the last partial chunk.
#[test]
fn half_types_with_upstream_gradients_give_the_same_bits_on_every_level() {
    let _forcing = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut cases = level_cases::<f32>(4242, 60);
    let mut rng = Rng(777);
    for i in 0..36 {
        cases.push(random_case(&mut rng, SHAPES[i % SHAPES.len()], i % 2 == 0));
    }
    assert_half_levels_agree(&cases, true);
}

/// The K-dim paths that copy the next tile during the sweep
/// (`avx2::kdim_sums`, `avx512::kdim_sums`) and pick the targets with
/// gathers (`avx512::pick_targets`) against the scalar level, on blocks of
/// many tiles whose widths and last tiles are rarely whole groups, forward
/// alone and with the gradient (AVX-512 where the CPU has it, else the
/// test says it skipped that level).
#[test]
fn kdim_copying_sweeps_give_the_scalar_bits() {
    let _forcing = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut cases = kdim_cases(31, 30);
    let mut rng = Rng(32);
    for round in 0..12 {
        // Up to five tiles per batch, the last one any width (under 16 too).
        let inner = 256 * (1 + rng.below(4)) + [rng.below(16), rng.below(300), 0][round % 3];
        let shape = [1 + rng.below(2), 1 + rng.below(24), inner];
        let mut case = random_case::<f32>(&mut rng, &shape, round % 4 == 3);
        case.reduction = Reduction::ALL[round % 3];
        cases.push(case);
    }
    let scalar_forward = kdim_forward_bits_at(SimdLevel::Scalar, &cases);
    let scalar = f32_bits_at(SimdLevel::Scalar, &cases);
    for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
        if level == SimdLevel::Avx512 && !has_avx512_else_say_skipped() {
            continue;
        }
        assert_eq!(scalar_forward, kdim_forward_bits_at(level, &cases), "{level:?} forward");
        assert_eq!(scalar, f32_bits_at(level, &cases), "{level:?} with the gradient");
    }
}

/// The K-dim gradient's streaming stores (whole 64-byte lines from
/// registers, shifted when a class's run does not start on a line, partial
/// lines at the ends) wherever the output starts within a line: the scalar
/// level's bits at every level, for blocks whose runs share one alignment
/// (S a multiple of 16) or not, with weights, smoothing, ignored positions
/// and −inf logits (`random_case`'s and `kdim_cases`'s).
#[test]
fn kdim_gradient_at_every_offset_in_a_line_gives_the_scalar_bits() {
    let _forcing = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng(77);
    let shapes: [&[usize]; 4] = [&[1, 20, 64, 64], &[2, 21, 70, 70], &[1, 17, 4099], &[1, 33, 2000 + 7]];
    for (round, shape) in shapes.iter().enumerate() {
        let mut case = random_case::<f32>(&mut rng, shape, round % 2 == 1);
        case.reduction = Reduction::ALL[round % 3];
        case.probabilities = None;
        let x = case.x.len();
        let grads_at = |level: SimdLevel, offset: usize| {
            simd::set_simd_level(Some(level));
            let mut buffer = vec![0.0f32; x + 16];
            let terms = case.with(|problem, input, target, up| {
                forward_backward_into(problem, input.data, target, up, &mut buffer[offset..offset + x]).unwrap()
            });
            simd::set_simd_level(None);
            let terms: Vec<f64> = terms.iter().flat_map(|t| [t.0, t.1]).collect();
            (bits64(&terms), bits(&buffer[offset..offset + x]))
        };
        let scalar = grads_at(SimdLevel::Scalar, 0);
        for offset in 0..16 {
            for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
                assert!(scalar == grads_at(level, offset), "{shape:?} at +{offset} on {level:?}");
            }
        }
    }
}

/// The AVX-512 and AVX2 loops that sweep float16/bfloat16 rows as they are
/// (`fused/half/avx512.rs`, `fused/half/avx2.rs`) against the scalar level,
/// on CPUs with AVX-512, or AVX2 and F16C (elsewhere the test says which
/// level it skipped): lengths not a multiple of 16,
/// zeros of both signs, f16 subnormals, values past f16's range, −inf
/// logits, NaN and +inf rows (which the f32 copy takes), weights,
/// smoothing, ignored positions and upstream gradients.
#[test]
fn half_rows_swept_directly_give_the_scalar_bits() {
    let _forcing = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // [2, 16411]: rows long enough for `half/avx2.rs`'s streaming stores,
    // the first one aligned for them and the second not.
    let shapes: [&[usize]; 8] = [
        &[3, 1000],
        &[4, 33],
        &[2, 16],
        &[5, 7],
        &[2, 2100],
        &[1, 47],
        &[6, 130],
        &[2, 16411],
    ];
    let mut rng = Rng(5150);
    let cases: Vec<Case<f32>> = (0..70)
        .map(|i| {
            let mut case = random_case::<f32>(&mut rng, shapes[i % shapes.len()], i % 3 == 0);
            match i % 5 {
                1 => case.x.iter_mut().for_each(|v| *v *= 1e-6),
                2 => case.x.iter_mut().for_each(|v| *v *= 3000.0),
                3 => {
                    // (NaN keeps its sign: a negative NaN's gradient
                    // differs in sign between the levels, on the f32 copy too.)
                    for v in case.x.iter_mut().filter(|v| !v.is_nan()) {
                        *v = -v.abs();
                        if rng.uniform() < 0.3 {
                            *v = if rng.uniform() < 0.5 { 0.0 } else { -0.0 };
                        }
                    }
                }
                _ => {}
            }
            for _ in 0..rng.below(4) {
                let j = rng.below(case.x.len());
                case.x[j] = f32::NEG_INFINITY;
            }
            case
        })
        .collect();
    simd::set_simd_level(Some(SimdLevel::Avx2));
    let avx2 = simd::current().level() == SimdLevel::Avx2 && simd::current().has_f16c();
    simd::set_simd_level(None);
    if !avx2 {
        eprintln!("skipped the AVX2 level: this CPU lacks AVX2, FMA or F16C");
    }
    let levels = [
        (SimdLevel::Avx2, avx2),
        (SimdLevel::Avx512, has_avx512_else_say_skipped()),
    ];
    for (level, _) in levels.into_iter().filter(|&(_, has)| has) {
        for upstream in [false, true] {
            assert_eq!(
                half_bits_at::<::half::f16>(SimdLevel::Scalar, &cases, upstream),
                half_bits_at::<::half::f16>(level, &cases, upstream),
                "f16 {level:?}, upstream {upstream}"
            );
            assert_eq!(
                half_bits_at::<::half::bf16>(SimdLevel::Scalar, &cases, upstream),
                half_bits_at::<::half::bf16>(level, &cases, upstream),
                "bf16 {level:?}, upstream {upstream}"
            );
        }
    }
}

/// The gradient's tiles follow the output's 64-byte lines (`LineTiles`):
/// at every offset of the output from a line, on every level, the terms and
/// the gradient are the scalar level's bits, streamed (a large block) or not.
#[test]
fn gradient_tiles_follow_the_output_lines() {
    let _forcing = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng(6464);
    // 9·2·JOB f32 is a block of 288 KiB: streamed.
    for (round, shape) in [[1, 9, 2 * JOB], [2, 2, JOB + 48], [1, 3, 1024]]
        .into_iter()
        .enumerate()
    {
        check_output_offsets(random_case::<f32>(&mut rng, &shape, round != 1));
        check_output_offsets(random_case::<f64>(&mut rng, &shape, round == 1));
    }
}

fn check_output_offsets<T: Lane>(mut case: Case<T>) {
    case.probabilities = None;
    let per_line = 64 / std::mem::size_of::<T>();
    let mut buffer = vec![T::ZERO; case.x.len() + per_line];
    let at = |level, offset: usize| {
        simd::set_simd_level(Some(level));
        let out = &mut buffer[offset..offset + case.x.len()];
        let terms = case.with(|problem, input, target, up| {
            forward_backward_into(problem, input.data, target, up, out).expect("f32/f64 go fused")
        });
        simd::set_simd_level(None);
        let flat: Vec<f64> = terms.iter().flat_map(|t| [t.0, t.1]).collect();
        (bits64(&flat), bits(out))
    };
    every_offset_gives_the_scalar_bits(per_line, at);
}

/// `at(level, offset)` (a result, its buffer at `offset` elements from a
/// 64-byte line) gives what the scalar level gives at offset 0, on every
/// level and at each of a line's `per_line` offsets.
fn every_offset_gives_the_scalar_bits<R: PartialEq>(per_line: usize, mut at: impl FnMut(SimdLevel, usize) -> R) {
    let scalar = at(SimdLevel::Scalar, 0);
    for level in [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512] {
        for offset in 0..per_line {
            assert!(at(level, offset) == scalar, "{level:?} at offset {offset}");
        }
    }
}

/// The forward's tiles follow the logits' 64-byte lines (`LineTiles`): at
/// every offset of the logits from a line, on every level, the terms are
/// the scalar level's bits, per position and reduced.
#[test]
fn forward_tiles_follow_the_logits_lines() {
    let _forcing = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng(4646);
    for (round, shape) in [[1, 9, 2 * JOB], [2, 2, JOB + 48], [1, 3, 1024]]
        .into_iter()
        .enumerate()
    {
        for reduction in [Reduction::None, Reduction::Mean] {
            let mut f32_case = random_case::<f32>(&mut rng, &shape, round != 1);
            let mut f64_case = random_case::<f64>(&mut rng, &shape, round == 1);
            (f32_case.reduction, f64_case.reduction) = (reduction, reduction);
            check_logits_offsets(f32_case);
            check_logits_offsets(f64_case);
        }
    }
}

fn check_logits_offsets<T: Lane>(mut case: Case<T>) {
    case.probabilities = None;
    let per_line = 64 / std::mem::size_of::<T>();
    let mut buffer = vec![T::ZERO; case.x.len() + per_line];
    let at = |level, offset: usize| {
        let x = &mut buffer[offset..offset + case.x.len()];
        x.copy_from_slice(&case.x);
        simd::set_simd_level(Some(level));
        let terms = case.with(|problem, _, target, _| forward_terms(problem, x, target).expect("f32/f64 go fused"));
        simd::set_simd_level(None);
        bits64(&terms.iter().flat_map(|t| [t.0, t.1]).collect::<Vec<f64>>())
    };
    every_offset_gives_the_scalar_bits(per_line, at);
}

/// Scratch buffers outlive a call (`spare.rs`), and one of them remembers
/// which next tile it copied, by block address and position: a later call
/// on the same buffer, with other logits in it, must not take that copy.
/// A kept scratch that copied job 1's first tile, then job 1 on new
/// logits: the bits of a fresh scratch, on every level.
#[test]
fn a_kept_scratch_forgets_the_tile_it_copied() {
    let _forcing = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng(2718);
    for level in [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512] {
        simd::set_simd_level(Some(level));
        let mut case = random_case::<f32>(&mut rng, &[1, 3, 2 * JOB], false);
        case.probabilities = None;
        let mut block = case.x.clone();
        let job = |block: &[f32], index: usize, scratch: &mut Scratch<f32>| {
            case.with(|problem, _, target, _| {
                with_kernel::<f32, f32, _>(problem, target, |kernel| {
                    let mut slots = vec![(0.0, 0.0); JOB];
                    kdim_job(kernel, 0, block, 2 * JOB, index, &mut slots, scratch);
                    bits64(&slots.iter().flat_map(|t| [t.0, t.1]).collect::<Vec<f64>>())
                })
                .expect("a class-target kernel")
            })
        };
        // Job 0's last tile copies job 1's first; the scratch is kept.
        job(&block, 0, &mut Spare::<Scratch<f32>>::take());
        for v in block.iter_mut() {
            *v = -*v;
        }
        let kept = job(&block, 1, &mut Spare::<Scratch<f32>>::take());
        assert!(kept == job(&block, 1, &mut Scratch::default()), "{level:?}");
        simd::set_simd_level(None);
    }
}

/// `pairwise_sum`'s definition, recursive all the way down.
fn pairwise_reference(terms: &[(f64, f64)]) -> (f64, f64) {
    if terms.len() <= 8 {
        return terms.iter().fold((0.0, 0.0), |(a, b), t| (a + t.0, b + t.1));
    }
    let mid = terms.len() / 2;
    let (left, right) = (pairwise_reference(&terms[..mid]), pairwise_reference(&terms[mid..]));
    (left.0 + right.0, left.1 + right.1)
}

/// `pairwise_sum`'s flat sums of whole leaves give the recursive
/// definition's bits, on random lengths (and every power-of-two node size).
#[test]
fn pairwise_sum_gives_the_recursive_bits() {
    let mut rng = Rng(5000);
    let terms: Vec<(f64, f64)> = (0..3 * JOB)
        .map(|i| match i % 89 {
            0 => (-0.0, -0.0),
            1 => (rng.normal_ish(1e15), -rng.normal_ish(1e-15)),
            _ => (rng.normal_ish(1e3), rng.normal_ish(1e-3)),
        })
        .collect();
    let powers = (0..=13).flat_map(|k| [(1 << k) - 1, 1 << k, (1 << k) + 1]);
    let lengths: Vec<usize> = powers.chain((0..400).map(|_| 1 + rng.below(5000))).collect();
    for n in lengths {
        let start = rng.below(terms.len() - n + 1);
        let slice = &terms[start..start + n];
        let (a, b) = (pairwise_sum(slice), pairwise_reference(slice));
        assert_eq!(
            (a.0.to_bits(), a.1.to_bits()),
            (b.0.to_bits(), b.1.to_bits()),
            "{n} terms"
        );
    }
}

/// Over a power-of-two count of jobs, the jobs' own pairwise sums summed
/// by halving give the pairwise sum's bits.
#[test]
fn job_sums_halve_like_the_pairwise_sum() {
    let mut rng = Rng(4097);
    for jobs in [1, 2, 4, 8, 16] {
        let terms: Vec<(f64, f64)> = (0..jobs * JOB)
            .map(|i| match i % 97 {
                0 => (-0.0, 0.0),
                _ => (rng.normal_ish(1e3), rng.normal_ish(1e-3)),
            })
            .collect();
        let sums: Vec<(f64, f64)> = terms.chunks(JOB).map(pairwise_sum).collect();
        let (a, b) = (pairwise_sum(&terms), halving_sum(&sums));
        assert_eq!(
            (a.0.to_bits(), a.1.to_bits()),
            (b.0.to_bits(), b.1.to_bits()),
            "{jobs} jobs"
        );
    }
    assert!(splits_at_jobs(JOB) && splits_at_jobs(16 * JOB));
    assert!(!splits_at_jobs(3 * JOB) && !splits_at_jobs(JOB + 1) && !splits_at_jobs(0));
}

/// K-dim batches of a power-of-two count of jobs, which sum their jobs'
/// sums (forward alone and with the gradient), give the bits of one pairwise
/// sum over each batch's per-position terms.
#[test]
fn kdim_job_sums_give_the_bits_of_one_pairwise_sum() {
    let mut rng = Rng(4096);
    for (round, inner) in [JOB, 2 * JOB, 4 * JOB, 3 * JOB].into_iter().enumerate() {
        let shape = [1 + rng.below(2), 1 + rng.below(5), inner];
        check_job_sums(random_case::<f32>(&mut rng, &shape, round % 2 == 1), inner);
        check_job_sums(random_case::<f64>(&mut rng, &shape, round % 2 == 0), inner);
    }
}

fn check_job_sums<T: Lane>(mut case: Case<T>, inner: usize) {
    let pairs = |terms: &[(f64, f64)]| {
        terms
            .iter()
            .flat_map(|t| [t.0.to_bits(), t.1.to_bits()])
            .collect::<Vec<_>>()
    };
    (case.reduction, case.grad_output) = (Reduction::None, None);
    let expected: Vec<(f64, f64)> = case.with(|problem, input, target, _| {
        let terms = forward_terms(problem, input.data, target).unwrap();
        terms.chunks(inner).map(pairwise_sum).collect()
    });
    for reduction in [Reduction::Mean, Reduction::Sum] {
        case.reduction = reduction;
        let (alone, with_grad) = case.with(|problem, input, target, up| {
            let alone = forward_terms(problem, input.data, target).unwrap();
            (alone, forward_backward(problem, input.data, target, up).unwrap().1)
        });
        assert_eq!(pairs(&alone), pairs(&expected), "{reduction:?} forward, inner {inner}");
        assert_eq!(
            pairs(&with_grad),
            pairs(&expected),
            "{reduction:?} with_grad, inner {inner}"
        );
    }
}
