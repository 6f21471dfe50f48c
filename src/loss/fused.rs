//! The fused kernel for f32 and f64 class-index targets.
//!
//! libtorch's CPU path makes about four passes over the N×C logits in forward
//! (log_softmax's max, its exp-sum, the write of an N×C log-probability
//! tensor, the nll gather and the smoothing sum) and as many again backward.
//! Here each row is visited once from memory and then swept while it sits in
//! cache: the max; the sum of exponentials together with the (weighted) sum
//! of shifted logits that the smoothing term needs; and, for the gradient, a
//! write of p_c·(−Σ g) − smooth·w_c (+ the target's term) over the
//! exponentials. Forward needs O(N) extra memory (one pair of terms per row).
//!
//! Determinism: every row is computed alone, in fixed 16-lane blocks flushed
//! to f64 every 1024 elements, and the rows' terms are summed pairwise in a
//! fixed order afterwards, so results do not depend on the thread count or on
//! the instruction set (see `simd.rs`).
//!
//! Rows that are not finite (NaN, ±inf, a zero total weight) go to the
//! reference kernel, so edge cases keep libtorch's exact semantics.

use std::ops::{Add, Mul, Sub};

use rayon::prelude::*;

use super::element::Element;
use super::fast_exp::exp_nonpositive_f32;
use super::forward::mean_divisor;
use super::kernel;
use super::options::Reduction;
use super::problem::{Problem, Targets};
use super::simd::{self, SimdLevel};

/// Element types the fused kernel runs on.
pub(crate) trait Lane:
    Element + PartialOrd + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self>
{
    const ZERO: Self;
    const NEG_INFINITY: Self;
    /// e^d for d = x − max ≤ 0; NaN rows are caught by the caller.
    fn exp_lane(self) -> Self;
}

impl Lane for f32 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    #[inline(always)]
    fn exp_lane(self) -> Self {
        exp_nonpositive_f32(self)
    }
}

impl Lane for f64 {
    const ZERO: Self = 0.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    #[inline(always)]
    fn exp_lane(self) -> Self {
        self.exp()
    }
}

const LANES: usize = 16;
/// Elements accumulated in the working type before flushing to f64.
const BLOCK: usize = 1024;
/// Positions per column task in K-dim input.
const COLUMN_WIDTH: usize = 64;

/// Sums 16 lanes in a fixed tree, in f64.
#[inline(always)]
fn fold_lanes<T: Lane>(acc: &[T; LANES]) -> f64 {
    let mut v = [0.0f64; LANES];
    for l in 0..LANES {
        v[l] = acc[l].to_f64();
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            v[l] += v[l + width];
        }
    }
    v[0]
}

/// Pairwise sum in a fixed order (independent of how the terms were computed).
pub(crate) fn pairwise_sum(values: &[f64]) -> f64 {
    if values.len() <= 8 {
        return values.iter().sum();
    }
    let mid = values.len() / 2;
    pairwise_sum(&values[..mid]) + pairwise_sum(&values[mid..])
}

