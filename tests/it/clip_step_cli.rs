//! `check --tensors STEP.safetensors` for OpenCLIP's loss step: a step worked
//! out by hand in closed form, PyTorch's own steps (tests/data/clip_step,
//! from scripts/gen_clip_step_tensors.py) in .safetensors and .npz, a
//! perturbed grad_logit_scale failing by name, and bad files refused with
//! the field named.

use ce_parity::fixtures::Values;
use std::path::{Path, PathBuf};

use ce_parity::safetensors_file::{self, TensorFile};
use ce_parity::tensor::{DType, Tensor};

use crate::binary::ce_parity;
use crate::safetensors_cli::save;

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/clip_step")
        .join(name)
        .display()
        .to_string()
}

/// Exit code, stdout and stderr of `ce-parity check ARGS`.
fn check(args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let mut all = vec!["check"];
    all.extend(args);
    let out = ce_parity(&all, dir);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// A copy of `name` (from tests/data/clip_step) with `edit` applied, at `dir/out`.
fn edited(dir: &Path, name: &str, out: &str, edit: impl FnOnce(&mut TensorFile)) -> String {
    let mut file = safetensors_file::load(Path::new(&data(name))).unwrap();
    edit(&mut file);
    let path: PathBuf = dir.join(out);
    let tensors: Vec<(&str, &Tensor)> = file.tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let metadata: Vec<(&str, &str)> = file.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    save(&path, &tensors, &metadata);
    path.display().to_string()
}

/// The modes every passing file is checked in: live libtorch (when built in)
/// and the float64 answer.
fn modes() -> Vec<Vec<&'static str>> {
    let mut modes = vec![vec!["--no-libtorch"]];
    if cfg!(feature = "torch") {
        modes.push(Vec::new());
    }
    modes
}

/// N = 2, D = 2, ε = 0.1: image_embeds [[2, 0], [0, 3]] (u = I), text_embeds
/// = I, logit_scale = ln 2, so logits = 2I. With p = σ(2), every row and
/// column is softmax([2, 0]) around its target and q = (1 − ε/2, ε/2):
/// - loss = −(1 − ε/2)·ln p − (ε/2)·ln(1 − p) (both directions alike);
/// - d loss/d logits = (p − 1 + ε/2)/2 = −a/2 on the diagonal and a/2 off
///   it, with a = 1 − p − ε/2 (each direction's mean over 2, halved, twice);
/// - d logit_scale = Σ dlogits ⊙ logits = 2·2·(−a/2) = −2a;
/// - d u = 2·dlogits, of which normalize's backward keeps the part
///   orthogonal to u over ‖x‖: image rows [0, a/2] and [a/3, 0];
/// - d v = dlogitsᵀ @ (2u) = 2·dlogits, text norms 1: rows [0, a] and [a, 0].
fn closed_form(dtype: DType, a_wrong: bool) -> Vec<(&'static str, Tensor)> {
    let eps = 0.1;
    let p = 1.0 / (1.0 + (-2f64).exp());
    let loss = -(1.0 - eps / 2.0) * p.ln() - (eps / 2.0) * (1.0 - p).ln();
    // The smoothing forgotten in the gradients: a = 1 − p.
    let a = if a_wrong { 1.0 - p } else { 1.0 - p - eps / 2.0 };
    let t = |shape: Vec<usize>, v: Vec<f64>| Tensor::float(dtype, shape, v);
    vec![
        ("image_embeds", t(vec![2, 2], vec![2.0, 0.0, 0.0, 3.0])),
        ("text_embeds", t(vec![2, 2], vec![1.0, 0.0, 0.0, 1.0])),
        ("logit_scale", t(vec![], vec![2f64.ln()])),
        ("loss", t(vec![], vec![loss])),
        ("grad_image_embeds", t(vec![2, 2], vec![0.0, a / 2.0, a / 3.0, 0.0])),
        ("grad_text_embeds", t(vec![2, 2], vec![0.0, a, a, 0.0])),
        ("grad_logit_scale", t(vec![], vec![-2.0 * a])),
    ]
}

