//! Runs ce-parity's kit over real libraries' cross-entropy (the adapters in
//! candle.rs and burn.rs) and writes what each matches of PyTorch, and where
//! it deviates, to a Markdown file (docs/compatibility.md).
//!
//! Run through `scripts/interop.sh`, or: `cargo run --release -- ../docs/compatibility.md`.

mod burn;
mod candle;

use std::fmt::Write as _;
use std::process::ExitCode;

use ce_parity::kit::{self, Answer, CaseView, CheckOptions, Feature, Report, Supports};
use ce_parity::runner::Status;

struct Library {
    /// The crate, as named in Cargo.lock.
    krate: &'static str,
    /// What is called, and how.
    call: &'static str,
    adapter: &'static str,
    supports: fn() -> Supports,
    answer: fn(&CaseView) -> Answer,
}

const LIBRARIES: [Library; 2] = [
    Library {
        krate: "candle-nn",
        call: "`candle_nn::loss::cross_entropy` on the CPU device, gradient through `Var`/`backward`",
        adapter: "interop/src/candle.rs",
        supports: candle::supports,
        answer: candle::answer,
    },
    Library {
        krate: "burn",
        call: "`CrossEntropyLossConfig` (weights, smoothing, pad_tokens) and `cross_entropy_with_logits`, \
               ndarray backend with autodiff",
        adapter: "interop/src/burn.rs",
        supports: burn::supports,
        answer: burn::answer,
    },
];

fn main() -> ExitCode {
    let Some(out) = std::env::args().nth(1) else {
        eprintln!("usage: ce-parity-interop OUT.md");
        return ExitCode::from(2);
    };
    let mut doc = String::from(HEADER);
    for library in &LIBRARIES {
        // Libraries that assert instead of returning errors reject by panicking.
        let options = CheckOptions::new()
            .supports((library.supports)())
            .panics_as_rejections(true);
        let report = match kit::check_bundled(library.answer, &options) {
            Ok(report) => report,
            Err(e) => {
                eprintln!("cannot read the bundled fixtures: {e}");
                return ExitCode::from(2);
            }
        };
        println!("== {} {}\n{report}", library.krate, version(library.krate));
        section(&mut doc, library, &report);
    }
    let tmp = format!("{out}.tmp");
    if let Err(e) = std::fs::write(&tmp, doc).and_then(|()| std::fs::rename(&tmp, &out)) {
        eprintln!("cannot write {out}: {e}");
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

const HEADER: &str = "# Compatibility of Rust cross-entropy implementations with PyTorch\n\n\
Written by `scripts/interop.sh` (do not edit): each library's cross-entropy, called as its users \
call it through a short adapter in `interop/`, judged by `ce_parity::kit` against libtorch's \
recorded results for every bundled case it can express, by the rule `ce-parity check` uses \
(assert_close's tolerance, or within libtorch's rounding of the float64 answer; docs/verdicts.md). \
A panic counts as a rejection. Case ids are `file: name` in `fixtures/`.\n";

fn section(doc: &mut String, library: &Library, report: &Report) {
    let version = version(library.krate);
    let _ = write!(
        doc,
        "\n## {} {version}\n\n{}; adapter `{}`.\n\n**{}.**\n\n",
        library.krate,
        library.call,
        library.adapter,
        report.summary()
    );
    doc.push_str("### What it matches\n\n| cases with | run | pass | fail | |\n|---|---:|---:|---:|---|\n");
    let run: Vec<_> = report.cases.iter().filter(|c| c.status() != Status::Skipped).collect();
    let mut rows: Vec<(String, Vec<_>)> = Vec::new();
    for dtype in kit::DType::ALL {
        rows.push((
            format!("{dtype} input"),
            run.iter().filter(|c| c.dtype == dtype).collect(),
        ));
    }
    for feature in Feature::ALL {
        rows.push((
            feature.to_string(),
            run.iter().filter(|c| c.features.contains(&feature)).collect(),
        ));
    }
    for (what, cases) in rows.into_iter().filter(|(_, cases)| !cases.is_empty()) {
        let failed = cases.iter().filter(|c| c.status() == Status::Failed).count();
        let verdict = if failed == 0 { "matches" } else { "deviates" };
        let _ = writeln!(
            doc,
            "| {what} | {} | {} | {failed} | {verdict} |",
            cases.len(),
            cases.len() - failed
        );
    }
    doc.push_str("\n### Deviations\n\n");
    let groups = report.failure_groups();
    if groups.is_empty() {
        doc.push_str("None among the cases run.\n");
    } else {
        doc.push_str("| what | cases | example | theirs | libtorch |\n|---|---:|---|---|---|\n");
    }
    for group in groups {
        let example = group.cases[0];
        let (theirs, libtorch) = example.sides().unwrap_or_default();
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let _ = writeln!(
            doc,
            "| {} | {} | `{}: {}` | {} | {} |",
            cell(&group.to_string()),
            group.cases.len(),
            example.file,
            example.name(),
            cell(&theirs),
            cell(&libtorch)
        );
    }
    doc.push_str("\n### Not run\n\n");
    let mut reasons: Vec<(String, usize)> = Vec::new();
    for case in report.with_status(Status::Skipped) {
        match reasons.iter_mut().find(|(r, _)| *r == case.report.note) {
            Some((_, n)) => *n += 1,
            None => reasons.push((case.report.note.clone(), 1)),
        }
    }
    reasons.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    for (reason, n) in reasons {
        let _ = writeln!(doc, "- {n} × {reason}");
    }
}

/// The version Cargo.lock resolved for `krate`.
fn version(krate: &str) -> String {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap_or_default();
    let entry = format!("name = \"{krate}\"\nversion = \"");
    lock.split_once(&entry)
        .and_then(|(_, rest)| rest.split('"').next())
        .unwrap_or("?")
        .to_string()
}
