//! Tensors from `--input`/`--target` that the loss rejects are the user's
//! error (exit 2, libtorch's words), not a case to judge: a fixture may record
//! a rejection on purpose, but a user asking "does my call match PyTorch?"
//! needs to hear that PyTorch refuses the call. `check`, `record` and
//! `explain` say it the same way.

use ce_parity::fixtures::Case;
use ce_parity::fixtures::Values;
use ce_parity::runner::{first_line, run_rust, Outcome};

use super::live::run_libtorch;

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
                Outcome::Values(Values { .. }) => {
                    "computes a loss instead (a parity gap: please report it)".to_string()
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use ce_parity::tensor::{DType, Tensor};

    #[test]
    fn the_message_says_how_the_rust_loss_answers_what_libtorch_rejects() {
        let libtorch = Outcome::Error("Target 7 is out of bounds.\nmore".into());
        let theirs = "libtorch rejects these tensors: Target 7 is out of bounds.; ce-parity's Rust loss";
        let same = message(&Outcome::Error("Target 7 is out of bounds.".into()), Some(&libtorch));
        assert_eq!(same.unwrap(), format!("{theirs} rejects them the same way"));
        let other = message(&Outcome::Error("Target 9 is out of bounds.".into()), Some(&libtorch));
        assert_eq!(
            other.unwrap(),
            format!("{theirs} rejects them differently: Target 9 is out of bounds.")
        );
        let skipped = message(&Outcome::Skipped("mixed dtypes".into()), Some(&libtorch));
        assert_eq!(skipped.unwrap(), format!("{theirs} cannot run them: mixed dtypes"));
        let values = Outcome::Values(Values {
            loss: Tensor::float(DType::Float32, vec![], vec![0.5]),
            grad_input: None,
            grad_target: None,
            named_grads: Vec::new(),
        });
        let computes = message(&values, Some(&libtorch));
        assert!(computes
            .unwrap()
            .ends_with("Rust loss computes a loss instead (a parity gap: please report it)"));
        // Rust rejecting what libtorch computes is a mismatch for the verdict, not a usage error.
        assert_eq!(message(&Outcome::Error("x".into()), Some(&values)), None);
        assert_eq!(message(&values, None), None);
        assert_eq!(
            message(&Outcome::Error("x".into()), None).unwrap(),
            "ce-parity's Rust loss rejects these tensors: x (libtorch not run)"
        );
    }
}
