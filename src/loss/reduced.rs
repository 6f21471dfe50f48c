//! The path for reduced-precision types (float16, bfloat16): libtorch computes
//! each step in float and rounds the result to the half type, so to land on
//! the same values we compute in f32 and round exactly where libtorch rounds:
//!
//! - log_softmax over the last dim (1-D and 2-D input) keeps the max and the sum
//!   of exponentials in the half type: lp = r(x − m − r(ln r(Σ exp(x − m))));
//!   over a middle dim (K-dim input) the sum and its log stay in float. Its
//!   backward keeps Σg in float either way.
//! - nll accumulates in the half type with libtorch's cascade of partial sums.
//! - the smoothing and probability-target sums accumulate in float and round once.
//!
//! Float sums come in two kinds. Over a middle dim libtorch adds class after
//! class into one float per position, so we add in the same order. Everywhere
//! else (a row's log-sum-exp and Σg over the last dim, `sum()` reductions) it
//! adds in vector lanes or a cascade, whose error is far below that of one
//! f32 running over thousands of terms; we add those in f64 and round once
//! ([`accurate_sum`]). The difference shows when a sum lands near a tie of the
//! half type: over 16 017 classes an f32 running sum came to 645.7490 where
//! the exact sum, and libtorch's, is 645.7552 — 645.5 and 646.0 in float16,
//! which moved every log-probability of the row by its log.
//! - every elementwise op (scaling by 1−ε or ε/C, dividing by the total weight,
//!   autograd's products) rounds its result; a scalar multiplies in float,
//!   but is rounded to the half type before it is added.

use super::class_targets::ClassTargets;
use super::element::Element;
use super::input::{Target, View};
use super::kernel;
use super::options::Reduction;
use super::problem::{Problem, Targets};

/// Rounding to the half type, and the few scalars every step needs.
struct Half<'p> {
    round: fn(f32) -> f32,
    problem: &'p Problem<'p>,
    weight: Option<Vec<f32>>,
    /// log_softmax runs over the last dim (1-D and 2-D input).
    last_dim: bool,
}

impl<'p> Half<'p> {
    fn new<T: Element>(problem: &'p Problem<'p>, dims: usize) -> Self {
        Half {
            round: T::round_f32,
            problem,
            weight: problem.weight.as_ref().map(|w| w.iter().map(|&v| v as f32).collect()),
            last_dim: dims <= 2,
        }
    }

    fn r(&self, v: f32) -> f32 {
        (self.round)(v)
    }

    fn w(&self, c: usize) -> Option<f32> {
        self.weight.as_ref().map(|w| w[c])
    }

    /// (1 − ε) and ε/C as libtorch's multiply kernel sees them: computed in
    /// f64, used in float. (Its add kernel rounds a scalar to the half type first.)
    fn keep_and_spread(&self) -> (f32, f32) {
        let e = self.problem.smoothing.unwrap_or(0.0);
        ((1.0 - e) as f32, (e / self.problem.classes as f64) as f32)
    }

    fn log_softmax(&self, row: &mut [f32]) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| {
            if x.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(x)
            }
        });
        let exps = row.iter().map(|&x| (x - max).exp());
        let log_sum = if self.last_dim {
            self.r(self.r(accurate_sum(exps)).ln())
        } else {
            exps.sum::<f32>().ln()
        };
        for x in row.iter_mut() {
            *x = self.r(*x - max - log_sum);
        }
    }

    fn gather<T: Element>(&self, data: &[T], p: usize, row: &mut [f32]) {
        let start = self.problem.row_start(p);
        for (c, slot) in row.iter_mut().enumerate() {
            *slot = data[start + c * self.problem.inner].to_f64() as f32;
        }
    }

    fn log_probabilities<T: Element>(&self, input: &[T], p: usize, row: &mut [f32]) {
        self.gather(input, p, row);
        self.log_softmax(row);
    }

    /// q = r(r(t·(1−ε)) + ε/C) when smoothing, else t.
    fn smooth_target(&self, q: &mut [f32]) {
        if self.problem.smoothing.is_some() {
            let (keep, spread) = self.keep_and_spread();
            let spread = self.r(spread);
            for v in q.iter_mut() {
                *v = self.r(self.r(*v * keep) + spread);
            }
        }
    }

    /// log_softmax backward: r(g − exp(lp)·Σg), with Σg kept in float.
    fn log_softmax_backward(&self, lp: &[f32], grad: &mut [f32]) {
        let sum = if self.last_dim {
            accurate_sum(grad.iter().copied())
        } else {
            grad.iter().sum()
        };
        for (g, &l) in grad.iter_mut().zip(lp) {
            *g = self.r(*g - l.exp() * sum);
        }
    }
}

