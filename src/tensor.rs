//! A dynamically typed tensor: what fixtures hold and what the libtorch
//! reference and the comparison exchange. The loss itself works on typed slices.

use std::fmt;

/// Element types of the fixture format, named as in PyTorch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    Float16,
    BFloat16,
    Float32,
    Float64,
    Int64,
    UInt8,
}

impl DType {
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

    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

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
    Float(Vec<f64>),
    Int(Vec<i64>),
}

/// A row-major tensor with its dtype.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    /// A floating tensor; values are rounded to `dtype`.
    pub fn float(dtype: DType, shape: Vec<usize>, values: Vec<f64>) -> Tensor {
        debug_assert!(dtype.is_float());
        let values = values.into_iter().map(|v| dtype.round(v)).collect();
        Tensor {
            dtype,
            shape,
            data: Data::Float(values),
        }
    }

    pub fn int(dtype: DType, shape: Vec<usize>, values: Vec<i64>) -> Tensor {
        debug_assert!(!dtype.is_float());
        Tensor {
            dtype,
            shape,
            data: Data::Int(values),
        }
    }

    pub fn scalar(dtype: DType, value: f64) -> Tensor {
        Tensor::float(dtype, vec![], vec![value])
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn len(&self) -> usize {
        match &self.data {
            Data::Float(v) => v.len(),
            Data::Int(v) => v.len(),
        }
    }

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

    pub fn as_f64(&self) -> Option<&[f64]> {
        match &self.data {
            Data::Float(v) => Some(v),
            Data::Int(_) => None,
        }
    }

    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            Data::Int(v) => Some(v),
            Data::Float(_) => None,
        }
    }
}
