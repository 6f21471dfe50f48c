//! The one integration-test binary. Modules that need live libtorch are gated
//! on the `torch` feature; the rest run with `--no-default-features`.

#[cfg(feature = "torch")]
mod accuracy;
mod cli;
mod closed_form;
mod errors;
mod fixtures;
#[cfg(feature = "torch")]
mod libtorch;
mod recorded;
mod surface;
