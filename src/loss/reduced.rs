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
//! - every elementwise op (scaling by 1−ε or ε/C, dividing by the total weight,
//!   autograd's products) rounds its result; a scalar multiplies in float,
//!   but is rounded to the half type before it is added.

//!
//! One visit per position, as the fused f32 kernel: its classes are widened
//! into a per-thread f32 row once, then swept from cache (the max with the
//! widening, Σ exp, the smoothing sum of the rounded log-probabilities, and
//! for the gradient one more sweep that writes it). Positions run in fixed
//! tasks on the thread pool; the sums across positions (the nll cascade, the
//! smoothing total) then run in position order, as libtorch's, so results
//! do not depend on the thread count. The row loops live in `fused/half.rs`.

use rayon::prelude::*;

use super::class_targets::ClassTargets;
use super::element::Element;
use super::formulas::Formulas;
use super::fused::half;
use super::input::{Target, View};
use super::options::Reduction;
use super::problem::{Problem, Targets};
use super::simd::{self, Simd};

/// Rounding to the half type, and the few scalars every step needs.
struct Half<'p, T> {
    problem: &'p Problem<'p>,
    formulas: Formulas,
    weight: Option<Vec<f32>>,
    /// log_softmax runs over the last dim (1-D and 2-D input).
    last_dim: bool,
    level: Simd,
    _type: std::marker::PhantomData<T>,
}

/// A position's log-softmax: the row's max and the log of its sum of
/// exponentials, as libtorch keeps them (NaN for a row of NaN results).
#[derive(Clone, Copy)]
struct LogSoftmax {
    max: f32,
    ln_sum: f32,
}

impl LogSoftmax {
    /// NaN or +inf among the logits, or all −inf: every lp is NaN.
    fn is_nan(self) -> bool {
        self.max.is_nan()
    }
}

/// `sum` and the gradient row `out` of a position with log-softmax `ls`; if
/// that is NaN, every NaN is made the one quiet NaN: which NaN the
/// arithmetic gives (its sign) depends on operand order, which differs
/// between SIMD levels, and the levels must give the same bits.
fn canonical_nans<T: Element>(ls: LogSoftmax, sum: f32, out: &mut [T]) -> f32 {
    if !ls.is_nan() {
        return sum;
    }
    for o in out.iter_mut().filter(|o| o.widen_f32().is_nan()) {
        *o = T::narrow_f32(f32::NAN);
    }
    if sum.is_nan() {
        f32::NAN
    } else {
        sum
    }
}

/// Where a position's sweeps read its classes.
enum Source<'a, T> {
    /// The f32 copy in the task's scratch row.
    Widened(&'a [f32]),
    /// The half-precision row itself (AVX-512).
    Direct(half::Direct<'a, T>),
}

impl<T: Element> Source<'_, T> {
    /// Class `c`'s logit.
    fn at(&self, c: usize) -> f32 {
        match self {
            Source::Widened(row) => row[c],
            Source::Direct(direct) => direct.at(c),
        }
    }
}

/// Per-thread rows, reused by every position of a task.
#[derive(Default)]
struct Scratch<T> {
    /// The position's logits in f32.
    row: Vec<f32>,
    /// The gradient w.r.t. the log-probabilities.
    g: Vec<f32>,
    /// Probability targets, then their gradient.
    q: Vec<f32>,
    gq: Vec<f32>,
    /// A K-dim position's gradient before it is scattered.
    out: Vec<T>,
    /// The row at this position as the previous position's last sweep
    /// scanned it: its max and min for `half::Direct`, or that it takes the
    /// f32 copy.
    next_max: Option<(usize, half::ScannedRow)>,
}

impl<T: Element> Scratch<T> {
    /// Only the rows the positions use: class targets over the last dim
    /// need `row` alone (a task's scratch is made per rayon job, and these
    /// are 4 bytes a class each).
    fn new(classes: usize, probabilities: bool, kdim: bool) -> Self {
        let row = |used: bool| vec![0.0; if used { classes } else { 0 }];
        Scratch {
            row: row(true),
            g: row(probabilities),
            q: row(probabilities),
            gq: row(probabilities),
            out: vec![T::from_f64(0.0); if probabilities || kdim { classes } else { 0 }],
            next_max: None,
        }
    }
}

