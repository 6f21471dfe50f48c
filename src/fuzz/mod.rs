//! Differential fuzzing: random cases through an implementation under test
//! and a reference, judged by `check`'s rules; failures are shrunk and saved
//! as fixtures.
//!
//! Both sides are parameters, so the fuzzer runs without libtorch too (e.g.
//! a deliberately wrong loss against the Rust one, in tests).
//!
//! A port that forgets `label_smoothing`, caught and shrunk against the Rust loss:
//!
//! ```
//! use ce_parity::fixtures::Case;
//! use ce_parity::fuzz::{self, Config, Surface};
//! use ce_parity::runner::{run_rust, Implementation, Outcome, Status};
//!
//! fn forgets_smoothing(case: &Case) -> Outcome {
//!     run_rust(&Case { label_smoothing: 0.0, ..case.clone() })
//! }
//! let (under_test, reference): (Implementation, Implementation) = (&forgets_smoothing, &run_rust);
//!
//! let config = Config { seed: 6, cases: 60, time_limit: None, surface: Surface::core(), jobs: 2, tolerance: Default::default() };
//! let summary = fuzz::run(&config, under_test, reference, &|| {});
//! assert_eq!(summary.run, 60);
//! assert!(summary.failed > 0, "{}", summary.line());
//!
//! // Only cases with smoothing fail; shrinking keeps that and makes the case smaller.
//! let first = fuzz::case(config.seed, summary.failures[0].index, &config.surface);
//! assert!(first.label_smoothing > 0.0);
//! let shrunk = fuzz::minimise(&first, under_test, reference, 500, config.tolerance).unwrap().case;
//! assert!(shrunk.label_smoothing > 0.0 && shrunk.input.numel() <= first.input.numel());
//! assert_eq!(fuzz::judge_case(&shrunk, under_test, reference, config.tolerance).status, Status::Failed);
//!
//! // A case that passes has nothing to shrink.
//! let passing = fuzz::case(config.seed, 0, &config.surface);
//! assert!(fuzz::minimise(&passing, &run_rust, &run_rust, 500, config.tolerance).is_none());
//! ```

mod generate;
mod save;
mod shrink;
mod slice;
mod surface;

use crate::fixtures::Values;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use generate::{case, case_rng};
pub use save::{save_shrunk, shrink_and_save, SavedFailure};
pub use shrink::{shrink, Shrunk};
pub use surface::{Surface, SurfaceFeature, UnknownSurfaceFeature};

use crate::compare::{Overrides, Tolerance};
use crate::fixtures::Case;
use crate::runner::{self, CaseReport, Implementation, Outcome, Status};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Selects the run: case `i` depends on (seed, i) alone.
    pub seed: u64,
    /// How many cases; the run may stop earlier at `time_limit`.
    pub cases: u64,
    /// Stop claiming new cases after this long; `None` runs them all.
    pub time_limit: Option<Duration>,
    /// What the cases are drawn from.
    pub surface: Surface,
    /// Worker threads; results do not depend on it.
    pub jobs: usize,
    /// `--rtol`/`--atol` over `check`'s per-dtype tolerances.
    pub tolerance: Overrides,
}

/// A case that failed, by its index (regenerate it with [`case`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The case's index in the run.
    pub index: u64,
    /// Why it failed, as `check` words it.
    pub note: String,
}

/// The outcome of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Cases run: exactly indices `0..run`.
    pub run: u64,
    /// Cases where the two sides agree.
    pub passed: u64,
    /// Cases where they disagree (each is in `failures`).
    pub failed: u64,
    /// Cases a side could not run (e.g. an unsupported dtype mix).
    pub skipped: u64,
    /// Every failure, by index.
    pub failures: Vec<Failure>,
}

impl Summary {
    /// `N passed, M failed`, with `, K skipped` when any were.
    pub fn line(&self) -> String {
        let mut s = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            s.push_str(&format!(", {} skipped", self.skipped));
        }
        s
    }
}

/// Runs an implementation, turning a panic into an error outcome so that it
/// is reported (and shrunk) like any other disagreement.
pub fn run_guarded(implementation: Implementation, case: &Case) -> Outcome {
    catch_unwind(AssertUnwindSafe(|| implementation(case))).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Outcome::Error(format!("panicked: {message}"))
    })
}

/// Judges one case: the implementation under test against the reference.
pub fn judge_case(
    case: &Case,
    under_test: Implementation,
    reference: Implementation,
    overrides: Overrides,
) -> CaseReport {
    let actual = run_guarded(under_test, case);
    let expected = run_guarded(reference, case);
    verdict(case, &actual, &expected, reference, runner::tolerance(case, overrides))
}

