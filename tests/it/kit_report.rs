//! The kit's report, options and filters, checked against libtorch's
//! recorded values: deliberately wrong implementations fail where they are
//! wrong, at the element and with the values the fixtures hold.

use ce_parity::fixtures::Values;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ce_parity::fixtures::{self, Case, Fixture, Recorded};
use ce_parity::kit::{self, Answer, CaseView, CheckOptions, DType, Feature, Kind, Supports, Targets, Tolerance};
use ce_parity::runner::Status;
use ce_parity::tensor::{Data, Tensor};

use super::kit::{crate_loss, suite};

const ARTICLE: &str = "fixtures/article.json";
const REJECTIONS: &str = "fixtures/rejections.json";
const SURFACE: &str = "fixtures/surface.json";
const MODULES: &str = "fixtures/pytorch-suite/common_modules.json";

fn suites(paths: &[&str]) -> Vec<(String, Fixture)> {
    paths.iter().flat_map(|p| suite(p)).collect()
}

fn case<'a>(fixtures: &'a [(String, Fixture)], name: &str) -> &'a Case {
    fixtures
        .iter()
        .flat_map(|(_, f)| &f.cases)
        .find(|c| c.name == name)
        .unwrap()
}

/// libtorch's recorded loss and grad_input for a case.
fn recorded(case: &Case) -> (Tensor, Tensor) {
    match &case.expected.as_ref().unwrap().result {
        Recorded::Values(Values { loss, grad_input, .. }) => (loss.clone(), grad_input.clone().unwrap()),
        Recorded::Error(e) => panic!("{}: libtorch rejected it: {e}", case.name),
    }
}

fn recorded_loss(case: &Case) -> Option<Tensor> {
    match &case.expected.as_ref()?.result {
        Recorded::Values(Values { loss, .. }) => Some(loss.clone()),
        Recorded::Error(_) => None,
    }
}

fn rejected_by_libtorch(case: &Case) -> bool {
    matches!(&case.expected, Some(e) if matches!(e.result, Recorded::Error(_)))
}

/// The crate's loss with `step` added to grad_input's flat element `at`.
fn nudged_gradient(at: usize, step: f64) -> impl Fn(&CaseView) -> Answer {
    move |view: &CaseView| match crate_loss(view) {
        Answer::Computed {
            loss,
            shape,
            grad_input: Some(mut grad),
            grad_target,
        } => {
            grad[at] += step;
            Answer::Computed {
                loss,
                shape,
                grad_input: Some(grad),
                grad_target,
            }
        }
        other => other,
    }
}

/// The crate's loss with the loss replaced by `value`.
fn with_loss(value: f64) -> impl Fn(&CaseView) -> Answer {
    move |view: &CaseView| match crate_loss(view) {
        Answer::Computed {
            shape,
            grad_input,
            grad_target,
            ..
        } => Answer::Computed {
            loss: vec![value],
            shape,
            grad_input,
            grad_target,
        },
        other => other,
    }
}

