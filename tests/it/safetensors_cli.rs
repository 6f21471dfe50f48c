//! `check --tensors CASE.safetensors` and `--loss`/`--grad`: a user's own
//! outputs judged against libtorch. The files are PyTorch calls saved by
//! scripts/gen_safetensors.py (tests/data/safetensors), with PyTorch's own
//! loss and gradient as the outputs; the tests perturb them, hand in the
//! article's printed loss, and break names and metadata.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use ce_parity::safetensors_file::{self, TensorFile};
use ce_parity::tensor::{DType, Tensor};

use crate::binary::ce_parity;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/safetensors")
        .join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn load(name: &str) -> TensorFile {
    safetensors_file::load(&data(name)).unwrap()
}

/// A tensor's little-endian bytes in its dtype, as a Rust port writes them.
fn bytes_of(t: &Tensor) -> (Dtype, Vec<u8>) {
    let v = t.to_f64();
    match t.dtype {
        DType::Float16 => (
            Dtype::F16,
            v.iter().flat_map(|&x| half::f16::from_f64(x).to_le_bytes()).collect(),
        ),
        DType::BFloat16 => (
            Dtype::BF16,
            v.iter().flat_map(|&x| half::bf16::from_f64(x).to_le_bytes()).collect(),
        ),
        DType::Float32 => (Dtype::F32, v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect()),
        DType::Float64 => (Dtype::F64, v.iter().flat_map(|&x| x.to_le_bytes()).collect()),
        DType::Int64 => (
            Dtype::I64,
            t.as_i64().unwrap().iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        DType::UInt8 => (Dtype::U8, t.as_i64().unwrap().iter().map(|&x| x as u8).collect()),
    }
}

/// Writes tensors and metadata with the safetensors crate, as a Rust port would.
pub fn save(path: &Path, tensors: &[(&str, &Tensor)], metadata: &[(&str, &str)]) {
    let encoded: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let (dtype, bytes) = bytes_of(t);
            (name.to_string(), dtype, t.shape.clone(), bytes)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = encoded
        .iter()
        .map(|(name, dtype, shape, bytes)| (name.clone(), TensorView::new(*dtype, shape.clone(), bytes).unwrap()))
        .collect();
    let metadata: HashMap<String, String> = metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let metadata = (!metadata.is_empty()).then_some(metadata);
    safetensors::serialize_to_file(views, metadata, path).unwrap();
}

/// A copy of a generated file with `edit` applied to its tensors and metadata.
fn edited(dir: &Path, name: &str, edit: impl FnOnce(&mut TensorFile)) -> String {
    let mut file = load(name);
    edit(&mut file);
    static EDITS: AtomicUsize = AtomicUsize::new(0);
    let path = dir.join(format!("edited{}_{name}", EDITS.fetch_add(1, Ordering::Relaxed)));
    let tensors: Vec<(&str, &Tensor)> = file.tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let metadata: Vec<(&str, &str)> = file.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    save(&path, &tensors, &metadata);
    path.display().to_string()
}

/// Adds `delta` to one element of a floating tensor.
#[cfg(feature = "torch")]
fn nudge(t: &mut Tensor, flat: usize, delta: f64) {
    let mut v = t.to_f64();
    v[flat] += delta;
    *t = Tensor::float(t.dtype, t.shape.clone(), v);
}

fn check(args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let mut all = vec!["check"];
    all.extend(args);
    let out = ce_parity(&all, dir);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[cfg(feature = "torch")]
const GENERATED: [&str; 5] = [
    "f32_weight_ignore.safetensors",
    "f64_sum.safetensors",
    "bf16_rows.safetensors",
    "f16_kdim_none.safetensors",
    "f16_kdim_none_from_f64.safetensors",
];

#[cfg(feature = "torch")]
#[test]
fn pytorchs_own_outputs_pass_against_libtorch_and_the_float64_answer() {
    let dir = tempfile::tempdir().unwrap();
    for name in GENERATED {
        let path = data(name).display().to_string();
        for extra in [&[][..], &["--no-libtorch"][..]] {
            let mut args = vec!["--tensors", path.as_str()];
            args.extend(extra);
            let (code, stdout, stderr) = check(&args, dir.path());
            assert_eq!(code, Some(0), "{name} {extra:?}: {stdout}{stderr}");
            assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
        }
        // The JSON names the sides: yours against libtorch.
        let (_, json, _) = check(&["--tensors", &path, "--format", "json"], dir.path());
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        let comparison = &report["files"][0]["cases"][0]["comparisons"][0];
        assert_eq!(
            comparison["between"],
            serde_json::json!(["yours", "libtorch"]),
            "{name}"
        );
        let outputs: Vec<&str> = comparison["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["output"].as_str().unwrap())
            .collect();
        assert_eq!(outputs, ["loss", "grad_input"], "{name}");
    }
}

#[cfg(feature = "torch")]
#[test]
fn perturbed_outputs_fail_naming_the_output_and_the_index() {
    let dir = tempfile::tempdir().unwrap();
    // (file, output, flat index, delta, the index assert_close prints)
    let cases: [(&str, &str, usize, f64, &str); 4] = [
        // float32: atol 1e-5, rtol 1.3e-6; element (2, 4) of a 6×5 gradient.
        ("f32_weight_ignore.safetensors", "grad_input", 2 * 5 + 4, 1e-3, "(2, 4)"),
        // float64: rtol 1e-7 of a loss near 13.2.
        ("f64_sum.safetensors", "loss", 0, 1e-5, "()"),
        // bfloat16: rtol 1.6e-2; a loss near 5.8 moved by 0.5.
        ("bf16_rows.safetensors", "loss", 0, 0.5, "()"),
        // float16 K-dim (2, 4, 3, 5): element (1, 2, 0, 3).
        (
            "f16_kdim_none.safetensors",
            "grad_input",
            ((4 + 2) * 3) * 5 + 3,
            0.25,
            "(1, 2, 0, 3)",
        ),
    ];
    for (name, output, flat, delta, index) in cases {
        let path = edited(dir.path(), name, |f| {
            nudge(f.tensors.get_mut(output).unwrap(), flat, delta)
        });
        for (extra, reference) in [(None, "libtorch"), (Some("--no-libtorch"), "float64")] {
            let mut args = vec!["--tensors", path.as_str()];
            args.extend(extra);
            let (code, stdout, stderr) = check(&args, dir.path());
            assert_eq!(code, Some(1), "{name} {extra:?}: {stdout}{stderr}");
            assert!(stdout.contains(&format!("yours vs {reference}: {output}")), "{stdout}");
            assert!(
                stdout.contains(&format!("at index {index}")),
                "{name}: expected index {index}: {stdout}"
            );
            assert!(!stdout.contains("rust vs"), "{stdout}");
            assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
        }
    }
}

#[cfg(feature = "torch")]
#[test]
fn the_articles_printed_loss_handed_in_as_yours_fails() {
    let dir = tempfile::tempdir().unwrap();
    // The Rust side writes its loss with the safetensors crate; any tensor
    // name works when the file holds one.
    let mine = dir.path().join("mine.safetensors");
    save(&mine, &[("my_loss", &Tensor::scalar(DType::Float32, 0.4122))], &[]);
    let mine = mine.display().to_string();
    let article = data("article.safetensors").display().to_string();
    let (code, stdout, stderr) = check(&["--tensors", &article, "--loss", &mine], dir.path());
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("yours vs libtorch: loss"), "{stdout}");
    // assert_close's words, with both values: 0.4122 against libtorch's 0.59666866.
    assert!(stdout.contains("Mismatched elements: 1 / 1"), "{stdout}");
    assert!(
        stdout.contains("yours 0.412") && stdout.contains("libtorch 0.5966"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("0 passed, 1 failed\nFAILED article.safetensors::article.safetensors\n"),
        "{stdout}"
    );

    // The same beside --input/--target .npy files, with the loss as .npy.
    let npy = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/npy")
            .join(name)
            .display()
            .to_string()
    };
    let loss_npy = dir.path().join("loss.npy");
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (), }";
    std::fs::write(&loss_npy, crate::npy::npy_bytes(1, header, &0.4122f32.to_le_bytes())).unwrap();
    let (x, t, l) = (npy("logits.npy"), npy("targets.npy"), loss_npy.display().to_string());
    let base = [
        "--input",
        x.as_str(),
        "--target",
        t.as_str(),
        "--label-smoothing",
        "0.1",
    ];
    let (code, stdout, _) = check(&[&base[..], &["--loss", &l]].concat(), dir.path());
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("yours vs libtorch: loss"), "{stdout}");
    // libtorch's own value (recorded in fixtures/article.json) passes.
    std::fs::write(
        &loss_npy,
        crate::npy::npy_bytes(1, header, &0.59666866f32.to_le_bytes()),
    )
    .unwrap();
    let (code, stdout, _) = check(&[&base[..], &["--loss", &l]].concat(), dir.path());
    assert_eq!(code, Some(0), "{stdout}");
}

