//! `ce-parity explain` and `ce_parity::explain`: the article's four steps with
//! the right values, its wrong numbers flagged, cases from files and tensors,
//! errors with exit 2, large cases summarised, and K-dim weighted steps
//! against live libtorch. Numbers come from independent sources: softmax and
//! smoothed targets in closed form here, losses as recorded by libtorch in
//! fixtures/article.json.

use ce_parity::fixtures::Values;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use ce_parity::explain::{explain, Against, Verdict};
use ce_parity::fixtures::{Case, LossKind};
use ce_parity::runner::Outcome;
use ce_parity::tensor::{DType, Tensor};

use crate::binary::ce_parity;

const ARTICLE: &str = "article/smoothing_0.1/mean";
/// libtorch 2.13's values for the article, as recorded in fixtures/article.json.
const ARTICLE_LOSS: f64 = 0.59666866;
const ARTICLE_PER_SAMPLE: [f64; 2] = [0.5136966, 0.6796407];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn article_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/article.json")
}

fn explain_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out: Output = ce_parity(&[&["explain"], args].concat(), dir);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// The article's input as float32 holds it, softmax over each row in f64.
fn article_softmax() -> Vec<f64> {
    let x: Vec<f64> = [2.0f32, 1.0, 0.1, 0.5, 1.5, 0.8]
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    x.chunks(3)
        .flat_map(|row| {
            let sum: f64 = row.iter().map(|v| v.exp()).sum();
            row.iter().map(move |v| v.exp() / sum).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn no_arguments_explains_the_article_and_flags_its_wrong_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = explain_in(dir.path(), &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    for title in [
        "Step 1. Softmax probabilities",
        "Step 2. Smoothed target distribution",
        "Step 3. Each sample's smoothed cross-entropy",
        "Step 4. Reduction",
    ] {
        assert!(out.contains(title), "{title} missing:\n{out}");
    }
    // Softmax rows (the second as it truly is), smoothed targets, per-sample losses.
    for row in [
        "0.6590  0.2424  0.0986",
        "0.1973  0.5363  0.2663",
        "0.9333  0.0333  0.0333",
        "0.0333  0.9333  0.0333",
        "sample 0  0.5137",
        "sample 1  0.6796",
    ] {
        assert!(out.contains(row), "{row} missing:\n{out}");
    }
    assert!(out.contains("loss = 0.5967  (0.596669)"), "{out}");
    assert!(!out.contains("loss = 0.4122"), "{out}");
    // The article's claims: its second softmax row and its loss do not hold.
    assert!(
        out.contains("sample 1: printed [0.1863, 0.6681, 0.1456], true [0.1973, 0.5363, 0.2663]"),
        "{out}"
    );
    assert!(out.contains("printed 0.4122 — does not hold;"), "{out}");
    assert!(out.contains("printed [0.9333, 0.0333, 0.0333, 0.0333, 0.9333, 0.0333] — holds"));
    if cfg!(feature = "torch") {
        assert!(
            out.contains("printed 0.4122 — does not hold; libtorch gives 0.596669"),
            "{out}"
        );
        assert_eq!(out.matches("✓ agrees with libtorch").count(), 4, "{out}");
        assert!(out.lines().last().unwrap().starts_with("4 of 4 steps agree"), "{out}");
    } else {
        assert!(out.contains("✓ agrees with the recorded values"), "{out}");
        assert_eq!(
            out.matches("· unchecked: this build has no libtorch").count(),
            3,
            "{out}"
        );
    }
}

#[test]
fn json_steps_match_closed_forms_and_recorded_libtorch_values() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = explain_in(dir.path(), &["--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(report["case"], ARTICLE);
    assert_eq!(report["file"], "fixtures/article.json");
    let steps = report["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["softmax", "smoothed_target", "loss_per_sample", "loss"]);
    let flat = flat_values;
    let close = |got: &[f64], want: &[f64], tol: f64| {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "{got:?} vs {want:?}");
        }
    };
    close(&flat(&steps[0]["rust"]), &article_softmax(), 1e-12);
    let (on, off) = (0.9 + 0.1 / 3.0, 0.1 / 3.0);
    close(&flat(&steps[1]["rust"]), &[on, off, off, off, on, off], 1e-12);
    close(&flat(&steps[2]["rust"]), &ARTICLE_PER_SAMPLE, 1e-6);
    close(&flat(&steps[3]["rust"]), &[ARTICLE_LOSS], 1e-6);
    assert_eq!(steps[0]["shape"], serde_json::json!([2, 3]));
    assert_eq!(steps[3]["layout"], "scalar");
    // Step 4 is checked against the recorded value even without libtorch.
    assert_eq!(steps[3]["verdict"], "agree");
    assert!(steps[3]["checked_against"]
        .as_str()
        .unwrap()
        .contains("the recorded values"));
    let expected_verdicts = if cfg!(feature = "torch") {
        ["agree"; 4]
    } else {
        ["unchecked", "unchecked", "unchecked", "agree"]
    };
    let verdicts: Vec<&str> = steps.iter().map(|s| s["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, expected_verdicts);
    if cfg!(feature = "torch") {
        close(&flat(&steps[3]["libtorch"]), &[ARTICLE_LOSS], 1e-7);
        assert!(steps[0]["max_abs_err"].as_f64().unwrap() < 1e-6);
    }
    let holds: Vec<bool> = report["claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["holds"].as_bool().unwrap())
        .collect();
    assert_eq!(holds, [false, true, false, false]);
    assert_eq!(report["claims"][0]["wrong_indices"], serde_json::json!([3, 4, 5]));
    assert_eq!(report["summary"]["claims_do_not_hold"], 3);
    assert_eq!(report["shown"]["complete"], true);
}

fn flat_values(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(flat_values).collect(),
        other => vec![other.as_f64().unwrap()],
    }
}

#[test]
fn a_case_from_a_file_by_name_and_the_files_only_case() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(article_path(), dir.path().join("article.json")).unwrap();
    let (code, out, err) = explain_in(dir.path(), &["article.json", "--case", "article/weighted/mean"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("article/weighted/mean (article.json)"), "{out}");
    assert!(out.contains("weight=[1, 2, 0.5]"), "{out}");
    assert!(
        out.contains("(1 − ε)·w[y_i]·(−log p[i,y_i]) + (ε/C)·Σ_c w[c]·(−log p[i,c])"),
        "{out}"
    );
    // Mean divides by w[0] + w[1] = 3; recorded libtorch loss 0.58711576.
    assert!(
        out.contains("/ 3 (reduction \"mean\")") && out.contains("(0.587116)"),
        "{out}"
    );

    // Several cases and no --case: exit 2, naming them.
    let (code, _, err) = explain_in(dir.path(), &["article.json"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("article.json") && err.contains("--case") && err.contains(ARTICLE),
        "{err}"
    );

    // A file with one case needs no --case.
    let mut fixture: Value = serde_json::from_str(&std::fs::read_to_string(article_path()).unwrap()).unwrap();
    let sum_case = fixture["cases"][1].clone();
    fixture["cases"] = Value::Array(vec![sum_case]);
    std::fs::write(dir.path().join("one.json"), fixture.to_string()).unwrap();
    let (code, out, err) = explain_in(dir.path(), &["one.json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("loss = Σ_i ℓ_i = 1.193337 (reduction \"sum\")"), "{out}");
}

#[test]
fn an_unknown_case_exits_2_naming_the_file_and_the_case() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(article_path(), dir.path().join("art.json")).unwrap();
    let (code, out, err) = explain_in(dir.path(), &["art.json", "--case", "article/nope"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.is_empty());
    assert!(
        err.contains("art.json") && err.contains("\"article/nope\"") && err.contains("article/weighted/mean"),
        "{err}"
    );
    let (code, _, err) = explain_in(dir.path(), &["--case", "article/nope"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("bundled fixtures") && err.contains("article/nope"),
        "{err}"
    );
    let (code, _, err) = explain_in(dir.path(), &["missing.json"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("missing.json"), "{err}");
}

#[test]
fn cases_that_cannot_be_explained_exit_2_naming_the_case() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = serde_json::json!({
        "format": "ce-parity-fixture/1",
        "cases": [
            {"name": "contrastive", "loss": "clip", "temperature": 0.07,
             "input": {"dtype": "float32", "shape": [2, 2], "data": [1, 0, 0, 1]}},
            {"name": "out_of_range",
             "input": {"dtype": "float32", "shape": [1, 2], "data": [1, 0]},
             "target": {"dtype": "int64", "shape": [1], "data": [5]}}
        ]
    });
    std::fs::write(dir.path().join("odd.json"), fixture.to_string()).unwrap();
    let (code, _, err) = explain_in(dir.path(), &["odd.json", "--case", "contrastive"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("odd.json") && err.contains("contrastive") && err.contains("clip"),
        "{err}"
    );
    let (code, _, err) = explain_in(dir.path(), &["odd.json", "--case", "out_of_range"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("out_of_range") && err.contains("Target 5 is out of bounds"),
        "{err}"
    );
}

#[test]
fn a_wrong_recorded_loss_is_a_disagreement_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // 0.59666866 × 1.01
    let text = std::fs::read_to_string(article_path())
        .unwrap()
        .replace("\"data\": [0.59666866]", "\"data\": [0.60263535]");
    std::fs::write(dir.path().join("off.json"), text).unwrap();
    let (code, out, _) = explain_in(dir.path(), &["off.json", "--case", ARTICLE, "--no-libtorch"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("✗ DISAGREES with the recorded values"), "{out}");
    assert!(
        out.contains("libtorch gives:") && out.contains("loss = 0.6026"),
        "{out}"
    );
    assert!(out.lines().last().unwrap().contains("1 disagree"), "{out}");
}

/// A 50×40 case: logits and targets that vary, smoothing 0.1, nothing recorded.
fn large_fixture(dir: &Path) -> PathBuf {
    let (n, c) = (50usize, 40usize);
    let logits: Vec<f64> = (0..n * c).map(|i| ((i * 37 % 101) as f64 - 50.0) / 10.0).collect();
    let targets: Vec<i64> = (0..n).map(|i| (i * 7 % c) as i64).collect();
    let fixture = serde_json::json!({
        "format": "ce-parity-fixture/1",
        "cases": [{
            "name": "large",
            "input": {"dtype": "float32", "shape": [n, c], "data": logits},
            "target": {"dtype": "int64", "shape": [n], "data": targets},
            "label_smoothing": 0.1
        }]
    });
    let path = dir.join("large.json");
    std::fs::write(&path, fixture.to_string()).unwrap();
    path
}

#[test]
fn a_case_larger_than_a_screen_is_summarised() {
    let dir = tempfile::tempdir().unwrap();
    large_fixture(dir.path());
    let (code, out, err) = explain_in(dir.path(), &["large.json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("showing 8 of 50 samples and 8 of 40 classes;"), "{out}");
    if cfg!(feature = "torch") {
        assert!(out.contains("every value was checked"), "{out}");
    }
    assert_eq!(out.matches("… 42 more samples").count(), 4, "{out}"); // input, steps 1–3
    let softmax_rows: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Step 1."))
        .filter(|l| l.starts_with("  sample "))
        .take(8)
        .collect();
    assert_eq!(softmax_rows.len(), 8);
    for row in softmax_rows {
        assert_eq!(row.split_whitespace().count(), 2 + 8 + 1, "{row}"); // "sample i", 8 values, "…"
    }

    let (code, out, _) = explain_in(dir.path(), &["large.json", "--format", "json"]);
    assert_eq!(code, Some(0));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["shown"]["complete"], false);
    assert_eq!(report["samples"], 50);
    let softmax = &report["steps"][0];
    assert_eq!(softmax["shape"], serde_json::json!([50, 40]));
    let rows = softmax["rust"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r.as_array().unwrap().len() == 8));
    assert_eq!(report["steps"][2]["rust"].as_array().unwrap().len(), 8);
}

#[test]
fn tensors_from_npy_files_explain_like_the_article() {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/npy");
    let (x, t) = (data.join("logits.npy"), data.join("targets.npy"));
    let (x, t) = (x.to_str().unwrap(), t.to_str().unwrap());
    let args = ["--input", x, "--target", t, "--label-smoothing", "0.1"];
    let (code, out, err) = explain_in(dir.path(), &args);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("logits.npy (tensors from .npy files)"), "{out}");
    assert!(out.contains("loss = 0.5967  (0.596669)"), "{out}");
    let (code, _, err) = explain_in(dir.path(), &[&["--case", ARTICLE][..], &args].concat());
    assert_eq!(code, Some(2));
    assert!(err.contains("not both"), "{err}");
}

/// The article's logits with K-dim shape (N=2, C=3, d=2), a weight, an
/// ignored position and smoothing.
fn kdim_weighted_case() -> Case {
    let input = Tensor::float(
        DType::Float32,
        vec![2, 3, 2],
        vec![2.0, 0.5, 1.0, 1.5, 0.1, 0.8, -1.0, 3.0, 0.25, 2.0, 1.5, -0.5],
    );
    let target = Tensor::int(DType::Int64, vec![2, 2], vec![0, 1, -100, 2]);
    let mut case = Case::new("kdim/weighted", input, target);
    case.weight = Some(Tensor::float(DType::Float32, vec![3], vec![1.0, 2.0, 0.5]));
    case.label_smoothing = 0.1;
    case
}

#[test]
fn without_libtorch_only_recorded_steps_are_checked() {
    let article = ce_parity::fixtures::bundled_file("fixtures/article.json")
        .unwrap()
        .unwrap();
    let none = article
        .cases
        .iter()
        .find(|c| c.name == "article/smoothing_0.1/none")
        .unwrap();
    let explained = explain(none, Against::Recorded).unwrap();
    assert!(!explained.live);
    let verdicts: Vec<Verdict> = explained.steps.iter().map(|s| s.check.verdict).collect();
    // Under reduction "none" the recorded loss is the per-sample loss.
    assert_eq!(
        verdicts,
        [Verdict::Unchecked, Verdict::Unchecked, Verdict::Agree, Verdict::Agree]
    );
    assert_eq!(explained.verdict(), Verdict::Agree);

    // Ignored samples have no smoothed target; their loss is 0.
    let case = kdim_weighted_case();
    let explained = explain(&case, Against::Recorded).unwrap();
    assert_eq!(explained.verdict(), Verdict::Unchecked);
    let q = explained.steps[1].rust.to_f64();
    let g = explained.geometry;
    assert_eq!(g.samples(), 4);
    assert!((0..3).all(|c| q[g.index(2, c)].is_nan()));
    assert!((q[g.index(3, 2)] - (0.9 + 0.1 / 3.0)).abs() < 1e-12);
    assert_eq!(explained.steps[2].rust.to_f64()[2], 0.0);
}

#[cfg(feature = "torch")]
#[test]
fn kdim_weighted_steps_match_live_libtorch() {
    use ce_parity::fixtures::Quantity;
    use ce_parity::loss::Reduction;

    let case = kdim_weighted_case();
    let explained = explain(&case, Against::Libtorch).unwrap();
    assert!(explained.live);
    for step in &explained.steps {
        assert_eq!(
            step.check.verdict,
            Verdict::Agree,
            "{:?}: {}",
            step.quantity,
            step.check.note
        );
    }
    // Per-sample losses straight from libtorch's cross_entropy(reduction="none").
    let mut none = case.clone();
    none.reduction = Reduction::None;
    let Outcome::Values(Values { loss, .. }) = ce_parity::reference::run_libtorch(&none) else {
        panic!("libtorch rejects the case");
    };
    let per_sample = explained
        .steps
        .iter()
        .find(|s| s.quantity == Quantity::LossPerSample)
        .unwrap();
    assert_eq!(per_sample.rust.shape, [2, 2]);
    for (rust, torch) in per_sample.rust.to_f64().iter().zip(loss.to_f64()) {
        assert!((rust - torch).abs() <= 1e-5 + 1.3e-6 * torch.abs(), "{rust} vs {torch}");
    }
    // libtorch's smoothed target has no value at the ignored position either.
    let q = explained.steps[1].libtorch.as_ref().unwrap().to_f64();
    assert!((0..3).all(|c| q[explained.geometry.index(2, c)].is_nan()));
}

/// Every bundled cross-entropy case the loss accepts (f16, bf16, K-dim,
/// non-finite logits, probability targets, …) explains with no step disagreeing.
#[test]
fn every_bundled_case_explains_without_disagreement() {
    let mut explained = 0;
    for (file, fixture) in ce_parity::fixtures::bundled().unwrap() {
        // Contrastive cases are refused by design (tested above).
        for case in fixture.cases.iter().filter(|c| c.loss == LossKind::CrossEntropy) {
            let computes = matches!(ce_parity::runner::run_rust(case), Outcome::Values(Values { .. }));
            let e = match explain(case, Against::Libtorch) {
                Ok(e) => e,
                // Only what the loss itself rejects (or cannot run) has no steps.
                Err(_) if !computes => continue,
                Err(error) => panic!("{file}: the loss computes {}, explain fails: {error}", case.name),
            };
            explained += 1;
            for step in &e.steps {
                assert_ne!(
                    step.check.verdict,
                    Verdict::Disagree,
                    "{file}: {}: {:?}: {}",
                    case.name,
                    step.quantity,
                    step.check.note
                );
            }
        }
    }
    assert!(explained > 1000, "{explained}");
}

/// A row made NaN by +inf is shown as NaN, not as an ignored sample; an
/// ignored sample's smoothed target is said to be missing.
#[test]
fn nan_rows_and_ignored_samples_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let nonfinite = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/nonfinite.json");
    let nonfinite = nonfinite.display().to_string();
    let (code, out, err) = explain_in(dir.path(), &[&nonfinite, "--case", "posinf/float32/mean/eps0.0"]);
    assert_eq!(code, Some(0), "{out}{err}");
    // Sample 0 is [1, inf, 0.5] with target 0: libtorch's softmax row and loss are NaN.
    let step1 = out.split("Step 1.").nth(1).unwrap();
    let sample0 = step1.lines().find(|l| l.trim_start().starts_with("sample 0")).unwrap();
    assert!(sample0.contains("nan") && !sample0.contains("ignored"), "{sample0}");

    let surface = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/surface.json");
    let surface = surface.display().to_string();
    let (code, out, err) = explain_in(dir.path(), &[&surface, "--case", "kdim3/float32/mean/eps0.2"]);
    assert_eq!(code, Some(0), "{out}{err}");
    // Position (1, 1) of the (2, 3) targets is -100: sample 4 in row-major order.
    let step2 = out.split("Step 2.").nth(1).unwrap().split("Step 3.").next().unwrap();
    assert!(step2.contains("sample 4  (ignored: no target)"), "{step2}");
}
