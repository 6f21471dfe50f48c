//! OpenCLIP's ClipLoss step from embeddings, with a learnable temperature:
//!
//! ```text
//! u      = normalize(image_embeds)      v = normalize(text_embeds)     (N×D, rows)
//! logits = (exp(logit_scale) · u) @ vᵀ                                 (N×N)
//! loss   = ½ · ( CE(logits, arange(N), ε) + CE(logitsᵀ, arange(N), ε) )
//! ```
//!
//! `normalize` is `F.normalize(x, dim=-1)`: x / max(‖x‖₂, 1e-12) per row.
//! The two cross-entropies are [`clip_loss`](super::clip_loss) on the logits
//! with τ = 1; the gradients w.r.t. the embeddings and `logit_scale` are the
//! closed-form chain rule through the matmul, the scale and the
//! normalisation, each step rounded as libtorch's autograd rounds it in the
//! element type (products and sums computed exactly, then rounded once).

use super::clip::{clip_loss_with_grad, round_op};
use super::element::Element;
use super::error::LossError;
use super::forward::cross_entropy;
use super::input::{Target, View};
use super::options::{Options, Reduction};
use super::problem::{check_signature, Signature};
use crate::tensor::DType;

/// F.normalize's default eps.
pub const NORMALIZE_EPS: f64 = 1e-12;

/// The forward pass of the CLIP step, step by step (each value rounded as
/// libtorch stores it).
#[derive(Clone, Debug, PartialEq)]
pub struct ClipStepForward<T> {
    /// N, the number of image–text pairs.
    pub n: usize,
    /// D, the embedding width.
    pub d: usize,
    /// normalize(image_embeds), N×D row-major.
    pub image_features: Vec<T>,
    /// normalize(text_embeds), N×D row-major.
    pub text_features: Vec<T>,
    /// exp(logit_scale): the inverse temperature.
    pub scale: T,
    /// (exp(logit_scale)·u) @ vᵀ, N×N: row i is image i against every text.
    pub logits: Vec<T>,
    /// CE(logits, arange(N), ε): each image classifies its text.
    pub image_loss: T,
    /// CE(logitsᵀ, arange(N), ε): each text classifies its image.
    pub text_loss: T,
    /// ½·(image_loss + text_loss).
    pub loss: T,
}

/// The CLIP step's loss and its gradients w.r.t. every input, for an upstream
/// gradient g (default 1): what `loss.backward(g)` leaves in `.grad`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipStep<T> {
    /// The loss.
    pub loss: T,
    /// d(loss·g)/d image_embeds, N×D.
    pub grad_image_embeds: Vec<T>,
    /// d(loss·g)/d text_embeds, N×D.
    pub grad_text_embeds: Vec<T>,
    /// d(loss·g)/d logit_scale.
    pub grad_logit_scale: T,
}

/// The CLIP step's forward pass, keeping every intermediate.
///
/// ```
/// use ce_parity::loss::{clip_step_forward, View};
/// // One pair in D = 2: a single class, so both cross-entropies are 0.
/// let f = clip_step_forward(View::new(&[3.0f64, 4.0], &[1, 2]), View::new(&[1.0, 0.0], &[1, 2]), 0.0, 0.1)?;
/// assert_eq!(f.image_features, [0.6, 0.8]);
/// assert_eq!(f.logits, [0.6]); // exp(0) · (0.6·1 + 0.8·0)
/// assert_eq!(f.loss, 0.0);
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
///
/// # Errors
/// As [`clip_step`].
pub fn clip_step_forward<T: Element>(
    image_embeds: View<'_, T>,
    text_embeds: View<'_, T>,
    logit_scale: T,
    label_smoothing: f64,
) -> Result<ClipStepForward<T>, LossError> {
    let pairs = Pairs::new(image_embeds, text_embeds, label_smoothing)?;
    let features = Features::new(&pairs, logit_scale);
    let options = Options {
        label_smoothing,
        ..Options::default()
    };
    let n = pairs.n;
    let targets: Vec<i64> = (0..n as i64).collect();
    let square = [n, n];
    let target = Target::Classes(View::new(&targets, &square[..1]));
    let image_loss = cross_entropy(View::new(&features.logits, &square), target, &options)?.values[0];
    let transposed: Vec<T> = (0..n * n).map(|k| features.logits[(k % n) * n + k / n]).collect();
    let text_loss = cross_entropy(View::new(&transposed, &square), target, &options)?.values[0];
    let sum: T = round_op(image_loss.to_f64() + text_loss.to_f64());
    Ok(ClipStepForward {
        n,
        d: pairs.d,
        image_features: features.u,
        text_features: features.v,
        scale: features.scale,
        logits: features.logits,
        image_loss,
        text_loss,
        loss: round_op(sum.to_f64() * 0.5),
    })
}

