//! libtorch's rounding allowance for OpenCLIP's loss step (a `clip_step`
//! case): a first-order forward error bound of the composition libtorch
//! runs, op by op, each bound built from the float64 answer's own
//! quantities, as [`super::allowance`](mod@super::allowance) does for the
//! cross-entropy.
//!
//! The composition, with u the unit roundoff of float32 (libtorch's
//! accumulation) and h that of the stored dtype (h = u for float32):
//! - the norms ‖x_i‖ (a sum of D squares, a square root) and u = x/max(‖x‖, ε):
//!   relative errors ρ_a = (D + 2)·u + h and ρ_a + h;
//! - s = exp(logit_scale) and s·u, each rounded; logits L = (s·u) @ vᵀ, a
//!   GEMM of D terms in any order: (D + 2)·u relative to Σ_k |s·u_ik·v_jk|;
//! - each direction's cross-entropy on L: lp = L − m − ln Σ exp(L − m), whose
//!   error is L's error at (i, j) plus softmax's average of L's errors along
//!   the row, plus libtorch's own roundings (as in the cross-entropy bound);
//! - the gradient w.r.t. L, ½·g/N·(p_row − q + p_col − q): p·δlp and the
//!   roundings of each term; then every backward op of the graph in turn —
//!   the two matmul products (sums of N terms), s·(·) and Σ(·)·u for the
//!   scale, and F.normalize's backward du/m − x·(Σ du·u/m)/(m·‖x‖), whose two
//!   terms cancel for an embedding whose gradient lies mostly along itself
//!   and are each bounded by their own magnitude, not by the result's.

use super::allowance::{lanes_sum, Allowance, U32};
use crate::fixtures::{Case, CLIP_STEP_GRADS};
use crate::loss::{clip_loss_with_grad, clip_step_forward, View, NORMALIZE_EPS};
use crate::tensor::DType;