fn save_closed_form(dir: &Path, dtype: DType, a_wrong: bool) -> String {
    let path = dir.join(format!("closed_{dtype}_{a_wrong}.safetensors"));
    let tensors = closed_form(dtype, a_wrong);
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    save(&path, &refs, &[("kind", "clip_step"), ("label_smoothing", "0.1")]);
    path.display().to_string()
}

#[test]
fn a_step_worked_out_by_hand_passes() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [DType::Float32, DType::Float64] {
        let path = save_closed_form(dir.path(), dtype, false);
        for mode in modes() {
            let mut args = vec!["--tensors", path.as_str()];
            args.extend(&mode);
            let (code, stdout, stderr) = check(&args, dir.path());
            assert_eq!(code, Some(0), "{dtype} {mode:?}: {stdout}{stderr}");
            assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
        }
    }
}

/// The same hand-worked step with the smoothing left out of the gradients:
/// the loss still passes, each gradient fails by name.
#[test]
fn the_hand_worked_step_without_smoothing_in_its_gradients_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = save_closed_form(dir.path(), DType::Float64, true);
    for mode in modes() {
        let mut args = vec!["--tensors", path.as_str()];
        args.extend(&mode);
        let (code, stdout, stderr) = check(&args, dir.path());
        assert_eq!(code, Some(1), "{mode:?}: {stdout}{stderr}");
        for output in ["grad_image_embeds", "grad_text_embeds", "grad_logit_scale"] {
            assert!(stdout.contains(&format!(": {output}\n")), "{output}: {stdout}");
        }
        assert!(!stdout.contains(": loss\n"), "{stdout}");
    }
}

#[test]
fn pytorchs_own_steps_pass_in_safetensors_and_npz() {
    let dir = tempfile::tempdir().unwrap();
    let files: [(&str, &[&str]); 3] = [
        ("f32_article.safetensors", &[]),
        ("f64_scale_max.safetensors", &[]),
        // np.savez has no metadata: the kind is told by image_embeds, ε by the flag.
        ("f32_article.npz", &["--label-smoothing", "0.1"]),
    ];
    for (name, flags) in files {
        let path = data(name);
        for mode in modes() {
            let mut args = vec!["--tensors", path.as_str()];
            args.extend(flags);
            args.extend(&mode);
            let (code, stdout, stderr) = check(&args, dir.path());
            assert_eq!(code, Some(0), "{name} {mode:?}: {stdout}{stderr}");
            assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
        }
        // Every output in the file was judged, yours against the reference.
        let mut args = vec!["--tensors", path.as_str(), "--format", "json"];
        args.extend(flags);
        let (_, json, _) = check(&args, dir.path());
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        let comparison = &report["files"][0]["cases"][0]["comparisons"][0];
        assert_eq!(comparison["between"][0], "yours", "{name}");
        let outputs: Vec<&str> = comparison["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["output"].as_str().unwrap())
            .collect();
        assert_eq!(
            outputs,
            ["loss", "grad_image_embeds", "grad_text_embeds", "grad_logit_scale"],
            "{name}"
        );
    }
    // Without ε the npz's outputs (computed with ε = 0.1) are wrong.
    let (code, stdout, _) = check(&["--tensors", &data("f32_article.npz"), "--no-libtorch"], dir.path());
    assert_eq!(code, Some(1), "{stdout}");
}

#[test]
fn a_perturbed_grad_logit_scale_fails_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), "f32_article.safetensors", "off.safetensors", |f| {
        let g = f.tensors.get_mut("grad_logit_scale").unwrap();
        *g = Tensor::scalar(g.dtype, g.to_f64()[0] * 1.001);
    });
    for mode in modes() {
        let mut args = vec!["--tensors", path.as_str()];
        args.extend(&mode);
        let (code, stdout, stderr) = check(&args, dir.path());
        assert_eq!(code, Some(1), "{mode:?}: {stdout}{stderr}");
        let reference = if mode.is_empty() { "libtorch" } else { "float64" };
        assert!(
            stdout.contains(&format!("yours vs {reference}: grad_logit_scale\n")),
            "{stdout}"
        );
        assert!(stdout.contains("Mismatched elements: 1 / 1 (100.0%)"), "{stdout}");
        for fine in ["loss", "grad_image_embeds", "grad_text_embeds"] {
            assert!(!stdout.contains(&format!(": {fine}\n")), "{fine}: {stdout}");
        }
    }
}

