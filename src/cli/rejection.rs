//! Tensors from `--input`/`--target` that the loss rejects are the user's
//! error (exit 2, libtorch's words), not a case to judge: a fixture may record
//! a rejection on purpose, but a user asking "does my call match PyTorch?"
//! needs to hear that PyTorch refuses the call. `check`, `record` and
//! `explain` say it the same way.

use ce_parity::fixtures::Case;
use ce_parity::runner::{first_line, run_rust, Outcome};

/// Fails with libtorch's first error line, and how ce-parity's Rust loss
/// answers the same tensors, when libtorch rejects them; without libtorch
/// (`live` false, or a build without it), when the Rust loss rejects them.
///
/// A Rust rejection of tensors libtorch computes is not a usage error but a
/// mismatch, left to the verdict.
pub fn ensure_accepted(case: &Case, live: bool) -> anyhow::Result<()> {
    let libtorch = if live { run_libtorch(case) } else { None };
    match message(&run_rust(case), libtorch.as_ref()) {
        Some(message) => Err(anyhow::Error::msg(message)),
        None => Ok(()),
    }
}

/// The message for a rejection; None when the tensors are accepted.
fn message(rust: &Outcome, libtorch: Option<&Outcome>) -> Option<String> {
    match (libtorch, rust) {
        (Some(Outcome::Error(theirs)), ours) => {
            let theirs = first_line(theirs);
            let how = match ours {
                Outcome::Error(e) if first_line(e) == theirs => "rejects them the same way".to_string(),
                Outcome::Error(e) => format!("rejects them differently: {}", first_line(e)),
                Outcome::Values { .. } => "computes a loss instead (a parity gap: please report it)".to_string(),
                Outcome::Skipped(why) => format!("cannot run them: {why}"),
            };
            Some(format!(
                "libtorch rejects these tensors: {theirs}; ce-parity's Rust loss {how}"
            ))
        }
        (None, Outcome::Error(ours)) => Some(format!(
            "ce-parity's Rust loss rejects these tensors: {} (libtorch not run)",
            first_line(ours)
        )),
        _ => None,
    }
}

#[cfg(feature = "torch")]
fn run_libtorch(case: &Case) -> Option<Outcome> {
    Some(ce_parity::reference::run_libtorch(case))
}

#[cfg(not(feature = "torch"))]
fn run_libtorch(_case: &Case) -> Option<Outcome> {
    None
}