/// The CLIP step's allowance: the loss, and its three gradients by name.
/// None for shapes the step rejects, non-finite inputs (whose outputs must
/// match exactly) or a step the float64 loss cannot compute.
pub(super) fn clip_step(case: &Case, h: f64, logit_scale: f64) -> Option<Allowance> {
    let [n, d] = case.input.shape[..] else {
        return None;
    };
    if case.target.shape != case.input.shape || n == 0 {
        return None;
    }
    let x = case.input.to_f64();
    let y = case.target.to_f64();
    if x.iter().chain(&y).any(|v| !v.is_finite()) || !logit_scale.is_finite() {
        return None;
    }
    let eps = case.label_smoothing;
    let shape = [n, d];
    let f = clip_step_forward(View::new(&x, &shape), View::new(&y, &shape), logit_scale, eps).ok()?;
    let g = case.grad_output.as_ref().map_or(1.0, |g| g.to_f64()[0]);
    let (_, dl) = clip_loss_with_grad(View::new(&f.logits, &[n, n]), 1.0, eps, Some(g)).ok()?;
    // libtorch computes log_softmax in float32 and stores it in a half dtype.
    let h_s = if case.input.dtype == DType::Float32 { 0.0 } else { h };
    let s = f.scale;
    let images = Rows::new(&x, n, d, h);
    let texts = Rows::new(&y, n, d, h);
    let (u, v) = (&f.image_features, &f.text_features);
    let delta_s = s * (U32 + h);
    // s·u, its relative error per row.
    let su: Vec<f64> = u.iter().map(|u| s * u).collect();
    let rho_su: Vec<f64> = (0..n).map(|i| images.rho_u[i] + U32 + 2.0 * h).collect();
    // Logits: each entry's absolute error.
    let gemm_d = (d as f64 + 2.0) * U32;
    let mut delta_l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let magnitude: f64 = (0..d).map(|k| (su[i * d + k] * v[j * d + k]).abs()).sum();
            delta_l[i * n + j] = magnitude * (rho_su[i] + texts.rho_u[j] + gemm_d) + h * f.logits[i * n + j].abs();
        }
    }
    let at_row = |i: usize, j: usize| i * n + j;
    let at_column = |j: usize, i: usize| i * n + j;
    let rows = Direction::new(&f.logits, &delta_l, n, eps, h_s, at_row);
    let columns = Direction::new(&f.logits, &delta_l, n, eps, h_s, at_column);
    let loss_value = f.loss.abs();
    let loss = 0.5 * (rows.loss_bound + columns.loss_bound) + 2.0 * h * loss_value;

    // d loss / d L, as autograd sums the two directions' gradients.
    let scale = g.abs() / (2.0 * n as f64);
    let mut delta_dl = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let k = i * n + j;
            delta_dl[k] = scale * (rows.grad_bound[k] + columns.grad_bound[k]) + h * dl[k].abs();
        }
    }
    // d(s·u) = dL @ v and d v = dLᵀ @ (s·u): sums of N terms.
    let gemm_n = (n as f64 + 2.0) * U32 + h;
    let mut d_su = vec![0.0; n * d];
    let mut delta_d_su = vec![0.0; n * d];
    let mut d_v = vec![0.0; n * d];
    let mut delta_d_v = vec![0.0; n * d];
    for i in 0..n {
        for k in 0..d {
            let (mut value, mut bound, mut magnitude) = (0.0, 0.0, 0.0);
            let (mut value_v, mut bound_v, mut magnitude_v) = (0.0, 0.0, 0.0);
            for j in 0..n {
                let (dl_ij, dl_ji) = (dl[i * n + j], dl[j * n + i]);
                let (vj, suj) = (v[j * d + k], su[j * d + k]);
                value += dl_ij * vj;
                magnitude += (dl_ij * vj).abs();
                bound += delta_dl[i * n + j] * vj.abs() + dl_ij.abs() * texts.delta_u(j, vj);
                // Row i of d v: Σ_j dL[j, i]·su[j, k].
                value_v += dl_ji * suj;
                magnitude_v += (dl_ji * suj).abs();
                bound_v += delta_dl[j * n + i] * suj.abs() + dl_ji.abs() * rho_su[j] * suj.abs();
            }
            d_su[i * d + k] = value;
            delta_d_su[i * d + k] = bound + gemm_n * magnitude;
            d_v[i * d + k] = value_v;
            delta_d_v[i * d + k] = bound_v + gemm_n * magnitude_v;
        }
    }
    // The scale: d s = Σ d(s·u) ⊙ u (one sum of N·D terms); d logit_scale = d s · s.
    let (mut d_s, mut delta_d_s, mut magnitude) = (0.0, 0.0, 0.0);
    for i in 0..n {
        for k in 0..d {
            let (g_ik, u_ik) = (d_su[i * d + k], u[i * d + k]);
            d_s += g_ik * u_ik;
            magnitude += (g_ik * u_ik).abs();
            delta_d_s += delta_d_su[i * d + k] * u_ik.abs() + g_ik.abs() * images.delta_u(i, u_ik);
        }
    }
    delta_d_s += ((lanes_sum(n * d) + 1.0) * U32 + 2.0 * h) * magnitude;
    let grad_logit_scale = delta_d_s * s + d_s.abs() * delta_s + h * (d_s * s).abs();
    // d u = s · d(s·u).
    let d_u: Vec<f64> = d_su.iter().map(|g| s * g).collect();
    let delta_d_u: Vec<f64> = d_su
        .iter()
        .zip(&delta_d_su)
        .map(|(g, b)| s * b + g.abs() * delta_s + h * (s * g).abs())
        .collect();
    let [image_name, text_name, scale_name] = CLIP_STEP_GRADS;
    Some(Allowance {
        loss: vec![loss],
        grad_input: Vec::new(),
        grad_target: None,
        named: vec![
            (image_name, images.normalize_backward(u, &d_u, &delta_d_u)),
            (text_name, texts.normalize_backward(v, &d_v, &delta_d_v)),
            (scale_name, vec![grad_logit_scale]),
        ],
    })
}