#[cfg(feature = "torch")]
#[test]
fn a_float16_gradient_computed_in_float64_and_cast_passes() {
    // The premise, from PyTorch's own values: the float64 gradient cast to
    // float16 is outside assert_close's float16 tolerance of PyTorch's
    // float16 gradient (the generator asserts it with assert_close too).
    let theirs = &load("f16_kdim_none.safetensors").tensors["grad_input"];
    let cast = &load("f16_kdim_none_from_f64.safetensors").tensors["grad_input"];
    let tolerance = ce_parity::compare::Tolerance::default_for(DType::Float16);
    assert!(!ce_parity::compare::compare(cast, theirs, tolerance).passed());

    let dir = tempfile::tempdir().unwrap();
    let path = data("f16_kdim_none_from_f64.safetensors").display().to_string();
    let (code, stdout, stderr) = check(&["--tensors", &path], dir.path());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // It passes by the rule's second clause, not by assert_close's.
    assert!(
        stdout.contains("agrees within libtorch's rounding of the float64 answer"),
        "{stdout}"
    );

    // The gradient alone, from its own file beside the tensors: judged
    // without a loss (none is reported), and a perturbed one fails.
    let inputs = edited(dir.path(), "f16_kdim_none_from_f64.safetensors", |f| {
        f.tensors.remove("loss");
        f.tensors.remove("grad_input");
    });
    let grad = dir.path().join("grad.safetensors");
    save(&grad, &[("grad_input", cast), ("unrelated", theirs)], &[]);
    let grad = grad.display().to_string();
    let (code, json, stderr) = check(&["--tensors", &inputs, "--grad", &grad, "--format", "json"], dir.path());
    assert_eq!(code, Some(0), "{json}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let outputs = &report["files"][0]["cases"][0]["comparisons"][0]["outputs"];
    assert_eq!(outputs.as_array().unwrap().len(), 1, "{outputs}");
    assert_eq!(outputs[0]["output"], "grad_input");

    let mut off = cast.clone();
    nudge(&mut off, 7, 0.1);
    let grad_off = dir.path().join("grad_off.safetensors");
    save(&grad_off, &[("grad_input", &off)], &[]);
    let (code, stdout, _) = check(
        &["--tensors", &inputs, "--grad", &grad_off.display().to_string()],
        dir.path(),
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("yours vs libtorch: grad_input") && stdout.contains("at index (0, 0, 1, 2)"),
        "{stdout}"
    );
    assert!(!stdout.contains(": loss"), "{stdout}");
}

#[cfg(feature = "torch")]
#[test]
fn a_flag_overrides_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = data("f32_weight_ignore.safetensors").display().to_string();
    // The outputs were computed with label_smoothing 0.1: with 0 they are wrong.
    let (code, stdout, _) = check(&["--tensors", &path, "--label-smoothing", "0"], dir.path());
    assert_eq!(code, Some(1), "{stdout}");
    let (code, stdout, _) = check(&["--tensors", &path, "--ignore-index", "-100"], dir.path());
    assert_eq!(code, Some(1), "{stdout}");
    let (code, stdout, _) = check(&["--tensors", &path, "--label-smoothing", "0.1"], dir.path());
    assert_eq!(code, Some(0), "{stdout}");
    // `format`, which safetensors' save_model writes, is accepted.
    let with_format = edited(dir.path(), "f32_weight_ignore.safetensors", |f| {
        f.metadata.insert("format".into(), "pt".into());
    });
    let (code, stdout, _) = check(&["--tensors", &with_format], dir.path());
    assert_eq!(code, Some(0), "{stdout}");
}

