//! The fuzzer: it catches a deliberately wrong loss and shrinks it, its runs
//! depend on the seed alone, and its fixtures hold the reference's values.
//! Without libtorch the reference is the Rust loss; with it, libtorch.

use ce_parity::fixtures::Values;
use std::time::Duration;

use ce_parity::fixtures::{self, Case};
use ce_parity::fuzz::{self, Config, Surface};
use ce_parity::runner::{run_rust, Implementation, Outcome, Status};

/// Label smoothing spread as ε/(C−1) over the other classes instead of ε/C
/// over all: (1−ε)·nll + ε/(C−1)·Σ_{c≠y}(−lp_c), which is the right formula
/// with ε·C/(C−1). A classic porting bug.
fn wrong_smoothing(case: &Case) -> Outcome {
    let dims = case.input.shape.len();
    let classes = case.input.shape.get(usize::from(dims != 1)).copied().unwrap_or(0);
    let mut wrong = case.clone();
    if classes > 1 && !case.target.dtype.is_float() && case.label_smoothing > 0.0 {
        wrong.label_smoothing = case.label_smoothing * classes as f64 / (classes as f64 - 1.0);
    }
    run_rust(&wrong)
}

fn config(seed: u64, cases: u64, jobs: usize) -> Config {
    Config {
        seed,
        cases,
        time_limit: None,
        surface: Surface::default(),
        jobs,
        tolerance: Default::default(),
    }
}

fn rows_and_classes(case: &Case) -> (usize, usize) {
    match case.input.shape.as_slice() {
        [c] => (1, *c),
        [n, c, ..] => (*n, *c),
        [] => (0, 0),
    }
}

/// Runs the wrong loss against `reference`, shrinks the first failure, and
/// checks what the issue asks: caught, and shrunk to ≤ 2 rows and ≤ 3 classes.
fn catches_and_shrinks(reference: Implementation) -> Case {
    let under_test: Implementation = &wrong_smoothing;
    let summary = fuzz::run(&config(42, 200, 2), under_test, reference, &|| {});
    assert_eq!(summary.run, 200);
    assert!(
        summary.failed >= 10,
        "the wrong loss must be caught: {}",
        summary.line()
    );
    // Every failure has smoothing on; the rest of the surface passes.
    for f in &summary.failures {
        let case = fuzz::case(42, f.index, &Surface::default());
        assert!(case.label_smoothing > 0.0, "case {}: {}", f.index, f.note);
    }
    let first = fuzz::case(42, summary.failures[0].index, &Surface::default());
    let shrunk =
        fuzz::minimise(&first, under_test, reference, 2000, Default::default()).expect("the first failure fails");
    let (rows, classes) = rows_and_classes(&shrunk.case);
    assert!(
        rows <= 2 && (2..=3).contains(&classes),
        "shrunk from {:?} to {:?}",
        first.input.shape,
        shrunk.case.input.shape
    );
    assert!(shrunk.case.input.numel() < first.input.numel() || first.input.numel() <= 3);
    assert!(shrunk.case.label_smoothing > 0.0);
    let report = fuzz::judge_case(&shrunk.case, under_test, reference, Default::default());
    assert_eq!(report.status, Status::Failed, "the shrunk case still fails");
    shrunk.case
}

#[test]
fn wrong_smoothing_is_caught_and_shrunk_against_the_rust_loss() {
    let shrunk = catches_and_shrinks(&run_rust);
    // The fixture records the reference's values, and never overwrites.
    let dir = tempfile::tempdir().unwrap();
    let reference = run_rust(&shrunk);
    let save = || fuzz::save_shrunk(dir.path(), 42, 7, &shrunk, &reference, "test", "wrong smoothing");
    let first = save().unwrap();
    let second = save().unwrap();
    assert_eq!(first.file_name().unwrap(), "seed42-case7.json");
    assert_eq!(second.file_name().unwrap(), "seed42-case7-2.json");
    let loaded = fixtures::load(&first).unwrap();
    let case = &loaded.cases[0];
    assert_eq!(case.input, shrunk.input);
    let recorded = Outcome::from_recorded(&case.expected.as_ref().unwrap().result);
    assert_eq!(recorded, reference);
    // Against the recorded values the right loss passes and the wrong one fails.
    let tolerance = ce_parity::runner::tolerance(case, Default::default());
    let judge = |outcome: &Outcome| ce_parity::runner::judge(case, outcome, None, tolerance).status;
    assert_eq!(judge(&run_rust(case)), Status::Passed);
    assert_eq!(judge(&wrong_smoothing(case)), Status::Failed);
}

