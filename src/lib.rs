//! ce-parity: PyTorch's `F.cross_entropy` (label smoothing included) in pure
//! Rust, with libtorch's own op beside it and the evidence that they agree.
//!
//! - [`loss`]: the pure-Rust loss, forward and gradient.
//! - [`reference`]: libtorch through `tch` (feature `torch`).
//! - [`fixtures`]: the `ce-parity-fixture/1` JSON format.
//! - [`compare`]: tolerances, ULP distances and case reports.
//! - [`fuzz`]: random cases, Rust against a reference, shrunk on failure.
//! - [`npy`]: reading NumPy `.npy` files.
//! - [`runner`]: runs one case through Rust and libtorch and judges it.
//! - [`kit`]: the recorded cases for testing another crate's cross-entropy.

pub mod compare;
pub mod fixtures;
pub mod fuzz;
pub mod kit;
pub mod loss;
pub mod npy;
#[cfg(feature = "torch")]
pub mod reference;
pub mod runner;
pub mod tensor;