#[cfg(feature = "torch")]
#[test]
fn record_takes_the_safetensors_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = data("f32_weight_ignore.safetensors").display().to_string();
    let out = ce_parity(&["record", "--tensors", &path, "--out", "case.json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let fixture = ce_parity::fixtures::load(&dir.path().join("case.json")).unwrap();
    let case = &fixture.cases[0];
    assert_eq!((case.ignore_index, case.label_smoothing), (3, 0.1));
    assert!(case.weight.is_some());
    // The recorded loss is libtorch's, which PyTorch wrote into the file.
    let Some(ce_parity::fixtures::Recorded::Values(ce_parity::fixtures::Values { loss, .. })) =
        case.expected.as_ref().map(|e| &e.result)
    else {
        panic!("values recorded");
    };
    let pytorch = &load("f32_weight_ignore.safetensors").tensors["loss"];
    assert!(
        (loss.to_f64()[0] - pytorch.to_f64()[0]).abs() <= 1e-5,
        "{loss:?} vs {pytorch:?}"
    );
    let out = ce_parity(&["check", "case.json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn bad_names_metadata_and_outputs_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let name = "f32_weight_ignore.safetensors";
    let renamed = edited(d, name, |f| {
        let x = f.tensors.remove("input").unwrap();
        f.tensors.insert("inputs".into(), x);
    });
    let no_target = edited(d, name, |f| {
        f.tensors.remove("target");
    });
    let meta = |key: &str, value: &str| {
        let (key, value) = (key.to_string(), value.to_string());
        let path = edited(d, name, |f| {
            f.metadata.insert(key.clone(), value);
        });
        let renamed = d.join(format!("{key}_{name}"));
        std::fs::rename(&path, &renamed).unwrap();
        renamed.display().to_string()
    };
    let (smoothing, reduction, ignore) = (
        meta("smoothing", "0.1"),
        meta("reduction", "avg"),
        meta("ignore_index", "1.5"),
    );
    let label_smoothing = meta("label_smoothing", "a tenth");
    let int_loss = edited(d, name, |f| {
        f.tensors
            .insert("loss".into(), Tensor::int(DType::Int64, vec![], vec![1]));
    });
    let wrong_shape = edited(d, name, |f| {
        f.tensors.insert(
            "grad_input".into(),
            Tensor::float(DType::Float32, vec![5, 6], vec![0.0; 30]),
        );
    });
    let truncated = d.join("truncated.safetensors");
    let good = std::fs::read(data(name)).unwrap();
    std::fs::write(&truncated, &good[..good.len() - 1]).unwrap();
    let truncated = truncated.display().to_string();
    let loss_file = d.join("loss.safetensors");
    save(&loss_file, &[("loss", &Tensor::scalar(DType::Float32, 1.0))], &[]);
    let loss_file = loss_file.display().to_string();
    let two = d.join("two.safetensors");
    let one = Tensor::scalar(DType::Float32, 1.0);
    save(&two, &[("a", &one), ("b", &one)], &[]);
    let two = two.display().to_string();
    let path = data(name).display().to_string();
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["--tensors", &renamed],
            &["tensor \"inputs\" is not one ce-parity reads"],
        ),
        (vec!["--tensors", &no_target], &["no tensor named \"target\""]),
        (vec!["--tensors", &smoothing], &["metadata key \"smoothing\""]),
        (vec!["--tensors", &reduction], &["metadata \"reduction\"", "avg"]),
        (
            vec!["--tensors", &ignore],
            &["metadata \"ignore_index\"", "\"1.5\" is not an integer"],
        ),
        (
            vec!["--tensors", &label_smoothing],
            &["metadata \"label_smoothing\"", "\"a tenth\" is not a number"],
        ),
        (vec!["--tensors", &int_loss], &["tensor \"loss\"", "not floating"]),
        (
            vec!["--tensors", &wrong_shape],
            &["tensor \"grad_input\"", "shape [5, 6], but the input"],
        ),
        (vec!["--tensors", &truncated], &["--tensors", "truncated.safetensors"]),
        (
            vec!["--tensors", &path, "--loss", &loss_file],
            &["--loss", "both give loss"],
        ),
        (
            vec!["--tensors", &no_target, "--input", &path],
            &["cannot be used with"],
        ),
        (vec!["--loss", &loss_file], &["--loss and --grad need the tensors"]),
        (vec!["--tensors", &renamed, "--grad", &two], &["\"inputs\""]),
    ];
    for (args, expected) in cases {
        let (code, stdout, stderr) = check(&args, d);
        assert_eq!(code, Some(2), "{args:?}: {stdout}{stderr}");
        for e in expected {
            assert!(stderr.contains(e), "{args:?}: expected {e:?} in {stderr}");
        }
    }
    // A --grad file with several tensors and none named grad_input.
    let inputs = edited(d, name, |f| {
        f.tensors.remove("grad_input");
    });
    let (code, _, stderr) = check(&["--tensors", &inputs, "--no-libtorch", "--grad", &two], d);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no tensor named \"grad_input\"") && stderr.contains("a, b"),
        "{stderr}"
    );
}

