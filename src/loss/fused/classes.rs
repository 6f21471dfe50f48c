//! Class-index targets: a position's (nll, smoothing) terms and gradient
//! from its statistics (see `lanes.rs`), with a = w (or 1):
//!   nll = −w_y·(x_y − M − ln S),   smooth = ln S·Σw − L,
//!   dL/dx_c = p_c·(−Σ_k g_k) − smooth_coef·w_c (+ w_y·nll_coef at c = y),
//! where g is the gradient w.r.t. the log-probabilities and p_c = e_c / S.

use super::super::class_targets::ClassTargets;
use super::super::formulas::Formulas;
use super::super::problem::Problem;
use super::super::simd::{self, Simd};
use super::fallback;
use super::lanes::{
    apply_row, apply_tile, exp_tile, ln_tile, pack_tile, stats_row, sweep_tile, Ahead, Coef, Lane, Stats, TILE,
};
use super::{Kernel, Scratch, Upstream};

pub(super) struct Classes<'p, T> {
    problem: &'p Problem<'p>,
    targets: ClassTargets<'p>,
    /// The weights in the working type (exact: they came from it).
    weight: Option<Vec<T>>,
    weight_sum: f64,
    formulas: Formulas,
    level: Simd,
}

impl<'p, T: Lane> Classes<'p, T> {
    pub fn new(problem: &'p Problem<'p>, targets: ClassTargets<'p>) -> Self {
        let weight = problem
            .weight
            .as_ref()
            .map(|w| w.iter().map(|&v| T::from_f64(v)).collect());
        let weight_sum = problem
            .weight
            .as_ref()
            .map_or(problem.classes as f64, |w| w.iter().sum());
        Classes {
            problem,
            targets,
            weight,
            weight_sum,
            formulas: Formulas::of(problem),
            level: simd::current(),
        }
    }

    fn w(&self, c: usize) -> f64 {
        self.problem.weight.as_ref().map_or(1.0, |w| w[c])
    }

    fn coef(&self) -> Coef<'_, T> {
        self.weight.as_deref().map_or(Coef::One, Coef::PerClass)
    }

    /// The terms from finite statistics; `target_shifted` = x_y − M, and
    /// `log_sum` = ln S.
    fn terms(&self, y: usize, target_shifted: f64, stats: &Stats, log_sum: f64) -> (f64, f64) {
        let nll = -((target_shifted - log_sum) * self.w(y));
        let smooth = if self.problem.smoothing.is_some() {
            log_sum * self.weight_sum - stats.sum_shifted
        } else {
            0.0
        };
        (nll, smooth)
    }

    /// (nll coefficient, smoothing coefficient) for upstream gradient `g`, as
    /// libtorch's autograd graph produces them.
    fn coefficients(&self, g: f64) -> (f64, f64) {
        self.formulas.coefficients(g)
    }

    /// The scales of the gradient of target `y` (p's and w's), or None when
    /// they are not finite and the reference kernel must decide.
    fn scales(&self, y: usize, g: f64, sum_exp: f64) -> Option<(f64, f64, f64)> {
        let (nll_coef, smooth_coef) = self.coefficients(g);
        let total = -smooth_coef * self.weight_sum + self.w(y) * nll_coef;
        let scale_p = -total / sum_exp;
        (scale_p.is_finite() && smooth_coef.is_finite() && nll_coef.is_finite()).then_some((
            scale_p,
            smooth_coef,
            nll_coef,
        ))
    }

    /// The target's gradient entry, in f64 from x_y: p_y·scale_p − smooth·w_y + w_y·nll.
    fn target_entry(&self, y: usize, target_shifted: f64, scale: (f64, f64, f64)) -> T {
        let (scale_p, smooth_coef, nll_coef) = scale;
        T::from_f64(target_shifted.exp() * scale_p - smooth_coef * self.w(y) + self.w(y) * nll_coef)
    }

    /// Reference terms (and gradient into `grad`, given `g`) of a position.
    fn reference(&self, row: Vec<f64>, y: Option<usize>, g: Option<f64>, grad: Option<&mut [T]>) -> (f64, f64) {
        let mut g64 = vec![0.0; if g.is_some() { row.len() } else { 0 }];
        let terms = fallback::class_position(self.problem, row, y, g.map(|g| self.coefficients(g)), &mut g64);
        fallback::write_back(grad, g64);
        terms
    }
}

