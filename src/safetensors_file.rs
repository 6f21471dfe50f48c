//! Reading `.safetensors` files (what `safetensors.torch.save_file` and the
//! `safetensors` crate write) as named tensors with their string metadata.
//!
//! The `safetensors` crate parses and validates the file: the header length
//! against the file, every tensor's offsets, and its shape times its dtype's
//! size against its bytes, with checked arithmetic. This module only turns
//! the views into [`Tensor`]s, refusing the dtypes the loss has no use for.
//!
//! ```
//! use ce_parity::tensor::DType;
//!
//! // What safetensors.torch.save_file({"input": x}, path, metadata={"reduction": "sum"})
//! // writes for x = torch.tensor([[2.0, 1.0]]): an 8-byte header length, a
//! // JSON header, then the little-endian data.
//! let header = r#"{"__metadata__":{"reduction":"sum"},"input":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}"#;
//! let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
//! bytes.extend_from_slice(header.as_bytes());
//! for v in [2.0f32, 1.0] {
//!     bytes.extend_from_slice(&v.to_le_bytes());
//! }
//! let file = ce_parity::safetensors_file::parse(&bytes)?;
//! let input = &file.tensors["input"];
//! assert_eq!((input.dtype, input.shape.clone(), input.to_f64()), (DType::Float32, vec![1, 2], vec![2.0, 1.0]));
//! assert_eq!(file.metadata["reduction"], "sum");
//!
//! // A header promising more bytes than the file has is refused.
//! assert!(ce_parity::safetensors_file::parse(&bytes[..bytes.len() - 1]).is_err());
//! # Ok::<(), ce_parity::safetensors_file::MalformedTensorFile>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use crate::tensor::{DType, Data, Tensor};

/// A `.safetensors` file's tensors by name, and its `__metadata__`.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorFile {
    /// Every tensor, by its name in the file.
    pub tensors: BTreeMap<String, Tensor>,
    /// The string pairs of `__metadata__` (empty when there is none).
    pub metadata: BTreeMap<String, String>,
}

/// A `.safetensors` file that could not be read, with why.
#[derive(Clone, Debug, PartialEq)]
pub struct SafetensorsError {
    /// The file as it was named to [`load`].
    pub file: PathBuf,
    /// What is wrong, as [`parse`] words it or the I/O error.
    pub message: String,
}

impl fmt::Display for SafetensorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for SafetensorsError {}

/// Reads a `.safetensors` file, or a numpy `.npz` archive (told apart by
/// its zip signature), whose arrays are named as `np.savez` names them.
///
/// # Errors
/// [`SafetensorsError`] naming the file for I/O errors and anything [`parse`]
/// or [`parse_npz`] rejects.
pub fn load(path: &Path) -> Result<TensorFile, SafetensorsError> {
    let error = |message: String| SafetensorsError {
        file: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| error(format!("cannot read: {e}")))?;
    if bytes.starts_with(b"PK\x03\x04") {
        return parse_npz(&bytes).map_err(|e| error(e.0));
    }
    parse(&bytes).map_err(|e| error(e.0))
}

/// What is wrong with the bytes of a `.safetensors` file or `.npz` archive.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedTensorFile(pub String);

/// Parses a numpy `.npz` archive (`np.savez`, stored or deflated): each
/// `NAME.npy` entry becomes the tensor `NAME`, read by [`crate::npy::parse`],
/// which validates its header against its bytes. An `.npz` has no metadata.
///
/// # Errors
/// [`MalformedTensorFile`] saying what is wrong: not a zip archive, an entry that is not
/// `.npy`, larger than its declared size, or that the `.npy` reader rejects, named.
pub fn parse_npz(bytes: &[u8]) -> Result<TensorFile, MalformedTensorFile> {
    read_npz(bytes).map_err(MalformedTensorFile)
}

fn read_npz(bytes: &[u8]) -> Result<TensorFile, String> {
    use std::io::Read;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("not a valid .npz archive: {e}"))?;
    let mut tensors = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| format!("entry {i}: {e}"))?;
        let name = entry.name().map_err(|e| format!("entry {i}: {e}"))?.to_string();
        let Some(stem) = name.strip_suffix(".npy") else {
            return Err(format!("entry {name:?} is not a .npy array"));
        };
        // Read at most the declared size (and one byte more, to notice a lie),
        // so a hostile archive cannot make us allocate more than it claims.
        let declared = entry.size();
        let mut data = Vec::new();
        (&mut entry)
            .take(declared.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(|e| format!("entry {name:?}: {e}"))?;
        if data.len() as u64 != declared {
            return Err(format!(
                "entry {name:?}: holds other than its declared {declared} bytes"
            ));
        }
        let tensor = crate::npy::parse(&data).map_err(|e| format!("entry {name:?}: {e}"))?;
        tensors.insert(stem.to_string(), tensor);
    }
    Ok(TensorFile {
        tensors,
        metadata: BTreeMap::new(),
    })
}

/// Parses the bytes of a `.safetensors` file: float16, bfloat16, float32,
/// float64, int64 or uint8 tensors.
///
/// # Errors
/// [`MalformedTensorFile`] saying what is wrong: not a valid file (the `safetensors`
/// crate's words), or a tensor of another dtype, named.
pub fn parse(bytes: &[u8]) -> Result<TensorFile, MalformedTensorFile> {
    read_safetensors(bytes).map_err(MalformedTensorFile)
}

fn read_safetensors(bytes: &[u8]) -> Result<TensorFile, String> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| format!("not a valid .safetensors file: {e}"))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.iter() {
        let dtype = dtype_of(view.dtype()).ok_or_else(|| {
            format!(
                "tensor {name:?}: dtype {:?} is not supported \
                 (expected F16, BF16, F32, F64, I64 or U8)",
                view.dtype()
            )
        })?;
        let tensor = Tensor {
            dtype,
            shape: view.shape().to_vec(),
            data: decode(dtype, view.data()),
        };
        tensors.insert(name.to_string(), tensor);
    }
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format!("not a valid .safetensors file: {e}"))?;
    let metadata = header.metadata().clone().unwrap_or_default().into_iter().collect();
    Ok(TensorFile { tensors, metadata })
}

fn dtype_of(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::F16 => DType::Float16,
        Dtype::BF16 => DType::BFloat16,
        Dtype::F32 => DType::Float32,
        Dtype::F64 => DType::Float64,
        Dtype::I64 => DType::Int64,
        Dtype::U8 => DType::UInt8,
        _ => return None,
    })
}

/// Little-endian elements; the crate has checked the length against the shape.
fn decode(dtype: DType, bytes: &[u8]) -> Data {
    fn words<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        bytes.chunks_exact(N).map(|c| c.try_into().expect("chunks of N bytes"))
    }
    match dtype {
        DType::Float16 => Data::Float(words(bytes).map(|w| half::f16::from_le_bytes(w).to_f64()).collect()),
        DType::BFloat16 => Data::Float(words(bytes).map(|w| half::bf16::from_le_bytes(w).to_f64()).collect()),
        DType::Float32 => Data::Float(words(bytes).map(|w| f32::from_le_bytes(w) as f64).collect()),
        DType::Float64 => Data::Float(words(bytes).map(f64::from_le_bytes).collect()),
        DType::Int64 => Data::Int(words(bytes).map(i64::from_le_bytes).collect()),
        DType::UInt8 => Data::Int(bytes.iter().map(|&b| i64::from(b)).collect()),
    }
}
