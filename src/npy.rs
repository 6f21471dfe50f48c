//! Reading NumPy `.npy` files (what `np.save` writes) as tensors.
//!
//! Read here rather than with a crate because the file is hostile until
//! proven otherwise: the header is checked, and the data length it implies is
//! compared with the bytes actually present, before anything is allocated
//! for the data (a 10-byte file may claim a shape of 2^60 elements).
//!
//! Format: magic `\x93NUMPY`, version (1, 2 or 3), header length (u16 for
//! version 1, u32 after), a Python dict literal
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`, then the data.
//!
//! ```
//! use ce_parity::tensor::DType;
//!
//! // What `np.save(f, np.array([[2, 1, 0.1], [0.5, 1.5, 0.8]], dtype=np.float32))` writes.
//! let mut header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".to_vec();
//! header.resize(117, b' '); // numpy pads the header so the data starts at byte 128
//! header.push(b'\n');
//! let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
//! bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
//! bytes.extend_from_slice(&header);
//! for v in [2.0f32, 1.0, 0.1, 0.5, 1.5, 0.8] {
//!     bytes.extend_from_slice(&v.to_le_bytes());
//! }
//! assert_eq!(bytes.len(), 128 + 6 * 4);
//!
//! let tensor = ce_parity::npy::parse(&bytes)?;
//! assert_eq!((tensor.dtype, tensor.shape.clone()), (DType::Float32, vec![2, 3]));
//! assert_eq!(tensor.as_f64().unwrap()[2], 0.1f32 as f64);
//!
//! // The same from a file, as `ce-parity record --input sim_i2t.npy` reads it.
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("sim_i2t.npy");
//! std::fs::write(&path, &bytes).unwrap();
//! assert_eq!(ce_parity::npy::load(&path).unwrap(), tensor);
//!
//! // A header that promises more data than the file holds is refused up front.
//! assert!(ce_parity::npy::parse(&bytes[..bytes.len() - 1]).unwrap_err().0.contains("needs 24 bytes"));
//! # Ok::<(), ce_parity::npy::MalformedNpy>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use crate::tensor::{DType, Data, Tensor};

/// A `.npy` file that could not be read, with why.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyError {
    /// The file as it was named to [`load`].
    pub file: PathBuf,
    /// What is wrong, as [`parse`] words it or the I/O error.
    pub message: String,
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

impl std::error::Error for NpyError {}

/// Reads a `.npy` file.
///
/// # Errors
/// [`NpyError`] naming the file for I/O errors and anything [`parse`] rejects.
pub fn load(path: &Path) -> Result<Tensor, NpyError> {
    let error = |message: String| NpyError {
        file: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| error(format!("cannot read: {e}")))?;
    parse(&bytes).map_err(|e| error(e.0))
}

/// What is wrong with the bytes of a `.npy` file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedNpy(pub String);

/// Parses the bytes of a `.npy` file: float16, float32, float64, int64 or
/// uint8, either byte order, C or Fortran order.
///
/// # Errors
/// [`MalformedNpy`] saying what is wrong: not a `.npy` file, a truncated or
/// malformed header, an unsupported dtype, or data whose length disagrees
/// with the shape.
pub fn parse(bytes: &[u8]) -> Result<Tensor, MalformedNpy> {
    parse_bytes(bytes).map_err(MalformedNpy)
}

fn parse_bytes(bytes: &[u8]) -> Result<Tensor, String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let major = bytes[6];
    let (length_bytes, utf8) = match major {
        1 => (2, false),
        2 => (4, false),
        3 => (4, true),
        v => return Err(format!("unsupported .npy version {v}.{}", bytes[7])),
    };
    let start = 8 + length_bytes;
    let length_field = bytes
        .get(8..start)
        .ok_or("truncated: the file ends inside the header length")?;
    let header_len = length_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let header = start
        .checked_add(header_len)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| {
            format!(
                "truncated: the header claims {header_len} bytes, the file has {} after the header length",
                bytes.len() - start
            )
        })?;
    let header = if utf8 {
        std::str::from_utf8(header).map_err(|_| "header is not UTF-8".to_string())?
    } else if header.is_ascii() {
        std::str::from_utf8(header).expect("ASCII is UTF-8")
    } else {
        return Err("header is not ASCII".into());
    };
    let header = Header::parse(header)?;
    let data = &bytes[start + header_len..];
    decode(&header, data)
}

