//! Shrinking a failure that needs a few elements of a long row: the fuzz
//! case of issue 12 (seed 31, case 9886: float16, [5, 24 550] with −inf
//! logits, probability targets, ε ≈ 0.157, reduction none, an upstream
//! gradient) run through a kernel with a deliberate SIMD-lane fault, shrunk
//! and saved the way `ce-parity fuzz` does it. (Before value edits and
//! aligned blocks, the shrinker left this one at [1, 24 548] after its 2000
//! tries.) The reference is live libtorch when the crate is built with it,
//! else the Rust loss.

use ce_parity::fixtures::Values;
use std::time::Instant;

use ce_parity::fixtures::{self, Case};
use ce_parity::fuzz::{self, Config, Kind, Surface};
use ce_parity::runner::{run_rust, Implementation, Outcome, Status};
use ce_parity::tensor::{DType, Data};

const SEED: u64 = 31;
const INDEX: u64 = 9886;
/// `ce-parity fuzz`'s budget.
const BUDGET: usize = 2000;

#[cfg(feature = "torch")]
const REFERENCE: Implementation = &ce_parity::reference::run_libtorch;
#[cfg(not(feature = "torch"))]
const REFERENCE: Implementation = &run_rust;

/// Floats in an AVX2 register.
const LANES: usize = 8;

/// An AVX2 backward kernel with a bug in the upper 128-bit half of its
/// registers: for a −inf logit there (class index mod 8 in 4..8, within the
/// row's full vectors; the scalar tail is right) it writes 0 as the
/// gradient w.r.t. the target, where libtorch gives −(1−ε)·log p·g = ±inf.
/// Right everywhere else. Removing classes moves a logit between lanes, so
/// shrinking must keep the lanes or simplify values instead.
fn upper_lanes_mask_minus_inf(case: &Case) -> Outcome {
    let mut outcome = run_rust(case);
    let classes = case.input.shape.last().copied().unwrap_or(0).max(1);
    let full = classes / LANES * LANES;
    if let Outcome::Values(Values {
        grad_target: Some(grad),
        ..
    }) = &mut outcome
    {
        let input = case.input.to_f64();
        if let (Data::Float(values), true) = (&mut grad.data, grad.shape == case.input.shape) {
            for (i, (g, x)) in values.iter_mut().zip(input).enumerate() {
                let class = i % classes;
                if x == f64::NEG_INFINITY && class < full && class % LANES >= LANES / 2 {
                    *g = 0.0;
                }
            }
        }
    }
    outcome
}

/// The default surface as it was when issue 12 was filed (before the CLIP
/// step joined it): the surface decides which case an index draws.
fn issue_12_surface() -> Surface {
    Surface::parse("default,-clip_step").unwrap()
}

fn config() -> Config {
    Config {
        seed: SEED,
        cases: INDEX + 1,
        time_limit: None,
        surface: issue_12_surface(),
        jobs: 1,
        tolerance: Default::default(),
    }
}

fn kind(case: &Case, under_test: Implementation) -> (Status, Kind) {
    let report = fuzz::judge_case(case, under_test, REFERENCE, Default::default());
    let kind = Kind::of(&under_test(case), &REFERENCE(case), &report);
    (report.status, kind)
}

fn minus_infinities(case: &Case) -> usize {
    case.input.to_f64().iter().filter(|&&v| v == f64::NEG_INFINITY).count()
}

#[test]
fn the_seed_31_case_with_a_lane_bug_shrinks_to_one_vector() {
    let found = fuzz::case(SEED, INDEX, &issue_12_surface());
    assert_eq!(found.input.shape, vec![5, 24_550], "the case of issue 12");
    assert_eq!(found.input.dtype, DType::Float16);
    assert!(minus_infinities(&found) > 0);
    let (status, original) = kind(&found, &upper_lanes_mask_minus_inf);
    assert_eq!(status, Status::Failed, "the fault shows in the case as found");
    assert_eq!(original, Kind::Values(vec!["grad_target"]));

    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let saved = fuzz::shrink_and_save(
        &config(),
        INDEX,
        &upper_lanes_mask_minus_inf,
        REFERENCE,
        BUDGET,
        dir.path(),
        "test",
    )
    .unwrap()
    .expect("the case fails, so it is shrunk and saved");
    let elapsed = start.elapsed();
    let shrunk = &saved.shrunk;
    eprintln!(
        "shrunk {:?} to {:?} in {} steps, {} candidates, {elapsed:?}: {:?}",
        found.input.shape, shrunk.case.input.shape, shrunk.steps, shrunk.evaluations, shrunk.case
    );
    assert!(shrunk.evaluations <= BUDGET);

    // One row of one vector (what the bug needs), and the same failure as before.
    assert_eq!(shrunk.case.input.shape, vec![1, LANES]);
    assert_eq!(
        kind(&shrunk.case, &upper_lanes_mask_minus_inf),
        (Status::Failed, original)
    );
    let x = shrunk.case.input.to_f64();
    assert!(x[LANES / 2..].contains(&f64::NEG_INFINITY), "{x:?}");
    // Values simplified: every finite logit 0, ε a simple value, the target
    // still a probability target of the input's shape.
    let finite: Vec<f64> = shrunk
        .case
        .input
        .to_f64()
        .into_iter()
        .filter(|v| v.is_finite())
        .collect();
    assert!(finite.iter().all(|&v| v == 0.0), "{finite:?}");
    assert!([0.0, 0.01, 0.1, 0.25, 0.5].contains(&shrunk.case.label_smoothing));
    assert_eq!(shrunk.case.target.shape, shrunk.case.input.shape);

    // The saved fixture holds the shrunk case and the reference's values:
    // the faulty kernel fails against them, the right loss passes.
    let loaded = fixtures::load(&saved.path).unwrap();
    let case = &loaded.cases[0];
    assert_eq!(case.input.shape, shrunk.case.input.shape);
    assert!(loaded.description.contains("shrunk in"), "{}", loaded.description);
    let tolerance = ce_parity::runner::tolerance(case, Default::default());
    let judge = |outcome: &Outcome| ce_parity::runner::judge(case, outcome, None, tolerance).status;
    assert_eq!(judge(&upper_lanes_mask_minus_inf(case)), Status::Failed);
    assert_eq!(judge(&run_rust(case)), Status::Passed);
}