/// `check`'s rule: assert_close's tolerance, or both within libtorch's
/// rounding of the reference's own float64 result.
fn verdict(
    case: &Case,
    actual: &Outcome,
    expected: &Outcome,
    reference: Implementation,
    tolerance: Tolerance,
) -> CaseReport {
    runner::verdict(case, actual, Some(expected), |c| run_guarded(reference, c), tolerance)
}

/// Runs cases `0..config.cases` of `config.seed` (fewer if the time limit
/// comes first), calling `progress` after each.
pub fn run(
    config: &Config,
    under_test: Implementation,
    reference: Implementation,
    progress: &(dyn Fn() + Sync),
) -> Summary {
    let deadline = config.time_limit.map(|t| Instant::now() + t);
    let next = AtomicU64::new(0);
    let results: Mutex<Vec<(u64, Status, String)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..config.jobs.max(1) {
            scope.spawn(|| loop {
                // Claim the next index only before the deadline, so the cases
                // run are always a prefix 0..n.
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= config.cases {
                    break;
                }
                let case = case(config.seed, index, &config.surface);
                let report = judge_case(&case, under_test, reference, config.tolerance);
                let kept = match report.status {
                    Status::Passed => String::new(),
                    _ => report.note,
                };
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((index, report.status, kept));
                progress();
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|r| r.0);
    let mut summary = Summary {
        run: results.len() as u64,
        ..Summary::default()
    };
    for (index, status, note) in results {
        match status {
            Status::Passed => summary.passed += 1,
            Status::Skipped => summary.skipped += 1,
            Status::Failed => {
                summary.failed += 1;
                summary.failures.push(Failure { index, note });
            }
        }
    }
    summary
}

/// The kind of a disagreement. Shrinking keeps it, so that one bug does not
/// slip into another on the way (e.g. one rejection message into another, or
/// a wrong gradient into a wrong loss).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Both compute; these outputs (`"loss"`, `"grad_input"`, …) differ.
    Values(Vec<&'static str>),
    /// Both reject; the messages differ. Holds the reference's message with
    /// digits removed, so sizes may shrink but the message may not change.
    Messages(String),
    /// Only the implementation under test rejects.
    UnderTestRejects,
    /// Only the reference rejects, with this message (digits removed).
    ReferenceRejects(String),
    /// Anything else (a skip on one side).
    Other,
}

impl Kind {
    /// The kind of disagreement between two outcomes of one case, whose
    /// judgement is `report`.
    pub fn of(under_test: &Outcome, reference: &Outcome, report: &CaseReport) -> Kind {
        let shape = |m: &str| m.chars().filter(|c| !c.is_ascii_digit()).collect::<String>();
        match (under_test, reference) {
            (Outcome::Values(Values { .. }), Outcome::Values(Values { .. })) => {
                let mut outputs: Vec<&'static str> = report
                    .comparisons
                    .iter()
                    .flat_map(|c| &c.outputs)
                    .filter(|o| !o.passed())
                    .map(|o| o.output)
                    .collect();
                outputs.sort_unstable();
                outputs.dedup();
                Kind::Values(outputs)
            }
            (Outcome::Error(_), Outcome::Error(r)) => Kind::Messages(shape(r)),
            (Outcome::Error(_), Outcome::Values(Values { .. })) => Kind::UnderTestRejects,
            (Outcome::Values(Values { .. }), Outcome::Error(r)) => Kind::ReferenceRejects(shape(r)),
            _ => Kind::Other,
        }
    }
}

/// Shrinks a failing case while the two sides still disagree in the same
/// way ([`Kind`]), trying at most `budget` candidates; None when the case
/// does not fail (there is nothing to shrink, and no edit may turn a passing
/// case into a failing one).
pub fn minimise(
    case: &Case,
    under_test: Implementation,
    reference: Implementation,
    budget: usize,
    overrides: Overrides,
) -> Option<Shrunk> {
    let judged = |c: &Case| -> (Status, Kind) {
        let (actual, expected) = (run_guarded(under_test, c), run_guarded(reference, c));
        let report = verdict(c, &actual, &expected, reference, runner::tolerance(c, overrides));
        let kind = Kind::of(&actual, &expected, &report);
        (report.status, kind)
    };
    let (status, original) = judged(case);
    if status != Status::Failed {
        return None;
    }
    let fails = |c: &Case| judged(c) == (Status::Failed, original.clone());
    let mut shrunk = shrink::search(case, &fails, budget.saturating_sub(1));
    shrunk.evaluations += 1; // the case itself
    Some(shrunk)
}
