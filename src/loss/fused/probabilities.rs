//! Probability targets: with q = t·(1−ε) + ε/C and a_c = w_c·q_c, a
//! position's loss and gradient from its statistics (see `lanes.rs`):
//!   loss = B·ln S − L with B = Σ a,   dL/dx_c = s·(a_c − p_c·B),
//! where s is −g (over the number of positions under mean).

use super::super::formulas::Formulas;
use super::super::problem::Problem;
use super::super::simd::{self, Simd};
use super::fallback;
use super::lanes::{apply_row, apply_tile, pack_tile, stats_row, sweep_tile, Ahead, Lane, Stats, TILE};
use super::{Kernel, Scratch, Upstream};

pub(super) struct Probabilities<'p, T> {
    problem: &'p Problem<'p>,
    /// The targets, shaped like the input.
    targets: &'p [T],
    formulas: Formulas,
    level: Simd,
}

impl<'p, T: Lane> Probabilities<'p, T> {
    pub fn new(problem: &'p Problem<'p>, targets: &'p [T]) -> Self {
        Probabilities {
            problem,
            targets,
            formulas: Formulas::of(problem),
            level: simd::current(),
        }
    }

    /// a = w·q for the (class, target value) pairs `t`, into `a`; returns B = Σ a.
    fn coefficients(&self, t: impl Iterator<Item = (usize, T)>, a: &mut Vec<T>) -> f64 {
        let (keep, spread) = self.formulas.keep_and_spread();
        a.clear();
        a.extend(t.map(|(c, t)| {
            let q = if self.problem.smoothing.is_some() {
                t.to_f64() * keep + spread
            } else {
                t.to_f64()
            };
            T::from_f64(self.problem.weight.as_ref().map_or(q, |w| w[c] * q))
        }));
        a.iter().map(|v| v.to_f64()).sum()
    }

    /// s for upstream gradient `g`.
    fn scale(&self, g: f64) -> f64 {
        self.formulas.probability_scale(g)
    }

    fn loss(stats: &Stats, total: f64) -> (f64, f64) {
        (total * stats.sum_exp.ln() - stats.sum_shifted, 0.0)
    }

    fn reference(&self, x: Vec<f64>, t: Vec<f64>, g: Option<f64>, grad: Option<&mut [T]>) -> (f64, f64) {
        let mut g64 = vec![0.0; if g.is_some() { x.len() } else { 0 }];
        let terms = fallback::probability_position(self.problem, x, t, g.map(|g| self.scale(g)), &mut g64);
        fallback::write_back(grad, g64);
        terms
    }
}

impl<T: Lane> Kernel<T> for Probabilities<'_, T> {
    fn row(
        &self,
        p: usize,
        x: &[T],
        next: &[T],
        grad: Option<(&mut [T], f64)>,
        scratch: &mut Scratch<T>,
    ) -> (f64, f64) {
        let a = &mut scratch.coef;
        let c = self.problem.classes;
        let t = &self.targets[p * c..(p + 1) * c];
        let total = self.coefficients(t.iter().copied().enumerate(), a);
        let to_f64 = |v: &[T]| v.iter().map(|v| v.to_f64()).collect();
        // Negative target values make the sums cancel: the f64 reference keeps them exact.
        let cancelling = a.iter().any(|v| v.to_f64() < 0.0);
        if cancelling {
            let (g, out) = match grad {
                Some((out, g)) => (Some(g), Some(out)),
                None => (None, None),
            };
            return self.reference(to_f64(x), to_f64(t), g, out);
        }
        let Some((out, g)) = grad else {
            let stats = stats_row::<T, true, false>(self.level, x, a, &mut [], next);
            return match stats.finite() && total.is_finite() {
                true => Self::loss(&stats, total),
                false => self.reference(to_f64(x), to_f64(t), None, None),
            };
        };
        let stats = stats_row::<T, true, true>(self.level, x, a, out, next);
        let s = self.scale(g);
        let scale_p = -s * total / stats.sum_exp;
        if !(stats.finite() && total.is_finite() && s.is_finite() && scale_p.is_finite()) {
            return self.reference(to_f64(x), to_f64(t), Some(g), Some(out));
        }
        apply_row::<T, true>(self.level, out, a, T::from_f64(scale_p), T::from_f64(s));
        Self::loss(&stats, total)
    }

    fn tile(
        &self,
        b: usize,
        block: &[T],
        s0: usize,
        _next: usize,
        grad: Option<(&mut [T], Upstream<'_>)>,
        terms: &mut [(f64, f64)],
        scratch: &mut Scratch<T>,
    ) {
        let Scratch {
            coef: a, tile, stats, ..
        } = scratch;
        let (c, inner) = (self.problem.classes, self.problem.inner);
        let width = terms.len();
        let t_block = &self.targets[b * c * inner..(b + 1) * c * inner];
        // a, class-major over the tile: a[k·width + j].
        self.coefficients(
            (0..c).flat_map(|k| t_block[k * inner + s0..][..width].iter().map(move |&t| (k, t))),
            a,
        );
        let cancelling = a.iter().any(|v| v.to_f64() < 0.0);
        let mut totals = [0.0f64; TILE];
        for k in 0..c {
            for j in 0..width {
                totals[j] += a[k * width + j].to_f64();
            }
        }
        pack_tile(self.level, block, inner, s0, width, tile);
        let ahead = Ahead {
            logits: block.get(s0 + TILE..).unwrap_or(&[]),
            inner,
        };
        match grad.is_some() {
            true => sweep_tile::<T, true>(self.level, tile, a, ahead, stats),
            false => sweep_tile::<T, false>(self.level, tile, a, ahead, stats),
        }
        let column =
            |data: &[T], s: usize| -> Vec<f64> { data[s..].iter().step_by(inner).map(|v| v.to_f64()).collect() };
        let mut scale_p = [T::ZERO; TILE];
        let mut scale_a = [T::ZERO; TILE];
        let mut reference = [false; TILE];
        for j in 0..width {
            let (s, p) = (s0 + j, b * inner + s0 + j);
            let st = stats.get(j);
            let fast = !cancelling && st.finite() && totals[j].is_finite();
            terms[j] = match fast {
                true => Self::loss(&st, totals[j]),
                false => self.reference(column(block, s), column(t_block, s), None, None),
            };
            if let Some((_, up)) = grad.as_ref() {
                let sc = self.scale(up.at(p));
                let sp = -sc * totals[j] / st.sum_exp;
                if fast && sc.is_finite() && sp.is_finite() {
                    scale_p[j] = T::from_f64(sp);
                    scale_a[j] = T::from_f64(sc);
                } else {
                    reference[j] = true;
                }
            }
        }
        let Some((out, up)) = grad else { return };
        apply_tile(
            self.level,
            out,
            inner,
            s0,
            a,
            tile,
            (&scale_p[..width], &scale_a[..width]),
        );
        for j in (0..width).filter(|&j| reference[j]) {
            let (s, p) = (s0 + j, b * inner + s0 + j);
            let mut g = vec![T::ZERO; c];
            self.reference(column(block, s), column(t_block, s), Some(up.at(p)), Some(&mut g));
            for k in 0..c {
                out[k * inner + s] = g[k];
            }
        }
    }
}