#[test]
fn bad_files_are_errors_naming_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let f32 = |shape: Vec<usize>, n: usize| Tensor::float(DType::Float32, shape, vec![0.5; n]);
    type Edit = Box<dyn FnOnce(&mut TensorFile)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "no_scale",
            Box::new(|f| {
                f.tensors.remove("logit_scale");
            }),
            "no tensor named \"logit_scale\"",
        ),
        (
            "no_text",
            Box::new(|f| {
                f.tensors.remove("text_embeds");
            }),
            "no tensor named \"text_embeds\"",
        ),
        (
            "text_shape",
            Box::new(move |f| {
                f.tensors.insert("text_embeds".into(), f32(vec![5, 8], 40));
            }),
            "tensor \"text_embeds\": shape [5, 8], but image_embeds has shape [6, 8]",
        ),
        (
            "image_3d",
            Box::new(move |f| {
                f.tensors.insert("image_embeds".into(), f32(vec![6, 2, 4], 48));
            }),
            "tensor \"image_embeds\": shape [6, 2, 4]; the embeddings must be 2-D",
        ),
        (
            "scale_shape",
            Box::new(move |f| {
                f.tensors.insert("logit_scale".into(), f32(vec![1], 1));
            }),
            "tensor \"logit_scale\": shape [1]; logit_scale is a 0-d tensor",
        ),
        (
            "scale_dtype",
            Box::new(|f| {
                f.tensors
                    .insert("logit_scale".into(), Tensor::scalar(DType::Float64, 2.0));
            }),
            "tensor \"logit_scale\": dtype float64 differs from image_embeds' float32",
        ),
        (
            "int_image",
            Box::new(|f| {
                f.tensors.insert(
                    "image_embeds".into(),
                    Tensor::int(DType::Int64, vec![6, 8], vec![1; 48]),
                );
            }),
            "tensor \"image_embeds\": dtype int64 is not floating",
        ),
        (
            "grad_shape",
            Box::new(move |f| {
                f.tensors.insert("grad_text_embeds".into(), f32(vec![8, 6], 48));
            }),
            "tensor \"grad_text_embeds\": shape [8, 6], but the step's output has shape [6, 8]",
        ),
        (
            "loss_shape",
            Box::new(move |f| {
                f.tensors.insert("loss".into(), f32(vec![1], 1));
            }),
            "tensor \"loss\": shape [1], but the step's output has shape []",
        ),
        (
            "foreign_tensor",
            Box::new(move |f| {
                f.tensors.insert("temperature".into(), f32(vec![], 1));
            }),
            "tensor \"temperature\": not one ce-parity reads in a clip_step file",
        ),
        (
            "bad_kind",
            Box::new(|f| {
                f.metadata.insert("kind".into(), "clip".into());
            }),
            "metadata \"kind\": \"clip\" is not a kind ce-parity reads",
        ),
        (
            "bad_smoothing",
            Box::new(|f| {
                f.metadata.insert("label_smoothing".into(), "ten percent".into());
            }),
            "metadata \"label_smoothing\": \"ten percent\" is not a number",
        ),
        (
            "foreign_metadata",
            Box::new(|f| {
                f.metadata.insert("reduction".into(), "sum".into());
            }),
            "metadata key \"reduction\" is not one ce-parity reads in a clip_step file",
        ),
    ];
    for (out, edit, message) in cases {
        let out = format!("{out}.safetensors");
        let path = edited(dir.path(), "f32_article.safetensors", &out, edit);
        let (code, stdout, stderr) = check(&["--tensors", &path, "--no-libtorch"], dir.path());
        assert_eq!(code, Some(2), "{out}: {stdout}{stderr}");
        assert!(stderr.contains(&out), "{out}: the file is named: {stderr}");
        assert!(stderr.contains(message), "{out}: {stderr}");
    }
    // Cross-entropy flags, and --grad, have no place in a CLIP step.
    let article = data("f32_article.safetensors");
    for (flags, message) in [
        (&["--reduction", "sum"][..], "--reduction: a clip_step case has none"),
        (
            &["--ignore-index", "0"][..],
            "--ignore-index: a clip_step case has none",
        ),
        (
            &["--grad", "g.npy"][..],
            "--grad g.npy: a clip_step case has no grad_input",
        ),
    ] {
        let mut args = vec!["--tensors", article.as_str()];
        args.extend(flags);
        let (code, stdout, stderr) = check(&args, dir.path());
        assert_eq!(code, Some(2), "{flags:?}: {stdout}{stderr}");
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
}

