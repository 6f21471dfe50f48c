//! One runner for every case (PyTorch OpInfo's shape): the case is data, the
//! implementations are functions from a case to an [`Outcome`], and
//! [`verdict`] judges every pair that is available.
//!
//! - [`outcome`]: what an implementation made of a case;
//! - [`rust`]: the pure-Rust loss as an implementation;
//! - [`judge`](mod@judge): the pairwise comparison and the verdict rule;
//! - [`allowance`](mod@allowance): libtorch's rounding allowance, the rule's float64 clause;
//! - [`claims`]: auditing a document's printed numbers.

pub mod allowance;
pub mod claims;
mod clip_step_bound;
pub mod judge;
pub mod outcome;
pub mod rust;

pub use allowance::{allowance, Allowance};
pub use claims::{audit_claim, class_geometry, smoothed_target, softmax, ClaimReport};
pub use judge::{
    judge, verdict, verdict_named, CaseReport, Comparison, Disagreement, Float64Report, OutputDifference, SideError,
    SideNames, Status,
};
pub use outcome::{first_line, paired_tensors, Implementation, Outcome};
pub use rust::{in_float64, run_rust, tolerance};
