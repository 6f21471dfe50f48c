//! Borrowed inputs of the loss: a view is a flat row-major buffer and its shape.

/// A row-major tensor borrowed from the caller: what a contiguous
/// `torch.Tensor` is, without copying it.
///
/// The loss takes its input as (C,), (N, C) or (N, C, d1, …, dk) — the class
/// dim is 1, as in PyTorch (0 when unbatched) — and reads it where it lies:
/// K-dim input is swept on its strided layout, with no transposed copy.
/// A `data` whose length disagrees with `shape` is an error of the loss
/// ([`LossError::DataLength`](super::LossError::DataLength)), not a panic.
///
/// ```
/// use ce_parity::loss::{cross_entropy, Options, Reduction, Target, View};
///
/// // A segmentation-style input: N = 1, C = 2 classes, 3 pixels. The classes
/// // of pixel s are at s and 3 + s.
/// let logits = [0.0f64, 5.0, 0.0, /* class 1: */ 0.0, 0.0, 5.0];
/// let labels = [0i64, 0, 1];
/// let loss = cross_entropy(
///     View::new(&logits, &[1, 2, 3]),
///     Target::Classes(View::new(&labels, &[1, 3])),
///     &Options { reduction: Reduction::None, ..Options::default() },
/// )?;
/// assert_eq!(loss.shape, [1, 3]);
/// // Pixel 0 has equal logits: ln 2. Pixels 1 and 2 favour their label by 5: ln(1 + e⁻⁵).
/// let ln2 = 2f64.ln();
/// let near = (-5f64).exp().ln_1p();
/// for (got, want) in loss.values.iter().zip([ln2, near, near]) {
///     assert!((got - want).abs() < 1e-15);
/// }
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View<'a, E> {
    /// The elements, last dim fastest.
    pub data: &'a [E],
    /// The dims; `[]` is a 0-d tensor of one element.
    pub shape: &'a [usize],
}

impl<'a, E> View<'a, E> {
    /// A view of `data` as a tensor of `shape`; the lengths are checked by
    /// the loss, not here.
    pub fn new(data: &'a [E], shape: &'a [usize]) -> Self {
        View { data, shape }
    }
}

/// The target of `F.cross_entropy`: class indices, or class probabilities
/// shaped like the input.
///
/// PyTorch tells the two apart by shape: a target shaped like the input holds
/// probabilities. The variant here gives the element type; one whose shape
/// does not fit it (e.g. int64 indices shaped like the input) is rejected
/// with libtorch's message.
///
/// ```
/// use ce_parity::loss::{cross_entropy, Options, Target, View};
///
/// // Soft labels: with equal logits every class has log-probability −ln 2,
/// // so any target distribution gives a loss of ln 2.
/// let logits = [0.0f64, 0.0];
/// let soft = [0.25f64, 0.75];
/// let loss = cross_entropy(
///     View::new(&logits, &[1, 2]),
///     Target::Probabilities(View::new(&soft, &[1, 2])),
///     &Options::default(),
/// )?;
/// assert!((loss.item().unwrap() - 2f64.ln()).abs() < 1e-15);
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
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
    /// The target's dims, whichever the variant.
    pub fn shape(&self) -> &[usize] {
        match self {
            Target::Classes(v) => v.shape,
            Target::ClassesU8(v) => v.shape,
            Target::Probabilities(v) => v.shape,
        }
    }

    /// The number of elements in the target's buffer.
    pub fn len(&self) -> usize {
        match self {
            Target::Classes(v) => v.data.len(),
            Target::ClassesU8(v) => v.data.len(),
            Target::Probabilities(v) => v.data.len(),
        }
    }

    /// Whether the target's buffer has no elements (an empty batch).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