#[inline(always)]
fn row_max<T: Lane>(x: &[T]) -> T {
    let mut acc = [T::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for l in 0..LANES {
            acc[l] = if chunk[l] > acc[l] { chunk[l] } else { acc[l] };
        }
    }
    for (l, &v) in rest.iter().enumerate() {
        acc[l] = if v > acc[l] { v } else { acc[l] };
    }
    acc.iter().fold(T::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// (Σ exp(x − m), Σ w·(x − m)) over a row; with `WRITE`, the exponentials
/// go to `out` (same length as `x`).
#[inline(always)]
fn row_sums<T: Lane, const WEIGHTED: bool, const WRITE: bool>(
    x: &[T],
    out: &mut [T],
    weight: &[T],
    max: T,
) -> (f64, f64) {
    let mut sum_exp = 0.0;
    let mut sum_shifted = 0.0;
    let mut start = 0;
    while start < x.len() {
        let end = (start + BLOCK).min(x.len());
        let mut e_acc = [T::ZERO; LANES];
        let mut s_acc = [T::ZERO; LANES];
        let block = &x[start..end];
        let block_out: &mut [T] = if WRITE { &mut out[start..end] } else { &mut [] };
        let block_weight = if WEIGHTED { &weight[start..end] } else { &weight[..0] };
        let full = block.len() / LANES * LANES;
        // chunks_exact: no bounds checks in the lane loop, so LLVM vectorises it.
        let x_chunks = block[..full].chunks_exact(LANES);
        if WRITE {
            let out_chunks = block_out[..full].chunks_exact_mut(LANES);
            for (xc, oc) in x_chunks.zip(out_chunks) {
                for l in 0..LANES {
                    let d = xc[l] - max;
                    let e = d.exp_lane();
                    e_acc[l] = e_acc[l] + e;
                    oc[l] = e;
                }
            }
        } else {
            for xc in x_chunks {
                for l in 0..LANES {
                    e_acc[l] = e_acc[l] + (xc[l] - max).exp_lane();
                }
            }
        }
        // The shifted sum in its own sweep over the block (still in L1).
        if WEIGHTED {
            for (xc, wc) in block[..full]
                .chunks_exact(LANES)
                .zip(block_weight[..full].chunks_exact(LANES))
            {
                for l in 0..LANES {
                    s_acc[l] = s_acc[l] + (xc[l] - max) * wc[l];
                }
            }
        } else {
            for xc in block[..full].chunks_exact(LANES) {
                for l in 0..LANES {
                    s_acc[l] = s_acc[l] + (xc[l] - max);
                }
            }
        }
        for l in 0..block.len() - full {
            let d = block[full + l] - max;
            let e = d.exp_lane();
            e_acc[l] = e_acc[l] + e;
            s_acc[l] = s_acc[l] + if WEIGHTED { d * block_weight[full + l] } else { d };
            if WRITE {
                block_out[full + l] = e;
            }
        }
        sum_exp += fold_lanes(&e_acc);
        sum_shifted += fold_lanes(&s_acc);
        start = end;
    }
    (sum_exp, sum_shifted)
}

/// Over a row of exponentials: e_c·scale_p + w_c·scale_w.
#[inline(always)]
fn row_gradient<T: Lane, const WEIGHTED: bool>(row: &mut [T], weight: &[T], scale_p: T, scale_w: T) {
    if WEIGHTED {
        for (v, &w) in row.iter_mut().zip(weight) {
            *v = *v * scale_p + w * scale_w;
        }
    } else {
        for v in row.iter_mut() {
            *v = *v * scale_p + scale_w;
        }
    }
}

/// The two sweeps of one row: (max, Σ exp(x − max), Σ w·(x − max)).
#[inline(always)]
fn sweeps<T: Lane, const WEIGHTED: bool, const WRITE: bool>(x: &[T], out: &mut [T], weight: &[T]) -> (T, f64, f64) {
    let max = row_max(x);
    let (sum_exp, sum_shifted) = row_sums::<T, WEIGHTED, WRITE>(x, out, weight, max);
    (max, sum_exp, sum_shifted)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn sweeps_avx2<T: Lane, const WEIGHTED: bool, const WRITE: bool>(
    x: &[T],
    out: &mut [T],
    weight: &[T],
) -> (T, f64, f64) {
    sweeps::<T, WEIGHTED, WRITE>(x, out, weight)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_gradient_avx2<T: Lane, const WEIGHTED: bool>(row: &mut [T], weight: &[T], scale_p: T, scale_w: T) {
    row_gradient::<T, WEIGHTED>(row, weight, scale_p, scale_w)
}

/// Runs the sweeps on the chosen instruction set.
fn dispatch_sweeps<T: Lane, const WRITE: bool>(
    level: SimdLevel,
    x: &[T],
    out: &mut [T],
    weight: Option<&[T]>,
) -> (T, f64, f64) {
    match (level, weight) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` is Avx2 only when `simd::current()` saw AVX2 and FMA on this CPU.
        (SimdLevel::Avx2, Some(w)) => unsafe { sweeps_avx2::<T, true, WRITE>(x, out, w) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (SimdLevel::Avx2, None) => unsafe { sweeps_avx2::<T, false, WRITE>(x, out, &[]) },
        (_, Some(w)) => sweeps::<T, true, WRITE>(x, out, w),
        (_, None) => sweeps::<T, false, WRITE>(x, out, &[]),
    }
}

fn dispatch_gradient<T: Lane>(level: SimdLevel, row: &mut [T], weight: Option<&[T]>, scale_p: T, scale_w: T) {
    match (level, weight) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` is Avx2 only when `simd::current()` saw AVX2 and FMA on this CPU.
        (SimdLevel::Avx2, Some(w)) => unsafe { row_gradient_avx2::<T, true>(row, w, scale_p, scale_w) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (SimdLevel::Avx2, None) => unsafe { row_gradient_avx2::<T, false>(row, &[], scale_p, scale_w) },
        (_, Some(w)) => row_gradient::<T, true>(row, w, scale_p, scale_w),
        (_, None) => row_gradient::<T, false>(row, &[], scale_p, scale_w),
    }
}

/// What every row needs to know: weights in the working type, their sum,
/// the mean's divisor and the instruction set.
struct Setup<'p, T> {
    problem: &'p Problem,
    classes: &'p [Option<usize>],
    weight: Option<Vec<T>>,
    weight_sum: f64,
    divisor: f64,
    level: SimdLevel,
}

impl<'p, T: Lane> Setup<'p, T> {
    fn new(problem: &'p Problem) -> Option<Self> {
        let Targets::Classes(classes) = &problem.targets else {
            return None;
        };
        let weight: Option<Vec<T>> = problem
            .weight
            .as_ref()
            .map(|w| w.iter().map(|&v| T::from_f64(v)).collect());
        let weight_sum = problem
            .weight
            .as_ref()
            .map_or(problem.classes as f64, |w| w.iter().sum());
        let divisor = if problem.reduction == Reduction::Mean {
            mean_divisor(problem)
        } else {
            1.0
        };
        Some(Setup {
            problem,
            classes,
            weight,
            weight_sum,
            divisor,
            level: simd::current(),
        })
    }

    fn w(&self, c: usize) -> f64 {
        self.problem.weight.as_ref().map_or(1.0, |w| w[c])
    }

    /// (nll, smoothing) terms of one position from its statistics; None when
    /// something is not finite and the reference kernel must decide.
    fn terms_from(&self, target_shifted: f64, y: usize, sum_exp: f64, sum_shifted: f64) -> Option<(f64, f64)> {
        let log_sum = sum_exp.ln();
        let smoothing = self.problem.smoothing.is_some();
        // NaN and −inf logits show up in the shifted sum (the fast exp does
        // not propagate NaN), so a non-finite sum always means the reference.
        if !(target_shifted.is_finite() && log_sum.is_finite() && sum_shifted.is_finite()) {
            return None;
        }
        let nll = -((target_shifted - log_sum) * self.w(y));
        let smooth = if smoothing {
            log_sum * self.weight_sum - sum_shifted
        } else {
            0.0
        };
        Some((nll, smooth))
    }

    /// (nll, smoothing) terms of a contiguous row.
    fn row_terms(&self, x: &[T], p: usize) -> (f64, f64) {
        let Some(y) = self.classes[p] else { return (0.0, 0.0) };
        let (max, sum_exp, sum_shifted) = dispatch_sweeps::<T, false>(self.level, x, &mut [], self.weight.as_deref());
        self.terms_from(x[y].to_f64() - max.to_f64(), y, sum_exp, sum_shifted)
            .unwrap_or_else(|| self.reference_terms(x.iter().map(|v| v.to_f64()).collect(), y))
    }

    fn reference_terms(&self, mut lp: Vec<f64>, y: usize) -> (f64, f64) {
        kernel::log_softmax_in_place(&mut lp);
        let weight = self.problem.weight.as_deref();
        let smooth = if self.problem.smoothing.is_some() {
            kernel::smoothing_term(&lp, weight)
        } else {
            0.0
        };
        (kernel::nll_term(&lp, y, weight), smooth)
    }

    /// (nll coefficient, smoothing coefficient) for upstream gradient `g`,
    /// as libtorch's autograd graph produces them.
    fn coefficients(&self, g: f64) -> (f64, f64) {
        let (g_nll, g_smooth) = match self.problem.smoothing {
            Some(e) => ((1.0 - e) * g, g * (e / self.problem.classes as f64)),
            None => (g, 0.0),
        };
        if self.problem.reduction == Reduction::Mean {
            (-(g_nll / self.divisor), g_smooth / self.divisor)
        } else {
            (-g_nll, g_smooth)
        }
    }

    /// Writes the gradient of position `p` (contiguous logits `x`) into `out`
    /// and returns the position's (nll, smoothing) terms from the same sweeps.
    fn row_gradient(&self, x: &[T], out: &mut [T], p: usize, g: f64) -> (f64, f64) {
        let (max, sum_exp, sum_shifted) = dispatch_sweeps::<T, true>(self.level, x, out, self.weight.as_deref());
        let terms = match self.classes[p] {
            None => (0.0, 0.0),
            Some(y) => self
                .terms_from(x[y].to_f64() - max.to_f64(), y, sum_exp, sum_shifted)
                .unwrap_or_else(|| self.reference_terms(x.iter().map(|v| v.to_f64()).collect(), y)),
        };
        let finite = max.to_f64().is_finite() && sum_exp.is_finite() && sum_shifted.is_finite();
        match self.classes[p] {
            // An ignored row's gradient is 0 − p·0: zero unless the row is not finite.
            None if finite => out.iter_mut().for_each(|v| *v = T::ZERO),
            Some(y) if finite => {
                let (nll_coef, smooth_coef) = self.coefficients(g);
                let total = -smooth_coef * self.weight_sum + self.w(y) * nll_coef;
                let scale_p = -total / sum_exp;
                if !(scale_p.is_finite() && smooth_coef.is_finite() && nll_coef.is_finite()) {
                    self.reference_gradient(x, out, p, g);
                    return terms;
                }
                let target_exp = out[y].to_f64();
                dispatch_gradient(
                    self.level,
                    out,
                    self.weight.as_deref(),
                    T::from_f64(scale_p),
                    T::from_f64(-smooth_coef),
                );
                // The target's entry in f64: p_y·(−Σg) − smooth·w_y + w_y·nll.
                out[y] = T::from_f64(target_exp * scale_p - smooth_coef * self.w(y) + self.w(y) * nll_coef);
            }
            _ => self.reference_gradient(x, out, p, g),
        }
        terms
    }

    /// The reference kernel's gradient for one position (non-finite rows).
    fn reference_gradient(&self, x: &[T], out: &mut [T], p: usize, g: f64) {
        let mut lp: Vec<f64> = x.iter().map(|v| v.to_f64()).collect();
        kernel::log_softmax_in_place(&mut lp);
        let mut grad = vec![0.0; lp.len()];
        if let Some(y) = self.classes[p] {
            let (nll_coef, smooth_coef) = self.coefficients(g);
            if self.problem.smoothing.is_some() {
                for (c, slot) in grad.iter_mut().enumerate() {
                    *slot = -(smooth_coef * self.w(c));
                }
            }
            grad[y] += self.w(y) * nll_coef;
        }
        kernel::log_softmax_backward_in_place(&lp, &mut grad);
        for (o, v) in out.iter_mut().zip(grad) {
            *o = T::from_f64(v);
        }
    }
}

/// Rows per parallel task: enough work per task to amortise scheduling.
fn rows_per_task(classes: usize) -> usize {
    (16_384 / classes.max(1)).clamp(1, 256)
}

/// Per-position (nll, smoothing) terms for class-index targets, or None when
/// the problem has probability targets.
pub(crate) fn forward_terms<T: Lane>(problem: &Problem, x: &[T]) -> Option<Vec<(f64, f64)>> {
    let setup = Setup::<T>::new(problem)?;
    let c = problem.classes;
    let mut terms = vec![(0.0, 0.0); problem.positions()];
    if c == 0 || problem.positions() == 0 {
        // Nothing for the kernel: the reference handles the degenerate shapes.
        return None;
    }
    if problem.inner == 1 {
        let rows = rows_per_task(c);
        terms.par_chunks_mut(rows).enumerate().for_each(|(task, out)| {
            for (j, slot) in out.iter_mut().enumerate() {
                let p = task * rows + j;
                *slot = setup.row_terms(&x[p * c..(p + 1) * c], p);
            }
        });
    } else {
        let block = c * problem.inner;
        terms.par_chunks_mut(problem.inner).enumerate().for_each(|(b, out)| {
            columns_forward(&setup, &x[b * block..(b + 1) * block], b, out);
        });
    }
    Some(terms)
}

/// Writes the gradient for class-index targets into `out` (shaped like `x`)
/// and returns the per-position (nll, smoothing) terms from the same visit.
/// `upstream` holds one value per position (`none`) or one in all. None when
/// the problem has probability targets.
pub(crate) fn forward_backward_into<T: Lane>(
    problem: &Problem,
    x: &[T],
    upstream: &[f64],
    out: &mut [T],
) -> Option<Vec<(f64, f64)>> {
    forward_backward(problem, Some(x), upstream, out)
}

/// Like [`forward_backward_into`] but overwrites the logits with the gradient.
pub(crate) fn forward_backward_in_place<T: Lane>(
    problem: &Problem,
    logits: &mut [T],
    upstream: &[f64],
) -> Option<Vec<(f64, f64)>> {
    forward_backward(problem, None, upstream, logits)
}

/// The gradient into `out`, reading the logits from `x`, or from `out`
/// itself when `x` is None (each row, or K-dim batch, is copied first; the
/// copy stays in cache while the sweeps write over the original).
fn forward_backward<T: Lane>(
    problem: &Problem,
    x: Option<&[T]>,
    upstream: &[f64],
    out: &mut [T],
) -> Option<Vec<(f64, f64)>> {
    let setup = Setup::<T>::new(problem)?;
    let c = problem.classes;
    if c == 0 || problem.positions() == 0 {
        return None;
    }
    let mut terms = vec![(0.0, 0.0); problem.positions()];
    let g_of = |p: usize| {
        if problem.reduction == Reduction::None {
            upstream[p]
        } else {
            upstream[0]
        }
    };
    if problem.inner == 1 {
        let rows = rows_per_task(c);
        out.par_chunks_mut(rows * c)
            .zip(terms.par_chunks_mut(rows))
            .enumerate()
            .for_each(|(task, (out_rows, task_terms))| {
                let mut copy = Vec::new();
                for (j, (out_row, slot)) in out_rows.chunks_mut(c).zip(task_terms.iter_mut()).enumerate() {
                    let p = task * rows + j;
                    let logits = match x {
                        Some(x) => &x[p * c..(p + 1) * c],
                        None => {
                            copy.clear();
                            copy.extend_from_slice(out_row);
                            &copy[..]
                        }
                    };
                    *slot = setup.row_gradient(logits, out_row, p, g_of(p));
                }
            });
    } else {
        let block = c * problem.inner;
        out.par_chunks_mut(block)
            .zip(terms.par_chunks_mut(problem.inner))
            .enumerate()
            .for_each(|(b, (out_block, batch_terms))| {
                let copy;
                let logits = match x {
                    Some(x) => &x[b * block..(b + 1) * block],
                    None => {
                        copy = out_block.to_vec();
                        &copy[..]
                    }
                };
                columns_backward(&setup, logits, b, out_block, &g_of, batch_terms);
            });
    }
    Some(terms)
}

/// Gathers position `s` of a (C, S) block into a contiguous row.
fn column<T: Lane>(block: &[T], inner: usize, s: usize) -> Vec<T> {
    block[s..].iter().step_by(inner).copied().collect()
}

/// K-dim forward for batch `b`: the spatial positions are the vector lanes.
fn columns_forward<T: Lane>(setup: &Setup<'_, T>, block: &[T], b: usize, out: &mut [(f64, f64)]) {
    let (c, inner) = (setup.problem.classes, setup.problem.inner);
    for s0 in (0..inner).step_by(COLUMN_WIDTH) {
        let width = COLUMN_WIDTH.min(inner - s0);
        let stats = column_stats(setup, block, s0, width, None);
        for j in 0..width {
            let p = b * inner + s0 + j;
            let Some(y) = setup.classes[p] else { continue };
            let (max, sum_exp, sum_shifted) = stats[j];
            let target_shifted = block[y * inner + s0 + j].to_f64() - max;
            out[s0 + j] = setup
                .terms_from(target_shifted, y, sum_exp, sum_shifted)
                .unwrap_or_else(|| {
                    setup.reference_terms(column(block, inner, s0 + j).iter().map(|v| v.to_f64()).collect(), y)
                });
        }
    }
    let _ = c;
}

/// Per-position (max, Σ exp, Σ w·shift) for positions s0..s0+width, sweeping
/// class by class over contiguous spatial runs; with `out`, the exponentials
/// are written there.
fn column_stats<T: Lane>(
    setup: &Setup<'_, T>,
    block: &[T],
    s0: usize,
    width: usize,
    mut out: Option<&mut [T]>,
) -> Vec<(f64, f64, f64)> {
    let (c, inner) = (setup.problem.classes, setup.problem.inner);
    let mut max = vec![T::NEG_INFINITY; width];
    for k in 0..c {
        let run = &block[k * inner + s0..k * inner + s0 + width];
        for (m, &v) in max.iter_mut().zip(run) {
            *m = if v > *m { v } else { *m };
        }
    }
    let mut sum_exp = vec![0.0f64; width];
    let mut sum_shifted = vec![0.0f64; width];
    for k in 0..c {
        let w = setup.w(k);
        let run = &block[k * inner + s0..k * inner + s0 + width];
        for j in 0..width {
            let d = run[j] - max[j];
            let e = d.exp_lane();
            sum_exp[j] += e.to_f64();
            sum_shifted[j] += d.to_f64() * w;
            if let Some(o) = out.as_deref_mut() {
                o[k * inner + s0 + j] = e;
            }
        }
    }
    (0..width)
        .map(|j| (max[j].to_f64(), sum_exp[j], sum_shifted[j]))
        .collect()
}

/// K-dim gradient for batch `b` into `out` (the (C, S) block of the
/// gradient), with the positions' terms into `terms`. Class by class over
/// contiguous spatial runs, so the inner loops vectorise.
fn columns_backward<T: Lane>(
    setup: &Setup<'_, T>,
    block: &[T],
    b: usize,
    out: &mut [T],
    g_of: &dyn Fn(usize) -> f64,
    terms: &mut [(f64, f64)],
) {
    let (c, inner) = (setup.problem.classes, setup.problem.inner);
    let mut scale_p = [T::ZERO; COLUMN_WIDTH];
    let mut smooth = [0.0f64; COLUMN_WIDTH];
    for s0 in (0..inner).step_by(COLUMN_WIDTH) {
        let width = COLUMN_WIDTH.min(inner - s0);
        let stats = column_stats(setup, block, s0, width, Some(out));
        // Per position: the scale of p_c and the smoothing coefficient, or a
        // reference fallback (scale NaN marks it) for anything not finite.
        let mut fallback = vec![false; width];
        let mut target_fix = vec![None; width];
        for j in 0..width {
            let p = b * inner + s0 + j;
            let (max, sum_exp, sum_shifted) = stats[j];
            let finite = max.is_finite() && sum_exp.is_finite() && sum_shifted.is_finite();
            scale_p[j] = T::ZERO;
            smooth[j] = 0.0;
            match setup.classes[p] {
                None => {
                    terms[s0 + j] = (0.0, 0.0);
                    fallback[j] = !finite;
                }
                Some(y) => {
                    let target_shifted = block[y * inner + s0 + j].to_f64() - max;
                    terms[s0 + j] = setup
                        .terms_from(target_shifted, y, sum_exp, sum_shifted)
                        .unwrap_or_else(|| {
                            setup.reference_terms(column(block, inner, s0 + j).iter().map(|v| v.to_f64()).collect(), y)
                        });
                    let (nll_coef, smooth_coef) = setup.coefficients(g_of(p));
                    let total = -smooth_coef * setup.weight_sum + setup.w(y) * nll_coef;
                    let scale = -total / sum_exp;
                    if finite && scale.is_finite() && smooth_coef.is_finite() && nll_coef.is_finite() {
                        scale_p[j] = T::from_f64(scale);
                        smooth[j] = smooth_coef;
                        target_fix[j] = Some((y, scale, smooth_coef, nll_coef));
                    } else {
                        fallback[j] = true;
                    }
                }
            }
        }
        for k in 0..c {
            let w = setup.w(k);
            let run = &mut out[k * inner + s0..k * inner + s0 + width];
            for j in 0..width {
                run[j] = run[j] * scale_p[j] - T::from_f64(smooth[j] * w);
            }
        }
        for j in 0..width {
            let s = s0 + j;
            let p = b * inner + s;
            if let Some((y, scale, smooth_coef, nll_coef)) = target_fix[j] {
                // The target's entry in f64, from its exponential.
                let e = (block[y * inner + s].to_f64() - stats[j].0).exp();
                out[y * inner + s] = T::from_f64(e * scale - smooth_coef * setup.w(y) + setup.w(y) * nll_coef);
            }
            if fallback[j] {
                let x = column(block, inner, s);
                let mut g = vec![T::ZERO; c];
                setup.reference_gradient(&x, &mut g, p, g_of(p));
                for k in 0..c {
                    out[k * inner + s] = g[k];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The fused kernel against the reference kernel (which the fixtures tie
    //! to libtorch), across instruction sets and thread counts.

    use super::super::forward::position_terms;
    use super::super::gradient::{backward, upstream};
    use super::super::input::{Target, View};
    use super::super::options::{Options, Reduction};
    use super::super::problem::validate;
    use super::super::simd::{self, SimdLevel};
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    struct Case {
        x: Vec<f32>,
        shape: Vec<usize>,
        y: Vec<i64>,
        weight: Option<Vec<f32>>,
        reduction: Reduction,
        epsilon: f64,
    }

    fn random_case(rng: &mut Rng, shape: Vec<usize>, nonfinite: bool) -> Case {
        let n: usize = shape.iter().product();
        let c = shape[1];
        let scale = [0.01, 1.0, 30.0][(rng.uniform() * 3.0) as usize];
        let mut x: Vec<f32> = (0..n).map(|_| ((rng.uniform() - 0.5) * 2.0 * scale) as f32).collect();
        if nonfinite {
            for v in [f32::NEG_INFINITY, f32::NAN, f32::INFINITY] {
                let i = (rng.uniform() * n as f64) as usize;
                x[i] = v;
            }
        }
        let positions = n / c;
        let y = (0..positions)
            .map(|_| {
                if rng.uniform() < 0.1 {
                    -100
                } else {
                    (rng.uniform() * c as f64) as i64
                }
            })
            .collect();
        let weight = (rng.uniform() < 0.5).then(|| (0..c).map(|_| rng.uniform() as f32 * 2.0).collect());
        let reduction = Reduction::ALL[(rng.uniform() * 3.0) as usize];
        let epsilon = [0.0, 0.1, 1.0][(rng.uniform() * 3.0) as usize];
        Case {
            x,
            shape,
            y,
            weight,
            reduction,
            epsilon,
        }
    }

    fn target_shape(shape: &[usize]) -> Vec<usize> {
        let mut t = vec![shape[0]];
        t.extend_from_slice(&shape[2..]);
        t
    }

    fn close(a: f64, e: f64) -> bool {
        (a.is_nan() && e.is_nan()) || a == e || (a - e).abs() <= 2e-5 + 2e-5 * e.abs()
    }

    /// Fused (terms, gradient) and reference (terms, gradient) for a case.
    #[allow(clippy::type_complexity)]
    fn both(case: &Case) -> ((Vec<(f64, f64)>, Vec<f32>), (Vec<(f64, f64)>, Vec<f32>)) {
        let ts = target_shape(&case.shape);
        let target = Target::Classes(View::new(&case.y, &ts));
        let options = Options {
            weight: case.weight.as_deref(),
            reduction: case.reduction,
            label_smoothing: case.epsilon,
            ..Options::default()
        };
        let input = View::new(&case.x, &case.shape);
        let problem = validate(input, &target, &options).unwrap();
        let up = upstream::<f32>(&problem, None).unwrap();
        let mut grad = vec![0.0f32; case.x.len()];
        let terms = forward_backward_into(&problem, &case.x, &up, &mut grad).unwrap();
        let reference_terms = position_terms(&problem, input, &target);
        let reference_grad = backward(&problem, input, &target, &up).input;
        ((terms, grad), (reference_terms, reference_grad))
    }

    #[test]
    fn fused_matches_the_reference_kernel() {
        let mut rng = Rng(42);
        let shapes = [
            vec![7, 5],
            vec![3, 1000],
            vec![2, 2100],
            vec![4, 3, 70],
            vec![2, 5, 3, 2],
            vec![1, 1],
        ];
        for round in 0..60 {
            let shape = shapes[round % shapes.len()].clone();
            let case = random_case(&mut rng, shape.clone(), round % 4 == 3);
            let ((terms, grad), (ref_terms, ref_grad)) = both(&case);
            for (p, (a, e)) in terms.iter().zip(&ref_terms).enumerate() {
                assert!(
                    close(a.0, e.0) && close(a.1, e.1),
                    "round {round} {shape:?} position {p}: {a:?} vs {e:?}"
                );
            }
            for (i, (a, e)) in grad.iter().zip(&ref_grad).enumerate() {
                assert!(
                    close(*a as f64, *e as f64),
                    "round {round} {shape:?} grad[{i}]: {a} vs {e}"
                );
            }
        }
    }

    fn bits(case: &Case) -> (Vec<u64>, Vec<u32>) {
        let ((terms, grad), _) = both(case);
        (
            terms.iter().flat_map(|t| [t.0.to_bits(), t.1.to_bits()]).collect(),
            grad.iter().map(|g| g.to_bits()).collect(),
        )
    }

    #[test]
    fn scalar_fallback_and_simd_give_the_same_bits() {
        let mut rng = Rng(7);
        for shape in [vec![5, 3000], vec![9, 17], vec![2, 4, 100]] {
            let case = random_case(&mut rng, shape, false);
            simd::force(Some(SimdLevel::Scalar));
            let scalar = bits(&case);
            simd::force(None);
            let detected = bits(&case);
            assert_eq!(scalar, detected, "{:?} on {:?}", case.shape, simd::detected());
        }
    }

    #[test]
    fn any_thread_count_gives_the_same_bits() {
        let mut rng = Rng(99);
        let case = random_case(&mut rng, vec![300, 700], false);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| bits(&case))
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }

    #[test]
    fn in_place_gives_the_same_bits_as_a_separate_buffer() {
        let mut rng = Rng(5);
        for (round, shape) in [vec![6, 300], vec![3, 4, 50], vec![2, 7]].into_iter().enumerate() {
            let case = random_case(&mut rng, shape, round == 1);
            let ts = target_shape(&case.shape);
            let target = Target::Classes(View::new(&case.y, &ts));
            let options = Options {
                weight: case.weight.as_deref(),
                reduction: case.reduction,
                label_smoothing: case.epsilon,
                ..Options::default()
            };
            let problem = validate(View::new(&case.x, &case.shape), &target, &options).unwrap();
            let up = upstream::<f32>(&problem, None).unwrap();
            let mut separate = vec![0.0f32; case.x.len()];
            let terms = forward_backward_into(&problem, &case.x, &up, &mut separate).unwrap();
            let mut in_place = case.x.clone();
            let terms_in_place = forward_backward_in_place(&problem, &mut in_place, &up).unwrap();
            let bits = |v: &[f32]| v.iter().map(|g| g.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&separate), bits(&in_place), "{:?}", case.shape);
            assert_eq!(format!("{terms:?}"), format!("{terms_in_place:?}"));
        }
    }
}
