//! The loss: `F.cross_entropy` in pure Rust — options, validation, forward,
//! gradient and the per-position kernel.

mod class_targets;
mod clip;
mod element;
mod error;
mod fast_exp;
mod fast_ln;
mod forward;
mod fused;
mod gradient;
mod input;
mod kernel;
mod options;
mod problem;
mod reduced;
pub mod simd;
mod with_grad;

pub use clip::{clip_loss, clip_loss_with_grad};
pub use element::Element;
pub use error::{format_like_cpp, LossError};
pub use forward::{cross_entropy, Loss};
pub use gradient::{cross_entropy_backward, Gradients};
pub use input::{Target, View};
pub use options::{Options, Reduction, DEFAULT_IGNORE_INDEX};
pub(crate) use problem::check_smoothing_shapes;
pub use problem::{check_signature, Accepted, Signature};
pub use simd::{set_simd_level, SimdLevel};
pub use with_grad::{cross_entropy_with_grad, cross_entropy_with_grad_in_place, cross_entropy_with_grad_into};
