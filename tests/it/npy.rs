//! Reading `.npy` files: numpy's own output (tests/data/npy, written by
//! make.py with np.save) reads back to the values it was given, and hostile
//! files are errors — never a panic, never an allocation of a claimed size.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use ce_parity::npy;
use ce_parity::tensor::{DType, Data};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/npy").join(name)
}

const SIM_I2T: [f64; 6] = [2.0, 1.0, 0.1, 0.5, 1.5, 0.8];

#[test]
fn numpy_files_read_back_to_their_values() {
    let t = npy::load(&data("logits.npy")).unwrap();
    assert_eq!((t.dtype, t.shape.clone()), (DType::Float32, vec![2, 3]));
    assert_eq!(t.to_f64(), SIM_I2T.map(|v| v as f32 as f64));

    let t = npy::load(&data("logits_f64_big_endian.npy")).unwrap();
    assert_eq!((t.dtype, t.to_f64()), (DType::Float64, SIM_I2T.to_vec()));

    // Column-major on disk, row-major here.
    let t = npy::load(&data("logits_fortran.npy")).unwrap();
    assert_eq!(
        (t.shape.clone(), t.to_f64()),
        (vec![2, 3], SIM_I2T.map(|v| v as f32 as f64).to_vec())
    );

    let t = npy::load(&data("logits_f16.npy")).unwrap();
    assert_eq!(t.dtype, DType::Float16);
    assert_eq!(t.to_f64(), SIM_I2T.map(|v| half::f16::from_f64(v).to_f64()));

    let t = npy::load(&data("targets.npy")).unwrap();
    assert_eq!(
        (t.dtype, t.shape.clone(), t.data),
        (DType::Int64, vec![2], Data::Int(vec![0, 1]))
    );
    let t = npy::load(&data("targets_u8.npy")).unwrap();
    assert_eq!((t.dtype, t.data), (DType::UInt8, Data::Int(vec![0, 1])));
    let t = npy::load(&data("targets_0d.npy")).unwrap();
    assert_eq!((t.shape.clone(), t.data), (vec![], Data::Int(vec![1])));
    let t = npy::load(&data("targets_kdim.npy")).unwrap();
    assert_eq!((t.shape.clone(), t.data), (vec![2, 2], Data::Int(vec![0, 2, 1, -100])));
    let t = npy::load(&data("logits_kdim.npy")).unwrap();
    assert_eq!(t.shape, vec![2, 3, 2]);
    assert_eq!(t.to_f64(), (0..12).map(|i| i as f64 / 4.0).collect::<Vec<_>>());
}

#[test]
fn unsupported_dtypes_name_themselves() {
    let e = npy::load(&data("targets_i32.npy")).unwrap_err().to_string();
    assert!(
        e.contains("targets_i32.npy") && e.contains("\"<i4\" is not supported"),
        "{e}"
    );
}

/// A .npy file with this header text (padded as numpy pads it) and data.
pub(crate) fn npy_bytes(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    let length_bytes = if version == 1 { 2 } else { 4 };
    let mut text = header.to_string();
    while !(8 + length_bytes + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let len = text.len() as u32;
    out.extend(&len.to_le_bytes()[..length_bytes]);
    out.extend(text.as_bytes());
    out.extend(data);
    out
}

fn header(descr: &str, shape: &str) -> String {
    format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}")
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn a_hand_made_file_matches_numpys_layout() {
    // Our helper writes what np.save wrote, byte for byte.
    let ours = npy_bytes(1, &header("<f4", "(2, 3)"), &f32_bytes(&SIM_I2T.map(|v| v as f32)));
    assert_eq!(ours, std::fs::read(data("logits.npy")).unwrap());
    // Version 2 has a 4-byte header length.
    let t = npy::parse(&npy_bytes(2, &header("<f4", "(1,)"), &f32_bytes(&[3.5]))).unwrap();
    assert_eq!(t.to_f64(), vec![3.5]);
}

#[test]
fn hostile_files_are_errors() {
    let good = std::fs::read(data("logits.npy")).unwrap();
    // Every truncation.
    for cut in 0..good.len() {
        assert!(npy::parse(&good[..cut]).is_err(), "cut at {cut}");
    }
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"PK\x03\x04 not numpy".to_vec(), "not a .npy file"),
        (
            npy_bytes(9, &header("<f4", "(1,)"), &[0; 4]),
            "unsupported .npy version 9",
        ),
        (
            npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", &[0; 4]),
            "malformed header",
        ),
        (
            npy_bytes(1, "{'descr': '<f4', 'shape': (1,), }", &[0; 4]),
            "no 'fortran_order'",
        ),
        (
            npy_bytes(1, &header("<f4", "(1, 2)").replace('}', "'x': 1}"), &[0; 8]),
            "unknown key \"x\"",
        ),
        (
            npy_bytes(1, &header("<f4", "(2, 3)"), &[0; 20]),
            "needs 24 bytes of data, the file has 20",
        ),
        (
            npy_bytes(1, &header("<f4", "(2,)"), &[0; 9]),
            "needs 8 bytes of data, the file has 9",
        ),
        (npy_bytes(1, &header("<f4", "(-2, 3)"), &[]), "negative dimension"),
        (
            npy_bytes(1, &header("<f4", "(99999999999999999999999,)"), &[]),
            "too large",
        ),
        // Claims far beyond memory: refused before any allocation.
        (
            npy_bytes(1, &header("<f8", "(1099511627776, 1024)"), &[0; 8]),
            "needs 9007199254740992 bytes",
        ),
        (
            npy_bytes(1, &header("<f8", "(4294967296, 4294967296, 4294967296)"), &[]),
            "overflows",
        ),
        (
            npy_bytes(1, &header("<c16", "(1,)"), &[0; 16]),
            "\"<c16\" is not supported",
        ),
        (npy_bytes(1, &header("|O", "(1,)"), &[0; 8]), "\"|O\" is not supported"),
        (
            npy_bytes(
                1,
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                &[0; 4],
            ),
            "structured dtypes are not supported",
        ),
        (
            npy_bytes(1, &header("<f4", "(1,)"), &[0; 4]).replacen_byte(10, 0xff),
            "not ASCII",
        ),
    ];
    for (bytes, expected) in cases {
        let e = npy::parse(&bytes).unwrap_err();
        assert!(e.0.contains(expected), "expected {expected:?} in {e:?}");
    }
    // A version-2 header length of 4 GiB in a tiny file.
    let mut lying = npy_bytes(2, &header("<f4", "(1,)"), &[0; 4]);
    lying[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(npy::parse(&lying)
        .unwrap_err()
        .0
        .contains("the header claims 4294967295 bytes"));
}

trait ReplaceByte {
    fn replacen_byte(self, at: usize, value: u8) -> Self;
}

impl ReplaceByte for Vec<u8> {
    fn replacen_byte(mut self, at: usize, value: u8) -> Self {
        self[at] = value;
        self
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Random edits of a real file: an error or a tensor whose size the bytes
    /// back, never a panic.
    #[test]
    fn mutated_npy_bytes_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = std::fs::read(data("logits_kdim.npy")).unwrap();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(t) = npy::parse(&bytes) {
            prop_assert_eq!(t.len(), t.numel());
            prop_assert!(t.len() <= bytes.len());
        }
    }
}
