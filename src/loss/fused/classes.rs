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
use super::kdim::{kdim_tile, pick_targets, Coefficients, Next, Tile, TileGrad};
use super::lanes::{apply_row, pack_columns, pack_tile, stats_row, Lane, Stats, TILE};
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
        next: usize,
        grad: Option<(&mut [T], Upstream<'_>)>,
        terms: &mut [(f64, f64)],
        scratch: &mut Scratch<T>,
    ) {
        let inner = self.problem.inner;
        let width = terms.len();
        let p0 = b * inner + s0;
        let column = |s: usize| -> Vec<f64> { block[s..].iter().step_by(inner).map(|v| v.to_f64()).collect() };
        // The previous call copied this tile's whole groups, or none.
        match scratch.next_at.take() {
            Some((at, first)) if at == (block.as_ptr() as usize, s0, width) => {
                std::mem::swap(&mut scratch.tile, &mut scratch.next_tile);
                pack_columns(self.level, block, inner, s0, first, &mut scratch.tile);
            }
            _ => pack_tile(self.level, block, inner, s0, width, &mut scratch.tile),
        }
        let (packed, next_tile, buffers) = (&mut scratch.tile, &mut scratch.next_tile, &mut *scratch.kdim);
        // The next tile, which `kdim_tile` may start copying.
        let next_at = (block.as_ptr() as usize, s0 + width, next);
        let mut next = (next > 0).then(|| {
            next_tile.reset(self.problem.classes, next);
            Next {
                logits: &block[s0 + width..],
                tile: next_tile,
            }
        });
        // The targets, their weights and their logits (from the packed copy).
        pick_targets(
            self.level,
            &self.targets,
            p0,
            packed,
            self.problem.weight.as_deref(),
            &mut buffers.targets,
        );
        let tile = Tile {
            block,
            inner,
            s0,
            targets: &buffers.targets,
            class_weights: self.weight.as_deref(),
            weight_sum: self.weight_sum,
            smoothing: self.problem.smoothing.is_some(),
        };
        let flags = &mut buffers.flags;
        let Some((out, up)) = grad else {
            let copied = kdim_tile(self.level, &tile, packed, next.as_mut(), None, terms, flags);
            scratch.next_at = next.is_some().then_some((next_at, copied));
            // Usually none: then no scan of the flags.
            let scan = if flags.any { width } else { 0 };
            for j in (0..scan).filter(|&j| flags.reference_terms[j]) {
                terms[j] = self.reference(column(s0 + j), self.targets.get(p0 + j), None, None);
            }
            return;
        };
        // One upstream value for all positions except under `none`.
        let coefficients = match up.shared() {
            Some(g) => {
                let (nll, smooth) = self.coefficients(g);
                Coefficients {
                    nll: [nll; TILE],
                    smooth: [smooth; TILE],
                }
            }
            None => {
                let each: [(f64, f64); TILE] = std::array::from_fn(|j| self.coefficients(up.at(p0 + j.min(width - 1))));
                Coefficients {
                    nll: each.map(|c| c.0),
                    smooth: each.map(|c| c.1),
                }
            }
        };
        let mut tile_grad = TileGrad {
            out,
            coefficients: &coefficients,
            scales: &mut buffers.scales,
        };
        let copied = kdim_tile(
            self.level,
            &tile,
            packed,
            next.as_mut(),
            Some(&mut tile_grad),
            terms,
            flags,
        );
        scratch.next_at = next.is_some().then_some((next_at, copied));
        let out = tile_grad.out;
        let scan = if flags.any { width } else { 0 };
        for j in 0..scan {
            if flags.reference_terms[j] {
                terms[j] = self.reference(column(s0 + j), self.targets.get(p0 + j), None, None);
            }
            if flags.reference_grad[j] {
                let classes = self.problem.classes;
                let mut g = vec![T::ZERO; classes];
                self.reference(
                    column(s0 + j),
                    self.targets.get(p0 + j),
                    Some(up.at(p0 + j)),
                    Some(&mut g),
                );
                for k in 0..classes {
                    out[k * inner + s0 + j] = g[k];
                }
            }
        }
    }
}
