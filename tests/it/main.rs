//! The one integration-test binary. Modules that need live libtorch are gated
//! on the `torch` feature; the rest run with `--no-default-features`.

#[cfg(feature = "torch")]
mod accuracy;
mod binary;
#[cfg(feature = "torch")]
mod capabilities;
mod cli;
mod clip;
mod clip_step;
mod clip_step_cli;
mod closed_form;
mod errors;
mod explain;
mod fixtures;
mod fuzz;
mod fuzz_shrink;
mod hostile;
mod kit;
mod kit_report;
#[cfg(feature = "torch")]
mod libtorch;
mod manners;
mod npy;
mod npz;
mod properties;
mod recorded;
mod reports;
#[cfg(feature = "torch")]
mod rng;
mod safetensors_cli;
mod surface;
#[cfg(feature = "torch")]
mod tensors_cli;
mod verdicts;
