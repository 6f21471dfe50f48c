//! Why the reference could not give values.

/// A failure of the libtorch reference.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReferenceError {
    /// libtorch raised: its message, without tch's "Internal torch error: "
    /// prefix. For an invalid call this is libtorch's verdict on it.
    #[error("{0}")]
    Torch(String),
    /// libtorch returned a tensor of a dtype ce-parity does not hold.
    #[error("unexpected libtorch dtype {0}")]
    Dtype(String),
    /// The input has no class dim (it is 0-d).
    #[error("input has no class dim")]
    NoClassDim,
    /// A CLIP step's intermediate values were asked of another kind of case.
    #[error("case {0} is not a clip_step case")]
    NotClipStep(String),
}

impl From<tch::TchError> for ReferenceError {
    fn from(e: tch::TchError) -> Self {
        let message = e.to_string();
        let message = message.strip_prefix("Internal torch error: ").unwrap_or(&message);
        ReferenceError::Torch(message.to_string())
    }
}
