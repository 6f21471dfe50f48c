//! `check --tensors CASE.npz`: numpy archives as np.savez and
//! np.savez_compressed write them (tests/data/npz, from scripts/gen_npz.py
//! with real PyTorch), judged like a `.safetensors` file; broken archives
//! are errors naming the file.

use std::path::Path;

use crate::binary::ce_parity;

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/npz")
        .join(name)
        .display()
        .to_string()
}

fn check(file: &str, dir: &Path) -> (Option<i32>, String, String) {
    let out = ce_parity(
        &["check", "--tensors", file, "--label-smoothing", "0.1", "--no-libtorch"],
        dir,
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pytorchs_outputs_in_npz_pass_stored_or_compressed() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["article.npz", "article_compressed.npz"] {
        let (code, stdout, stderr) = check(&data(name), dir.path());
        assert_eq!(code, Some(0), "{name}: {stdout}{stderr}");
        assert!(stdout.contains("0.596669"), "{stdout}");
    }
}

#[test]
fn the_articles_printed_loss_in_an_npz_fails_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, _) = check(&data("article_printed_loss.npz"), dir.path());
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("yours vs float64: loss"), "{stdout}");
    assert!(stdout.contains("Mismatched elements: 1 / 1 (100.0%)"), "{stdout}");
}

#[test]
fn a_broken_archive_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(data("article.npz")).unwrap();
    let cases: [(&str, Vec<u8>); 2] = [
        ("truncated.npz", bytes[..bytes.len() / 2].to_vec()),
        ("garbled.npz", {
            let mut b = bytes.clone();
            for byte in &mut b[40..120] {
                *byte ^= 0x5a;
            }
            b
        }),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let (code, stdout, stderr) = check(&path.display().to_string(), dir.path());
        assert_eq!(code, Some(2), "{name}: {stdout}{stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
}
