//! The CLI's manners (issue 12): a closed pipe ends the output quietly, a run
//! that checks nothing gives no verdict, misplaced flags and files are usage
//! errors that say what to do, and written fixtures follow the umask.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ce_parity::fixtures::{self, Case, Fixture};
use ce_parity::runner::Outcome;
use ce_parity::tensor::{DType, Tensor};

use crate::binary::ce_parity;

fn data(name: &str) -> String {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/npy").join(name);
    p.display().to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `ce-parity ARGS`, reads `lines` lines of its output and closes the
/// pipe, as `ce-parity ARGS | head -LINES` does; returns the exit code and stderr.
pub fn with_reader_gone_after(args: &[&str], lines: usize) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ce-parity"))
        .args(args)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ce-parity");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..lines {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "{args:?}: the output ended before line {lines}");
    }
    drop(reader);
    let out = child.wait_with_output().unwrap();
    (out.status.code(), text(&out.stderr))
}

#[test]
fn a_closed_pipe_ends_check_quietly_with_the_verdicts_exit_code() {
    for format in ["human", "json"] {
        for lines in [0, 1] {
            let args = ["check", "--no-libtorch", "--format", format];
            let (code, stderr) = with_reader_gone_after(&args, lines);
            // The bundled fixtures pass against their recorded values.
            assert_eq!(code, Some(0), "{args:?} | head -{lines}: {stderr}");
            assert_eq!(stderr, "", "{args:?} | head -{lines}");
        }
    }
    let (code, stderr) = with_reader_gone_after(&["explain", "--no-libtorch"], 1);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    // bench's table header (no shape matches, so nothing is timed); bench
    // exists only with libtorch.
    #[cfg(feature = "torch")]
    for format in ["human", "json"] {
        let args = ["bench", "--only", "no such shape", "--format", format];
        let (code, stderr) = with_reader_gone_after(&args, 0);
        assert_eq!((code, stderr.as_str()), (Some(0), ""), "{args:?} | head -0");
    }
}

#[test]
fn a_run_that_checks_nothing_exits_2_and_its_rows_say_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (x, t) = (data("logits.npy"), data("targets.npy"));
    let out = ce_parity(&["check", "--no-libtorch", "--input", &x, "--target", &t], dir.path());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    let row = stdout.lines().find(|l| l.contains("logits.npy  ")).unwrap();
    assert!(row.contains("skipped") && !row.contains("0.00e0"), "{row}");
    assert_eq!(stdout.lines().last().unwrap(), "0 passed, 0 failed, 1 skipped");
    assert!(stderr.contains("nothing was checked"), "{stderr}");

    // A fixture with nothing recorded, without libtorch: the same.
    let case = Case::new(
        "unrecorded",
        Tensor::float(DType::Float32, vec![1, 2], vec![0.5, 1.5]),
        Tensor::int(DType::Int64, vec![1], vec![1]),
    );
    let fixture = Fixture {
        description: "nothing recorded".into(),
        cases: vec![case],
    };
    fixtures::save(&dir.path().join("unrecorded.json"), &fixture, false).unwrap();
    let out = ce_parity(&["check", "--no-libtorch", "unrecorded.json"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
}

#[test]
fn a_grad_output_of_the_wrong_shape_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (x, t, w) = (data("logits.npy"), data("targets.npy"), data("weight.npy"));
    // The loss of [2, 3] logits is a scalar (mean) or has shape [2] (none); [3] is neither.
    for reduction in ["mean", "none"] {
        let args = [
            "check",
            "--input",
            &x,
            "--target",
            &t,
            "--reduction",
            reduction,
            "--grad-output",
            &w,
        ];
        let out = ce_parity(&args, dir.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{reduction}: {stderr}");
        assert!(
            stderr.contains("--grad-output") && stderr.contains("weight.npy: shape [3], but the loss has shape"),
            "{stderr}"
        );
        assert!(!text(&out.stdout).contains("FAIL"));
    }
}

#[test]
fn misplaced_tensors_and_flags_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (x, t) = (data("logits.npy"), data("targets.npy"));
    // A .npy where a fixture goes, by name or by numpy's magic bytes.
    let renamed = dir.path().join("logits.json");
    std::fs::copy(&x, &renamed).unwrap();
    for command in ["check", "explain"] {
        for file in [x.as_str(), "logits.json"] {
            let out = ce_parity(&[command, file], dir.path());
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} {file}: {stderr}");
            assert!(
                stderr.contains(&format!(
                    "{file}: a .npy tensor, not a fixture (.json); check tensors with --input {file}"
                )),
                "{stderr}"
            );
            assert!(!stderr.contains("UTF-8"), "{stderr}");
        }
    }
    // Flags that describe tensors need --input.
    let flags: [(&[&str], &str); 3] = [
        (&["--target", &t], "--target needs --input X.npy"),
        (
            &["fixtures.json", "--weight", &x, "--label-smoothing", "0.1"],
            "--weight, --label-smoothing need --input X.npy",
        ),
        (&["--reduction", "sum"], "--reduction needs --input X.npy"),
    ];
    for (rest, message) in flags {
        for command in ["check", "explain"] {
            let mut args = vec![command];
            args.extend(rest);
            let out = ce_parity(&args, dir.path());
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(message), "{args:?}: {stderr}");
        }
    }
}

#[test]
fn a_negative_clip_temperature_gets_the_same_message_with_or_without_equals() {
    let dir = tempfile::tempdir().unwrap();
    let x = data("logits.npy");
    let message = "--clip-temperature must be a positive finite number, got -1";
    for args in [
        vec!["check", "--input", &x, "--clip-temperature", "-1"],
        vec!["check", "--input", &x, "--clip-temperature=-1"],
    ] {
        let out = ce_parity(&args, dir.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn one_case_fixture() -> Fixture {
    let case = Case::new(
        "c",
        Tensor::float(DType::Float32, vec![2], vec![0.5, 1.5]),
        Tensor::int(DType::Int64, vec![], vec![1]),
    );
    Fixture {
        description: "one case".into(),
        cases: vec![case],
    }
}

#[test]
fn saved_fixtures_follow_the_umask_and_keep_a_replaced_files_mode() {
    let dir = tempfile::tempdir().unwrap();
    // What this process's umask makes of a new file: File::create asks for 0666.
    let probe = dir.path().join("probe");
    std::fs::File::create(&probe).unwrap();
    let umask_mode = mode(&probe);

    let path = dir.path().join("new.json");
    fixtures::save(&path, &one_case_fixture(), false).unwrap();
    assert_eq!(mode(&path), umask_mode);
    // fuzz saves its shrunk cases through the same function.
    let saved = fixtures_from_fuzz(dir.path());
    assert_eq!(mode(&saved), umask_mode);
    // A refresh (overwrite) keeps the file's own mode, narrower or wider.
    for kept in [0o644, 0o600, 0o664] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(kept)).unwrap();
        fixtures::save(&path, &one_case_fixture(), true).unwrap();
        assert_eq!(mode(&path), kept);
    }
}

fn fixtures_from_fuzz(dir: &Path) -> PathBuf {
    let fixture = one_case_fixture();
    let case = &fixture.cases[0];
    let reference = Outcome::Error("recorded rejection".into());
    ce_parity::fuzz::save_shrunk(&dir.join("fuzz"), 1, 2, case, &reference, "test", "a case").unwrap()
}

#[test]
fn saving_into_a_missing_folder_names_the_folder_not_a_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder");
    let error = fixtures::save(&missing.join("x.json"), &one_case_fixture(), false).unwrap_err();
    let message = error.to_string();
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(message, format!("folder {} does not exist", missing.display()));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
