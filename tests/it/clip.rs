//! The contrastive (CLIP) loss against closed forms and finite differences;
//! its rejections; and its fixture fields. The recorded and live-libtorch
//! comparisons run with every bundled fixture (recorded.rs, libtorch.rs).

use std::path::Path;

use ce_parity::fixtures::{self, LossKind};
use ce_parity::loss::{clip_loss, clip_loss_with_grad, LossError, View};

/// ½·(mean_i −log q_i(i) over rows + mean_j −log over the N paired columns),
/// q the smoothed softmax, written out in f64 from the definition.
fn by_definition(s: &[f64], n: usize, m: usize, tau: f64, eps: f64) -> f64 {
    let smoothed_ce = |logits: &[f64], target: usize| {
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + logits.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        let c = logits.len() as f64;
        let nll = lse - logits[target];
        let uniform = logits.iter().map(|x| lse - x).sum::<f64>() / c;
        (1.0 - eps) * nll + eps * uniform
    };
    let rows: f64 = (0..n)
        .map(|i| smoothed_ce(&(0..m).map(|j| s[i * m + j] / tau).collect::<Vec<_>>(), i))
        .sum();
    let columns: f64 = (0..n)
        .map(|j| smoothed_ce(&(0..n).map(|i| s[i * m + j] / tau).collect::<Vec<_>>(), j))
        .sum();
    0.5 * (rows / n as f64 + columns / n as f64)
}

fn similarities(n: usize, m: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..n * m)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn loss_matches_the_definition_square_and_rectangular() {
    for (n, m, tau, eps) in [(4, 4, 0.07, 0.1), (3, 7, 0.5, 0.0), (1, 5, 1.0, 0.3), (6, 6, 2.0, 1.0)] {
        let s = similarities(n, m, 17 + n as u64);
        let expected = by_definition(&s, n, m, tau, eps);
        let got = clip_loss(View::new(&s, &[n, m]), tau, eps).unwrap();
        assert!(
            (got - expected).abs() <= 1e-12 * expected.abs().max(1.0),
            "{n}x{m}: {got} vs {expected}"
        );
        // f32 within f32 rounding of the f64 definition.
        let s32: Vec<f32> = s.iter().map(|&v| v as f32).collect();
        let s_rounded: Vec<f64> = s32.iter().map(|&v| v as f64).collect();
        let expected32 = by_definition(&s_rounded, n, m, tau as f32 as f64, eps);
        let got32 = clip_loss(View::new(&s32, &[n, m]), tau, eps).unwrap() as f64;
        assert!((got32 - expected32).abs() <= 1e-5 * expected32.abs().max(1.0));
    }
}

#[test]
fn gradient_matches_central_differences() {
    let (n, m, tau, eps) = (3, 5, 0.3, 0.1);
    let s = similarities(n, m, 99);
    let g = 1.7;
    let (loss, grad) = clip_loss_with_grad(View::new(&s, &[n, m]), tau, eps, Some(g)).unwrap();
    assert_eq!(loss, clip_loss(View::new(&s, &[n, m]), tau, eps).unwrap());
    let h = 1e-6;
    for k in 0..n * m {
        let mut plus = s.clone();
        plus[k] += h;
        let mut minus = s.clone();
        minus[k] -= h;
        let numeric = g * (by_definition(&plus, n, m, tau, eps) - by_definition(&minus, n, m, tau, eps)) / (2.0 * h);
        assert!((grad[k] - numeric).abs() < 1e-7, "dS[{k}]: {} vs {numeric}", grad[k]);
    }
    // Columns past N belong to unpaired texts: only the image-to-text term sees them.
    assert!(grad.iter().enumerate().all(|(k, &v)| v != 0.0 || k % m >= n));
}

#[test]
fn perfectly_separated_pairs_have_the_closed_form_loss() {
    // S = 2I − 1 (N = 3): every logit row is [1, −1, −1]/τ around its target.
    let s = [1.0, -1.0, -1.0, -1.0, 1.0, -1.0, -1.0, -1.0, 1.0];
    let tau = 0.5;
    let expected = (1.0 + 2.0 * (-4.0f64).exp()).ln();
    let got = clip_loss(View::new(&s, &[3, 3]), tau, 0.0).unwrap();
    assert!((got - expected).abs() < 1e-15, "{got} vs {expected}");
}