impl<T: Lane> Kernel<T> for Classes<'_, T> {
    fn row(&self, p: usize, x: &[T], next: &[T], grad: Option<(&mut [T], f64)>, _: &mut Scratch<T>) -> (f64, f64) {
        let y = self.targets.get(p);
        let a = self.weight.as_deref().unwrap_or(&[]);
        let weighted = self.weight.is_some();
        let to_f64 = || x.iter().map(|v| v.to_f64()).collect();
        let Some((out, g)) = grad else {
            let Some(y) = y else { return (0.0, 0.0) };
            let stats = match weighted {
                true => stats_row::<T, true, false>(self.level, x, a, &mut [], next),
                false => stats_row::<T, false, false>(self.level, x, a, &mut [], next),
            };
            return match stats.finite() {
                true => self.terms(y, x[y].to_f64() - stats.max, &stats, stats.sum_exp.ln()),
                false => self.reference(to_f64(), Some(y), None, None),
            };
        };
        let stats = match weighted {
            true => stats_row::<T, true, true>(self.level, x, a, out, next),
            false => stats_row::<T, false, true>(self.level, x, a, out, next),
        };
        if !stats.finite() {
            return self.reference(to_f64(), y, Some(g), Some(out));
        }
        let Some(y) = y else {
            // An ignored position's gradient is 0 − p·0.
            out.iter_mut().for_each(|v| *v = T::ZERO);
            return (0.0, 0.0);
        };
        let Some(scale) = self.scales(y, g, stats.sum_exp) else {
            return self.reference(to_f64(), Some(y), Some(g), Some(out));
        };
        let (scale_p, smooth_coef, _) = scale;
        let (scale_p, scale_w) = (T::from_f64(scale_p), T::from_f64(-smooth_coef));
        match weighted {
            true => apply_row::<T, true>(self.level, out, a, scale_p, scale_w),
            false => apply_row::<T, false>(self.level, out, a, scale_p, scale_w),
        }
        let target_shifted = x[y].to_f64() - stats.max;
        out[y] = self.target_entry(y, target_shifted, scale);
        self.terms(y, target_shifted, &stats, stats.sum_exp.ln())
    }

    fn tile(
        &self,
        b: usize,
        block: &[T],
        s0: usize,
        grad: Option<(&mut [T], Upstream<'_>)>,
        terms: &mut [(f64, f64)],
        scratch: &mut Scratch<T>,
    ) {
        let inner = self.problem.inner;
        let width = terms.len();
        let column = |s: usize| -> Vec<f64> { block[s..].iter().step_by(inner).map(|v| v.to_f64()).collect() };
        let Scratch {
            tile, stats, columns, ..
        } = scratch;
        let TileColumns {
            ys,
            picked,
            shifted,
            exps,
            coefficients,
            weights,
            log_sums,
            scale_p,
            scale_w,
            target_entries,
            reference,
        } = columns;
        pack_tile(self.level, block, inner, s0, width, tile);
        let ahead = Ahead {
            logits: block.get(s0 + TILE..).unwrap_or(&[]),
            inner,
        };
        // The targets, their weights and their logits (from the packed copy).
        let p0 = b * inner + s0;
        self.targets.copy_into(p0, &mut ys[..width], IGNORED);
        for j in 0..width {
            let y = ys[j];
            (picked[j], weights[j]) = match y {
                IGNORED => (0.0, 0.0),
                y => (tile.at(y, j).to_f64(), self.w(y)),
            };
        }
        match grad.is_some() {
            true => sweep_tile::<T, true>(self.level, tile, self.coef(), ahead, stats),
            false => sweep_tile::<T, false>(self.level, tile, self.coef(), ahead, stats),
        }
        // One ln per position, vectorised over the tile.
        ln_tile(self.level, &stats.sum_exp[..width], &mut log_sums[..width]);
        // The terms as `terms()` computes them, without branches over the
        // tile; ignored positions have weight 0 and are zeroed after.
        let smoothing = self.problem.smoothing.is_some();
        let mut unusual = false;
        for j in 0..width {
            let st = stats.get(j);
            let nll = -((picked[j] - st.max - log_sums[j]) * weights[j]);
            let smooth = match smoothing {
                true => log_sums[j] * self.weight_sum - st.sum_shifted,
                false => 0.0,
            };
            let kept = ys[j] != IGNORED;
            terms[j] = if kept { (nll, smooth) } else { (0.0, 0.0) };
            unusual |= kept & !st.finite();
        }
        // Forward: done unless some kept position has non-finite statistics.
        if grad.is_none() && !unusual {
            return;
        }
        let Some((_, up)) = grad.as_ref() else {
            // Forward with a non-finite position: the reference decides it.
            for j in 0..width {
                if ys[j] != IGNORED && !stats.get(j).finite() {
                    terms[j] = self.reference(column(s0 + j), Some(ys[j]), None, None);
                }
            }
            return;
        };
        // The gradient's scales as `scales()` computes them, without branches
        // over the tile; positions they do not cover go to the reference.
        // One upstream value for all positions except under `none`.
        let shared = up.shared().map(|g| self.coefficients(g));
        for j in 0..width {
            let p = b * inner + s0 + j;
            let kept = ys[j] != IGNORED;
            let (nll_coef, smooth_coef) = shared.unwrap_or_else(|| self.coefficients(up.at(p)));
            let total = -smooth_coef * self.weight_sum + weights[j] * nll_coef;
            let sp = -total / stats.sum_exp[j];
            let finite = stats.get(j).finite();
            let ok = kept & finite & sp.is_finite() & smooth_coef.is_finite() & nll_coef.is_finite();
            // An ignored position's scales are 0: its gradient is 0.
            (scale_p[j], scale_w[j]) = match ok {
                true => (T::from_f64(sp), T::from_f64(-smooth_coef)),
                false => (T::ZERO, T::ZERO),
            };
            reference[j] = (kept & !ok) | !finite;
            coefficients[j] = (sp, smooth_coef, nll_coef);
            shifted[j] = picked[j] - stats.max[j];
        }
        // e^(x_y − M) in f64 for the target's entry, vectorised over the tile.
        exp_tile(self.level, &shifted[..width], &mut exps[..width]);
        for j in 0..width {
            let (sp, smooth_coef, nll_coef) = coefficients[j];
            let w = weights[j];
            target_entries[j] = T::from_f64(exps[j] * sp - smooth_coef * w + w * nll_coef);
            if ys[j] != IGNORED && !stats.get(j).finite() {
                terms[j] = self.reference(column(s0 + j), Some(ys[j]), None, None);
            }
        }
        let Some((out, up)) = grad else { return };
        let classes = self.problem.classes;
        apply_tile(
            self.level,
            out,
            inner,
            s0,
            self.coef(),
            tile,
            (&scale_p[..width], &scale_w[..width]),
        );
        for j in 0..width {
            let (s, p) = (s0 + j, b * inner + s0 + j);
            if reference[j] {
                let mut g = vec![T::ZERO; classes];
                self.reference(column(s), self.targets.get(p), Some(up.at(p)), Some(&mut g));
                for k in 0..classes {
                    out[k * inner + s] = g[k];
                }
            } else if ys[j] != IGNORED {
                out[ys[j] * inner + s] = target_entries[j];
            }
        }
    }
}