/// Wrong wherever a logit is exactly 0 (its gradient 1 too large): a fault
/// the random cases never meet, but that the shrinker's value edits (logits
/// set to 0) would.
fn wrong_at_zero_logits(case: &Case) -> Outcome {
    let mut outcome = run_rust(case);
    if let Outcome::Values(Values {
        grad_input: Some(grad), ..
    }) = &mut outcome
    {
        if let Data::Float(values) = &mut grad.data {
            for (g, x) in values.iter_mut().zip(case.input.to_f64()) {
                if x == 0.0 {
                    *g += 1.0;
                }
            }
        }
    }
    outcome
}

#[test]
fn a_passing_case_is_never_shrunk_into_a_failing_one() {
    let found = fuzz::case(SEED, INDEX, &issue_12_surface());
    assert!(!found.input.to_f64().contains(&0.0));
    // Setting its logits to 0 would "fail"; the case itself passes.
    let mut zeroed = found.clone();
    if let Data::Float(values) = &mut zeroed.input.data {
        values[0] = 0.0;
    }
    assert_eq!(kind(&zeroed, &wrong_at_zero_logits).0, Status::Failed);
    assert_eq!(kind(&found, &wrong_at_zero_logits).0, Status::Passed);
    let start = Instant::now();
    assert!(fuzz::minimise(&found, &wrong_at_zero_logits, REFERENCE, BUDGET, Default::default()).is_none());
    // Nothing is written either.
    let dir = tempfile::tempdir().unwrap();
    let saved = fuzz::shrink_and_save(
        &config(),
        INDEX,
        &wrong_at_zero_logits,
        REFERENCE,
        BUDGET,
        dir.path(),
        "test",
    );
    assert!(saved.unwrap().is_none());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    eprintln!("two refusals to shrink a passing case: {:?}", start.elapsed());
}

/// The lane bug, and a second bug in the input gradient at a logit of exactly 0.
fn lane_bug_and_wrong_at_zero_logits(case: &Case) -> Outcome {
    let lane = upper_lanes_mask_minus_inf(case);
    let zero_bug = wrong_at_zero_logits(case);
    match (lane, zero_bug) {
        (
            Outcome::Values(Values { grad_target, .. }),
            Outcome::Values(Values {
                loss,
                grad_input,
                named_grads,
                ..
            }),
        ) => Outcome::Values(Values {
            loss,
            grad_input,
            grad_target,
            named_grads,
        }),
        (other, _) => other,
    }
}

/// Setting logits to 0 would show the second bug; shrinking keeps to the
/// disagreement it started from (the target gradient alone), so it never
/// slips into the other one.
#[test]
fn shrinking_keeps_the_kind_of_disagreement() {
    let found = fuzz::case(SEED, INDEX, &issue_12_surface());
    let under_test: Implementation = &lane_bug_and_wrong_at_zero_logits;
    let (status, original) = kind(&found, under_test);
    assert_eq!(
        (status, &original),
        (Status::Failed, &Kind::Values(vec!["grad_target"]))
    );
    let shrunk = fuzz::minimise(&found, under_test, REFERENCE, BUDGET, Default::default()).unwrap();
    assert_eq!(kind(&shrunk.case, under_test), (Status::Failed, original));
    assert!(!shrunk.case.input.to_f64().contains(&0.0), "{:?}", shrunk.case.input);
    assert_eq!(shrunk.case.input.shape, vec![1, LANES], "removing classes still works");
}