/// Exit code, stdout and stderr of `ce-parity explain ARGS`.
fn explain(args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let mut all = vec!["explain"];
    all.extend(args);
    let out = ce_parity(&all, dir);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn explain_json(args: &[&str], dir: &Path) -> (Option<i32>, serde_json::Value) {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let (code, stdout, stderr) = explain(&all, dir);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    (code, json)
}

/// Each step's (name, verdict, checked_against).
fn verdicts(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let field = |k: &str| s[k].as_str().unwrap().to_string();
            (field("name"), field("verdict"), field("checked_against"))
        })
        .collect()
}

#[cfg(feature = "torch")]
#[test]
fn explain_clip_step_agrees_with_live_libtorch_at_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = explain(&["--clip-step"], dir.path());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("clip_step/article/float32"), "{stdout}");
    assert!(stdout.contains("Step 9. Gradient w.r.t. logit_scale"), "{stdout}");
    assert!(stdout.ends_with("11 of 11 steps agree\n"), "{stdout}");

    let (code, report) = explain_json(&["--clip-step"], dir.path());
    assert_eq!(code, Some(0));
    assert_eq!(report["live_libtorch"], true);
    let steps = verdicts(&report);
    let names: Vec<&str> = steps.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ce_parity::explain::CLIP_STAGES);
    for (name, verdict, against) in &steps {
        assert_eq!(verdict, "agree", "{name}");
        assert!(against.starts_with("libtorch"), "{name}: {against}");
    }
    // The recorded outputs are checked too.
    for (name, _, against) in &steps[6..] {
        if name != "grad_logits" {
            assert_eq!(against, "libtorch and the recorded values", "{name}");
        }
    }
    // A --tensors step (float64, ln 100, an upstream gradient) is explained the same way.
    let (code, report) = explain_json(&["--tensors", &data("f64_scale_max.safetensors")], dir.path());
    assert_eq!(code, Some(0));
    assert!(verdicts(&report).iter().all(|(_, v, _)| v == "agree"), "{report}");
}

#[test]
fn explain_clip_step_agrees_with_the_recorded_values_without_libtorch() {
    let dir = tempfile::tempdir().unwrap();
    let (code, report) = explain_json(&["--clip-step", "--no-libtorch"], dir.path());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["live_libtorch"], false);
    for (name, verdict, against) in verdicts(&report) {
        if ["loss", "grad_logit_scale", "grad_image_embeds", "grad_text_embeds"].contains(&name.as_str()) {
            assert_eq!(
                (verdict.as_str(), against.as_str()),
                ("agree", "the recorded values"),
                "{name}"
            );
        } else {
            assert_eq!(verdict, "unchecked", "{name}: fixtures record no intermediate values");
        }
    }
}

/// The recorded grad_logit_scale moved by 0.1 %: that step disagrees (exit 1), the others do not.
#[test]
fn explain_clip_step_names_the_step_that_disagrees() {
    let dir = tempfile::tempdir().unwrap();
    let mut fixture = ce_parity::fixtures::bundled_file("fixtures/clip_step.json")
        .unwrap()
        .unwrap();
    fixture.cases.retain(|c| c.name == "clip_step/article/float32");
    let Some(ce_parity::fixtures::Recorded::Values(Values { named_grads, .. })) =
        fixture.cases[0].expected.as_mut().map(|e| &mut e.result)
    else {
        panic!("values were recorded")
    };
    let (_, g) = named_grads.iter_mut().find(|(n, _)| *n == "grad_logit_scale").unwrap();
    *g = Tensor::scalar(DType::Float32, g.to_f64()[0] * 1.001);
    let path = dir.path().join("off.json");
    ce_parity::fixtures::save(&path, &fixture, false).unwrap();
    let path = path.display().to_string();
    let (code, report) = explain_json(&[&path, "--no-libtorch"], dir.path());
    assert_eq!(code, Some(1), "{report}");
    let disagreeing: Vec<String> = verdicts(&report)
        .into_iter()
        .filter(|(_, v, _)| v == "disagree")
        .map(|(n, _, _)| n)
        .collect();
    assert_eq!(disagreeing, ["grad_logit_scale"]);
    let (code, stdout, _) = explain(&[&path, "--no-libtorch"], dir.path());
    assert_eq!(code, Some(1));
    assert!(stdout.contains("✗ DISAGREES with the recorded values"), "{stdout}");
}