/// One embedding matrix's rows: the inputs, their norms and the relative
/// error of each normalised row.
struct Rows<'a> {
    x: &'a [f64],
    d: usize,
    h: f64,
    norms: Vec<f64>,
    /// ρ_a per row: the stored norm's relative error.
    rho_norm: Vec<f64>,
    /// The relative error of x/max(‖x‖, ε) per row.
    rho_u: Vec<f64>,
}

impl<'a> Rows<'a> {
    fn new(x: &'a [f64], n: usize, d: usize, h: f64) -> Rows<'a> {
        let norms: Vec<f64> = (0..n)
            .map(|i| x[i * d..(i + 1) * d].iter().map(|v| v * v).sum::<f64>().sqrt())
            .collect();
        let rho = (d as f64 + 2.0) * U32 + h;
        Rows {
            x,
            d,
            h,
            norms,
            rho_norm: vec![rho; n],
            rho_u: vec![rho + h; n],
        }
    }

    fn delta_u(&self, i: usize, u: f64) -> f64 {
        self.rho_u[i] * u.abs()
    }

    /// F.normalize's backward for the upstream `du` (with its bound):
    /// du/m + x·(d m/‖x‖), d m = −Σ du·(u/m); each term bounded by its own size.
    fn normalize_backward(&self, u: &[f64], du: &[f64], delta_du: &[f64]) -> Vec<f64> {
        let (d, h) = (self.d, self.h);
        let mut out = Vec::with_capacity(du.len());
        for (i, &norm) in self.norms.iter().enumerate() {
            let m = norm.max(NORMALIZE_EPS);
            let rho = self.rho_norm[i] + h;
            let span = i * d..(i + 1) * d;
            let (x, u, du, delta_du) = (
                &self.x[span.clone()],
                &u[span.clone()],
                &du[span.clone()],
                &delta_du[span],
            );
            let (mut d_m, mut delta_d_m, mut magnitude) = (0.0, 0.0, 0.0);
            for k in 0..d {
                let q = u[k] / m;
                let delta_q = self.delta_u(i, u[k]) / m + q.abs() * rho;
                d_m -= du[k] * q;
                magnitude += (du[k] * q).abs();
                delta_d_m += delta_du[k] * q.abs() + du[k].abs() * delta_q;
            }
            delta_d_m += (lanes_sum(d) * U32 + 2.0 * h) * magnitude;
            let through_norm = norm >= NORMALIZE_EPS && norm != 0.0;
            let (factor, delta_factor) = if through_norm {
                (d_m / norm, delta_d_m / norm + (d_m / norm).abs() * rho)
            } else {
                (0.0, 0.0)
            };
            for k in 0..d {
                let direct = du[k] / m;
                let delta_direct = delta_du[k] / m + direct.abs() * rho;
                let via = x[k] * factor;
                let delta_via = x[k].abs() * delta_factor + h * via.abs();
                out.push(delta_direct + delta_via + h * (direct.abs() + via.abs()));
            }
        }
        out
    }
}

/// One direction's cross-entropy over the logits (rows, or columns through
/// `at`): its loss bound, and per logit the bound of p·δlp plus the roundings
/// of its gradient, before the ½·g/N scale.
struct Direction {
    loss_bound: f64,
    /// Indexed like the logits.
    grad_bound: Vec<f64>,
}

impl Direction {
    fn new(
        logits: &[f64],
        delta_l: &[f64],
        n: usize,
        eps: f64,
        h_s: f64,
        at: impl Fn(usize, usize) -> usize,
    ) -> Direction {
        let sigma = lanes_sum(n);
        let mut grad_bound = vec![0.0; n * n];
        let (mut sum_bounds, mut sum_magnitudes, mut total) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let row: Vec<f64> = (0..n).map(|j| logits[at(i, j)]).collect();
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let ln_s = row.iter().map(|l| (l - m).exp()).sum::<f64>().ln();
            let p: Vec<f64> = row.iter().map(|l| (l - m - ln_s).exp()).collect();
            // lp_j moves by δL_j − Σ_k p_k·δL_k: (1 − p_j)·δL_j plus the
            // others' share, which is small where p_j is near 1.
            let shift: f64 = (0..n).map(|k| p[k] * delta_l[at(i, k)]).sum();
            let (mut loss, mut bound) = (0.0, 0.0);
            for j in 0..n {
                let q = if i == j { 1.0 - eps } else { 0.0 } + eps / n as f64;
                let lp = row[j] - m - ln_s;
                let own = U32 * ((row[j] - m).abs() + ln_s + lp.abs() + sigma) + h_s * lp.abs();
                let delta_j = delta_l[at(i, j)];
                let moved = (1.0 - p[j]) * delta_j + (shift - p[j] * delta_j);
                let delta_lp = own + moved;
                loss -= q * lp;
                bound += q * delta_lp + U32 * sigma * (q * lp).abs();
                // p − q: p's error p·δlp, the roundings of both terms.
                grad_bound[at(i, j)] = p[j] * delta_lp + U32 * sigma * p[j] + 2.0 * h_s.max(U32) * (q + p[j]);
            }
            sum_bounds += bound;
            sum_magnitudes += loss.abs();
            total += loss;
        }
        let mean = total / n as f64;
        // NLL and smoothing terms, combined, then the mean: a few roundings of the result.
        let loss_bound =
            (sum_bounds + U32 * lanes_sum(n) * sum_magnitudes) / n as f64 + 4.0 * h_s.max(U32) * mean.abs();
        Direction { loss_bound, grad_bound }
    }
}