#[test]
fn kit_report_names_the_wrong_gradient_element_with_both_values_and_the_float64_answer() {
    let fixtures = suite(ARTICLE);
    let name = "article/smoothing_0.1/mean";
    let options = CheckOptions::new().case(name);
    let report = kit::check(nudged_gradient(4, 0.01), &fixtures, &options);
    assert_eq!(report.cases.len(), 1, "{report}");
    let result = &report.cases[0];
    assert_eq!(
        (result.name(), result.kind, result.dtype),
        (name, Kind::ValuesDiffer, DType::Float32)
    );
    assert_eq!(result.features, [Feature::LabelSmoothing]);
    let (loss, grad) = recorded(case(&fixtures, name));

    // The loss is right, and its error is its own, not the gradient's.
    let loss_output = result.output("loss").unwrap();
    assert!(loss_output.passed());
    assert_eq!(loss_output.recorded, loss);
    assert!(loss_output.difference.difference.max_abs < 1e-6);

    // The gradient: wrong at (1, 1) only, by the step, with libtorch's value there.
    let grad_output = result.output("grad_input").unwrap();
    assert!(!grad_output.passed());
    assert_eq!(grad_output.recorded, grad);
    let d = &grad_output.difference.difference;
    assert_eq!((d.mismatched, d.numel), (1, 6));
    let worst = grad_output.worst().unwrap();
    assert_eq!(worst.index, [1, 1]);
    assert_eq!(worst.expected, grad.to_f64()[4]);
    assert_eq!(worst.actual, grad_output.yours.to_f64()[4]);
    assert!((worst.actual - (worst.expected + 0.01)).abs() < 1e-6, "{worst:?}");
    assert!((worst.value - 0.01).abs() < 1e-6 && worst.value == d.max_abs);
    assert_eq!(grad_output.yours.dtype, DType::Float32);

    // The float64 answer, where float32 values differ: the float32 inputs
    // widened, as PyTorch 2.13 computes them in float64 (recorded with the
    // venv's torch: F.cross_entropy(x.double(), t, label_smoothing=0.1)).
    let pytorch_loss64 = 0.596668682184762;
    let pytorch_grad64 = [
        -0.137166097272078,
        0.10454981866788665,
        0.03261627860419131,
        0.08198884317799349,
        -0.19849318697856455,
        0.11650434380057106,
    ];
    let exact = grad_output.float64.as_ref().expect("float64 answer");
    for (e, r) in exact.to_f64().iter().zip(pytorch_grad64) {
        assert!((e - r).abs() < 1e-15, "{e} vs PyTorch's float64 {r}");
    }
    assert!((loss_output.float64_at(&[]).unwrap() - pytorch_loss64).abs() < 1e-15);
    #[cfg(feature = "torch")]
    {
        // And as live libtorch computes them.
        use ce_parity::runner::{in_float64, Outcome};
        let Outcome::Values(Values { grad_input, .. }) =
            ce_parity::reference::run_libtorch(&in_float64(case(&fixtures, name)))
        else {
            panic!("libtorch rejected the case");
        };
        for (e, r) in exact.to_f64().iter().zip(grad_input.unwrap().to_f64()) {
            assert!((e - r).abs() < 1e-15, "{e} vs libtorch's float64 {r}");
        }
    }
    assert_eq!(grad_output.float64_at(&[1, 1]), Some(exact.to_f64()[4]));
    assert!(result.gradient_checked);

    // The listing shows the failing output alone, at its worst element.
    let listing = report.to_string();
    let line = format!(
        "grad_input at (1, 1): yours {} vs libtorch {}, float64 {}",
        worst.actual as f32,
        worst.expected as f32,
        exact.to_f64()[4]
    );
    assert!(listing.contains(&line), "{line}\n{listing}");
    assert!(!listing.contains("loss at"), "{listing}");
    let (yours, libtorch) = result.sides().unwrap();
    assert_eq!(yours, format!("grad_input[1, 1] = {}", worst.actual as f32));
    assert_eq!(
        libtorch,
        format!("{} (float64 {:.9})", worst.expected as f32, exact.to_f64()[4])
    );
    assert_eq!(report.case(name).unwrap().sides(), Some((yours, libtorch)));
}

#[test]
fn kit_settles_a_float16_loss_closer_to_the_exact_answer_than_libtorchs() {
    // candle's value for this case; libtorch recorded 3.8027344; PyTorch
    // 2.13 in float64, on the float16 inputs widened, gives 3.806971262859507.
    let fixtures = suite(MODULES);
    let options = CheckOptions::new().file(MODULES).case("float16/4d__mean");
    assert!(!Tolerance::default_for(DType::Float16).close(3.8066406, 3.8027344));
    let report = kit::check(with_loss(3.8066406), &fixtures, &options);
    let result = &report.cases[0];
    assert_eq!(result.kind, Kind::Agrees, "{report}");
    let loss = result.output("loss").unwrap();
    assert_eq!(loss.recorded.to_f64(), [3.802734375]);
    assert_eq!(loss.yours.to_f64(), [3.806640625]);
    assert_eq!(loss.difference.difference.by_float64, 1);
    assert!((loss.float64_at(&[]).unwrap() - 3.806971262859507).abs() < 1e-14);
    assert!(result.report.note.contains("float64"), "{}", result.report.note);

    // Far from both, it fails, and the float64 answer is shown beside them.
    let report = kit::check(with_loss(3.85), &fixtures, &options);
    let result = &report.cases[0];
    assert_eq!(result.kind, Kind::ValuesDiffer);
    let listing = report.to_string();
    assert!(
        listing.contains("loss at (): yours 3.8496094 vs libtorch 3.8027344, float64 3.80697126285950"),
        "{listing}"
    );

    // The same rule for bfloat16.
    let bfloat16 = "fixtures/pytorch-suite/sample_inputs.json";
    let options = CheckOptions::new().file(bfloat16).case("bfloat16/4d/index");
    let report = kit::check(crate_loss, &suite(bfloat16), &options);
    assert_eq!(report.cases[0].kind, Kind::Agrees, "{report}");
    let report = kit::check(with_loss(3.9), &suite(bfloat16), &options);
    assert_eq!(report.cases[0].kind, Kind::ValuesDiffer, "{report}");
}

