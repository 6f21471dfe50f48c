//! The parity kit, used as another crate would: implementations under test
//! are closures over `kit::CaseView`, judged against libtorch's recorded
//! values (runs without libtorch).

use ce_parity::fixtures::Values;
use std::panic::{catch_unwind, AssertUnwindSafe};

use ce_parity::fixtures::{self, Case, Fixture};
use ce_parity::kit::{self, Answer, CaseView, CheckOptions, DType, Feature, Floats, Supports, Targets, Tolerance};
use ce_parity::runner::{run_rust, Outcome, Status};
use ce_parity::tensor::Tensor;

const ARTICLE: &str = "fixtures/article.json";

pub fn suite(path: &str) -> Vec<(String, Fixture)> {
    vec![(path.to_string(), fixtures::bundled_file(path).unwrap().unwrap())]
}

pub fn tensor(floats: Floats) -> Tensor {
    let shape = floats.shape.to_vec();
    if floats.dtype.is_float() {
        Tensor::float(floats.dtype, shape, floats.values.to_vec())
    } else {
        // An integer input or weight of a case libtorch rejects, given as f64.
        Tensor::int(floats.dtype, shape, floats.values.iter().map(|&v| v as i64).collect())
    }
}

/// The view turned back into a case, as a user would build their own tensors from it.
pub fn case_of(view: &CaseView) -> Case {
    let target = match view.target {
        Targets::Classes { dtype, shape, classes } => Tensor::int(dtype, shape.to_vec(), classes.to_vec()),
        Targets::Probabilities(p) => tensor(p),
    };
    Case {
        weight: view.weight.map(tensor),
        reduction: view.reduction,
        ignore_index: view.ignore_index,
        label_smoothing: view.label_smoothing,
        grad_output: view.grad_output.map(tensor),
        ..Case::new(view.name, tensor(view.input), target)
    }
}

pub fn answer_of(outcome: Outcome) -> Answer {
    match outcome {
        Outcome::Values(Values {
            loss,
            grad_input,
            grad_target,
            ..
        }) => Answer::Computed {
            loss: loss.to_f64(),
            shape: loss.shape.clone(),
            grad_input: grad_input.map(|g| g.to_f64()),
            grad_target: grad_target.map(|g| g.to_f64()),
        },
        Outcome::Error(message) => Answer::rejected(message),
        Outcome::Skipped(why) => Answer::unsupported(why),
    }
}

/// This crate's own loss, wrapped as a user's implementation.
pub fn crate_loss(view: &CaseView) -> Answer {
    answer_of(run_rust(&case_of(view)))
}

fn failed_names(report: &kit::Report) -> Vec<&str> {
    report
        .with_status(Status::Failed)
        .map(|c| c.report.name.as_str())
        .collect()
}

#[test]
fn kit_passes_the_crates_own_loss_on_every_bundled_case() {
    let options = CheckOptions::new().same_error_messages(true);
    let report = kit::check_bundled(crate_loss, &options).unwrap();
    report.assert_passed();
    let totals = report.totals();
    assert!(totals.passed > 1500, "{report}");
    assert!(
        report.cases.iter().filter(|c| c.gradient_checked).count() > 1000,
        "{report}"
    );
    // What is skipped is what the view cannot carry or the loss does not run.
    for case in report.with_status(Status::Skipped) {
        let note = &case.report.note;
        let known = ["not cross-entropy: clip", "mixed dtypes are not supported"];
        assert!(known.iter().any(|k| note.contains(k)), "{}: {note}", case.report.name);
    }
}

