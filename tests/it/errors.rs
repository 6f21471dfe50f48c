//! libtorch's rejections: every case of fixtures/errors.json gives Rust the
//! first line libtorch recorded, and the messages a PyTorch user knows are there.

use ce_parity::fixtures::Values;
use std::path::Path;

use ce_parity::fixtures::{self, Recorded};
use ce_parity::runner::{run_rust, Outcome};

#[test]
fn rust_rejects_with_libtorchs_first_line() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/errors.json");
    let fixture = fixtures::load(&path).unwrap();
    let mut messages = Vec::new();
    for case in &fixture.cases {
        let recorded = &case.expected.as_ref().unwrap().result;
        match (recorded, run_rust(case)) {
            (Recorded::Error(expected), Outcome::Error(actual)) => {
                assert_eq!(&actual, expected, "{}", case.name);
                messages.push(actual);
            }
            (Recorded::Values(Values { .. }), Outcome::Values(Values { .. })) => {}
            (recorded, actual) => panic!("{}: recorded {recorded:?}, rust {actual:?}", case.name),
        }
    }
    for known in [
        "Target 5 is out of bounds.",
        "label_smoothing must be between 0.0 and 1.0. Got: 1.5",
        "Expected input batch_size (3) to match target batch_size (2).",
        "weight tensor should be defined either for all 4 classes or no classes but got weight tensor of shape: [2]",
        "ignore_index is not supported for floating point target",
        "Expected floating point type for target with class probabilities, got Long",
        "For 1D input, 1D target must have size 1, but got target size: 2",
        "Expected target size [2, 5], got [2, 4]",
        "expected scalar type Float but found Double",
        "weight tensor should be defined either for all or no classes",
        "expected target dtype to be Long or Byte, but got Float",
        "\"log_softmax_lastdim_kernel_impl\" not implemented for 'Long'",
    ] {
        assert!(messages.iter().any(|m| m == known), "no case rejects with {known:?}");
    }
    assert!(messages.len() >= 70, "{}", messages.len());
}
