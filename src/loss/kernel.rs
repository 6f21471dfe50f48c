//! The per-position computation, in one place: log-softmax over the classes of
//! one position, its loss terms, and the gradient of the row given the
//! coefficients the reduction hands down. Computes in f64.

use super::problem::Problem;

/// Copies the classes of position `p` (stride `inner`) into `row` as f64.
pub(crate) fn gather_row<T: Copy>(problem: &Problem, data: &[T], p: usize, to_f64: impl Fn(T) -> f64, row: &mut [f64]) {
    let start = problem.row_start(p);
    for (c, slot) in row.iter_mut().enumerate() {
        *slot = to_f64(data[start + c * problem.inner]);
    }
}

/// Replaces `row` by its log-softmax. NaN anywhere, +inf anywhere, or a row of
/// all −inf yields an all-NaN row, as libtorch's max-subtracting formula does.
pub(crate) fn log_softmax_in_place(row: &mut [f64]) {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| {
        if x.is_nan() || x > m {
            if m.is_nan() {
                m
            } else {
                x
            }
        } else {
            m
        }
    });
    let sum: f64 = row.iter().map(|&x| (x - max).exp()).sum();
    let log_sum = sum.ln();
    for x in row.iter_mut() {
        *x = *x - max - log_sum;
    }
}

/// The (nll, smoothing) terms of a class-target position whose target is
/// `y` (None when ignored: (0, 0), even for NaN logits).
pub(crate) fn class_terms(lp: &[f64], y: Option<usize>, weight: Option<&[f64]>, smoothing: bool) -> (f64, f64) {
    match y {
        None => (0.0, 0.0),
        Some(y) => {
            let smooth = if smoothing { smoothing_term(lp, weight) } else { 0.0 };
            (nll_term(lp, y, weight), smooth)
        }
    }
}

/// −w_y·lp_y: the NLL term of one position with class target `y`.
pub(crate) fn nll_term(lp: &[f64], y: usize, weight: Option<&[f64]>) -> f64 {
    -(lp[y] * weight.map_or(1.0, |w| w[y]))
}

/// −Σ_c w_c·lp_c: the smoothing term of one position.
pub(crate) fn smoothing_term(lp: &[f64], weight: Option<&[f64]>) -> f64 {
    match weight {
        Some(w) => -lp.iter().zip(w).map(|(l, w)| l * w).sum::<f64>(),
        None => -lp.iter().sum::<f64>(),
    }
}

/// −Σ_c w_c·q_c·lp_c: the loss of one position with class-probability target `q`.
pub(crate) fn probability_term(lp: &[f64], q: &[f64], weight: Option<&[f64]>) -> f64 {
    match weight {
        Some(w) => -lp.iter().zip(q).zip(w).map(|((l, q), w)| l * q * w).sum::<f64>(),
        None => -lp.iter().zip(q).map(|(l, q)| l * q).sum::<f64>(),
    }
}

/// Turns the gradient w.r.t. the log-probabilities (in `grad`) into the
/// gradient w.r.t. the logits: g_c − p_c·Σ_k g_k (log-softmax backward).
pub(crate) fn log_softmax_backward_in_place(lp: &[f64], grad: &mut [f64]) {
    let total: f64 = grad.iter().sum();
    for (g, l) in grad.iter_mut().zip(lp) {
        *g -= l.exp() * total;
    }
}

/// Writes a gathered row back to position `p` of a strided buffer.
pub(crate) fn scatter_row<T>(problem: &Problem, row: &[f64], p: usize, from_f64: impl Fn(f64) -> T, out: &mut [T]) {
    let start = problem.row_start(p);
    for (c, &v) in row.iter().enumerate() {
        out[start + c * problem.inner] = from_f64(v);
    }
}