#[test]
fn kit_catches_smoothing_spread_over_the_other_classes() {
    // ε/(C−1) on every wrong class instead of ε/C on every class: the same as
    // PyTorch's smoothing with ε·C/(C−1), so the crate's loss can play the bug.
    let buggy = |view: &CaseView| {
        let mut case = case_of(view);
        let classes = view.input.shape[1] as f64;
        case.label_smoothing *= classes / (classes - 1.0);
        answer_of(run_rust(&case))
    };
    let report = kit::check(buggy, &suite(ARTICLE), &CheckOptions::new());
    let smoothed = [
        "article/smoothing_0.1/mean",
        "article/smoothing_0.1/sum",
        "article/smoothing_0.1/none",
        "article/weighted/mean",
        "article/float64/mean",
    ];
    assert_eq!(failed_names(&report), smoothed, "{report}");
    assert_eq!(
        report.case("article/no_smoothing/mean").unwrap().report.status,
        Status::Passed
    );
    assert_eq!(report.summary(), "1 passed, 5 failed");
    let listing = report.to_string();
    assert!(
        listing.contains("values differ — float32; label smoothing: 3 case(s)\n    e.g. fixtures/article.json: article/smoothing_0.1/mean"),
        "{listing}"
    );
    assert!(
        listing.contains("values differ — float32; class weights, label smoothing: 1 case(s)"),
        "{listing}"
    );
    assert!(
        listing.contains("values differ — float64; label smoothing: 1 case(s)"),
        "{listing}"
    );
    assert!(report
        .case("article/weighted/mean")
        .unwrap()
        .report
        .note
        .contains("yours vs expected: loss"));
    let panic = catch_unwind(|| report.assert_passed()).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("article/weighted/mean"), "{message}");

    // A tolerance override wide enough hides the bug, as it would in `check`.
    let loose = CheckOptions::new().tolerance(Tolerance { rtol: 1.0, atol: 1.0 });
    kit::check(buggy, &suite(ARTICLE), &loose).assert_passed();
}

#[test]
fn kit_catches_a_sign_error_in_the_gradient_and_compares_only_what_is_given() {
    let negated = |view: &CaseView| match crate_loss(view) {
        Answer::Computed {
            loss,
            shape,
            grad_input: Some(grad),
            ..
        } => Answer::loss(loss, shape).with_grad_input(grad.iter().map(|g| -g).collect()),
        other => other,
    };
    let report = kit::check(negated, &suite(ARTICLE), &CheckOptions::new());
    assert_eq!(report.totals().failed, 6, "{report}");
    for case in &report.cases {
        assert!(case.gradient_checked);
        assert!(case.report.note.contains("grad_input"), "{}", case.report.note);
        assert!(!case.report.note.contains("loss:"), "{}", case.report.note);
    }

    // Loss only: the gradient is not compared, and the report says so.
    let loss_only = |view: &CaseView| match crate_loss(view) {
        Answer::Computed { loss, shape, .. } => Answer::loss(loss, shape),
        other => other,
    };
    let report = kit::check(loss_only, &suite(ARTICLE), &CheckOptions::new());
    report.assert_passed();
    assert!(report.cases.iter().all(|c| !c.gradient_checked));
    assert!(report.to_string().contains("gradients compared in 0"));
}

#[test]
fn kit_does_not_pass_an_implementation_that_supports_nothing() {
    let report = kit::check_bundled(|_: &CaseView| Answer::unsupported("not yet"), &CheckOptions::new()).unwrap();
    let totals = report.totals();
    assert_eq!((totals.passed, totals.failed), (0, 0));
    assert_eq!(totals.skipped, report.cases.len());
    assert!(!report.all_passed());
    let listing = report.to_string();
    assert!(listing.contains("nothing was checked"), "{listing}");
    assert!(listing.contains("not yet"), "{listing}");
    assert!(catch_unwind(AssertUnwindSafe(|| report.assert_passed())).is_err());

    // The same through the filter, and with no fixtures at all.
    let none = CheckOptions::new().supports(Supports::all().dtypes([]));
    let report = kit::check(crate_loss, &suite(ARTICLE), &none);
    assert_eq!(report.totals().skipped, 6);
    assert!(report
        .cases
        .iter()
        .all(|c| c.report.note == "unsupported: input dtype float32"
            || c.report.note == "unsupported: input dtype float64"));
    assert!(!kit::check(crate_loss, &[], &CheckOptions::new()).all_passed());
}

