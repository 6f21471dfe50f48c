//! What an implementation under test answers for a case.

use std::fmt::Display;

/// The result of running a cross-entropy implementation on one case.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// The loss, and optionally gradients; every tensor is row-major `f64`
    /// (the kit rounds them to the case's dtype before comparing).
    Computed {
        /// The loss values, row-major.
        loss: Vec<f64>,
        /// `[]` for a reduced (scalar) loss, the target's shape for `none`.
        shape: Vec<usize>,
        /// d(Σ loss·grad_output)/d input, shaped like the input; compared when given.
        grad_input: Option<Vec<f64>>,
        /// The same w.r.t. a probability target, shaped like it; compared when given.
        grad_target: Option<Vec<f64>>,
    },
    /// The implementation rejects the input; the message's first line is
    /// compared with libtorch's only under [`CheckOptions::same_error_messages`](super::CheckOptions::same_error_messages).
    Rejected(String),
    /// The implementation cannot run this case; it is skipped with this reason.
    Unsupported(String),
}

impl Answer {
    /// A loss of `values` shaped `shape` (`[]` for a reduced loss).
    pub fn loss(values: Vec<f64>, shape: Vec<usize>) -> Answer {
        Answer::Computed {
            loss: values,
            shape,
            grad_input: None,
            grad_target: None,
        }
    }

    /// A reduced (0-d) loss.
    pub fn scalar(value: f64) -> Answer {
        Answer::loss(vec![value], Vec::new())
    }

    /// Adds the gradient w.r.t. the input (no effect on a rejection or a skip).
    pub fn with_grad_input(mut self, grad: Vec<f64>) -> Answer {
        if let Answer::Computed { grad_input, .. } = &mut self {
            *grad_input = Some(grad);
        }
        self
    }

    /// Adds the gradient w.r.t. a probability target (no effect on a rejection or a skip).
    pub fn with_grad_target(mut self, grad: Vec<f64>) -> Answer {
        if let Answer::Computed { grad_target, .. } = &mut self {
            *grad_target = Some(grad);
        }
        self
    }

    /// A rejection with the implementation's own message.
    pub fn rejected(message: impl Display) -> Answer {
        Answer::Rejected(message.to_string())
    }

    /// A case this implementation does not run, and why.
    pub fn unsupported(why: impl Into<String>) -> Answer {
        Answer::Unsupported(why.into())
    }
}

/// `Ok` is the answer, `Err` a rejection with the error's message: an
/// implementation returning `Result` can end with `.into()`.
impl<E: Display> From<Result<Answer, E>> for Answer {
    fn from(result: Result<Answer, E>) -> Answer {
        result.unwrap_or_else(Answer::rejected)
    }
}
