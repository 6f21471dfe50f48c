//! Borrowed inputs of the loss: a view is a flat row-major buffer and its shape.

/// A row-major tensor borrowed from the caller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View<'a, E> {
    pub data: &'a [E],
    pub shape: &'a [usize],
}

impl<'a, E> View<'a, E> {
    pub fn new(data: &'a [E], shape: &'a [usize]) -> Self {
        View { data, shape }
    }
}

/// The target of `F.cross_entropy`: class indices, or class probabilities
/// shaped like the input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target<'a, T> {
    /// int64 class indices, shaped like the input without its class dim.
    Classes(View<'a, i64>),
    /// uint8 class indices (libtorch accepts them for 1-D and 2-D input).
    ClassesU8(View<'a, u8>),
    /// Class probabilities with the input's shape and element type; they need
    /// not be normalised or non-negative.
    Probabilities(View<'a, T>),
}

impl<T> Target<'_, T> {
    pub fn shape(&self) -> &[usize] {
        match self {
            Target::Classes(v) => v.shape,
            Target::ClassesU8(v) => v.shape,
            Target::Probabilities(v) => v.shape,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Target::Classes(v) => v.data.len(),
            Target::ClassesU8(v) => v.data.len(),
            Target::Probabilities(v) => v.data.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