/// The f32 nearest to the exact sum of `terms` (an f64 sum, rounded once):
/// libtorch's vectorised and cascaded float sums stay within a few f32 ULPs
/// of it.
fn accurate_sum(terms: impl Iterator<Item = f32>) -> f32 {
    terms.map(f64::from).sum::<f64>() as f32
}

/// libtorch's cascade sum (nll_loss_out_frame): partial sums in the half type,
/// level j + 1 absorbing level j every 2^(level_power·(j+1)) items.
struct Cascade {
    loss: [f32; 8],
    weight: [f32; 8],
    level_power: u32,
}

impl Cascade {
    fn new(count: usize) -> Self {
        let ceil_log2 = if count <= 1 {
            0
        } else {
            usize::BITS - (count - 1).leading_zeros()
        };
        Cascade {
            loss: [0.0; 8],
            weight: [0.0; 8],
            level_power: (ceil_log2 / 8).max(4),
        }
    }

    fn add(&mut self, h: &Half, index: usize, loss: f32, weight: f32) {
        self.loss[0] = h.r(self.loss[0] - loss);
        self.weight[0] = h.r(self.weight[0] + weight);
        let mask = (1usize << self.level_power) - 1;
        for j in 0..7 {
            if index & (mask << (j as u32 * self.level_power)) != 0 {
                break;
            }
            self.weight[j + 1] = h.r(self.weight[j + 1] + self.weight[j]);
            self.loss[j + 1] = h.r(self.loss[j + 1] + self.loss[j]);
            self.weight[j] = 0.0;
            self.loss[j] = 0.0;
        }
    }

    fn totals(&self, h: &Half) -> (f32, f32) {
        let fold = |parts: &[f32; 8]| parts.iter().fold(0.0f32, |acc, &v| h.r(acc + v));
        (fold(&self.loss), fold(&self.weight))
    }
}

/// Divisor of the smoothing mean: Σ of target weights (float sum, rounded) or the count.
fn smoothing_divisor(h: &Half, classes: &ClassTargets<'_>) -> f32 {
    match &h.weight {
        Some(w) => h.r(accurate_sum(classes.iter().flatten().map(|y| w[y]))),
        None => h.r(classes.iter().flatten().count() as f32),
    }
}

/// The nll of every position as libtorch computes it: (per-position values under
/// `none`, else the reduced value) and the total weight it divides by.
fn nll<T: Element>(h: &Half, input: &[T], classes: &ClassTargets<'_>, row: &mut [f32]) -> (Vec<f32>, f32) {
    let problem = h.problem;
    if problem.reduction == Reduction::None {
        let values = (0..problem.positions())
            .map(|p| match classes.get(p) {
                None => 0.0,
                Some(y) => {
                    h.log_probabilities(input, p, row);
                    h.r(-row[y] * h.w(y).unwrap_or(1.0))
                }
            })
            .collect();
        return (values, 1.0);
    }
    if problem.positions() == 0 {
        let value = if problem.reduction == Reduction::Mean {
            f32::NAN
        } else {
            0.0
        };
        return (vec![value], 0.0);
    }
    let mut cascade = Cascade::new(problem.positions());
    let mut count = 0usize;
    for p in 0..problem.positions() {
        if let Some(y) = classes.get(p) {
            h.log_probabilities(input, p, row);
            let (term, weight) = match h.w(y) {
                Some(w) => (h.r(row[y] * w), w),
                None => (row[y], 0.0),
            };
            cascade.add(h, p, term, weight);
            count += 1;
        }
    }
    let (loss, weight) = cascade.totals(h);
    let total_weight = if h.weight.is_some() { weight } else { h.r(count as f32) };
    let value = if problem.reduction == Reduction::Mean {
        h.r(loss / total_weight)
    } else {
        loss
    };
    (vec![value], total_weight)
}