#[cfg(feature = "torch")]
#[test]
fn tensors_libtorch_rejects_exit_2_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited(dir.path(), "f32_weight_ignore.safetensors", |f| {
        f.tensors.insert(
            "target".into(),
            Tensor::int(DType::Int64, vec![6], vec![0, 1, 2, 7, 4, 1]),
        );
    });
    let (code, _, stderr) = check(&["--tensors", &path], dir.path());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("libtorch rejects these tensors: Target 7 is out of bounds."),
        "{stderr}"
    );
}

#[test]
fn bfloat16_tensors_read_back_to_pytorchs_values() {
    let file = load("bf16_rows.safetensors");
    let x = &file.tensors["input"];
    assert_eq!((x.dtype, x.shape.clone()), (DType::BFloat16, vec![8, 10]));
    // Every value is a bfloat16, and the probability rows sum to about 1.
    for v in x.to_f64() {
        assert_eq!(half::bf16::from_f64(v).to_f64(), v);
    }
    let p = file.tensors["target"].to_f64();
    for row in p.chunks(10) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 0.05, "{row:?}");
    }
    // Written back with the crate, read again: the same tensors.
    let dir = tempfile::tempdir().unwrap();
    let again = edited(dir.path(), "bf16_rows.safetensors", |_| {});
    assert_eq!(safetensors_file::load(Path::new(&again)).unwrap(), file);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Random edits of a real file: an error or tensors whose sizes the bytes
    /// back, never a panic.
    #[test]
    fn mutated_safetensors_bytes_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = std::fs::read(data("f16_kdim_none.safetensors")).unwrap();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(file) = safetensors_file::parse(&bytes) {
            for t in file.tensors.values() {
                prop_assert_eq!(t.len(), t.numel());
                prop_assert!(t.len() <= bytes.len());
            }
        }
    }
}