/// The CLIP step: the loss and its gradients w.r.t. `image_embeds` (N×D),
/// `text_embeds` (N×D) and `logit_scale` (a scalar), for the upstream
/// gradient `grad_output` (default 1).
///
/// ```
/// use ce_parity::loss::{clip_step, View};
/// // N = 2, D = 2, orthogonal unit pairs, logit_scale = 0 (scale 1):
/// // logits = I, each direction's CE = ln(1 + e⁻¹), and
/// // d loss/d logit_scale = Σ dlogits ⊙ logits = σ(1) − 1 = −1/(1 + e).
/// let i = [1.0f64, 0.0, 0.0, 1.0];
/// let step = clip_step(View::new(&i, &[2, 2]), View::new(&i, &[2, 2]), 0.0, 0.0, None)?;
/// let p = 1.0 / (1.0 + 1f64.exp()); // softmax weight of the other pair
/// assert!((step.loss - (1.0 + (-1f64).exp()).ln()).abs() < 1e-15);
/// assert!((step.grad_logit_scale + p).abs() < 1e-15);
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
///
/// # Errors
/// libtorch's errors for the composition, with its messages:
/// text_embeds of more than 2 dims ([`LossError::TransposeDims`], from
/// `v.t()`); a 0-d embedding ([`LossError::MatmulZeroDim`]); embedding
/// widths that differ ([`LossError::MatmulShapes`]); image_embeds of more
/// than 2 dims (the cross-entropy's target size error); more images than
/// texts (`Target M is out of bounds.`), fewer
/// ([`LossError::BatchSizeMismatch`] from CE(logitsᵀ)); a bad
/// `label_smoothing`. 1-D embeddings are refused with ce-parity's own
/// message ([`LossError::EmbeddingsShape`]); buffers that disagree with their
/// shapes with [`LossError::DataLength`].
pub fn clip_step<T: Element>(
    image_embeds: View<'_, T>,
    text_embeds: View<'_, T>,
    logit_scale: T,
    label_smoothing: f64,
    grad_output: Option<T>,
) -> Result<ClipStep<T>, LossError> {
    let pairs = Pairs::new(image_embeds, text_embeds, label_smoothing)?;
    let f = Features::new(&pairs, logit_scale);
    let (n, d) = (pairs.n, pairs.d);
    // d loss / d logits, from the two cross-entropies (τ = 1 divides exactly).
    let (loss, dl) = clip_loss_with_grad(View::new(&f.logits, &[n, n]), 1.0, label_smoothing, grad_output)?;
    let dl: Vec<f64> = dl.iter().map(|g| g.to_f64()).collect();
    let s = f.scale.to_f64();
    // logits = su @ vᵀ: d su = dL @ v, d v (through the matmul) = dLᵀ @ su.
    let d_su: Vec<T> = matmul(n, n, d, |i, j| dl[i * n + j], |j, k| f.v[j * d + k].to_f64());
    let d_v_mm: Vec<T> = matmul(n, n, d, |j, i| dl[i * n + j], |i, k| f.su[i * d + k].to_f64());
    // su = s·u: d u = s·d su; d s = Σ d su ⊙ u (the products rounded first).
    let d_u: Vec<T> = d_su.iter().map(|g| round_op(s * g.to_f64())).collect();
    let d_s: T = round_op(
        d_su.iter()
            .zip(&f.u)
            .map(|(g, u)| round_op::<T>(g.to_f64() * u.to_f64()).to_f64())
            .sum(),
    );
    // s = exp(logit_scale): d logit_scale = d s · s.
    let grad_logit_scale = round_op(d_s.to_f64() * s);
    Ok(ClipStep {
        loss,
        grad_image_embeds: normalize_backward(pairs.image, &f.u, &f.image_norms, &d_u, d),
        grad_text_embeds: normalize_backward(pairs.text, &f.v, &f.text_norms, &d_v_mm, d),
        grad_logit_scale,
    })
}