#[test]
fn kit_groups_failures_by_kind_dtype_and_features_and_counts_passes_by_rejection_apart() {
    let fixtures = suites(&[SURFACE, REJECTIONS]);
    // A library that mistakenly rejects weights and computes any smoothing ε.
    let adapter = |view: &CaseView| {
        if view.weight.is_some() {
            // A message with a backtrace after it, as candle's errors carry.
            Answer::rejected("weights are not supported\n   0: mylib::loss")
        } else if view.label_smoothing > 1.0 {
            Answer::scalar(0.0)
        } else {
            crate_loss(view)
        }
    };
    let report = kit::check(adapter, &fixtures, &CheckOptions::new());
    let cases: Vec<&Case> = fixtures.iter().flat_map(|(_, f)| &f.cases).collect();
    let count = |f: &dyn Fn(&Case) -> bool| cases.iter().filter(|c| f(c)).count();
    let you_reject = count(&|c| c.weight.is_some() && !rejected_by_libtorch(c));
    let you_compute = count(&|c| c.weight.is_none() && c.label_smoothing > 1.0 && rejected_by_libtorch(c));
    let both_reject = count(&|c| rejected_by_libtorch(c)) - you_compute;
    assert!(you_reject > 50 && you_compute > 3 && both_reject > 100);
    assert_eq!(report.of_kind(Kind::YouReject).count(), you_reject);
    assert_eq!(report.of_kind(Kind::YouCompute).count(), you_compute);
    let totals = report.totals();
    assert_eq!(totals.passed_by_rejection, both_reject);
    assert_eq!(totals.failed, you_reject + you_compute, "{report}");
    assert!(report
        .summary()
        .starts_with(&format!("{} passed ({both_reject} by rejection), ", totals.passed)));

    let groups = report.failure_groups();
    assert_eq!(groups.iter().map(|g| g.cases.len()).sum::<usize>(), totals.failed);
    assert!(groups.windows(2).all(|w| w[0].cases.len() >= w[1].cases.len()));
    for group in &groups {
        for result in &group.cases {
            let case = case(&fixtures, result.name());
            let features: Vec<Feature> = Feature::ALL
                .into_iter()
                .filter(|f| *f != Feature::Rejection && f.of(case))
                .collect();
            assert_eq!(
                (result.kind, case.input.dtype, &features),
                (group.kind, group.dtype, &group.features)
            );
        }
    }
    let listing = report.to_string();
    assert!(!listing.contains("mylib::loss"), "{listing}");
    for group in &groups {
        let first = group.cases[0];
        let example = match group.kind {
            Kind::YouReject => {
                let loss = first.libtorch_loss.as_ref().unwrap();
                assert_eq!(Some(loss), recorded_loss(case(&fixtures, first.name())).as_ref());
                assert!(first.yours_loss.is_none());
                let (yours, theirs) = first.sides().unwrap();
                assert_eq!(yours, "\"weights are not supported\"");
                assert_eq!(
                    first.yours_error.as_deref(),
                    Some("weights are not supported\n   0: mylib::loss")
                );
                // libtorch's 0-d loss, in the fewest digits that give it back in its dtype.
                let shown: f64 = theirs.parse().unwrap();
                assert_eq!(loss.dtype.round(shown), loss.to_f64()[0], "{theirs}");
                "      yours: \"weights are not supported\"; libtorch's loss: ".to_string()
            }
            Kind::YouCompute => {
                assert_eq!(first.yours_loss.as_ref().unwrap().to_f64(), [0.0]);
                assert!(first.libtorch_loss.is_none());
                format!(
                    "      your loss: 0; libtorch: {:?}",
                    first.libtorch_error.as_deref().unwrap()
                )
            }
            other => panic!("unexpected {other}"),
        };
        let n = group.cases.len();
        let expected = format!(
            "  {group}: {n} case(s)\n    e.g. {}: {}\n{example}",
            first.file,
            first.name()
        );
        assert!(listing.contains(&expected), "{expected}\n{listing}");
    }
    assert!(
        listing.contains("you reject, libtorch computes — float32; class weights: "),
        "{listing}"
    );
    assert!(
        listing.contains("you compute, libtorch rejects — float32; label smoothing: "),
        "{listing}"
    );
}