#[test]
fn results_depend_on_the_seed_not_the_thread_count() {
    let under_test: Implementation = &wrong_smoothing;
    let one = fuzz::run(&config(9, 150, 1), under_test, &run_rust, &|| {});
    let three = fuzz::run(&config(9, 150, 3), under_test, &run_rust, &|| {});
    assert_eq!(one, three);
    assert!(one.failed > 0);
    let other_seed = fuzz::run(&config(10, 150, 2), under_test, &run_rust, &|| {});
    assert_ne!(one.failures, other_seed.failures);
}

/// Every value 1e-4 too large (relative): outside float32's default
/// tolerance (rtol 1.3e-6), inside `--rtol 1e-3`.
fn slightly_off(case: &Case) -> Outcome {
    match run_rust(case) {
        Outcome::Values(Values {
            loss,
            grad_input,
            grad_target,
            named_grads,
        }) => {
            let scale = |t: ce_parity::tensor::Tensor| {
                let values = t.to_f64().iter().map(|v| v * (1.0 + 1e-4)).collect();
                ce_parity::tensor::Tensor::float(t.dtype, t.shape.clone(), values)
            };
            Outcome::Values(Values {
                loss: scale(loss),
                grad_input: grad_input.map(scale),
                grad_target: grad_target.map(scale),
                named_grads: named_grads.into_iter().map(|(name, g)| (name, scale(g))).collect(),
            })
        }
        other => other,
    }
}

#[test]
fn tolerance_overrides_loosen_the_judgement() {
    let mut c = config(11, 200, 2);
    c.surface = Surface::parse("core").unwrap();
    let strict = fuzz::run(&c, &slightly_off, &run_rust, &|| {});
    assert!(strict.failed > 100, "{}", strict.line());
    c.tolerance = ce_parity::compare::Overrides::new(Some(1e-3), None).unwrap();
    let loose = fuzz::run(&c, &slightly_off, &run_rust, &|| {});
    assert_eq!(loose.line(), "200 passed, 0 failed");
    assert!(ce_parity::compare::Overrides::new(None, Some(f64::NAN))
        .unwrap_err()
        .to_string()
        .contains("--atol must be a non-negative number"));
}

#[test]
fn a_time_limit_stops_after_a_prefix_of_cases() {
    let mut c = config(3, u64::MAX, 2);
    c.time_limit = Some(Duration::from_millis(200));
    let counted = std::sync::atomic::AtomicU64::new(0);
    let summary = fuzz::run(&c, &run_rust, &run_rust, &|| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    assert!(summary.run > 0);
    assert_eq!(summary.run, counted.into_inner());
    assert_eq!(summary.passed, summary.run, "Rust against itself: {}", summary.line());
}

#[test]
fn a_panicking_implementation_is_a_failure_not_a_crash() {
    let panics = |case: &Case| -> Outcome {
        if case.input.numel() > 3 {
            panic!("boom");
        }
        run_rust(case)
    };
    let summary = fuzz::run(&config(5, 40, 2), &panics, &run_rust, &|| {});
    assert!(summary.failed > 0);
    assert!(summary.failures[0].note.contains("panicked: boom"));
}

#[test]
fn huge_classes_stay_fast() {
    let mut c = config(1, 400, 2);
    c.surface = Surface::parse("default,huge").unwrap();
    let huge = (0..c.cases)
        .filter(|&i| {
            fuzz::case(1, i, &c.surface)
                .input
                .shape
                .get(1)
                .is_some_and(|&k| k > 10_000)
        })
        .count();
    assert!(huge >= 3, "a few large cases: {huge}");
    let start = std::time::Instant::now();
    let summary = fuzz::run(&c, &run_rust, &run_rust, &|| {});
    assert_eq!(summary.passed, 400);
    assert!(start.elapsed() < Duration::from_secs(60), "{:?}", start.elapsed());
}

#[cfg(feature = "torch")]
mod libtorch {
    use super::*;
    use ce_parity::reference::run_libtorch;

    #[test]
    fn wrong_smoothing_is_caught_and_shrunk_against_libtorch() {
        let shrunk = catches_and_shrinks(&run_libtorch);
        // The shrunk case is one where the right loss agrees with libtorch.
        let report = fuzz::judge_case(&shrunk, &run_rust, &run_libtorch, Default::default());
        assert_eq!(report.status, Status::Passed, "{}", report.note);
    }

    #[test]
    fn the_default_surface_matches_libtorch() {
        let summary = fuzz::run(&config(2024, 600, 2), &run_rust, &run_libtorch, &|| {});
        assert_eq!(summary.line(), "600 passed, 0 failed", "{:?}", summary.failures);
    }
}
