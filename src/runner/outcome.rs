//! What an implementation made of a case: values, a rejection, or a skip.

use crate::fixtures::{Case, Recorded, Values};
use crate::tensor::Tensor;

/// What one implementation made of a case.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The implementation computed the case.
    Values(Values),
    /// The first line of the error message.
    Error(String),
    /// This implementation cannot run the case (e.g. an unsupported dtype mix).
    Skipped(String),
}

impl Outcome {
    /// The outcome a fixture's `expected` records.
    pub fn from_recorded(recorded: &Recorded) -> Outcome {
        match recorded {
            Recorded::Values(values) => Outcome::Values(values.clone()),
            Recorded::Error(e) => Outcome::Error(e.clone()),
        }
    }

    /// The outcome as a fixture's `expected` result; None for a skip.
    pub fn to_recorded(&self) -> Option<Recorded> {
        match self {
            Outcome::Values(values) => Some(Recorded::Values(values.clone())),
            Outcome::Error(e) => Some(Recorded::Error(e.clone())),
            Outcome::Skipped(_) => None,
        }
    }
}

/// An implementation of the loss under test: a case in, an outcome out.
pub type Implementation<'a> = &'a (dyn Fn(&Case) -> Outcome + Sync);

/// First line of a message.
pub fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("").trim_end().to_string()
}

/// The tensors two computed outcomes both have — loss, and each gradient
/// present on both sides (named gradients matched by name) — named; nothing
/// for an error or a skip.
pub fn paired_tensors<'a>(a: &'a Outcome, b: &'a Outcome) -> Vec<(&'static str, &'a Tensor, &'a Tensor)> {
    let tensors = |o: &'a Outcome| -> Vec<(&'static str, &'a Tensor)> {
        let Outcome::Values(Values {
            loss,
            grad_input,
            grad_target,
            named_grads,
        }) = o
        else {
            return Vec::new();
        };
        let fixed = [
            ("loss", Some(loss)),
            ("grad_input", grad_input.as_ref()),
            ("grad_target", grad_target.as_ref()),
        ];
        let fixed = fixed.into_iter().filter_map(|(what, t)| Some((what, t?)));
        fixed.chain(named_grads.iter().map(|(what, t)| (*what, t))).collect()
    };
    let theirs = tensors(b);
    tensors(a)
        .into_iter()
        .filter_map(|(what, x)| Some((what, x, theirs.iter().find(|(w, _)| *w == what)?.1)))
        .collect()
}