#[test]
fn kit_skips_what_a_predicate_on_the_case_view_excludes() {
    let fixtures = suite(SURFACE);
    let non_positive_weight = |w: &[f64]| w.iter().any(|&v| v <= 0.0);
    let supports = Supports::all()
        .skip_when(|case| match case.target {
            Targets::Classes {
                dtype: DType::UInt8, ..
            } => Some("uint8 targets".into()),
            _ => None,
        })
        .skip_when(move |case| {
            let weight = case.weight?;
            non_positive_weight(weight.values).then(|| "weights ≤ 0".into())
        });
    let seen = Mutex::new(Vec::new());
    let spy = |view: &CaseView| {
        seen.lock().unwrap().push(view.name.to_string());
        assert_eq!(view.has(Feature::ClassWeights), view.weight.is_some());
        assert_eq!(view.has(Feature::KDim), view.input.shape.len() > 2);
        assert_eq!(
            view.features().contains(&Feature::ProbabilityTargets),
            matches!(view.target, Targets::Probabilities(_))
        );
        crate_loss(view)
    };
    let report = kit::check(spy, &fixtures, &CheckOptions::new().supports(supports));
    report.assert_passed();
    let uint8 = |c: &Case| c.target.dtype == DType::UInt8;
    let bad_weight =
        |c: &Case| matches!(&c.weight, Some(w) if matches!(&w.data, Data::Float(v) if non_positive_weight(v)));
    let cases = &fixtures[0].1.cases;
    let skipped_as = |note: &str| {
        report
            .with_status(Status::Skipped)
            .filter(|c| c.report.note == note)
            .count()
    };
    assert_eq!(
        skipped_as("unsupported: uint8 targets"),
        cases.iter().filter(|c| uint8(c)).count()
    );
    let weights = cases.iter().filter(|c| !uint8(c) && bad_weight(c)).count();
    assert!(weights > 10);
    assert_eq!(skipped_as("unsupported: weights ≤ 0"), weights);
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), cases.iter().filter(|c| !uint8(c) && !bad_weight(c)).count());
    for name in seen {
        let case = case(&fixtures, &name);
        assert!(!uint8(case) && !bad_weight(case), "{name}");
    }
}

#[test]
fn kit_runs_one_case_or_one_file_by_name() {
    let one = kit::check_bundled(crate_loss, &CheckOptions::new().case("article/weighted/mean")).unwrap();
    assert_eq!(one.cases.len(), 1);
    assert_eq!((one.cases[0].file.as_str(), one.cases[0].kind), (ARTICLE, Kind::Agrees));

    let file = kit::check_bundled(crate_loss, &CheckOptions::new().file(ARTICLE)).unwrap();
    let names: Vec<&str> = file.cases.iter().map(|c| c.name()).collect();
    let recorded: Vec<String> = suite(ARTICLE)[0].1.cases.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names, recorded);
    file.assert_passed();

    let two = CheckOptions::new()
        .file(ARTICLE)
        .file(SURFACE)
        .case("article/no_smoothing/mean")
        .case("article/float64/mean");
    let report = kit::check_bundled(crate_loss, &two).unwrap();
    let names: Vec<&str> = report.cases.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["article/no_smoothing/mean", "article/float64/mean"]);

    // A name from another file than the one selected: nothing runs, nothing passes.
    let none = kit::check_bundled(
        crate_loss,
        &CheckOptions::new().file(SURFACE).case("article/weighted/mean"),
    )
    .unwrap();
    assert!(none.cases.is_empty() && !none.all_passed());
    let bundled = fixtures::bundled().unwrap();
    assert!(bundled.iter().any(|(f, _)| f == MODULES));
}

