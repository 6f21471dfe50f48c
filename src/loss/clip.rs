//! The image–text contrastive (CLIP) loss, built from the crate's
//! cross-entropy exactly as PyTorch code composes it:
//!
//! ```text
//! x    = S / τ                                  S: N×M similarities, N ≤ M
//! loss = ½ · ( CE(x, arange(N)) + CE(x[:, :N]ᵀ, arange(N)) )
//! ```
//!
//! Row i of S is image i, column j text j; image i and text i are a pair. The
//! first term classifies each image among the M texts, the second each of the
//! N paired texts among the N images; with N = M it is ½·(CE(S/τ) + CE(Sᵀ/τ)).
//! Both terms use the mean and the same label smoothing. Every scalar step
//! rounds as libtorch rounds it in the element type, so f16/bf16 results
//! follow libtorch's, not an f64 formula.

use super::element::Element;
use super::error::LossError;
use super::forward::cross_entropy;
use super::input::{Target, View};
use super::options::Options;
use super::with_grad::cross_entropy_with_grad;
use crate::tensor::DType;

/// The contrastive loss of the similarity matrix `similarity` (N×M, N ≤ M):
/// ½·(CE(S/τ, arange(N)) + CE(S[:, :N]ᵀ/τ, arange(N))), mean-reduced, with
/// `label_smoothing` on both directions.
///
/// ```
/// use ce_parity::loss::{clip_loss, View};
/// // Two perfectly separated pairs: each row and column is confident.
/// let s = [1.0f64, -1.0, -1.0, 1.0];
/// let loss = clip_loss(View::new(&s, &[2, 2]), 0.5, 0.0)?;
/// // Each direction: −log softmax([2, −2])₀ = ln(1 + e⁻⁴).
/// assert!((loss - (1.0 + (-4.0f64).exp()).ln()).abs() < 1e-15);
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
///
/// # Errors
/// [`LossError::SimilarityShape`] unless `similarity` is 2-D with data of
/// its shape's length; [`LossError::Temperature`] unless τ is positive and
/// finite; the cross-entropy's errors otherwise, as libtorch raises them for
/// the same composition (N > M: `Target M is out of bounds.`; a bad
/// `label_smoothing`).
pub fn clip_loss<T: Element>(similarity: View<'_, T>, temperature: f64, label_smoothing: f64) -> Result<T, LossError> {
    let scaled = Scaled::new(similarity, temperature)?;
    let options = Options {
        label_smoothing,
        ..Options::default()
    };
    let images = cross_entropy(scaled.image_to_text(), scaled.targets(), &options)?;
    let texts = scaled.text_to_image()?;
    let texts = cross_entropy(texts.view(), scaled.targets(), &options)?;
    Ok(scaled.combine(first(&images.values), first(&texts.values)))
}

/// The contrastive loss and its gradient w.r.t. the similarity matrix, for the
/// upstream gradient `grad_output` (default 1): d(loss·g)/dS, shaped N×M.
///
/// ```
/// use ce_parity::loss::{clip_loss, clip_loss_with_grad, View};
/// let s = [0.3f32, 0.1, -0.2, 0.4];
/// let (loss, grad) = clip_loss_with_grad(View::new(&s, &[2, 2]), 0.07, 0.0, None)?;
/// assert_eq!(loss, clip_loss(View::new(&s, &[2, 2]), 0.07, 0.0)?);
/// // Raising a pair's similarity lowers the loss; raising a mismatch's raises it.
/// assert!(grad[0] < 0.0 && grad[3] < 0.0 && grad[1] > 0.0 && grad[2] > 0.0);
/// // libtorch 2.13: S.grad after ((F.cross_entropy(x, t) + F.cross_entropy(x[:, :2].t(), t)) * 0.5).backward()
/// let libtorch = [-0.1968, 0.2425, 0.0035, -0.0492];
/// assert!(grad.iter().zip(libtorch).all(|(g, t)| (g - t).abs() < 1e-4));
/// assert!((loss - 0.0176234).abs() < 1e-6);
/// # Ok::<(), ce_parity::loss::LossError>(())
/// ```
///
/// # Errors
/// As [`clip_loss`].
pub fn clip_loss_with_grad<T: Element>(
    similarity: View<'_, T>,
    temperature: f64,
    label_smoothing: f64,
    grad_output: Option<T>,
) -> Result<(T, Vec<T>), LossError> {
    let scaled = Scaled::new(similarity, temperature)?;
    let options = Options {
        label_smoothing,
        ..Options::default()
    };
    // loss = ½·(a + b): each term's upstream gradient is ½·g.
    let half_up = [scaled.round(0.5 * grad_output.map_or(1.0, T::to_f64))];
    let up = View::new(&half_up, &[]);
    let (images, image_grad) = cross_entropy_with_grad(scaled.image_to_text(), scaled.targets(), &options, Some(up))?;
    let texts = scaled.text_to_image()?;
    let (text_loss, text_grad) = cross_entropy_with_grad(texts.view(), scaled.targets(), &options, Some(up))?;
    let loss = scaled.combine(first(&images.values), first(&text_loss.values));
    // Autograd sums the two uses of x (the second through the transpose),
    // then divides by τ, each step rounded in the element type.
    let (n, m) = (scaled.n, scaled.m);
    let mut grad = image_grad.input;
    for i in 0..n {
        for j in 0..n {
            let at = i * m + j;
            grad[at] = scaled.round(grad[at].to_f64() + text_grad.input[j * n + i].to_f64());
        }
    }
    for g in &mut grad {
        *g = scaled.round(g.to_f64() / scaled.tau);
    }
    Ok((loss, grad))
}