/// Marks an ignored position in [`TileColumns::ys`].
const IGNORED: usize = usize::MAX;

/// Per-position values of one K-dim tile, kept across tiles so that no tile
/// pays for initialising them.
pub(super) struct TileColumns<T> {
    ys: Vec<usize>,
    picked: Vec<f64>,
    shifted: Vec<f64>,
    exps: Vec<f64>,
    coefficients: Vec<(f64, f64, f64)>,
    weights: Vec<f64>,
    log_sums: Vec<f64>,
    scale_p: Vec<T>,
    scale_w: Vec<T>,
    target_entries: Vec<T>,
    reference: Vec<bool>,
}

impl<T: Lane> Default for TileColumns<T> {
    fn default() -> Self {
        TileColumns {
            ys: vec![IGNORED; TILE],
            picked: vec![0.0; TILE],
            shifted: vec![0.0; TILE],
            exps: vec![0.0; TILE],
            coefficients: vec![(0.0, 0.0, 0.0); TILE],
            weights: vec![0.0; TILE],
            log_sums: vec![0.0; TILE],
            scale_p: vec![T::ZERO; TILE],
            scale_w: vec![T::ZERO; TILE],
            target_entries: vec![T::ZERO; TILE],
            reference: vec![false; TILE],
        }
    }
}
