//! The Rust loss against values libtorch recorded in the bundled fixtures
//! (runs without libtorch).

use std::path::Path;

use ce_parity::compare::Tolerance;
use ce_parity::fixtures;
use ce_parity::runner::{judge, run_rust, verdict, Status};
use ce_parity::tensor::DType;

fn tolerance_for(case: &ce_parity::fixtures::Case) -> Tolerance {
    Tolerance::default_for(if case.input.dtype.is_float() {
        case.input.dtype
    } else {
        DType::Float32
    })
}

fn check_file_against_recorded(path: &Path) {
    let fixture = fixtures::load(path).unwrap();
    for case in &fixture.cases {
        assert!(
            case.expected.is_some(),
            "{}: case {} has nothing recorded",
            path.display(),
            case.name
        );
        let report = verdict(case, &run_rust(case), None, run_rust, tolerance_for(case));
        assert_eq!(
            report.status,
            Status::Passed,
            "{}: {}: {}",
            path.display(),
            case.name,
            report.note
        );
    }
}

#[test]
fn article_matches_recorded_libtorch_values() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    check_file_against_recorded(&root.join("fixtures/article.json"));
    let fixture = fixtures::load(&root.join("fixtures/article.json")).unwrap();
    let case = fixture
        .cases
        .iter()
        .find(|c| c.name == "article/smoothing_0.1/mean")
        .unwrap();
    let report = judge(case, &run_rust(case), None, Tolerance::default_for(case.input.dtype));
    let loss = report.loss.unwrap().to_f64()[0];
    assert!((loss - 0.596669).abs() < 1e-6, "{loss}");
    // The article's printed loss and second softmax row do not hold; the rest does.
    let verdicts: Vec<(&str, bool, Vec<usize>)> = report
        .claims
        .iter()
        .map(|c| (c.claim.quantity.name(), c.holds, c.wrong.clone()))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("softmax", false, vec![3, 4, 5]),
            ("smoothed_target", true, vec![]),
            ("loss", false, vec![0]),
            ("loss", false, vec![0])
        ]
    );
}

#[test]
fn every_bundled_fixture_matches_its_recorded_values() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for file in fixtures::discover(&root).unwrap() {
        check_file_against_recorded(&file);
    }
}
