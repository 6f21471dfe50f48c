//! The Rust loss against live libtorch: a grid over reductions, smoothing,
//! weights, ignore_index patterns and dtypes, plus invalid input.

use ce_parity::compare::Tolerance;
use ce_parity::fixtures::Case;
use ce_parity::loss::Reduction;
use ce_parity::reference::run_libtorch;
use ce_parity::runner::{judge, run_rust, verdict, Outcome, Status};
use ce_parity::tensor::{DType, Tensor};

use crate::rng::Rng;

/// Runs both sides and asserts that they were compared and agree.
fn assert_parity(case: &Case) {
    let rust = run_rust(case);
    let torch = run_libtorch(case);
    let report = judge(case, &rust, Some(&torch), Tolerance::default_for(case.input.dtype));
    assert_eq!(
        report.status,
        Status::Passed,
        "{}: {}\nrust: {rust:?}\nlibtorch: {torch:?}",
        case.name,
        report.note
    );
    assert!(
        report.comparisons.iter().any(|c| c.between == ("rust", "libtorch")),
        "{}: not compared",
        case.name
    );
}

fn classes_case(name: String, dtype: DType, n: usize, c: usize, targets: Vec<i64>, rng: &mut Rng) -> Case {
    let x: Vec<f64> = (0..n * c).map(|_| rng.normal_ish(3.0)).collect();
    Case::new(
        name,
        Tensor::float(dtype, vec![n, c], x),
        Tensor::int(DType::Int64, vec![n], targets),
    )
}

#[test]
fn grid_of_options_matches_libtorch_loss_and_gradient() {
    let mut rng = Rng(0x5eed);
    let (n, c) = (6, 5);
    let patterns: [(&str, i64, Vec<i64>); 5] = [
        ("none_ignored", -100, vec![0, 1, 2, 3, 4, 1]),
        ("default_ignored", -100, vec![0, -100, 2, 3, -100, 1]),
        ("negative_ignore", -1, vec![-1, 1, 2, -1, 4, 0]),
        ("valid_class_ignored", 2, vec![2, 1, 2, 3, 4, 0]),
        ("out_of_range_ignored", 7, vec![7, 1, 7, 3, 4, 0]),
    ];
    let mut count = 0;
    for dtype in [DType::Float32, DType::Float64] {
        for (pattern, ignore_index, targets) in &patterns {
            for reduction in Reduction::ALL {
                for epsilon in [0.0, 0.1, 1.0] {
                    for weighted in [false, true] {
                        let name = format!("{dtype}/{pattern}/{reduction}/eps{epsilon}/w{weighted}");
                        let mut case = classes_case(name, dtype, n, c, targets.clone(), &mut rng);
                        case.ignore_index = *ignore_index;
                        case.reduction = reduction;
                        case.label_smoothing = epsilon;
                        if weighted {
                            case.weight = Some(Tensor::float(
                                dtype,
                                vec![c],
                                (0..c).map(|_| rng.uniform() * 2.0).collect(),
                            ));
                        }
                        let go_shape = if reduction == Reduction::None { vec![n] } else { vec![] };
                        let go_len = go_shape.iter().product();
                        case.grad_output = Some(Tensor::float(
                            dtype,
                            go_shape,
                            (0..go_len).map(|_| rng.normal_ish(1.0)).collect(),
                        ));
                        assert_parity(&case);
                        count += 1;
                    }
                }
            }
        }
    }
    assert_eq!(count, 180);
}

/// Shapes that reach every part of the fused kernel's f32 path: rows long
/// enough for the vector loop, its 1024-element blocks and a tail; K-dim
/// input over several 256-position tiles, the last one ending mid lane group.
#[test]
fn kernel_sized_shapes_match_libtorch_loss_and_gradient() {
    let mut rng = Rng(0xbeef);
    let shapes: [&[usize]; 2] = [&[3, 2500], &[2, 7, 23, 31]];
    for shape in shapes {
        let c = shape[1];
        let target_shape: Vec<usize> = [shape[0]].into_iter().chain(shape[2..].iter().copied()).collect();
        let positions: usize = target_shape.iter().product();
        for reduction in Reduction::ALL {
            for weighted in [false, true] {
                let x: Vec<f64> = (0..positions * c).map(|_| rng.normal_ish(3.0)).collect();
                let targets: Vec<i64> = (0..positions)
                    .map(|p| match p % 11 {
                        5 => -100,
                        _ => rng.below(c) as i64,
                    })
                    .collect();
                let mut case = Case::new(
                    format!("{shape:?}/{reduction}/w{weighted}"),
                    Tensor::float(DType::Float32, shape.to_vec(), x),
                    Tensor::int(DType::Int64, target_shape.clone(), targets),
                );
                case.reduction = reduction;
                case.label_smoothing = 0.1;
                if weighted {
                    let w = (0..c).map(|_| rng.uniform() * 2.0).collect();
                    case.weight = Some(Tensor::float(DType::Float32, vec![c], w));
                }
                let go_shape = if reduction == Reduction::None {
                    target_shape.clone()
                } else {
                    vec![]
                };
                let go_len = go_shape.iter().product();
                let go = (0..go_len).map(|_| rng.normal_ish(1.0)).collect();
                case.grad_output = Some(Tensor::float(DType::Float32, go_shape, go));
                assert_parity(&case);
            }
        }
    }
}

