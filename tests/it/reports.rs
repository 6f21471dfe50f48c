//! check's CI conventions through the binary: JUnit XML whose counts agree
//! with the summary, `-k`, `--quiet`, failing ids after the summary, and the
//! run's facts in the JSON report. Runs without libtorch (recorded values).

use ce_parity::fixtures::Values;
use std::path::Path;

use crate::binary::ce_parity;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The article's case with its recorded loss replaced by the article's
/// printed 0.4122, beside an untouched copy of the other article cases.
fn tampered_article(dir: &Path) -> String {
    let path = root().join("fixtures/article.json");
    let mut fixture = ce_parity::fixtures::load(&path).unwrap();
    let case = fixture
        .cases
        .iter_mut()
        .find(|c| c.name == "article/smoothing_0.1/mean")
        .unwrap();
    if let Some(ce_parity::fixtures::Recorded::Values(Values { loss, .. })) =
        case.expected.as_mut().map(|e| &mut e.result)
    {
        *loss = ce_parity::tensor::Tensor::scalar(loss.dtype, 0.4122);
    }
    let out = dir.join("article-printed.json");
    ce_parity::fixtures::save(&out, &fixture, false).unwrap();
    out.display().to_string()
}

#[test]
fn junit_parses_and_its_counts_agree_with_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let file = tampered_article(dir.path());
    let human = ce_parity(&["check", &file, "--no-libtorch"], dir.path());
    assert_eq!(human.status.code(), Some(1));
    let human = text(&human.stdout);
    let summary = human.lines().find(|l| l.contains(" passed, ")).unwrap().to_string();

    let out = ce_parity(&["check", &file, "--no-libtorch", "--format", "junit"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let report = quick_junit::Report::deserialize_from_str(&text(&out.stdout)).unwrap();
    assert_eq!(report.failures, 1);
    assert_eq!(
        summary,
        format!(
            "{} passed, {} failed",
            report.tests - report.failures - report.skipped,
            report.failures
        )
    );
    let failed: Vec<_> = report.test_suites[0]
        .test_cases
        .iter()
        .filter(|c| matches!(c.status, quick_junit::TestCaseStatus::NonSuccess { .. }))
        .map(|c| c.name.to_string())
        .collect();
    assert_eq!(failed, ["article/smoothing_0.1/mean"]);
}

#[test]
fn the_articles_printed_loss_fails_in_assert_close_words() {
    let dir = tempfile::tempdir().unwrap();
    let file = tampered_article(dir.path());
    let out = ce_parity(
        &["check", &file, "--no-libtorch", "-k", "smoothing_0.1/mean"],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("rust vs expected: loss"), "{stdout}");
    assert!(stdout.contains("Mismatched elements: 1 / 1 (100.0%)"), "{stdout}");
    assert!(
        stdout.contains("Greatest absolute difference: 1.845e-1 at index () (up to 1e-5 allowed); rust 0.59666"),
        "{stdout}"
    );
    assert!(stdout.contains("expected 0.4122"), "{stdout}");
    // The failing id follows the summary.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[lines.len() - 2], "0 passed, 1 failed");
    assert_eq!(
        lines[lines.len() - 1],
        format!("FAILED {file}::article/smoothing_0.1/mean")
    );
}

#[test]
fn k_selects_cases_and_quiet_prints_only_failures() {
    let dir = tempfile::tempdir().unwrap();
    let file = tampered_article(dir.path());
    let all = text(&ce_parity(&["check", &file, "--no-libtorch"], dir.path()).stdout);
    let cases = all
        .lines()
        .filter(|l| l.contains("  pass ") || l.contains("  FAIL "))
        .count();
    assert!(cases > 2, "{all}");

    let one = ce_parity(
        &["check", &file, "--no-libtorch", "-k", "no_smoothing/mean"],
        dir.path(),
    );
    assert_eq!(one.status.code(), Some(0));
    assert_eq!(text(&one.stdout).lines().filter(|l| l.contains("  pass ")).count(), 1);

    let quiet = text(&ce_parity(&["check", &file, "--no-libtorch", "--quiet"], dir.path()).stdout);
    assert!(!quiet.contains("  pass "), "{quiet}");
    assert_eq!(quiet.lines().filter(|l| l.contains("  FAIL ")).count(), 1, "{quiet}");

    let none = ce_parity(&["check", &file, "-k", "no such case"], dir.path());
    assert_eq!(none.status.code(), Some(2));
    assert!(
        text(&none.stderr).contains("-k \"no such case\""),
        "{}",
        text(&none.stderr)
    );
}

#[test]
fn json_names_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = ce_parity(
        &["check", "--no-libtorch", "-k", "article/", "--format", "json"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ce_parity_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["libtorch_live"], false);
    assert!(report["aten_cpu_capability"].is_null());
    assert!(report["elapsed_seconds"].as_f64().unwrap() > 0.0);
}