#[cfg(test)]
mod tests {
    use super::super::allowance::allowance;
    use crate::fixtures::{bundled_file, Case, Recorded, Values};
    use crate::runner::{in_float64, run_rust, Outcome};

    fn article() -> Case {
        let f = bundled_file("fixtures/clip_step.json").unwrap().unwrap();
        f.cases
            .into_iter()
            .find(|c| c.name == "clip_step/article/float32")
            .unwrap()
    }

    /// The bound covers libtorch's recorded float32 values and stays far
    /// below the 0.1 % error a wrong gradient shows.
    #[test]
    fn covers_libtorchs_rounding_and_not_a_wrong_gradient() {
        let case = article();
        let a = allowance(&case).unwrap();
        let Outcome::Values(Values { loss, named_grads, .. }) = run_rust(&in_float64(&case)) else {
            panic!("the float64 step computes")
        };
        let Some(Recorded::Values(Values {
            loss: recorded_loss,
            named_grads: recorded,
            ..
        })) = case.expected.as_ref().map(|e| &e.result)
        else {
            panic!("values were recorded")
        };
        let mut outputs = vec![("loss", &loss, recorded_loss, &a.loss)];
        for (name, exact) in &named_grads {
            let libtorch = &recorded.iter().find(|(n, _)| n == name).unwrap().1;
            let bound = &a.named.iter().find(|(n, _)| n == name).unwrap().1;
            outputs.push((name, exact, libtorch, bound));
        }
        for (name, exact, libtorch, bound) in outputs {
            let (exact, libtorch) = (exact.to_f64(), libtorch.to_f64());
            assert_eq!(bound.len(), exact.len(), "{name}");
            for k in 0..exact.len() {
                let error = (libtorch[k] - exact[k]).abs();
                assert!(
                    error <= bound[k],
                    "{name}[{k}]: libtorch off by {error:e}, bound {:e}",
                    bound[k]
                );
                assert!(
                    bound[k] < 1e-3 * exact[k].abs().max(1e-2),
                    "{name}[{k}]: bound {:e}",
                    bound[k]
                );
            }
        }
    }

    #[test]
    fn float64_and_non_finite_steps_have_none() {
        let mut case = article();
        let mut float64 = in_float64(&case);
        float64.name = "f64".into();
        assert_eq!(allowance(&float64), None);
        let mut text = case.target.to_f64();
        text[3] = f64::NAN;
        case.target = crate::tensor::Tensor::float(case.target.dtype, case.target.shape.clone(), text);
        assert_eq!(allowance(&case), None);
    }
}
