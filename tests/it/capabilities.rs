//! The same verdict under every ATen CPU kernel this CPU can run: `check`
//! forced to each `ATEN_CPU_CAPABILITY` on the cases whose float32 values
//! depend on the recording machine (recorded by AVX-512 kernels, and the
//! fuzzer's ill-conditioned regressions), and a tampered copy that must fail
//! under each. Capabilities the CPU lacks are skipped, and say so.

use ce_parity::fixtures::Values;
use std::path::Path;
use std::process::Command;

use ce_parity::fixtures::{self, Recorded};
use ce_parity::tensor::Tensor;

/// The capabilities ATen can run here: `default` always, `avx2` and
/// `avx512` when /proc/cpuinfo lists the flags ATen requires for them.
fn capabilities() -> Vec<&'static str> {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    let mut out = vec!["default"];
    if has("avx2") && has("fma") {
        out.push("avx2");
    } else {
        eprintln!("skipped: ATEN_CPU_CAPABILITY=avx2 (this CPU has no AVX2)");
    }
    if ["avx512f", "avx512bw", "avx512dq", "avx512vl"].iter().all(|f| has(f)) {
        out.push("avx512");
    } else {
        eprintln!("skipped: ATEN_CPU_CAPABILITY=avx512 (this CPU has no AVX-512)");
    }
    out
}

fn check(capability: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ce-parity"))
        .arg("check")
        .args(args)
        .env("ATEN_CPU_CAPABILITY", capability)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run ce-parity");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn machine_dependent_cases_pass_under_every_kernel_and_without_libtorch() {
    let paths = ["fixtures/portability", "fixtures/regressions"];
    // Without libtorch no kernel runs, so one run covers every machine.
    let runs = capabilities()
        .into_iter()
        .map(|c| (c, None))
        .chain([("default", Some("--no-libtorch"))]);
    for (capability, extra) in runs {
        let args: Vec<&str> = paths.iter().copied().chain(extra).collect();
        let (code, text) = check(capability, &args);
        assert_eq!(code, Some(0), "ATEN_CPU_CAPABILITY={capability} {extra:?}:\n{text}");
        assert!(text.trim_end().ends_with("0 failed"), "{text}");
    }
}

#[test]
fn a_tampered_expectation_fails_under_every_kernel() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut fixture = fixtures::load(&root.join("fixtures/portability/recorded-with-avx512-kernels.json")).unwrap();
    for case in &mut fixture.cases {
        if let Some(Recorded::Values(Values { loss, .. })) = case.expected.as_mut().map(|e| &mut e.result) {
            // 1e-4 relative: ~100× float32's assert_close rtol, and far
            // beyond any kernel's rounding of these losses.
            let values = loss.to_f64().into_iter().map(|v| v * (1.0 + 1e-4)).collect();
            *loss = Tensor::float(loss.dtype, loss.shape.clone(), values);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tampered.json");
    fixtures::save(&path, &fixture, false).unwrap();
    let path = path.display().to_string();
    // Without libtorch no kernel runs, so one run covers every machine.
    let runs = capabilities()
        .into_iter()
        .map(|c| (c, None))
        .chain([("default", Some("--no-libtorch"))]);
    for (capability, extra) in runs {
        let args: Vec<&str> = [path.as_str()].into_iter().chain(extra).collect();
        let (code, text) = check(capability, &args);
        assert_eq!(code, Some(1), "ATEN_CPU_CAPABILITY={capability} {extra:?}:\n{text}");
        assert!(text.lines().any(|l| l == "0 passed, 6 failed"), "{text}");
    }
}
