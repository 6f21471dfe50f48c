//! A dynamically typed tensor: what fixtures hold and what the libtorch
//! reference and the comparison exchange. The loss itself works on typed slices.
//!
//! Floats of every width are stored as f64 already rounded to their dtype, so
//! one `Vec<f64>` holds a float16 tensor exactly and the comparison reads
//! every dtype alike.

use std::fmt;

/// Element types of the fixture format, named as in PyTorch.
///
/// ```
/// use ce_parity::tensor::DType;
/// assert_eq!(DType::from_name("bfloat16"), Some(DType::BFloat16));
/// assert_eq!(DType::Float32.torch_name(), "Float"); // as in libtorch's messages
/// // 0.1 is not a float16: the nearest one is 0.0999755859375.
/// assert_eq!(DType::Float16.round(0.1), 0.0999755859375);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// `torch.float16` (IEEE half precision).
    Float16,
    /// `torch.bfloat16` (float32's exponent, 8 significant bits).
    BFloat16,
    /// `torch.float32`.
    Float32,
    /// `torch.float64`.
    Float64,
    /// `torch.int64`: class targets.
    Int64,
    /// `torch.uint8`: class targets, which libtorch takes for 1-D and 2-D input only.
    UInt8,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 6] = [
        DType::Float16,
        DType::BFloat16,
        DType::Float32,
        DType::Float64,
        DType::Int64,
        DType::UInt8,
    ];

    /// The name used in fixture files (`torch.float32` without the prefix).
    pub fn name(self) -> &'static str {
        match self {
            DType::Float16 => "float16",
            DType::BFloat16 => "bfloat16",
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::Int64 => "int64",
            DType::UInt8 => "uint8",
        }
    }

    /// The name libtorch uses in its messages (`ScalarType` names).
    pub fn torch_name(self) -> &'static str {
        match self {
            DType::Float16 => "Half",
            DType::BFloat16 => "BFloat16",
            DType::Float32 => "Float",
            DType::Float64 => "Double",
            DType::Int64 => "Long",
            DType::UInt8 => "Byte",
        }
    }

    /// The dtype a fixture file names (`"float32"`, …); `None` for anything else.
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Whether it is a floating type (everything but int64 and uint8).
    pub fn is_float(self) -> bool {
        !matches!(self, DType::Int64 | DType::UInt8)
    }

    /// Rounds an f64 to the nearest value of this dtype (as `torch.tensor` does).
    pub fn round(self, v: f64) -> f64 {
        match self {
            // Through f32, as libtorch converts a double (see `Element`).
            DType::Float16 => half::f16::from_f32(v as f32).to_f64(),
            DType::BFloat16 => half::bf16::from_f32(v as f32).to_f64(),
            DType::Float32 => v as f32 as f64,
            _ => v,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Element storage: floats of every width are held exactly as f64, integers as i64.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// The elements of a floating tensor, each a value of its dtype.
    Float(Vec<f64>),
    /// The elements of an integer tensor.
    Int(Vec<i64>),
}

/// A row-major tensor with its dtype.
///
/// Build one with [`Tensor::float`], [`Tensor::int`] or [`Tensor::scalar`];
/// the fields are public for readers (fixtures, `.npy` files) that produce
/// them whole. Nothing ties `data`'s length to `shape`: a fixture's loader
/// checks that ([`numel`](Tensor::numel) against [`len`](Tensor::len)).
///
/// ```
/// use ce_parity::tensor::{DType, Tensor};
///
/// let logits = Tensor::float(DType::Float32, vec![2, 3], vec![2.0, 1.0, 0.1, 0.5, 1.5, 0.8]);
/// assert_eq!((logits.numel(), logits.len()), (6, 6));
/// // Values are stored rounded to the dtype: 0.1 becomes float32's nearest.
/// assert_eq!(logits.as_f64().unwrap()[2], 0.1f32 as f64);
///
/// let targets = Tensor::int(DType::Int64, vec![2], vec![0, 1]);
/// assert_eq!(targets.as_i64(), Some(&[0, 1][..]));
/// assert_eq!(targets.to_f64(), vec![0.0, 1.0]);
///
/// let loss = Tensor::scalar(DType::Float32, 0.59666866);
/// assert!(loss.shape.is_empty() && loss.numel() == 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The element type; float data holds only values of it.
    pub dtype: DType,
    /// The dims; `[]` for a 0-d tensor.
    pub shape: Vec<usize>,
    /// The elements, last dim fastest.
    pub data: Data,
}

impl Tensor {
    /// A floating tensor; values are rounded to `dtype`.
    ///
    /// # Panics
    /// In debug builds, when `dtype` is an integer type.
    pub fn float(dtype: DType, shape: Vec<usize>, values: Vec<f64>) -> Tensor {
        debug_assert!(dtype.is_float());
        let values = values.into_iter().map(|v| dtype.round(v)).collect();
        Tensor {
            dtype,
            shape,
            data: Data::Float(values),
        }
    }

    /// An integer tensor (int64 or uint8), values as given.
    ///
    /// # Panics
    /// In debug builds, when `dtype` is a floating type.
    pub fn int(dtype: DType, shape: Vec<usize>, values: Vec<i64>) -> Tensor {
        debug_assert!(!dtype.is_float());
        Tensor {
            dtype,
            shape,
            data: Data::Int(values),
        }
    }

    /// A 0-d floating tensor holding `value` rounded to `dtype`.
    ///
    /// # Panics
    /// In debug builds, when `dtype` is an integer type.
    pub fn scalar(dtype: DType, value: f64) -> Tensor {
        Tensor::float(dtype, vec![], vec![value])
    }

    /// The element count the shape implies (1 for a 0-d tensor).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The number of elements actually stored.
    pub fn len(&self) -> usize {
        match &self.data {
            Data::Float(v) => v.len(),
            Data::Int(v) => v.len(),
        }
    }

    /// Whether no element is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every element as f64 (integers converted).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            Data::Float(v) => v.clone(),
            Data::Int(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// The elements of a floating tensor; `None` for an integer one.
    pub fn as_f64(&self) -> Option<&[f64]> {
        match &self.data {
            Data::Float(v) => Some(v),
            Data::Int(_) => None,
        }
    }

    /// The elements of an integer tensor; `None` for a floating one.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            Data::Int(v) => Some(v),
            Data::Float(_) => None,
        }
    }
}