impl<'p, T: Element> Half<'p, T> {
    fn new(problem: &'p Problem<'p>, dims: usize) -> Self {
        Half {
            problem,
            formulas: Formulas::of(problem),
            weight: problem.weight.as_ref().map(|w| w.iter().map(|&v| v as f32).collect()),
            last_dim: dims <= 2,
            level: simd::current(),
            _type: std::marker::PhantomData,
        }
    }

    fn r(&self, v: f32) -> f32 {
        T::round_f32(v)
    }

    fn w(&self, c: usize) -> Option<f32> {
        self.weight.as_ref().map(|w| w[c])
    }

    /// (1 − ε) and ε/C as libtorch's multiply kernel sees them: computed in
    /// f64, used in float. (Its add kernel rounds a scalar to the half type first.)
    fn keep_and_spread(&self) -> (f32, f32) {
        let (keep, spread) = self.formulas.keep_and_spread();
        (keep as f32, spread as f32)
    }

    /// Position `p`'s upstream gradient, in float as autograd holds it.
    fn upstream_at(&self, upstream: &[f64], p: usize) -> f32 {
        self.formulas.upstream_at(upstream, p) as f32
    }

    /// Position `p`'s classes of `data`, widened into `row`; returns their
    /// max and whether all are finite.
    fn load(&self, data: &[T], p: usize, row: &mut [f32]) -> (f32, bool) {
        let (start, inner) = (self.problem.row_start(p), self.problem.inner);
        if inner == 1 {
            return half::widen_row(self.level, &data[start..start + row.len()], row);
        }
        for (c, slot) in row.iter_mut().enumerate() {
            *slot = data[start + c * inner].widen_f32();
        }
        let finite = row.iter().all(|v| v.is_finite());
        (row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)), finite)
    }

    /// The log-softmax of the position in `row`: lp = r(x − m − ln_sum) with
    /// ln_sum = r(ln r(Σ exp(x − m))) over the last dim, ln(Σ) in float otherwise.
    fn log_softmax(&self, data: &[T], p: usize, row: &mut [f32]) -> LogSoftmax {
        let (max, finite) = self.load(data, p, row);
        // NaN anywhere, +inf anywhere, or a row of −inf: every lp is NaN.
        let max_finite = max.is_finite() && (finite || !row.iter().any(|v| v.is_nan() || *v == f32::INFINITY));
        if !max_finite {
            return LogSoftmax {
                max: f32::NAN,
                ln_sum: f32::NAN,
            };
        }
        if !self.last_dim {
            // Over a middle dim libtorch sums each position's exponentials
            // one class after another in float, and keeps the sum unrounded,
            // so lp depends on its every bit: the same sequential sum and exp
            // here (the fuzzer found 3-ULP gradients with lane sums).
            let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
            return LogSoftmax { max, ln_sum: sum.ln() };
        }
        let sum = half::sum_exp(self.level, row, max, self.next_row(data, p));
        self.last_dim_log_softmax(max, sum)
    }

    /// The log-softmax over the last dim from the max and Σ exp: the sum is
    /// rounded to the half type before its log.
    fn last_dim_log_softmax(&self, max: f32, sum: f32) -> LogSoftmax {
        LogSoftmax {
            max,
            ln_sum: self.r(self.r(sum).ln()),
        }
    }

    /// The row after position `p`'s, to prefetch (rows only: K-dim
    /// positions are gathered), or empty.
    fn next_row<'d>(&self, data: &'d [T], p: usize) -> &'d [T] {
        let c = self.problem.classes;
        match self.problem.inner {
            1 => data.get((p + 1) * c..(p + 2) * c).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Position `p`'s log-softmax and where its sweeps read its classes:
    /// the half-precision row itself where the AVX-512 or AVX2 loops take it
    /// ([`half::Direct`]), else the f32 copy in `row`.
    /// `known`: the row's max, when the sweep of the row before found it.
    /// `gradient`: an unweighted class gradient whose Σg the half-precision
    /// row's Σ exp sweep also finds (returned, else `None`).
    fn log_softmax_of<'a>(
        &self,
        data: &'a [T],
        p: usize,
        row: &'a mut [f32],
        known: Option<half::ScannedRow>,
        gradient: Option<half::ClassGradient>,
    ) -> (LogSoftmax, Source<'a, T>, Option<f32>) {
        if self.last_dim && self.problem.inner == 1 {
            let start = self.problem.row_start(p);
            if let Some(direct) = half::Direct::of(self.level, &data[start..start + row.len()], known) {
                let next = self.next_row(data, p);
                let (sum, sum_g) = match gradient {
                    Some(k) => {
                        let (sum, sum_g) = direct.sum_exp_and_gradient_total(next, k);
                        (sum, Some(sum_g))
                    }
                    None => (direct.sum_exp(next), None),
                };
                return (
                    self.last_dim_log_softmax(direct.max(), sum),
                    Source::Direct(direct),
                    sum_g,
                );
            }
        }
        (self.log_softmax(data, p, row), Source::Widened(row), None)
    }

    fn lp(&self, ls: LogSoftmax, x: f32) -> f32 {
        self.r((x - ls.max) - ls.ln_sum)
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

    /// Writes a position's gradient (in the half type, from `scratch.out`
    /// for K-dim) to its place in `out`, which starts at position `first`.
    fn store(&self, p: usize, first: usize, out: &mut [T], computed: &[T]) {
        let offset = self.problem.row_start(first);
        let start = self.problem.row_start(p) - offset;
        for (c, &v) in computed.iter().enumerate() {
            out[start + c * self.problem.inner] = v;
        }
    }

    /// Positions per task: whole rows, or one batch's (C, S) block in K-dim
    /// (so each task's gradient is one contiguous chunk).
    fn positions_per_task(&self) -> usize {
        match self.problem.inner {
            1 => (131_072 / self.problem.classes.max(1)).clamp(1, 1024),
            inner => inner,
        }
    }
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

    fn add<T: Element>(&mut self, h: &Half<'_, T>, index: usize, loss: f32, weight: f32) {
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

    fn totals<T: Element>(&self, h: &Half<'_, T>) -> (f32, f32) {
        let fold = |parts: &[f32; 8]| parts.iter().fold(0.0f32, |acc, &v| h.r(acc + v));
        (fold(&self.loss), fold(&self.weight))
    }
}

/// Divisor of the smoothing mean: Σ of target weights (float sum, rounded) or the count.
fn smoothing_divisor<T: Element>(h: &Half<'_, T>, classes: &ClassTargets<'_>) -> f32 {
    match &h.weight {
        Some(w) => h.r(classes.iter().flatten().map(|y| w[y]).sum::<f32>()),
        None => h.r(classes.iter().flatten().count() as f32),
    }
}

/// The nll as libtorch computes it from each kept position's lp_y (`lp_y(p)`):
/// (per-position values under `none`, else the reduced value) and the total
/// weight it divides by.
fn nll<T: Element>(h: &Half<'_, T>, classes: &ClassTargets<'_>, lp_y: impl Fn(usize) -> f32) -> (Vec<f32>, f32) {
    let problem = h.problem;
    if problem.reduction == Reduction::None {
        let values = (0..problem.positions())
            .map(|p| match classes.get(p) {
                None => 0.0,
                Some(y) => h.r(-lp_y(p) * h.w(y).unwrap_or(1.0)),
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
            let (term, weight) = match h.w(y) {
                Some(w) => (h.r(lp_y(p) * w), w),
                None => (lp_y(p), 0.0),
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

/// What one visit to a position leaves behind for the sums across positions:
/// class targets: (lp_y, smoothing term −r(Σ_c r(lp_c·w_c))); probability
/// targets: (Σ_c of the weighted products, 0).
type Terms = (f32, f32);

/// The gradient a visit writes: the caller's buffer, and for probability
/// targets the gradient w.r.t. them; `g_of` gives the upstream value.
struct GradientOut<'a, T> {
    input: &'a mut [T],
    target: Option<&'a mut [T]>,
}

/// The per-position scalars of the class-target gradient that do not depend
/// on the logits.
struct ClassCoefficients {
    total_weight: f32,
    smooth_divisor: f32,
}

/// Visits every position once: fills `terms` and, with `grad`, writes the
/// gradients. `want_terms` false skips the sums that only the loss needs.
fn visit<T: Element>(
    h: &Half<'_, T>,
    input: &[T],
    target: &Target<'_, T>,
    upstream: &[f64],
    grad: Option<GradientOut<'_, T>>,
    want_terms: bool,
) -> Vec<Terms> {
    let problem = h.problem;
    let (n, c) = (problem.positions(), problem.classes);
    let mut terms = vec![(0.0f32, 0.0f32); n];
    if n == 0 || c == 0 {
        return terms;
    }
    let per_task = h.positions_per_task();
    let coefficients = match &problem.targets {
        Targets::Classes(classes) if grad.is_some() => Some(ClassCoefficients {
            total_weight: nll(h, classes, |_| 0.0).1,
            smooth_divisor: smoothing_divisor(h, classes),
        }),
        _ => None,
    };
    let position = |p: usize, first: usize, out: Option<(&mut [T], Option<&mut [T]>)>, s: &mut Scratch<T>| -> Terms {
        match (&problem.targets, target) {
            (Targets::Classes(classes), _) => class_position(
                h,
                input,
                p,
                classes.get(p),
                first,
                out.map(|(o, _)| o),
                coefficients.as_ref(),
                upstream,
                want_terms,
                s,
            ),
            (Targets::Probabilities, Target::Probabilities(t)) => {
                probability_position(h, input, t.data, p, first, out, upstream, s)
            }
            _ => unreachable!("validate pairs probability targets with Target::Probabilities"),
        }
    };
    let chunk = per_task * c;
    let (probabilities, kdim) = (matches!(problem.targets, Targets::Probabilities), problem.inner != 1);
    match grad {
        None => terms.par_chunks_mut(per_task).enumerate().for_each_init(
            || Scratch::new(c, probabilities, kdim),
            |s, (task, slots)| {
                for (j, slot) in slots.iter_mut().enumerate() {
                    *slot = position(task * per_task + j, task * per_task, None, s);
                }
            },
        ),
        Some(GradientOut {
            input: out,
            target: None,
        }) => terms
            .par_chunks_mut(per_task)
            .zip(out.par_chunks_mut(chunk))
            .enumerate()
            .for_each_init(
                || Scratch::new(c, probabilities, kdim),
                |s, (task, (slots, out))| {
                    let first = task * per_task;
                    for (j, slot) in slots.iter_mut().enumerate() {
                        *slot = position(first + j, first, Some((&mut *out, None)), s);
                    }
                },
            ),
        Some(GradientOut {
            input: out,
            target: Some(out_t),
        }) => terms
            .par_chunks_mut(per_task)
            .zip(out.par_chunks_mut(chunk).zip(out_t.par_chunks_mut(chunk)))
            .enumerate()
            .for_each_init(
                || Scratch::new(c, probabilities, kdim),
                |s, (task, (slots, (out, out_t)))| {
                    let first = task * per_task;
                    for (j, slot) in slots.iter_mut().enumerate() {
                        *slot = position(first + j, first, Some((&mut *out, Some(&mut *out_t))), s);
                    }
                },
            ),
    }
    terms
}

/// One class-target position: its terms and, with `out` (the task's chunk of
/// the gradient, starting at position `first`), its gradient.
#[allow(clippy::too_many_arguments)]
fn class_position<T: Element>(
    h: &Half<'_, T>,
    input: &[T],
    p: usize,
    y: Option<usize>,
    first: usize,
    out: Option<&mut [T]>,
    coefficients: Option<&ClassCoefficients>,
    upstream: &[f64],
    want_terms: bool,
    s: &mut Scratch<T>,
) -> Terms {
    let problem = h.problem;
    // Forward skips ignored positions (their terms are 0 whatever their logits).
    if out.is_none() && y.is_none() {
        return (0.0, 0.0);
    }
    // The gradient w.r.t. the log-probabilities, when there is one; its Σg
    // rides on the Σ exp sweep when unweighted.
    let gradient = match (&out, coefficients) {
        (Some(_), Some(k)) => Some(class_gradient(h, p, y, k, upstream)),
        _ => None,
    };
    let unweighted = gradient.and_then(|(k, weighted)| (!weighted).then_some(k));
    let known = s.next_max.take().and_then(|(q, max)| (q == p).then_some(max));
    let (ls, row, sum_g) = h.log_softmax_of(input, p, &mut s.row, known, unweighted);
    // The smoothing sum, when the loss needs it: in the gradient's sweep if
    // there is one, else in a sweep of its own.
    let smoothing = match (y, problem.smoothing) {
        (Some(_), Some(_)) if want_terms => Some(h.weight.is_some()),
        _ => None,
    };
    let terms = |sum: f32| match y {
        Some(y) if want_terms => (h.lp(ls, row.at(y)), if smoothing.is_some() { -h.r(sum) } else { 0.0 }),
        _ => (0.0, 0.0),
    };
    let (Some(out), Some((k, weighted))) = (out, gradient) else {
        let (level, max, ln_sum) = (h.level, ls.max, ls.ln_sum);
        let sum = match (smoothing, &h.weight, &row) {
            (None, _, _) => 0.0,
            (Some(_), Some(w), Source::Widened(row)) => {
                half::sum_log_probabilities::<T, true>(level, row, max, ln_sum, w)
            }
            (Some(_), None, Source::Widened(row)) => {
                half::sum_log_probabilities::<T, false>(level, row, max, ln_sum, &[])
            }
            (Some(_), weight, Source::Direct(d)) => {
                // The next row's max pass rides on this sweep.
                let next = h.next_row(input, p);
                let (sum, next_max) = match weight {
                    Some(w) => d.sum_log_probabilities::<true>(ln_sum, w, next),
                    None => d.sum_log_probabilities::<false>(ln_sum, &[], next),
                };
                s.next_max = next_max.map(|max| (p + 1, max));
                sum
            }
        };
        return terms(canonical_nans::<T>(ls, sum, &mut []));
    };
    let (level, max, ln_sum) = (h.level, ls.max, ls.ln_sum);
    // A direct row's sweep also finds the next row's max, as forward's does.
    let next = h.next_row(input, p);
    let sweep = |target: &mut [T]| match &row {
        // The f32 copy's sweep finds no next max.
        Source::Widened(row) => (
            match (smoothing, &h.weight) {
                (Some(_), Some(w)) => {
                    half::class_log_softmax_backward::<T, true, true>(level, row, max, ln_sum, k, w, target)
                }
                (Some(_), None) => {
                    half::class_log_softmax_backward::<T, true, false>(level, row, max, ln_sum, k, &[], target)
                }
                (None, Some(w)) if weighted => {
                    half::class_log_softmax_backward::<T, false, true>(level, row, max, ln_sum, k, w, target)
                }
                (None, _) => {
                    half::class_log_softmax_backward::<T, false, false>(level, row, max, ln_sum, k, &[], target)
                }
            },
            None,
        ),
        Source::Direct(d) => match (smoothing, &h.weight) {
            (Some(_), Some(w)) => d.class_backward::<true, true>(level, ln_sum, k, w, target, next),
            (Some(_), None) => match sum_g {
                Some(sum_g) => d.class_backward_with_total::<true, false>(ln_sum, k, sum_g, &[], target, next),
                None => d.class_backward::<true, false>(level, ln_sum, k, &[], target, next),
            },
            (None, Some(w)) if weighted => d.class_backward::<false, true>(level, ln_sum, k, w, target, next),
            (None, _) => match sum_g {
                Some(sum_g) => d.class_backward_with_total::<false, false>(ln_sum, k, sum_g, &[], target, next),
                None => d.class_backward::<false, false>(level, ln_sum, k, &[], target, next),
            },
        },
    };
    let mut next_max = None;
    let sweep = |target: &mut [T]| {
        let (sum, max) = sweep(target);
        next_max = max;
        canonical_nans(ls, sum, target)
    };
    let sum = write_gradient(h, p, first, &mut s.out, out, sweep);
    s.next_max = next_max.map(|max| (p + 1, max));
    terms(sum)
}

/// A class-target position's gradient w.r.t. its log-probabilities, as
/// autograd builds it: `base` (weighted with smoothing and weights) but at
/// the target; and whether it is weighted.
fn class_gradient<T: Element>(
    h: &Half<'_, T>,
    p: usize,
    y: Option<usize>,
    k: &ClassCoefficients,
    upstream: &[f64],
) -> (half::ClassGradient, bool) {
    let problem = h.problem;
    match y {
        None => (
            half::ClassGradient {
                base: 0.0,
                target: usize::MAX,
                at_target: 0.0,
            },
            false,
        ),
        Some(y) => {
            let g = h.upstream_at(upstream, p);
            let (keep, spread) = h.keep_and_spread();
            let g_nll = if problem.smoothing.is_some() { h.r(g * keep) } else { g };
            let base = if problem.smoothing.is_some() {
                let g_ret = h.r(g * spread);
                let g_smooth = if problem.reduction == Reduction::Mean {
                    h.r(g_ret / k.smooth_divisor)
                } else {
                    g_ret
                };
                -g_smooth
            } else {
                0.0
            };
            let weighted = problem.smoothing.is_some() && h.weight.is_some();
            let nll_part = match problem.reduction {
                Reduction::None => h.r(-h.w(y).unwrap_or(1.0) * g_nll),
                reduction => {
                    let coef = -(if reduction == Reduction::Mean {
                        h.r(g_nll / k.total_weight)
                    } else {
                        g_nll
                    });
                    h.w(y).map_or(coef, |w| h.r(w * coef))
                }
            };
            let at_target = match (problem.smoothing, h.w(y)) {
                (None, _) => nll_part,
                (Some(_), Some(w)) if weighted => h.r(h.r(base * w) + nll_part),
                (Some(_), _) => h.r(base + nll_part),
            };
            (
                half::ClassGradient {
                    base,
                    target: y,
                    at_target,
                },
                weighted,
            )
        }
    }
}

/// Runs `kernel` (a log_softmax backward) into position `p`'s place in
/// `out`, which starts at position `first` (through `scratch` for K-dim
/// positions), and returns what it returns.
fn write_gradient<T: Element>(
    h: &Half<'_, T>,
    p: usize,
    first: usize,
    scratch: &mut [T],
    out: &mut [T],
    kernel: impl FnOnce(&mut [T]) -> f32,
) -> f32 {
    let c = h.problem.classes;
    let sum = match h.problem.inner {
        1 => kernel(&mut out[(p - first) * c..(p - first + 1) * c]),
        _ => kernel(&mut *scratch),
    };
    if h.problem.inner != 1 {
        h.store(p, first, out, scratch);
    }
    sum
}

/// One probability-target position: (Σ_c r(r(lp_c·q_c)·w_c), 0) and, with
/// `out` (the task's chunks of both gradients, starting at position
/// `first`), the gradients w.r.t. the input and the targets.
#[allow(clippy::too_many_arguments)]
fn probability_position<T: Element>(
    h: &Half<'_, T>,
    input: &[T],
    targets: &[T],
    p: usize,
    first: usize,
    out: Option<(&mut [T], Option<&mut [T]>)>,
    upstream: &[f64],
    s: &mut Scratch<T>,
) -> Terms {
    let problem = h.problem;
    let ls = h.log_softmax(input, p, &mut s.row);
    half::write_log_probabilities::<T>(h.level, &mut s.row, ls.max, ls.ln_sum);
    h.load(targets, p, &mut s.q);
    h.smooth_target(&mut s.q);
    let (lp, q) = (&s.row, &s.q);
    let sum = (0..problem.classes)
        .map(|c| {
            let product = h.r(lp[c] * q[c]);
            h.w(c).map_or(product, |w| h.r(product * w))
        })
        .sum::<f32>();
    let Some((out, out_t)) = out else {
        return (sum, 0.0);
    };
    let g = h.upstream_at(upstream, p);
    let scaled = -(if problem.reduction == Reduction::Mean {
        h.r(g / problem.positions() as f32)
    } else {
        g
    });
    let (keep, _) = h.keep_and_spread();
    for c in 0..problem.classes {
        let gw = h.w(c).map_or(scaled, |w| h.r(scaled * w));
        s.g[c] = h.r(gw * q[c]);
        let gt = h.r(gw * lp[c]);
        s.gq[c] = if problem.smoothing.is_some() {
            h.r(gt * keep)
        } else {
            gt
        };
    }
    if let Some(out_t) = out_t {
        for (o, &v) in s.out.iter_mut().zip(&s.gq) {
            *o = T::narrow_f32(v);
        }
        h.store(p, first, out_t, &s.out);
    }
    let sum_g = half::sum(h.level, &s.g);
    // The row holds the log-probabilities now: with max 0 and ln_sum 0 the
    // backward's lp_c = r(lp_c − 0 − 0) is lp_c itself.
    let (level, row, g) = (h.level, &s.row, &s.g);
    write_gradient(h, p, first, &mut s.out, out, |target| {
        let sum = half::log_softmax_backward::<T>(level, row, 0.0, 0.0, g, sum_g, target);
        canonical_nans(ls, sum, target)
    });
    (sum, 0.0)
}

/// The loss values from the positions' terms, reduced as libtorch reduces them.
fn loss_values<T: Element>(h: &Half<'_, T>, terms: &[Terms]) -> Vec<f64> {
    let problem = h.problem;
    let values: Vec<f32> = match &problem.targets {
        Targets::Classes(classes) => {
            let (nll, _) = nll(h, classes, |p| terms[p].0);
            match problem.smoothing {
                None => nll,
                Some(_) => {
                    let (keep, spread) = h.keep_and_spread();
                    let combine = |a: f32, s: f32| h.r(h.r(keep * a) + h.r(s * spread));
                    match problem.reduction {
                        Reduction::None => nll.iter().zip(terms).map(|(&a, t)| combine(a, t.1)).collect(),
                        reduction => {
                            let total = h.r(terms.iter().map(|t| t.1).sum::<f32>());
                            let ret = if reduction == Reduction::Mean {
                                h.r(total / smoothing_divisor(h, classes))
                            } else {
                                total
                            };
                            vec![combine(nll[0], ret)]
                        }
                    }
                }
            }
        }
        Targets::Probabilities => {
            let per_position = terms.iter().map(|t| t.0);
            match problem.reduction {
                Reduction::None => per_position.map(|s| -h.r(s)).collect(),
                Reduction::Sum => vec![-h.r(per_position.sum())],
                Reduction::Mean if terms.is_empty() || problem.classes == 0 => vec![f32::NAN],
                Reduction::Mean => vec![h.r(-h.r(per_position.sum()) / problem.positions() as f32)],
            }
        }
    };
    values.into_iter().map(f64::from).collect()
}

/// Forward for reduced types; values are exact values of `T`.
pub(crate) fn forward<T: Element>(problem: &Problem, input: View<'_, T>, target: &Target<'_, T>) -> Vec<f64> {
    let h = Half::<T>::new(problem, input.shape.len());
    let terms = visit(&h, input.data, target, &[], None, true);
    loss_values(&h, &terms)
}

/// Gradients for reduced types: (w.r.t. input, w.r.t. probability targets).
pub(crate) fn backward<T: Element>(
    problem: &Problem,
    input: View<'_, T>,
    target: &Target<'_, T>,
    upstream: &[f64],
) -> (Vec<T>, Option<Vec<T>>) {
    let h = Half::<T>::new(problem, input.shape.len());
    let mut grad_input = vec![T::from_f64(0.0); input.data.len()];
    let mut grad_target = matches!(problem.targets, Targets::Probabilities).then(|| grad_input.clone());
    let out = GradientOut {
        input: &mut grad_input,
        target: grad_target.as_deref_mut(),
    };
    visit(&h, input.data, target, upstream, Some(out), false);
    (grad_input, grad_target)
}

/// The loss values (as [`forward`]) and the gradient w.r.t. the input into
/// `out`, in one visit per position; and the gradient w.r.t. probability targets.
pub(crate) fn forward_backward_into<T: Element>(
    problem: &Problem,
    input: View<'_, T>,
    target: &Target<'_, T>,
    upstream: &[f64],
    out: &mut [T],
) -> (Vec<f64>, Option<Vec<T>>) {
    let h = Half::<T>::new(problem, input.shape.len());
    let mut grad_target =
        matches!(problem.targets, Targets::Probabilities).then(|| vec![T::from_f64(0.0); input.data.len()]);
    let grad = GradientOut {
        input: out,
        target: grad_target.as_deref_mut(),
    };
    let terms = visit(&h, input.data, target, upstream, Some(grad), true);
    (loss_values(&h, &terms), grad_target)
}