/// −r(Σ_c r(lp_c·w_c)) for one position (float sum, rounded once).
fn smoothing_term(h: &Half, lp: &[f32]) -> f32 {
    let sum = match &h.weight {
        Some(w) => accurate_sum(lp.iter().zip(w).map(|(&l, &w)| h.r(l * w))),
        None => accurate_sum(lp.iter().copied()),
    };
    -h.r(sum)
}

/// Forward for reduced types; values are exact values of `T`.
pub(crate) fn forward<T: Element>(problem: &Problem, input: View<'_, T>, target: &Target<'_, T>) -> Vec<f64> {
    let h = Half::new::<T>(problem, input.shape.len());
    let mut row = vec![0.0f32; problem.classes];
    let values: Vec<f32> = match (&problem.targets, target) {
        (Targets::Classes(classes), _) => {
            let (nll, _) = nll(&h, input.data, classes, &mut row);
            match problem.smoothing {
                None => nll,
                Some(_) => {
                    let smooth: Vec<f32> = (0..problem.positions())
                        .map(|p| match classes.get(p) {
                            None => 0.0,
                            Some(_) => {
                                h.log_probabilities(input.data, p, &mut row);
                                smoothing_term(&h, &row)
                            }
                        })
                        .collect();
                    let (keep, spread) = h.keep_and_spread();
                    let combine = |a: f32, s: f32| h.r(h.r(keep * a) + h.r(s * spread));
                    match problem.reduction {
                        Reduction::None => nll.iter().zip(&smooth).map(|(&a, &s)| combine(a, s)).collect(),
                        reduction => {
                            let total = h.r(accurate_sum(smooth.iter().copied()));
                            let ret = if reduction == Reduction::Mean {
                                h.r(total / smoothing_divisor(&h, classes))
                            } else {
                                total
                            };
                            vec![combine(nll[0], ret)]
                        }
                    }
                }
            }
        }
        (Targets::Probabilities, Target::Probabilities(t)) => {
            let mut q = vec![0.0f32; problem.classes];
            // Σ_c r(lp·q·w) per position in f64: libtorch's `sum()` under
            // sum and mean runs over every element at once.
            let per_position: Vec<f64> = (0..problem.positions())
                .map(|p| {
                    h.log_probabilities(input.data, p, &mut row);
                    h.gather(t.data, p, &mut q);
                    h.smooth_target(&mut q);
                    (0..problem.classes)
                        .map(|c| {
                            let product = h.r(row[c] * q[c]);
                            f64::from(h.w(c).map_or(product, |w| h.r(product * w)))
                        })
                        .sum::<f64>()
                })
                .collect();
            match problem.reduction {
                Reduction::None => per_position.iter().map(|&s| -h.r(s as f32)).collect(),
                Reduction::Sum => vec![-h.r(per_position.iter().sum::<f64>() as f32)],
                Reduction::Mean if per_position.is_empty() || problem.classes == 0 => vec![f32::NAN],
                Reduction::Mean => {
                    vec![h.r(-h.r(per_position.iter().sum::<f64>() as f32) / problem.positions() as f32)]
                }
            }
        }
        _ => unreachable!("validate pairs probability targets with Target::Probabilities"),
    };
    values.into_iter().map(f64::from).collect()
}