/// The three keys numpy writes.
#[derive(Debug)]
struct Header {
    dtype: DType,
    big_endian: bool,
    fortran_order: bool,
    shape: Vec<usize>,
}

fn item_size(dtype: DType) -> usize {
    match dtype {
        DType::UInt8 => 1,
        DType::Float16 | DType::BFloat16 => 2,
        DType::Float32 => 4,
        DType::Float64 | DType::Int64 => 8,
    }
}

impl Header {
    fn parse(text: &str) -> Result<Header, String> {
        let mut p = Literal {
            rest: text.trim_end_matches(['\n', ' ', '\0']),
        };
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        p.expect('{')?;
        while !p.eat('}') {
            let key = p.string()?;
            p.expect(':')?;
            match key.as_str() {
                "descr" => {
                    descr = Some(
                        p.string()
                            .map_err(|e| format!("descr: {e} (structured dtypes are not supported)"))?,
                    )
                }
                "fortran_order" => fortran = Some(p.boolean()?),
                "shape" => shape = Some(p.tuple()?),
                other => return Err(format!("header has an unknown key {other:?}")),
            }
            if !p.eat(',') {
                p.expect('}')?;
                break;
            }
        }
        if !p.rest.trim().is_empty() {
            return Err(format!("header has text after the dict: {:?}", p.rest.trim()));
        }
        let descr = descr.ok_or("header has no 'descr'")?;
        let (dtype, big_endian) = dtype_of(&descr)?;
        Ok(Header {
            dtype,
            big_endian,
            fortran_order: fortran.ok_or("header has no 'fortran_order'")?,
            shape: shape.ok_or("header has no 'shape'")?,
        })
    }
}

/// `<f4` and friends: the byte order and the type.
fn dtype_of(descr: &str) -> Result<(DType, bool), String> {
    let unsupported = || {
        format!("dtype {descr:?} is not supported (expected float16 '<f2', float32 '<f4', float64 '<f8', int64 '<i8' or uint8 '|u1')")
    };
    let mut chars = descr.chars();
    let big_endian = match chars.next() {
        Some('<') | Some('|') | Some('=') => cfg!(target_endian = "big") && descr.starts_with('='),
        Some('>') => true,
        _ => return Err(unsupported()),
    };
    let dtype = match chars.as_str() {
        "f2" => DType::Float16,
        "f4" => DType::Float32,
        "f8" => DType::Float64,
        "i8" => DType::Int64,
        "u1" => DType::UInt8,
        _ => return Err(unsupported()),
    };
    Ok((dtype, big_endian))
}

/// Checks the data length against the shape, then converts.
fn decode(header: &Header, data: &[u8]) -> Result<Tensor, String> {
    let size = item_size(header.dtype);
    let numel = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {:?} overflows the element count", header.shape))?;
    let needed = numel.checked_mul(size).filter(|&n| n == data.len()).ok_or_else(|| {
        format!(
            "shape {:?} of {} needs {} bytes of data, the file has {}",
            header.shape,
            header.dtype,
            numel
                .checked_mul(size)
                .map_or("more than usize".to_string(), |n| n.to_string()),
            data.len()
        )
    })?;
    debug_assert_eq!(needed, data.len());
    // Only now is allocating `numel` elements safe: the bytes are really there.
    let word = |chunk: &[u8]| {
        let mut raw = [0u8; 8];
        raw[..size].copy_from_slice(chunk);
        if header.big_endian {
            raw[..size].reverse();
        }
        raw
    };
    let chunks = data.chunks_exact(size);
    let values = match header.dtype {
        DType::Float16 => Data::Float(
            chunks
                .map(|c| half::f16::from_le_bytes(word(c)[..2].try_into().expect("2 bytes")).to_f64())
                .collect(),
        ),
        DType::Float32 => Data::Float(
            chunks
                .map(|c| f32::from_le_bytes(word(c)[..4].try_into().expect("4 bytes")) as f64)
                .collect(),
        ),
        DType::Float64 => Data::Float(chunks.map(|c| f64::from_le_bytes(word(c))).collect()),
        DType::Int64 => Data::Int(chunks.map(|c| i64::from_le_bytes(word(c))).collect()),
        DType::UInt8 => Data::Int(data.iter().map(|&b| i64::from(b)).collect()),
        DType::BFloat16 => unreachable!("numpy has no bfloat16; dtype_of never returns it"),
    };
    let values = if header.fortran_order {
        to_c_order(values, &header.shape)
    } else {
        values
    };
    Ok(Tensor {
        dtype: header.dtype,
        shape: header.shape.clone(),
        data: values,
    })
}

