//! `record`, `check --input …` and `fuzz` through the binary: numpy's files
//! check in one command, record libtorch's values, and bad input exits 2
//! naming the flag and the file.

use ce_parity::fixtures::Values;
use std::path::{Path, PathBuf};

use ce_parity::fixtures::{self, Recorded};

use crate::binary::ce_parity;

fn data(name: &str) -> String {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/npy").join(name);
    p.display().to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_articles_tensors_check_in_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let (x, t) = (data("logits.npy"), data("targets.npy"));
    let out = ce_parity(
        &["check", "--input", &x, "--target", &t, "--label-smoothing", "0.1"],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    // The article's loss as libtorch computes it (issue 2: 0.596669).
    assert!(stdout.contains("logits.npy") && stdout.contains("0.596669"), "{stdout}");
    assert_eq!(stdout.lines().last().unwrap(), "1 passed, 0 failed");

    // K-dim tensors with an ignored target and options from flags.
    let (x, t) = (data("logits_kdim.npy"), data("targets_kdim.npy"));
    let out = ce_parity(
        &[
            "check",
            "--input",
            &x,
            "--target",
            &t,
            "--reduction",
            "none",
            "--label-smoothing",
            "0.2",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn record_writes_libtorchs_values_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let (x, t, w) = (data("logits.npy"), data("targets.npy"), data("weight.npy"));
    let args = [
        "record",
        "--input",
        &x,
        "--target",
        &t,
        "--weight",
        &w,
        "--label-smoothing",
        "0.1",
        "--out",
        "mine.json",
    ];
    let out = ce_parity(&args, dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let path = dir.path().join("mine.json");
    let saved = std::fs::read_to_string(&path).unwrap();
    let fixture = fixtures::load(&path).unwrap();
    let case = &fixture.cases[0];
    assert_eq!(case.name, "logits.npy");
    assert_eq!(case.label_smoothing, 0.1);
    assert_eq!(case.weight.as_ref().unwrap().to_f64(), vec![1.0, 2.0, 0.5]);
    let expected = case.expected.as_ref().unwrap();
    assert!(expected.producer.starts_with("libtorch 2.13.0"));
    let Recorded::Values(Values { loss, grad_input, .. }) = &expected.result else {
        panic!("an error was recorded")
    };
    // Closed form: rows lose (1−ε)·w_y·nll + ε/C·Σ w_c·(−lp_c), over W = w_0 + w_1 = 3.
    let lp = |row: [f64; 3], k: usize| {
        let log_sum = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        row[k] - log_sum
    };
    let w = [1.0, 2.0, 0.5];
    let rows = [[2.0f64, 1.0, 0.1], [0.5, 1.5, 0.8]].map(|r| r.map(|v| v as f32 as f64));
    let total: f64 = rows
        .iter()
        .zip([0usize, 1])
        .map(|(row, y)| {
            let smooth: f64 = (0..3).map(|k| -w[k] * lp(*row, k)).sum();
            0.9 * -w[y] * lp(*row, y) + 0.1 / 3.0 * smooth
        })
        .sum();
    let closed = total / 3.0;
    assert!(
        (loss.to_f64()[0] - closed).abs() < 1e-6,
        "{:?} vs {closed}",
        loss.to_f64()
    );
    assert_eq!(grad_input.as_ref().unwrap().shape, vec![2, 3]);
    // The recorded fixture checks, and a second record to the same file is refused.
    let out = ce_parity(&["check", "mine.json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = ce_parity(&args, dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("mine.json"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), saved);
}

#[test]
fn bad_tensors_exit_2_naming_flag_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.npy");
    let good = std::fs::read(data("logits.npy")).unwrap();
    std::fs::write(&truncated, &good[..good.len() - 3]).unwrap();
    let truncated = truncated.display().to_string();
    let (x, t) = (data("logits.npy"), data("targets.npy"));
    let (i32_target, f64_weight) = (data("targets_i32.npy"), data("weight_f64.npy"));
    let cases: [(Vec<&str>, [&str; 2]); 5] = [
        (
            vec!["--input", &truncated, "--target", &t],
            ["--input", "needs 24 bytes of data, the file has 21"],
        ),
        (
            vec!["--input", &x, "--target", &i32_target],
            ["--target", "\"<i4\" is not supported"],
        ),
        (
            vec!["--input", &x, "--target", &t, "--weight", &f64_weight],
            ["--weight", "differs from the input's float32"],
        ),
        (vec!["--input", &t, "--target", &t], ["--input", "not floating"]),
        (
            vec!["--input", &x, "--target", "missing.npy"],
            ["missing.npy", "cannot read"],
        ),
    ];
    for (flags, [flag, message]) in cases {
        for command in ["check", "record"] {
            let mut args = vec![command];
            args.extend(&flags);
            if command == "record" {
                args.extend(["--out", "never.json"]);
            }
            let out = ce_parity(&args, dir.path());
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains(flag) && err.contains(message), "{args:?}: {err}");
        }
    }
    assert!(!dir.path().join("never.json").exists());
}

#[test]
fn fuzz_command_prints_the_summary_last_and_no_bar_when_piped() {
    let dir = tempfile::tempdir().unwrap();
    let out = ce_parity(&["fuzz", "--cases", "150", "--seed", "5", "--jobs", "2"], dir.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("fuzz: seed 5, surface "));
    assert_eq!(stdout.lines().last().unwrap(), "150 passed, 0 failed");
    assert_eq!(text(&out.stderr), "", "no progress bar when stderr is not a terminal");
    assert!(!dir.path().join("fuzz-failures").exists());

    let out = ce_parity(&["fuzz", "--surface", "default,bogus"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--surface: unknown surface feature \"bogus\""));
    let out = ce_parity(&["fuzz", "--time", "-1"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let out = ce_parity(&["fuzz", "--rtol", "-1"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--rtol must be a non-negative number, got -1"));
}

#[test]
fn a_similarity_matrix_checks_as_the_contrastive_loss() {
    let dir = tempfile::tempdir().unwrap();
    let x = data("logits.npy");
    let out = ce_parity(
        &[
            "check",
            "--input",
            &x,
            "--clip-temperature",
            "0.5",
            "--label-smoothing",
            "0.1",
        ],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    // torch 2.13: x = S / 0.5; (F.cross_entropy(x, t, label_smoothing=0.1)
    //   + F.cross_entropy(x[:, :2].t(), t, label_smoothing=0.1)) * 0.5 = 0.33460975
    assert!(stdout.contains("0.334610"), "{stdout}");

    let w = data("weight.npy");
    let rejected: [(&str, &[&str], &str); 3] = [
        (
            &x,
            &["--clip-temperature", "0"],
            "--clip-temperature must be a positive finite number",
        ),
        (
            &x,
            &["--clip-temperature", "1", "--reduction", "sum"],
            "cannot be used with",
        ),
        (
            &w,
            &["--clip-temperature", "1"],
            "weight.npy: the contrastive loss needs the N×M similarity matrix",
        ),
    ];
    for (input, flags, message) in rejected {
        let mut args = vec!["check", "--input", input];
        args.extend(flags);
        let out = ce_parity(&args, dir.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
}

/// A .npy file in `dir`, as np.save writes it (C order unless `fortran`).
fn save_npy(dir: &Path, name: &str, descr: &str, shape: &[usize], fortran: bool, data: &[u8]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let fortran = if fortran { "True" } else { "False" };
    let header = format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    let path = dir.join(name);
    std::fs::write(&path, crate::npy::npy_bytes(1, &header, data)).unwrap();
    path.display().to_string()
}

fn f32s(dir: &Path, name: &str, shape: &[usize], values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    save_npy(dir, name, "<f4", shape, false, &bytes)
}

fn i64s(dir: &Path, name: &str, shape: &[usize], values: &[i64]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    save_npy(dir, name, "<i8", shape, false, &bytes)
}

/// Logits of shape [2, 5]: 0.1, 0.2, …, 1.0.
fn logits_2x5(dir: &Path) -> String {
    let values: Vec<f32> = (1..=10).map(|i| i as f32 / 10.0).collect();
    f32s(dir, "x.npy", &[2, 5], &values)
}

#[test]
fn tensors_libtorch_rejects_exit_2_with_its_message_in_check_record_and_explain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = logits_2x5(d);
    let targets = i64s(d, "t.npy", &[2], &[0, 4]);
    // Channels-last: an NHWC array saved as is ([N, H, W, C] = [2, 4, 4, 3]),
    // so libtorch reads H as the class dim.
    let nhwc = f32s(d, "nhwc.npy", &[2, 4, 4, 3], &[0.5; 96]);
    let nhw = i64s(d, "nhw.npy", &[2, 4, 4], &[1; 32]);
    // (flags, libtorch's first line as torch 2.13.0's F.cross_entropy gives it)
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![x.clone(), i64s(d, "one.npy", &[1], &[1])],
            "Expected input batch_size (2) to match target batch_size (1).",
        ),
        (vec![x.clone(), i64s(d, "seven.npy", &[2], &[7, 1])], "Target 7 is out of bounds."),
        (vec![x.clone(), i64s(d, "minus3.npy", &[2], &[-3, 1])], "Target -3 is out of bounds."),
        (
            vec![x.clone(), f32s(d, "float_classes.npy", &[2], &[1.0, 2.0])],
            "expected target dtype to be Long or Byte, but got Float",
        ),
        (
            vec![x.clone(), targets.clone(), "--label-smoothing".into(), "1.5".into()],
            "label_smoothing must be between 0.0 and 1.0. Got: 1.5",
        ),
        (vec![nhwc, nhw], "size mismatch (got input: [2, 4, 4, 3] , target: [2, 4, 4]"),
        (
            vec![
                x.clone(),
                targets.clone(),
                "--weight".into(),
                f32s(d, "w4.npy", &[4], &[1.0; 4]),
            ],
            "weight tensor should be defined either for all 5 classes or no classes but got weight tensor of shape: [4]",
        ),
        (
            vec![x.clone(), f32s(d, "p2x4.npy", &[2, 4], &[0.25; 8])],
            "0D or 1D target tensor expected, multi-target not supported",
        ),
        (
            vec![x.clone(), i64s(d, "t3d.npy", &[2, 1, 1], &[0, 1])],
            "0D or 1D target tensor expected, multi-target not supported",
        ),
    ];
    for (flags, first_line) in cases {
        let [input, target, rest @ ..] = flags.as_slice() else {
            unreachable!()
        };
        let mut tensors = vec!["--input", input, "--target", target];
        tensors.extend(rest.iter().map(String::as_str));
        let libtorch = format!("libtorch rejects these tensors: {first_line}; ce-parity's Rust loss rejects them");
        for command in ["check", "record", "explain"] {
            let mut args = vec![command];
            args.extend(&tensors);
            if command == "record" {
                args.extend(["--out", "never.json"]);
            }
            let out = ce_parity(&args, d);
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}{stderr}");
            assert!(stderr.contains(&libtorch), "{args:?}: {stderr}");
            assert!(!stdout.contains("pass"), "{args:?}: {stdout}");
        }
        // Without libtorch, the Rust loss's rejection says it.
        let mut args = vec!["check", "--no-libtorch"];
        args.extend(&tensors);
        let out = ce_parity(&args, d);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("ce-parity's Rust loss rejects these tensors: ") && stderr.contains("(libtorch not run)"),
            "{args:?}: {stderr}"
        );
    }
    assert!(!d.join("never.json").exists());
}

#[test]
fn a_fortran_order_kdim_input_reads_as_its_c_order_twin() {
    // np.save writes an F-contiguous array (e.g. a transposed one) with
    // fortran_order True; it holds the same tensor as the C-order file.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shape = [2, 3, 2, 2];
    let c_order: Vec<f32> = (0..24).map(|i| ((i * 7) % 11) as f32 / 4.0).collect();
    // Element [a, b, c, e] sits at a + 2b + 6c + 12e in Fortran order.
    let mut f_order = [0f32; 24];
    for (flat, &v) in c_order.iter().enumerate() {
        let (a, b, c, e) = (flat / 12, flat / 4 % 3, flat / 2 % 2, flat % 2);
        f_order[a + 2 * b + 6 * c + 12 * e] = v;
    }
    let bytes: Vec<u8> = f_order.iter().flat_map(|v| v.to_le_bytes()).collect();
    let fortran = save_npy(d, "fortran.npy", "<f4", &shape, true, &bytes);
    let c = f32s(d, "c.npy", &shape, &c_order);
    let t = i64s(d, "t.npy", &[2, 2, 2], &[0, 1, 2, 1, 2, 0, -100, 1]);
    let mut losses = Vec::new();
    for x in [&c, &fortran] {
        let out = ce_parity(&["check", "--input", x, "--target", &t, "--format", "json"], d);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        losses.push(report["files"][0]["cases"][0]["loss"].clone());
    }
    assert_eq!(losses[0], losses[1]);
}

#[test]
fn a_closed_pipe_ends_fuzz_quietly_with_the_verdicts_exit_code() {
    for lines in [0, 1] {
        let args = ["fuzz", "--cases", "40", "--seed", "5", "--jobs", "1"];
        let (code, stderr) = crate::manners::with_reader_gone_after(&args, lines);
        assert_eq!(code, Some(0), "fuzz | head -{lines}: {stderr}");
        assert_eq!(stderr, "", "fuzz | head -{lines}");
    }
}

/// Runs `ce-parity ARGS` in `dir` under `umask MASK`.
fn ce_parity_with_umask(mask: &str, args: &[&str], dir: &Path) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("umask {mask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_ce-parity"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run ce-parity under sh")
}

#[test]
fn record_and_refresh_write_files_as_the_umask_says_and_refresh_keeps_a_mode() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let (x, t) = (data("logits.npy"), data("targets.npy"));
    for (mask, expected) in [("022", 0o644), ("027", 0o640)] {
        let out_file = format!("umask{mask}.json");
        let args = ["record", "--input", &x, "--target", &t, "--out", &out_file];
        let out = ce_parity_with_umask(mask, &args, dir.path());
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(mode(&dir.path().join(&out_file)), expected, "umask {mask}");
    }
    // refresh rewrites in place and keeps the file's mode, whatever the umask.
    let path = dir.path().join("umask022.json");
    for kept in [0o644, 0o600] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(kept)).unwrap();
        let out = ce_parity_with_umask("077", &["refresh", "umask022.json"], dir.path());
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(mode(&path), kept);
    }
}

#[test]
fn record_into_a_missing_folder_names_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (x, t) = (data("logits.npy"), data("targets.npy"));
    let out = ce_parity(
        &["record", "--input", &x, "--target", &t, "--out", "missing/mine.json"],
        dir.path(),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "ce-parity: --out missing/mine.json: cannot write: folder missing does not exist"
    );
}