/// Gradients for reduced types: (w.r.t. input, w.r.t. probability targets).
pub(crate) fn backward<T: Element>(
    problem: &Problem,
    input: View<'_, T>,
    target: &Target<'_, T>,
    upstream: &[f64],
) -> (Vec<T>, Option<Vec<T>>) {
    let h = Half::new::<T>(problem, input.shape.len());
    let classes_n = problem.classes;
    let mut grad_input = vec![T::from_f64(0.0); input.data.len()];
    let mut lp = vec![0.0f32; classes_n];
    let mut grad = vec![0.0f32; classes_n];
    let g_of = |p: usize| {
        (if problem.reduction == Reduction::None {
            upstream[p]
        } else {
            upstream[0]
        }) as f32
    };
    let (keep, spread) = h.keep_and_spread();
    let store = |row: &[f32], p: usize, out: &mut [T]| {
        let as_f64: Vec<f64> = row.iter().map(|&v| v as f64).collect();
        kernel::scatter_row(problem, &as_f64, p, T::from_f64, out);
    };
    match (&problem.targets, target) {
        (Targets::Classes(classes), _) => {
            let (_, total_weight) = nll(&h, input.data, classes, &mut lp);
            let smooth_divisor = smoothing_divisor(&h, classes);
            for p in 0..problem.positions() {
                h.log_probabilities(input.data, p, &mut lp);
                grad.iter_mut().for_each(|g| *g = 0.0);
                if let Some(y) = classes.get(p) {
                    let g = g_of(p);
                    let g_nll = if problem.smoothing.is_some() { h.r(g * keep) } else { g };
                    if problem.smoothing.is_some() {
                        let g_ret = h.r(g * spread);
                        let g_smooth = if problem.reduction == Reduction::Mean {
                            h.r(g_ret / smooth_divisor)
                        } else {
                            g_ret
                        };
                        for (c, slot) in grad.iter_mut().enumerate() {
                            *slot = h.w(c).map_or(-g_smooth, |w| h.r(-g_smooth * w));
                        }
                    }
                    let nll_part = match problem.reduction {
                        Reduction::None => h.r(-h.w(y).unwrap_or(1.0) * g_nll),
                        reduction => {
                            let coef = -(if reduction == Reduction::Mean {
                                h.r(g_nll / total_weight)
                            } else {
                                g_nll
                            });
                            h.w(y).map_or(coef, |w| h.r(w * coef))
                        }
                    };
                    grad[y] = if problem.smoothing.is_some() {
                        h.r(grad[y] + nll_part)
                    } else {
                        nll_part
                    };
                }
                h.log_softmax_backward(&lp, &mut grad);
                store(&grad, p, &mut grad_input);
            }
            (grad_input, None)
        }
        (Targets::Probabilities, Target::Probabilities(t)) => {
            let mut grad_target = vec![T::from_f64(0.0); input.data.len()];
            let mut q = vec![0.0f32; classes_n];
            let mut gq = vec![0.0f32; classes_n];
            for p in 0..problem.positions() {
                h.log_probabilities(input.data, p, &mut lp);
                h.gather(t.data, p, &mut q);
                h.smooth_target(&mut q);
                let g = g_of(p);
                let scaled = -(if problem.reduction == Reduction::Mean {
                    h.r(g / problem.positions() as f32)
                } else {
                    g
                });
                for c in 0..classes_n {
                    let gw = h.w(c).map_or(scaled, |w| h.r(scaled * w));
                    grad[c] = h.r(gw * q[c]);
                    let gt = h.r(gw * lp[c]);
                    gq[c] = if problem.smoothing.is_some() {
                        h.r(gt * keep)
                    } else {
                        gt
                    };
                }
                store(&gq, p, &mut grad_target);
                h.log_softmax_backward(&lp, &mut grad);
                store(&grad, p, &mut grad_input);
            }
            (grad_input, Some(grad_target))
        }
        _ => unreachable!("validate pairs probability targets with Target::Probabilities"),
    }
}