/// Reorders column-major data (first index fastest) to row-major.
fn to_c_order(data: Data, shape: &[usize]) -> Data {
    // Fortran strides: 1, d0, d0·d1, …
    let mut strides = Vec::with_capacity(shape.len());
    let mut s = 1;
    for &d in shape {
        strides.push(s);
        s *= d;
    }
    let numel: usize = shape.iter().product();
    let source_of = |flat: usize| {
        let mut rest = flat;
        let mut at = 0;
        for (&d, &stride) in shape.iter().zip(&strides).rev() {
            at += (rest % d) * stride;
            rest /= d;
        }
        at
    };
    match data {
        Data::Float(v) => Data::Float((0..numel).map(|i| v[source_of(i)]).collect()),
        Data::Int(v) => Data::Int((0..numel).map(|i| v[source_of(i)]).collect()),
    }
}

/// A cursor over the Python literal of the header.
struct Literal<'a> {
    rest: &'a str,
}

impl Literal<'_> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("malformed header: expected {c:?} at {:?}", self.excerpt()))
        }
    }

    fn excerpt(&self) -> String {
        self.rest.chars().take(20).collect()
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_space();
        let quote = match self.rest.chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err(format!("malformed header: expected a string at {:?}", self.excerpt())),
        };
        let body = &self.rest[1..];
        let end = body.find(quote).ok_or("malformed header: unterminated string")?;
        self.rest = &body[end + 1..];
        Ok(body[..end].to_string())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_space();
        for (word, value) in [("True", true), ("False", false)] {
            if let Some(r) = self.rest.strip_prefix(word) {
                self.rest = r;
                return Ok(value);
            }
        }
        Err(format!(
            "malformed header: expected True or False at {:?}",
            self.excerpt()
        ))
    }

    /// `(2, 3)`, `(5,)` or `()`.
    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect('(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(')') {
                return Ok(dims);
            }
            self.skip_space();
            let digits = self.rest.len() - self.rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                let what = if self.rest.starts_with('-') {
                    "a negative dimension"
                } else {
                    "a dimension"
                };
                return Err(format!("shape: unexpected {what} at {:?}", self.excerpt()));
            }
            let d = self.rest[..digits]
                .parse::<usize>()
                .map_err(|_| format!("shape: dimension {} is too large", &self.rest[..digits]))?;
            self.rest = &self.rest[digits..];
            dims.push(d);
            if !self.eat(',') {
                self.expect(')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_is_transposed_to_c_order() {
        // [[1, 2, 3], [4, 5, 6]] stored column by column.
        let data = Data::Int(vec![1, 4, 2, 5, 3, 6]);
        assert_eq!(to_c_order(data, &[2, 3]), Data::Int(vec![1, 2, 3, 4, 5, 6]));
    }

    #[test]
    fn header_literals() {
        let h = Header::parse("{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }   \n").unwrap();
        assert_eq!(
            (h.dtype, h.big_endian, h.fortran_order, h.shape),
            (DType::Float64, true, false, vec![2, 3])
        );
        let h = Header::parse("{\"shape\": (), \"descr\": \"|u1\", \"fortran_order\": True}").unwrap();
        assert_eq!((h.dtype, h.fortran_order, h.shape), (DType::UInt8, true, vec![]));
        assert!(
            Header::parse("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }")
                .unwrap_err()
                .contains("\"<i4\" is not supported")
        );
        assert!(
            Header::parse("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }")
                .unwrap_err()
                .contains("negative")
        );
        assert!(Header::parse("{'descr': '<f4', 'fortran_order': False}")
            .unwrap_err()
            .contains("no 'shape'"));
    }
}