#[test]
fn kit_filters_cases_by_feature() {
    let supports = Supports::all()
        .dtypes([DType::Float64])
        .without(Feature::ProbabilityTargets)
        .without(Feature::KDim);
    let seen = std::sync::Mutex::new(Vec::new());
    let spy = |view: &CaseView| {
        let probabilities = matches!(view.target, Targets::Probabilities(_));
        seen.lock()
            .unwrap()
            .push((view.input.dtype, view.input.shape.len(), probabilities));
        crate_loss(view)
    };
    let report = kit::check(
        spy,
        &suite("fixtures/surface.json"),
        &CheckOptions::new().supports(supports),
    );
    report.assert_passed();
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), report.totals().passed);
    for (dtype, dims, probabilities) in seen {
        assert_eq!(dtype, DType::Float64);
        assert!(dims <= 2);
        assert!(!probabilities);
    }
    assert!(report
        .with_status(Status::Skipped)
        .any(|c| c.report.note == "unsupported: probability targets"));
}

#[test]
fn kit_fails_a_value_where_libtorch_rejects_and_accepts_any_wording_unless_asked() {
    let rejections = suite("fixtures/rejections.json");
    let is_rejection = |name: &str| {
        let case = rejections[0].1.cases.iter().find(|c| c.name == name).unwrap();
        Feature::Rejection.of(case)
    };

    let report = kit::check(|_: &CaseView| Answer::scalar(0.0), &rejections, &CheckOptions::new());
    let rejected: Vec<_> = report.cases.iter().filter(|c| is_rejection(&c.report.name)).collect();
    assert!(rejected.len() > 50);
    for case in rejected {
        if case.report.status == Status::Skipped {
            continue; // e.g. an integer input, which the view cannot carry
        }
        assert_eq!(case.report.status, Status::Failed, "{}", case.report.name);
        assert!(
            case.report.note.contains("yours computes, expected rejects"),
            "{}",
            case.report.note
        );
    }

    let refuse = |_: &CaseView| Answer::rejected("my library says no\nsecond line");
    let report = kit::check(refuse, &rejections, &CheckOptions::new());
    for case in &report.cases {
        let expected = if case.report.status == Status::Skipped {
            Status::Skipped
        } else if is_rejection(&case.report.name) {
            Status::Passed
        } else {
            Status::Failed
        };
        assert_eq!(
            case.report.status, expected,
            "{}: {}",
            case.report.name, case.report.note
        );
    }
    let passed = report.with_status(Status::Passed).next().unwrap();
    assert!(
        passed.report.note.contains("my library says no"),
        "{}",
        passed.report.note
    );

    let strict = kit::check(refuse, &rejections, &CheckOptions::new().same_error_messages(true));
    assert_eq!(strict.totals().passed, 0, "{strict}");
}

#[test]
fn kit_reports_malformed_answers_and_panics_as_failures() {
    let wrong_size = |_: &CaseView| Answer::loss(vec![1.0, 2.0], vec![3]);
    let report = kit::check(wrong_size, &suite(ARTICLE), &CheckOptions::new());
    assert_eq!(report.totals().failed, 6);
    assert!(report.cases[0]
        .report
        .note
        .contains("your loss has 2 value(s) for shape [3]"));

    let short_grad = |view: &CaseView| crate_loss(view).with_grad_input(vec![0.0]);
    let report = kit::check(short_grad, &suite(ARTICLE), &CheckOptions::new());
    assert!(report.cases[0]
        .report
        .note
        .contains("your grad_input has 1 value(s) for shape [2, 3]"));

    let panicky = |view: &CaseView| {
        if view.reduction == kit::Reduction::Sum {
            panic!("boom");
        }
        crate_loss(view)
    };
    let report = kit::check(panicky, &suite(ARTICLE), &CheckOptions::new());
    assert_eq!(failed_names(&report), ["article/smoothing_0.1/sum"]);
    assert_eq!(report.totals().passed, 5);
    assert!(report.to_string().contains("the implementation panicked: boom"));
}