/// Two embedding matrices accepted as N×D each.
struct Pairs<'a, T> {
    image: &'a [T],
    text: &'a [T],
    n: usize,
    d: usize,
}

impl<'a, T: Element> Pairs<'a, T> {
    /// Validates the shapes in the order libtorch meets them:
    /// `v.t()`, the matmul, CE(logits), CE(logitsᵀ).
    fn new(image: View<'a, T>, text: View<'a, T>, label_smoothing: f64) -> Result<Self, LossError> {
        for (what, view) in [("image_embeds", image), ("text_embeds", text)] {
            if view.shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b)) != Some(view.data.len()) {
                return Err(LossError::DataLength {
                    what,
                    shape: view.shape.to_vec(),
                    len: view.data.len(),
                });
            }
        }
        let (ki, kt) = (image.shape.len(), text.shape.len());
        if kt > 2 {
            return Err(LossError::TransposeDims(kt));
        }
        if ki == 0 || kt == 0 {
            return Err(LossError::MatmulZeroDim(ki, kt));
        }
        if ki == 1 || kt == 1 {
            return Err(LossError::EmbeddingsShape {
                image: image.shape.to_vec(),
                text: text.shape.to_vec(),
            });
        }
        // matmul folds the image's leading dims into rows.
        let (d_image, rows) = (image.shape[ki - 1], image.shape[..ki - 1].iter().product::<usize>());
        let (m, d_text) = (text.shape[0], text.shape[1]);
        if d_image != d_text {
            return Err(LossError::MatmulShapes {
                mat1: [rows, d_image],
                mat2: [d_text, m],
            });
        }
        let n = image.shape[0];
        let mut logits_shape = image.shape[..ki - 1].to_vec();
        logits_shape.push(m);
        let first = Signature {
            input: (T::DTYPE, &logits_shape),
            target: (DType::Int64, &[n]),
            weight: None,
            ignore_index: super::options::DEFAULT_IGNORE_INDEX,
            label_smoothing,
            reduction: Reduction::Mean,
        };
        // Batched image embeddings give K-dim logits, whose target size CE
        // rejects; square or wide ones pass here.
        check_signature(&first)?;
        if n < m {
            // CE(logitsᵀ): M rows against N targets.
            return Err(LossError::BatchSizeMismatch { input: m, target: n });
        }
        // CE(logits) meets target M first.
        if n > m {
            return Err(LossError::TargetOutOfBounds(m as i64));
        }
        if ki != 2 {
            // CE rejects K-dim logits' 1-D target above; never reached.
            return Err(LossError::EmbeddingsShape {
                image: image.shape.to_vec(),
                text: text.shape.to_vec(),
            });
        }
        Ok(Pairs {
            image: image.data,
            text: text.data,
            n,
            d: d_image,
        })
    }
}

/// The normalised features, the scale and the logits.
struct Features<T> {
    u: Vec<T>,
    v: Vec<T>,
    /// ‖x_i‖ per row, as libtorch rounds it.
    image_norms: Vec<T>,
    text_norms: Vec<T>,
    scale: T,
    /// s·u, N×D.
    su: Vec<T>,
    logits: Vec<T>,
}