#[test]
fn kit_counts_a_rejection_only_when_it_matches_libtorchs() {
    let fixtures = suite(REJECTIONS);
    let reworded = |view: &CaseView| match crate_loss(view) {
        Answer::Rejected(message) if message.contains("out of bounds") => Answer::rejected("mylib: bad class"),
        Answer::Rejected(message) => Answer::rejected(format!("mylib: {message}")),
        other => other,
    };
    let errors: Vec<&Case> = fixtures[0].1.cases.iter().filter(|c| rejected_by_libtorch(c)).collect();
    let out_of_bounds = errors
        .iter()
        .filter(|c| matches!(&c.expected.as_ref().unwrap().result, Recorded::Error(e) if e.contains("out of bounds")))
        .count();
    assert!(out_of_bounds >= 3);

    // Any wording passes by default.
    let report = kit::check(reworded, &fixtures, &CheckOptions::new());
    report.assert_passed();
    assert_eq!(report.totals().passed_by_rejection, errors.len());

    // The first line itself: none of the reworded rejections passes.
    let report = kit::check(reworded, &fixtures, &CheckOptions::new().same_error_messages(true));
    assert_eq!(report.of_kind(Kind::RejectionDiffers).count(), errors.len(), "{report}");
    let result = report.of_kind(Kind::RejectionDiffers).next().unwrap();
    let libtorch = match &case(&fixtures, result.name()).expected.as_ref().unwrap().result {
        Recorded::Error(e) => e.lines().next().unwrap().to_string(),
        _ => unreachable!(),
    };
    assert_eq!(result.libtorch_error.as_deref(), Some(libtorch.as_str()));
    assert!(result.yours_error.as_deref().unwrap().starts_with("mylib: "));

    // A rule of theirs: an out-of-bounds class must be rejected as one.
    let options = CheckOptions::new()
        .rejections_match(|libtorch, yours| !libtorch.contains("out of bounds") || yours.contains("out of bounds"));
    let report = kit::check(reworded, &fixtures, &options);
    assert_eq!(
        report.of_kind(Kind::RejectionDiffers).count(),
        out_of_bounds,
        "{report}"
    );
    assert_eq!(report.totals().passed_by_rejection, errors.len() - out_of_bounds);
    for result in report.of_kind(Kind::RejectionDiffers) {
        assert!(result.libtorch_error.as_deref().unwrap().contains("out of bounds"));
        assert_eq!(result.yours_error.as_deref(), Some("mylib: bad class"));
    }
}

/// The only test in this binary that asks for quiet panics: its counting
/// hook must be installed before the kit's quiet hook (installed once, on
/// first use), so that the kit's hook wraps it.
#[test]
fn kit_turns_panics_into_rejections_without_printing_them_when_asked() {
    let marker = "kit-quiet-test: label_smoothing out of [0, 1]";
    let printed = Arc::new(AtomicUsize::new(0));
    let previous = std::panic::take_hook();
    let count = Arc::clone(&printed);
    std::panic::set_hook(Box::new(move |info| {
        if info.to_string().contains("kit-quiet-test") {
            count.fetch_add(1, Ordering::SeqCst);
        }
        previous(info);
    }));
    // An asserting library, as burn asserts on ε.
    let asserting = |view: &CaseView| {
        assert!((0.0..=1.0).contains(&view.label_smoothing), "{marker}");
        crate_loss(view)
    };
    let fixtures = suite(REJECTIONS);
    let cases = &fixtures[0].1.cases;
    let outside = |c: &Case| !(0.0..=1.0).contains(&c.label_smoothing);
    let panicking = cases.iter().filter(|c| outside(c)).count();
    let computed_by_libtorch = cases.iter().filter(|c| outside(c) && !rejected_by_libtorch(c)).count();
    assert!(panicking > 10 && computed_by_libtorch >= 3);

    let quiet = kit::check(asserting, &fixtures, &CheckOptions::new().panics_as_rejections(true));
    assert_eq!(printed.load(Ordering::SeqCst), 0, "a quiet panic reached the hook");
    assert_eq!(quiet.of_kind(Kind::Panicked).count(), 0);
    // A negative ε, which libtorch takes as 0: the panic is a wrong rejection.
    let wrong: Vec<_> = quiet.of_kind(Kind::YouReject).collect();
    assert_eq!(wrong.len(), computed_by_libtorch, "{quiet}");
    for result in wrong {
        assert!(case(&fixtures, result.name()).label_smoothing < 0.0);
        assert_eq!(
            result.yours_error.as_deref(),
            Some(format!("panicked: {marker}").as_str())
        );
    }
    assert_eq!(quiet.totals().failed, computed_by_libtorch);

    // Without the option a panic fails its case, and the hook sees it.
    let loud = kit::check(asserting, &fixtures, &CheckOptions::new());
    assert_eq!(loud.of_kind(Kind::Panicked).count(), panicking);
    assert_eq!(printed.load(Ordering::SeqCst), panicking);
    assert!(loud
        .to_string()
        .contains(&format!("the implementation panicked: {marker}")));
}

