//! The fixture format: round trips, defaults, and errors that name the field.

use ce_parity::fixtures::Values;
use std::path::Path;

use ce_parity::fixtures::{self, Case, Expected, Fixture, Recorded};
use ce_parity::loss::Reduction;
use ce_parity::tensor::{DType, Tensor};

fn parse(text: &str) -> Result<Fixture, String> {
    fixtures::parse(Path::new("t.json"), text).map_err(|e| e.to_string())
}

const MINIMAL: &str = r#"{"format": "ce-parity-fixture/1", "cases": [
  {"name": "a", "input": {"dtype": "float32", "shape": [1, 2], "data": [0.1, "-inf"]},
   "target": {"dtype": "int64", "shape": [1], "data": [1]}}]}"#;

#[test]
fn defaults_follow_pytorch() {
    let f = parse(MINIMAL).unwrap();
    let case = &f.cases[0];
    assert_eq!(case.reduction, Reduction::Mean);
    assert_eq!(case.ignore_index, -100);
    assert_eq!(case.label_smoothing, 0.0);
    assert!(case.weight.is_none() && case.grad_output.is_none() && case.expected.is_none());
    // Values are rounded to their dtype, and the strings spell infinities.
    assert_eq!(case.input.to_f64(), vec![0.1f32 as f64, f64::NEG_INFINITY]);
}

#[test]
fn save_then_load_is_identity() {
    let mut case = Case::new(
        "round trip",
        Tensor::float(DType::Float32, vec![2, 2], vec![0.1, f64::NAN, 1e-30, 3e38]),
        Tensor::int(DType::Int64, vec![2], vec![1, -100]),
    );
    case.weight = Some(Tensor::float(DType::Float32, vec![2], vec![0.5, 2.0]));
    case.label_smoothing = 0.1;
    case.ignore_index = -7;
    case.expected = Some(Expected {
        producer: "test".into(),
        result: Recorded::Values(Values {
            loss: Tensor::float(DType::Float32, vec![], vec![f64::INFINITY]),
            grad_input: None,
            grad_target: None,
            named_grads: Vec::new(),
        }),
    });
    let mut other = Case::new(
        "error",
        Tensor::float(DType::Float64, vec![3], vec![1.0 / 3.0, 2.0, 0.0]),
        Tensor::int(DType::UInt8, vec![], vec![255]),
    );
    other.expected = Some(Expected {
        producer: "test".into(),
        result: Recorded::Error("Target 255 is out of bounds.".into()),
    });
    let original = Fixture {
        description: "d".into(),
        cases: vec![case, other],
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.json");
    fixtures::save(&path, &original, false).unwrap();
    let loaded = fixtures::load(&path).unwrap();
    // NaN != NaN, so compare the text of a second save instead of the structs.
    assert_eq!(fixtures::to_json(&loaded), fixtures::to_json(&original));
    assert_eq!(loaded.cases[1].input.to_f64()[0], 1.0 / 3.0);
    // Never overwrite unless asked.
    let err = fixtures::save(&path, &original, false).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
}

#[test]
fn errors_name_the_case_and_field() {
    let typo = MINIMAL.replace("\"target\"", "\"label_smothing\": 0.1, \"target\"");
    let e = parse(&typo).unwrap_err();
    assert!(
        e.contains("t.json: case #0 (\"a\")") && e.contains("unknown field `label_smothing`"),
        "{e}"
    );

    let bad_len = MINIMAL.replace("\"shape\": [1, 2]", "\"shape\": [1, 3]");
    let e = parse(&bad_len).unwrap_err();
    assert!(
        e.contains("field `input.data`") && e.contains("needs 3 elements, data has 2"),
        "{e}"
    );

    let negative = MINIMAL.replace("\"shape\": [1, 2]", "\"shape\": [-1, 2]");
    assert!(parse(&negative).unwrap_err().contains("input.shape[0]"));

    let huge = MINIMAL.replace("\"shape\": [1, 2]", "\"shape\": [4294967296, 4294967296, 4294967296]");
    assert!(parse(&huge).unwrap_err().contains("overflows"));

    let bad_dtype = MINIMAL.replace("\"float32\"", "\"float8\"");
    assert!(parse(&bad_dtype).unwrap_err().contains("unknown dtype \"float8\""));

    let float_target = MINIMAL.replace("\"data\": [1]", "\"data\": [1.5]");
    assert!(parse(&float_target).unwrap_err().contains("field `target.data[0]`"));

    let dup = MINIMAL.replace("]}}]}", "]}}, {\"name\": \"a\", \"input\": {\"dtype\": \"float32\", \"shape\": [], \"data\": [1]}, \"target\": {\"dtype\": \"int64\", \"shape\": [], \"data\": [0]}}]}");
    assert!(parse(&dup).unwrap_err().contains("duplicate case name \"a\""));

    let wrong_format = MINIMAL.replace("ce-parity-fixture/1", "ce-parity-fixture/2");
    assert!(parse(&wrong_format).unwrap_err().contains("field `format`"));

    let reduction = MINIMAL.replace("\"target\"", "\"reduction\": \"avg\", \"target\"");
    assert!(parse(&reduction).unwrap_err().contains("unknown reduction \"avg\""));

    assert!(parse("{\"format\": ").unwrap_err().starts_with("t.json: "));
}

/// Saving without overwrite never replaces a file, and no save leaves a
/// temporary file behind, whether it succeeded or not.
#[test]
fn saving_never_clobbers_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cases.json");
    let fixture = parse(MINIMAL).unwrap();
    fixtures::save(&path, &fixture, false).unwrap();
    let first = std::fs::read_to_string(&path).unwrap();
    assert_eq!(parse(&first).unwrap(), fixture);

    let mut changed = fixture.clone();
    changed.cases[0].label_smoothing = 0.25;
    let refused = fixtures::save(&path, &changed, false).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        first,
        "the existing file is untouched"
    );

    fixtures::save(&path, &changed, true).unwrap();
    assert_eq!(parse(&std::fs::read_to_string(&path).unwrap()).unwrap(), changed);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["cases.json".to_string()]);
}