/// The hand-worked step of [`closed_form`], explained without libtorch: the
/// intermediate values are the closed form's (scale 2, logits 2I, each
/// row's and column's loss, dlogits = ∓a/2).
#[test]
fn explain_clip_step_shows_the_closed_form_intermediates() {
    use ce_parity::explain::{explain_clip_step, Against};
    let tensors = closed_form(DType::Float64, false);
    let get = |name: &str| tensors.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let mut case = ce_parity::fixtures::Case::clip_step("hand", get("image_embeds"), get("text_embeds"), 2f64.ln());
    case.label_smoothing = 0.1;
    let explained = explain_clip_step(&case, Against::Recorded).unwrap();
    let step = |name: &str| explained.steps.iter().find(|s| s.name == name).unwrap().rust.to_f64();
    let p = 1.0 / (1.0 + (-2f64).exp());
    let a = 1.0 - p - 0.05;
    let loss = get("loss").to_f64()[0];
    let close = |got: Vec<f64>, want: &[f64]| {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-15, "{got:?} vs {want:?}");
        }
    };
    close(step("scale"), &[2.0]);
    close(step("logits"), &[2.0, 0.0, 0.0, 2.0]);
    close(step("image_losses"), &[loss, loss]);
    close(step("text_losses"), &[loss, loss]);
    close(step("loss"), &[loss]);
    close(step("grad_logits"), &[-a / 2.0, a / 2.0, a / 2.0, -a / 2.0]);
    close(step("grad_logit_scale"), &[-2.0 * a]);
    close(step("grad_image_embeds"), &[0.0, a / 2.0, a / 3.0, 0.0]);
}

/// `record --tensors` keeps a CLIP step as a fixture with libtorch's values,
/// which `check` then passes without libtorch.
#[cfg(feature = "torch")]
#[test]
fn record_keeps_a_clip_step_as_a_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let out = ce_parity(
        &[
            "record",
            "--tensors",
            &data("f32_article.safetensors"),
            "--out",
            "step.json",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let fixture = ce_parity::fixtures::load(&dir.path().join("step.json")).unwrap();
    assert_eq!(fixture.cases[0].loss.name(), "clip_step");
    assert_eq!(fixture.cases[0].label_smoothing, 0.1);
    let (code, stdout, _) = check(&["step.json", "--no-libtorch"], dir.path());
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
}

/// Every bundled CLIP step libtorch computes (N from 0 to 64, both scales,
/// every ε, a zero embedding, a NaN, an upstream gradient) is explained with
/// all 11 steps agreeing with live libtorch.
#[cfg(feature = "torch")]
#[test]
fn every_bundled_clip_step_agrees_with_libtorch_at_every_step() {
    use ce_parity::explain::{explain_clip_step, Against, Verdict};
    let fixture = ce_parity::fixtures::bundled_file("fixtures/clip_step.json")
        .unwrap()
        .unwrap();
    let mut explained = 0;
    for case in fixture.cases.iter().filter(|c| !c.name.contains("/reject/")) {
        let e = explain_clip_step(case, Against::Libtorch).unwrap();
        assert!(e.live);
        for step in &e.steps {
            assert_eq!(
                step.check.verdict,
                Verdict::Agree,
                "{} {}: {}",
                case.name,
                step.name,
                step.check.note
            );
        }
        explained += 1;
    }
    assert_eq!(explained, 37);
}
