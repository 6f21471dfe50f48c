//! The `ce-parity` binary: output, exit codes 0/1/2, and messages.

use std::path::Path;
use std::process::Output;

use crate::binary::ce_parity;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn article_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/article.json")).unwrap()
}

#[test]
fn bundled_fixtures_pass_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = ce_parity(&["check"], dir.path());
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("{} passed, 0 failed", text.matches(" pass ").count())),
        "{last}"
    );
    // The article's loss is libtorch's, and its printed 0.4122 does not hold.
    assert!(text.contains("article/smoothing_0.1/mean") && text.contains("0.596669"));
    assert!(text.contains("claim loss = 0.412200") && text.contains("does not hold; true value 0.596669"));
}

#[test]
fn recorded_loss_off_by_one_percent_fails_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // 0.59666866 × 1.01
    let text = article_text().replace("\"data\": [0.59666866]", "\"data\": [0.60263535]");
    assert_ne!(text, article_text());
    std::fs::write(dir.path().join("off.json"), text).unwrap();
    let out = ce_parity(&["check", "--no-libtorch", "off.json"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL") && text.contains("rust vs expected: loss"),
        "{text}"
    );
    // The summary, then the failing case's id.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[lines.len() - 2..],
        ["5 passed, 1 failed", "FAILED off.json::article/smoothing_0.1/mean"]
    );
    if cfg!(feature = "torch") {
        let out = ce_parity(&["check", "off.json"], dir.path());
        assert_eq!(out.status.code(), Some(1));
        assert!(stdout(&out).contains("libtorch vs expected: loss"));
    }
}

#[test]
fn loose_tolerance_flags_override_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let text = article_text().replace("\"data\": [0.59666866]", "\"data\": [0.60263535]");
    // The recorded loss really changed: without it this test could not fail.
    assert_ne!(text, article_text());
    std::fs::write(dir.path().join("off.json"), text).unwrap();
    let out = ce_parity(&["check", "--no-libtorch", "--rtol", "0.02", "off.json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn bad_input_exits_2_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("typo.json"),
        article_text().replacen("\"reduction\"", "\"reductoin\"", 1),
    )
    .unwrap();
    let out = ce_parity(&["check", "typo.json"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("typo.json") && err.contains("article/smoothing_0.1/mean") && err.contains("reductoin"),
        "{err}"
    );

    let out = ce_parity(&["check", "missing.json"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json"));

    let out = ce_parity(&["check", "--rtol=-1", "x"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rtol"));

    let out = ce_parity(&["frobnicate"], dir.path());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn json_report_has_every_case_and_totals() {
    let dir = tempfile::tempdir().unwrap();
    let out = ce_parity(&["check", "--format", "json"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let cases: Vec<&serde_json::Value> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["cases"].as_array().unwrap())
        .collect();
    assert_eq!(report["passed"].as_u64().unwrap() as usize, cases.len());
    let article = cases
        .iter()
        .find(|c| c["name"] == "article/smoothing_0.1/mean")
        .unwrap();
    assert!((article["loss"][0].as_f64().unwrap() - 0.596669).abs() < 1e-6);
    assert_eq!(article["claims"][2]["holds"], false);
}