#[test]
fn all_ignored_and_zero_total_weight_match_libtorch() {
    let mut rng = Rng(7);
    for reduction in Reduction::ALL {
        for epsilon in [0.0, 0.1] {
            let mut all_ignored = classes_case(
                format!("all_ignored/{reduction}/{epsilon}"),
                DType::Float32,
                3,
                4,
                vec![-100; 3],
                &mut rng,
            );
            all_ignored.reduction = reduction;
            all_ignored.label_smoothing = epsilon;
            assert_parity(&all_ignored);
            let mut zero_weight = classes_case(
                format!("zero_weight/{reduction}/{epsilon}"),
                DType::Float64,
                3,
                4,
                vec![0, 0, 1],
                &mut rng,
            );
            zero_weight.weight = Some(Tensor::float(DType::Float64, vec![4], vec![0.0, 0.0, 1.0, 1.0]));
            zero_weight.reduction = reduction;
            zero_weight.label_smoothing = epsilon;
            assert_parity(&zero_weight);
        }
    }
}

#[test]
fn rejections_match_libtorch_messages() {
    let mut rng = Rng(11);
    let mut cases = Vec::new();
    cases.push(classes_case(
        "target_out_of_bounds".into(),
        DType::Float32,
        2,
        3,
        vec![0, 5],
        &mut rng,
    ));
    cases.push(classes_case(
        "negative_target".into(),
        DType::Float32,
        2,
        3,
        vec![-3, 1],
        &mut rng,
    ));
    let mut smoothing = classes_case("smoothing_above_one".into(), DType::Float32, 2, 3, vec![0, 1], &mut rng);
    smoothing.label_smoothing = 1.5;
    cases.push(smoothing);
    let mut batch = classes_case("batch_mismatch".into(), DType::Float32, 3, 3, vec![0, 1, 2], &mut rng);
    batch.target = Tensor::int(DType::Int64, vec![2], vec![0, 1]);
    cases.push(batch);
    let mut weight = classes_case("weight_length".into(), DType::Float32, 2, 3, vec![0, 1], &mut rng);
    weight.weight = Some(Tensor::float(DType::Float32, vec![2], vec![1.0, 1.0]));
    cases.push(weight);
    for case in &cases {
        let torch = run_libtorch(case);
        assert!(
            matches!(torch, Outcome::Error(_)),
            "{}: libtorch accepted it: {torch:?}",
            case.name
        );
        assert_eq!(run_rust(case), torch, "{}", case.name);
    }
    let messages: Vec<String> = cases
        .iter()
        .map(|c| match run_rust(c) {
            Outcome::Error(e) => e,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(messages[0], "Target 5 is out of bounds.");
    assert_eq!(messages[2], "label_smoothing must be between 0.0 and 1.0. Got: 1.5");
    assert_eq!(
        messages[3],
        "Expected input batch_size (3) to match target batch_size (2)."
    );
}

#[test]
fn bundled_article_fixture_matches_live_libtorch() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/article.json");
    for case in ce_parity::fixtures::load(&path).unwrap().cases {
        let torch = run_libtorch(&case);
        let report = judge(
            &case,
            &run_rust(&case),
            Some(&torch),
            Tolerance::default_for(case.input.dtype),
        );
        assert_eq!(report.status, Status::Passed, "{}: {}", case.name, report.note);
        assert_eq!(report.comparisons.len(), 3, "rust/libtorch/expected pairs");
    }
}

#[test]
fn every_bundled_fixture_matches_live_libtorch_and_its_recorded_values() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut cases = 0;
    for file in ce_parity::fixtures::discover(&root).unwrap() {
        for case in ce_parity::fixtures::load(&file).unwrap().cases {
            let tolerance = Tolerance::default_for(if case.input.dtype.is_float() {
                case.input.dtype
            } else {
                DType::Float32
            });
            let report = verdict(
                &case,
                &run_rust(&case),
                Some(&run_libtorch(&case)),
                run_libtorch,
                tolerance,
            );
            assert_eq!(
                report.status,
                Status::Passed,
                "{}: {}: {}",
                file.display(),
                case.name,
                report.note
            );
            assert_eq!(
                report.comparisons.len(),
                3,
                "{}: rust, libtorch and expected all compared",
                case.name
            );
            cases += 1;
        }
    }
    assert!(cases > 500, "{cases}");
}

#[test]
fn clip_loss_matches_libtorchs_composition() {
    let mut rng = Rng(0xC11F);
    let shapes = [
        (64, 64, DType::Float32, 0.07, 0.1),
        (33, 70, DType::Float64, 0.05, 0.2),
        (16, 16, DType::BFloat16, 0.07, 0.1),
        (24, 40, DType::Float16, 0.1, 0.0),
        (1, 300, DType::Float32, 0.02, 0.1),
    ];
    for (n, m, dtype, temperature, eps) in shapes {
        let data = (0..n * m).map(|_| rng.normal_ish(0.4).clamp(-1.0, 1.0)).collect();
        let mut case = Case::clip(
            format!("clip {n}x{m} {dtype}"),
            Tensor::float(dtype, vec![n, m], data),
            temperature,
        );
        case.label_smoothing = eps;
        assert_parity(&case);
    }
}

/// The producer named in new recordings is the libtorch and tch this build
/// links (read by build.rs), the same pair the bundled fixtures name.
#[test]
fn producer_names_the_linked_libtorch_and_tch() {
    let fixtures = ce_parity::fixtures::bundled().expect("bundled fixtures parse");
    let (_, article) = fixtures
        .iter()
        .find(|(path, _)| path.ends_with("article.json"))
        .expect("bundled");
    let recorded = &article.cases[0].expected.as_ref().expect("recorded").producer;
    assert_eq!(recorded, "libtorch 2.13.0 via tch 0.26");
    let producer = ce_parity::reference::producer();
    assert!(producer.starts_with(recorded), "{producer}");
    assert_eq!(ce_parity::reference::libtorch_version(), "2.13.0");
}