#[test]
fn rejections_are_typed_and_worded_like_libtorch() {
    let s = [0.1f32; 6];
    assert_eq!(
        clip_loss(View::new(&s, &[6]), 0.07, 0.0),
        Err(LossError::SimilarityShape(vec![6]))
    );
    assert_eq!(
        clip_loss(View::new(&s, &[2, 2]), 0.07, 0.0),
        Err(LossError::DataLength {
            what: "similarity",
            shape: vec![2, 2],
            len: 6
        })
    );
    for tau in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = clip_loss(View::new(&s, &[2, 3]), tau, 0.0).unwrap_err();
        assert!(matches!(err, LossError::Temperature(_)), "{tau}: {err:?}");
        assert!(err.to_string().contains("temperature must be a positive finite number"));
    }
    // More images than texts: libtorch's composition fails on the first target past M.
    let err = clip_loss(View::new(&s, &[3, 2]), 0.07, 0.0).unwrap_err();
    assert_eq!(err.to_string(), "Target 2 is out of bounds.");
    let err = clip_loss_with_grad(View::new(&s, &[2, 3]), 0.07, 1.5, None).unwrap_err();
    assert_eq!(err.to_string(), "label_smoothing must be between 0.0 and 1.0. Got: 1.5");
}

fn parse(text: &str) -> Result<fixtures::Fixture, String> {
    fixtures::parse(Path::new("c.json"), text).map_err(|e| e.to_string())
}

fn clip_fixture(extra: &str) -> String {
    format!(
        r#"{{"format": "ce-parity-fixture/1", "cases": [{{"name": "c", "loss": "clip",
        "input": {{"dtype": "float32", "shape": [2, 2], "data": [1, 0, 0, 1]}}{extra}}}]}}"#
    )
}

#[test]
fn fixture_clip_cases_parse_save_and_reject_what_clip_has_not() {
    let f = parse(&clip_fixture(r#", "temperature": 0.07, "label_smoothing": 0.1"#)).unwrap();
    let case = &f.cases[0];
    assert_eq!(case.loss, LossKind::Clip { temperature: 0.07 });
    assert_eq!(case.target.to_f64(), vec![0.0, 1.0], "targets are the diagonal");
    let text = fixtures::to_json(&f);
    assert!(text.contains("\"loss\": \"clip\"") && !text.contains("\"target\""));
    assert_eq!(parse(&text).unwrap(), f, "save then load is the identity");

    let rejected = [
        ("", "field `temperature`: a `clip` case needs a temperature"),
        (
            r#", "temperature": 0"#,
            "field `temperature`: must be a positive finite number, got 0",
        ),
        (
            r#", "temperature": 1, "target": {"dtype": "int64", "shape": [2], "data": [0, 1]}"#,
            "field `target`: a `clip` case has no target",
        ),
        (
            r#", "temperature": 1, "weight": {"dtype": "float32", "shape": [2], "data": [1, 1]}"#,
            "field `weight`",
        ),
        (r#", "temperature": 1, "reduction": "sum""#, "field `reduction`"),
        (r#", "temperature": 1, "ignore_index": 0"#, "field `ignore_index`"),
        (
            r#", "temperature": 1, "claims": [{"quantity": "softmax", "value": [1], "atol": 0, "source": "s"}]"#,
            "field `claims[0].quantity`: a `clip` case can only claim its loss",
        ),
    ];
    for (extra, message) in rejected {
        let err = parse(&clip_fixture(extra)).unwrap_err();
        assert!(
            err.contains("case #0 (\"c\")") && err.contains(message),
            "{extra}: {err}"
        );
    }
    let three_d = clip_fixture(r#", "temperature": 1"#).replace(r#""shape": [2, 2]"#, r#""shape": [1, 2, 2]"#);
    assert!(parse(&three_d).unwrap_err().contains("field `input.shape`"));
    let unknown = clip_fixture(r#", "temperature": 1"#).replace("\"clip\"", "\"siglip\"");
    assert!(parse(&unknown)
        .unwrap_err()
        .contains("field `loss`: unknown loss \"siglip\""));
    let ce_with_temperature = r#"{"format": "ce-parity-fixture/1", "cases": [{"name": "c", "temperature": 1,
        "input": {"dtype": "float32", "shape": [1, 2], "data": [1, 0]},
        "target": {"dtype": "int64", "shape": [1], "data": [0]}}]}"#;
    assert!(parse(ce_with_temperature)
        .unwrap_err()
        .contains("field `temperature`: only a `clip` case has a temperature"));
    let ce_without_target = r#"{"format": "ce-parity-fixture/1", "cases": [{"name": "c",
        "input": {"dtype": "float32", "shape": [1, 2], "data": [1, 0]}}]}"#;
    assert!(parse(ce_without_target).unwrap_err().contains("field `target`"));
}
