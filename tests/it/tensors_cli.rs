//! `record`, `check --input …` and `fuzz` through the binary: numpy's files
//! check in one command, record libtorch's values, and bad input exits 2
//! naming the flag and the file.

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
    let Recorded::Values { loss, grad_input, .. } = &expected.result else {
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
