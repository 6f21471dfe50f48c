//! ce-parity: PyTorch's `F.cross_entropy` (label smoothing included) in pure
//! Rust, with libtorch's own op beside it and the evidence that they agree.
//!
//! The loss is libtorch 2.13's `cross_entropy_loss`: class-index or
//! class-probability targets, class weights, `ignore_index`, the three
//! reductions, label smoothing, unbatched and K-dimensional input, f32, f64,
//! f16 and bf16. It returns the same numbers (to `torch.testing.assert_close`'s
//! tolerances), puts infinities and NaNs where libtorch puts them, and rejects
//! what libtorch rejects with libtorch's message, as a [`loss::LossError`]
//! rather than a panic.
//!
//! # Example
//!
//! The founding case, an image–text similarity matrix with label smoothing 0.1
//! (`F.cross_entropy(sim_i2t, targets, label_smoothing=0.1)` in PyTorch). The
//! explainer article it came from printed 0.4122; libtorch 2.13 gives 0.596669
//! (0.59666866 in float32, recorded in `fixtures/article.json`):
//!
//! ```
//! use ce_parity::loss::{cross_entropy_with_grad, Options, Target, View};
//!
//! let sim_i2t = [2.0f32, 1.0, 0.1, 0.5, 1.5, 0.8];
//! let targets = [0i64, 1];
//! let options = Options { label_smoothing: 0.1, ..Options::default() };
//! let (loss, grad) = cross_entropy_with_grad(
//!     View::new(&sim_i2t, &[2, 3]),
//!     Target::Classes(View::new(&targets, &[2])),
//!     &options,
//!     None, // upstream gradient: 1, as after `loss.backward()`
//! )?;
//! assert!((loss.item().unwrap() - 0.59666866).abs() < 1e-6);
//!
//! // d loss / d sim_i2t, as libtorch's autograd records it.
//! let libtorch = [-0.13716608, 0.104549825, 0.03261628, 0.08198884, -0.19849318, 0.116504356];
//! for (ours, theirs) in grad.input.iter().zip(libtorch) {
//!     assert!((ours - theirs).abs() < 1e-6);
//! }
//! # Ok::<(), ce_parity::loss::LossError>(())
//! ```
//!
//! # Where to look
//!
//! - [`loss`]: the pure-Rust loss — [`loss::cross_entropy`],
//!   [`loss::cross_entropy_backward`], and loss and gradient in one pass with
//!   [`loss::cross_entropy_with_grad`] (or `_into` a buffer, or `_in_place`
//!   over the logits).
//! - [`tensor`]: a dynamically typed tensor, what fixtures hold and the
//!   comparison takes.
//! - [`fixtures`]: the `ce-parity-fixture/1` JSON format, and the recorded
//!   suites compiled into the crate ([`fixtures::bundled`]).
//! - [`compare`]: tolerances, ULP distances and the comparison of two tensors.
//! - [`loss::clip_loss`] and [`loss::clip_loss_with_grad`]: the image–text
//!   contrastive loss ½·(CE(S/τ) + CE(Sᵀ/τ)) built from it.
//! - [`explain`]: a case step by step (softmax, smoothed target, per-sample
//!   loss, reduction), each step checked against libtorch.
//! - [`fuzz`]: random cases, an implementation against a reference, shrunk on failure.
//! - [`npy`]: reading NumPy `.npy` files.
//! - [`safetensors_file`]: reading `.safetensors` files, tensors by name and their metadata.
//! - [`runner`]: runs one case through Rust and libtorch and judges it.
//! - [`kit`]: the recorded cases for testing another crate's cross-entropy.
#![cfg_attr(
    feature = "torch",
    doc = "- [`reference`](mod@reference): libtorch through `tch` (feature `torch`)."
)]
#![cfg_attr(
    not(feature = "torch"),
    doc = "- `reference`: libtorch through `tch`; needs feature `torch`, off in this build."
)]
//!
//! # Features
//!
//! `torch` (default) builds the `reference` module, libtorch's own op through
//! `tch`; it needs libtorch 2.13 on the machine. Without it
//! (`--no-default-features`) the loss, fixtures, comparison and fuzzer build
//! and test alone, and the bundled fixtures' recorded libtorch values remain
//! the evidence.

// Every public item is documented; clippy's -D warnings makes a gap an error.
#![warn(missing_docs)]

pub mod compare;
pub mod explain;
pub mod fixtures;
pub mod fuzz;
pub mod kit;
pub mod loss;
pub mod machine;
pub mod npy;
#[cfg(feature = "torch")]
pub mod reference;
pub mod runner;
pub mod safetensors_file;
pub mod tensor;
