//! The loss: `F.cross_entropy` in pure Rust — options, validation, forward,
//! gradient and the per-position kernel.
//!
//! A call borrows its tensors as [`View`]s (flat row-major data and a shape),
//! names its target's kind with [`Target`] and its keyword arguments with
//! [`Options`]; the element type is any [`Element`] (f32, f64, f16, bf16).
//!
//! | PyTorch | here |
//! |---|---|
//! | `loss = F.cross_entropy(x, y, …)` | [`cross_entropy`] |
//! | `loss.backward(g)`, then `x.grad` | [`cross_entropy_backward`] |
//! | both, in one pass over the logits | [`cross_entropy_with_grad`], [`cross_entropy_with_grad_into`], [`cross_entropy_with_grad_in_place`] |
//! | OpenCLIP's loss step from embeddings, with `logit_scale` | [`clip_step()`], [`clip_step_forward`] |
//! | the `RuntimeError` for a bad call | [`LossError`], with libtorch's message; [`check_signature`] without data |
//!
//! With lp = log_softmax(x) over the class dim, w the class weights (or 1), ε
//! the smoothing and C the class count, position i with class target y_i
//! (not `ignore_index`) costs
//! (1−ε)·(−w_{y_i}·lp_{i,y_i}) + (ε/C)·(−Σ_c w_c·lp_{i,c});
//! `mean` divides the sum by Σ_i w_{y_i} over the kept positions. A probability
//! target t costs −Σ_c w_c·q_c·lp_{i,c} with q = (1−ε)·t + ε/C, and `mean`
//! divides by the number of positions. The NLL and smoothing terms are reduced
//! separately and then combined, as libtorch does, so infinities and NaNs come
//! out where libtorch's do.
//!
//! Results are deterministic: the same bits for any thread count and, for
//! the fused kernel, on every [`SimdLevel`].
//!
//! Inside: `formulas.rs` holds these formulas once (smoothed targets, the
//! combination, the mean's divisor, the gradient's coefficients, the output
//! shape); `path.rs` decides which implementation runs — the half-precision
//! path for float16/bfloat16 (it must round where libtorch rounds), the fused
//! SIMD kernel for float32/float64, and the f64 reference for what the fused
//! kernel does not take (no classes or positions, negative weights). All
//! three take their constants from `formulas.rs`; the dependencies run one
//! way: forward/gradient → path, fused, reduced → formulas, kernel.

mod class_targets;
mod clip;
mod clip_step;
mod element;
mod error;
mod fast_exp;
mod fast_ln;
mod formulas;
mod forward;
mod fused;
mod gradient;
mod half_bits;
mod input;
mod kernel;
mod options;
mod outputs;
mod path;
mod problem;
mod reduced;
pub mod simd;
mod with_grad;

pub use clip::{clip_loss, clip_loss_with_grad};
pub use clip_step::{clip_step, clip_step_forward, ClipStep, ClipStepForward, NORMALIZE_EPS};
pub use element::Element;
pub use error::{format_like_cpp, LossError};
pub(crate) use formulas::{keep_and_spread, smoothed_target};
pub use forward::cross_entropy;
pub use gradient::cross_entropy_backward;
pub use input::{Target, View};
pub(crate) use kernel::log_softmax_in_place;
pub use options::{Options, Reduction, DEFAULT_IGNORE_INDEX};
pub use outputs::{Gradients, Loss};
pub(crate) use problem::check_smoothing_shapes;
pub use problem::{check_signature, Accepted, Signature};
pub use simd::{set_simd_level, Simd, SimdLevel};
pub use with_grad::{cross_entropy_with_grad, cross_entropy_with_grad_in_place, cross_entropy_with_grad_into};