impl<T: Element> Features<T> {
    fn new(pairs: &Pairs<'_, T>, logit_scale: T) -> Self {
        let (n, d) = (pairs.n, pairs.d);
        let (u, image_norms) = normalize(pairs.image, d);
        let (v, text_norms) = normalize(pairs.text, d);
        let scale: T = round_op(logit_scale.to_f64().exp());
        let su: Vec<T> = u.iter().map(|x| round_op(scale.to_f64() * x.to_f64())).collect();
        let logits = matmul(n, d, n, |i, k| su[i * d + k].to_f64(), |k, j| v[j * d + k].to_f64());
        Features {
            u,
            v,
            image_norms,
            text_norms,
            scale,
            su,
            logits,
        }
    }
}

/// F.normalize per row of width d: (x / max(‖x‖, eps), ‖x‖).
fn normalize<T: Element>(x: &[T], d: usize) -> (Vec<T>, Vec<T>) {
    let rows = x.len().checked_div(d).unwrap_or(0);
    let mut out = Vec::with_capacity(x.len());
    let mut norms = Vec::with_capacity(rows);
    for r in 0..rows {
        let row = &x[r * d..(r + 1) * d];
        let norm: T = round_op(row.iter().map(|v| v.to_f64() * v.to_f64()).sum::<f64>().sqrt());
        let denominator = clamp_min(norm);
        out.extend(row.iter().map(|v| round_op::<T>(v.to_f64() / denominator)));
        norms.push(norm);
    }
    (out, norms)
}

/// max(norm, eps), with eps as libtorch holds it for T.
fn clamp_min<T: Element>(norm: T) -> f64 {
    let eps = round_op::<T>(NORMALIZE_EPS).to_f64();
    nan_max(norm.to_f64(), eps)
}

/// libtorch's clamp_min: a NaN norm stays NaN (f64::max would pick eps, and
/// a row with a NaN would normalise its other elements to x/eps, not NaN).
fn nan_max(x: f64, floor: f64) -> f64 {
    if x.is_nan() {
        x
    } else {
        x.max(floor)
    }
}

/// The gradient of normalize(x) for the upstream `du`, as autograd composes
/// it: d x = du/m + x·(g/‖x‖) where m = max(‖x‖, eps),
/// g = Σ_k −du_k·((x_k/m)/m) when ‖x‖ ≥ eps (clamp_min passes it) and 0
/// otherwise (also 0 for ‖x‖ = 0, as norm's backward masks it).
fn normalize_backward<T: Element>(x: &[T], u: &[T], norms: &[T], du: &[T], d: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(x.len());
    let eps = round_op::<T>(NORMALIZE_EPS).to_f64();
    for (r, &norm) in norms.iter().enumerate() {
        let span = r * d..(r + 1) * d;
        let (x, u, du) = (&x[span.clone()], &u[span.clone()], &du[span]);
        let norm = norm.to_f64();
        let m = nan_max(norm, eps);
        // d m = Σ_k −du_k · ((x_k / m) / m); x_k / m is u_k as stored.
        let d_m: T = round_op(
            du.iter()
                .zip(u)
                .map(|(g, u)| {
                    let q: T = round_op(u.to_f64() / m);
                    round_op::<T>(-g.to_f64() * q.to_f64()).to_f64()
                })
                .sum(),
        );
        let through_norm = norm >= eps && norm != 0.0;
        let factor: f64 = if through_norm {
            round_op::<T>(d_m.to_f64() / norm).to_f64()
        } else {
            0.0
        };
        out.extend(x.iter().zip(du).map(|(x, g)| {
            let direct: T = round_op(g.to_f64() / m);
            let via_norm: T = round_op(x.to_f64() * factor);
            round_op::<T>(direct.to_f64() + via_norm.to_f64())
        }));
    }
    out
}

/// (rows×inner) @ (inner×cols), each entry summed exactly and rounded once.
fn matmul<T: Element>(
    rows: usize,
    inner: usize,
    cols: usize,
    a: impl Fn(usize, usize) -> f64,
    b: impl Fn(usize, usize) -> f64,
) -> Vec<T> {
    let mut out = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        for j in 0..cols {
            out.push(round_op((0..inner).map(|k| a(i, k) * b(k, j)).sum()));
        }
    }
    out
}