#[test]
fn kit_runs_integer_input_cases_and_fails_a_reduced_loss_shaped_one() {
    let fixtures = suite(REJECTIONS);
    let integer_input = |c: &Case| !c.input.dtype.is_float();
    let count = fixtures[0].1.cases.iter().filter(|c| integer_input(c)).count();
    assert!(count >= 10);
    let report = kit::check(crate_loss, &fixtures, &CheckOptions::new());
    let ran = report
        .cases
        .iter()
        .filter(|r| integer_input(case(&fixtures, r.name())))
        .filter(|r| r.kind == Kind::BothReject)
        .count();
    assert_eq!(ran, count, "{report}");
    // Computing one is computing where libtorch rejects.
    let report = kit::check(|_: &CaseView| Answer::scalar(1.0), &fixtures, &CheckOptions::new());
    for result in report.cases.iter().filter(|r| integer_input(case(&fixtures, r.name()))) {
        assert_eq!(result.kind, Kind::YouCompute, "{}", result.name());
    }

    // burn returns a mean loss shaped [1]; PyTorch's is 0-d.
    let shaped_one = |view: &CaseView| match crate_loss(view) {
        Answer::Computed { loss, shape, .. } if shape.is_empty() => Answer::loss(loss, vec![1]),
        other => other,
    };
    let report = kit::check(shaped_one, &suite(ARTICLE), &CheckOptions::new());
    assert_eq!(report.of_kind(Kind::Malformed).count(), 5, "{report}");
    assert_eq!(report.case("article/smoothing_0.1/none").unwrap().kind, Kind::Agrees);
    assert!(report.to_string().contains("use Answer::scalar") || report.to_string().contains("answer Answer::scalar"));
}

/// The CLIP-step kit runs through the same loop: its named gradients are
/// outputs of the report, each with its own worst element.
#[test]
fn kit_reports_a_clip_steps_named_gradients_output_by_output() {
    use ce_parity::kit::{ClipStepAnswer, ClipStepView};
    use ce_parity::loss::{clip_step, View};
    // The crate's step with the image gradient's second element off by 0.5.
    let nudged = |case: &ClipStepView| {
        let (i, t) = (case.image_embeds, case.text_embeds);
        match clip_step(
            View::new(i.values, i.shape),
            View::new(t.values, t.shape),
            case.logit_scale,
            case.label_smoothing,
            case.grad_output,
        ) {
            Ok(s) => {
                let mut grad_image_embeds = s.grad_image_embeds;
                if grad_image_embeds.len() > 1 {
                    grad_image_embeds[1] += 0.5;
                }
                ClipStepAnswer::Computed {
                    loss: s.loss,
                    grad_image_embeds,
                    grad_text_embeds: s.grad_text_embeds,
                    grad_logit_scale: s.grad_logit_scale,
                }
            }
            Err(e) => ClipStepAnswer::Rejected(e.to_string()),
        }
    };
    let fixtures = suite("fixtures/clip_step.json");
    let report = kit::check_clip_steps(nudged, &fixtures, None);
    let failed: Vec<_> = report.of_kind(Kind::ValuesDiffer).collect();
    assert!(failed.len() >= 20, "{report}");
    for result in failed {
        let image = result.output("grad_image_embeds").unwrap();
        assert!(!image.passed());
        let worst = image.worst().unwrap();
        let d = image.recorded.shape[1];
        assert_eq!(worst.index, [1 / d, 1 % d], "{}", result.name());
        let recorded = match &case(&fixtures, result.name()).expected.as_ref().unwrap().result {
            Recorded::Values(Values { named_grads, .. }) => named_grads
                .iter()
                .find(|(n, _)| *n == "grad_image_embeds")
                .unwrap()
                .1
                .clone(),
            Recorded::Error(e) => panic!("{e}"),
        };
        assert_eq!(image.recorded, recorded);
        assert_eq!(worst.expected, recorded.to_f64()[1]);
        assert!((worst.actual - worst.expected - 0.5).abs() < 1e-2, "{worst:?}");
        for other in ["loss", "grad_text_embeds", "grad_logit_scale"] {
            assert!(result.output(other).unwrap().passed(), "{}: {other}", result.name());
        }
    }
}
