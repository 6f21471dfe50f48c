//! What a call returns: the loss and the gradients.

/// The loss: one value per position under `none` (shaped like the target),
/// else a single value with shape `[]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Loss<T> {
    /// The values, row-major; one value when reduced.
    pub values: Vec<T>,
    /// `[]` when reduced; under `none` the target's shape (N, d1, …, dk),
    /// or `[]` for unbatched input.
    pub shape: Vec<usize>,
}

impl<T: Copy> Loss<T> {
    /// The value of a reduced (0-d) loss; the first value otherwise.
    pub fn item(&self) -> Option<T> {
        self.values.first().copied()
    }
}

/// Gradients, each shaped like the input.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients<T> {
    /// d/d input, row-major like the input.
    pub input: Vec<T>,
    /// d/d target, only for probability targets (class indices have none).
    pub target: Option<Vec<T>>,
}