/// x = S/τ and the shapes the two directions need.
struct Scaled<T> {
    x: Vec<T>,
    n: usize,
    m: usize,
    /// τ as libtorch holds it for this element type.
    tau: f64,
    shape: [usize; 2],
    diagonal: Vec<i64>,
}

/// The N×N text-to-image logits, x[:, :N]ᵀ.
struct Transposed<T> {
    x: Vec<T>,
    shape: [usize; 2],
}

impl<T> Transposed<T> {
    fn view(&self) -> View<'_, T> {
        View::new(&self.x, &self.shape)
    }
}

impl<T: Element> Scaled<T> {
    fn new(similarity: View<'_, T>, temperature: f64) -> Result<Self, LossError> {
        let &[n, m] = similarity.shape else {
            return Err(LossError::SimilarityShape(similarity.shape.to_vec()));
        };
        if n.checked_mul(m) != Some(similarity.data.len()) {
            return Err(LossError::DataLength {
                what: "similarity",
                shape: similarity.shape.to_vec(),
                len: similarity.data.len(),
            });
        }
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(LossError::Temperature(temperature));
        }
        // libtorch divides by the scalar in the op's math type: f64 for
        // double, f32 for float and the half types (then rounds to them).
        let tau = if T::DTYPE == DType::Float64 {
            temperature
        } else {
            temperature as f32 as f64
        };
        Ok(Scaled {
            x: similarity.data.iter().map(|s| round_op(s.to_f64() / tau)).collect(),
            n,
            m,
            tau,
            shape: [n, m],
            diagonal: (0..n as i64).collect(),
        })
    }

    fn round(&self, v: f64) -> T {
        round_op(v)
    }

    /// arange(N): image i's text and text i's image.
    fn targets(&self) -> Target<'_, T> {
        Target::Classes(View::new(&self.diagonal, &self.shape[..1]))
    }

    fn image_to_text(&self) -> View<'_, T> {
        View::new(&self.x, &self.shape)
    }

    /// Only called once the image-to-text term accepted its targets, which
    /// means N ≤ M (target N−1 is a valid class).
    fn text_to_image(&self) -> Result<Transposed<T>, LossError> {
        let (n, m) = (self.n, self.m);
        if n > m {
            return Err(LossError::TargetOutOfBounds(m as i64));
        }
        let x = (0..n * n).map(|k| self.x[(k % n) * m + k / n]).collect();
        Ok(Transposed { x, shape: [n, n] })
    }

    /// ½·(a + b), rounded per op like libtorch's `(a + b) * 0.5`.
    fn combine(&self, a: T, b: T) -> T {
        let sum = self.round(a.to_f64() + b.to_f64());
        self.round(sum.to_f64() * 0.5)
    }
}

/// Rounds the exact f64 result of one op on values of T as libtorch's kernel
/// does: to f32 (the math type) unless T is f64, then to T. For one +, × or ÷
/// of f32 values, rounding the f64 result to f32 equals the f32 operation.
pub(super) fn round_op<T: Element>(v: f64) -> T {
    if T::DTYPE == DType::Float64 {
        T::from_f64(v)
    } else {
        T::from_f64(v as f32 as f64)
    }
}

fn first<T: Copy>(values: &[T]) -> T {
    // A mean-reduced loss has exactly one value.
    values[0]
}
