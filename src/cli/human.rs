//! Human output: an aligned table per file, claims under their case, and the
//! summary as the last line. Colour only on a terminal.

use std::io::IsTerminal;

use ce_parity::runner::{CaseReport, Disagreement, Status};

use super::check::{case_id, FileReport, Totals};

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The report; `quiet` keeps only failing cases. The failing case ids follow
/// the summary line.
pub fn print(files: &[FileReport], totals: &Totals, quiet: bool) -> std::io::Result<()> {
    let paint = Paint(std::io::stdout().is_terminal());
    for file in files {
        let shown: Vec<&CaseReport> = file
            .cases
            .iter()
            .filter(|c| !quiet || c.status == Status::Failed)
            .collect();
        if shown.is_empty() {
            continue;
        }
        outln!("{}", file.file)?;
        let width = shown.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
        outln!(
            "  {:<width$}  {:<7}  {:>14}  {:>9}  {:>9}  {:>6}  note",
            "case",
            "status",
            "loss",
            "max_abs",
            "max_rel",
            "ulp"
        )?;
        for case in shown {
            print_case(case, width, &paint)?;
        }
        outln!()?;
    }
    outln!("{}", totals.summary())?;
    for file in files {
        for case in file.cases.iter().filter(|c| c.status == Status::Failed) {
            outln!("FAILED {}", case_id(&file.file, &case.name))?;
        }
    }
    Ok(())
}

fn print_case(case: &CaseReport, width: usize, paint: &Paint) -> std::io::Result<()> {
    let status = match case.status {
        Status::Passed => paint.wrap("32", "pass   "),
        Status::Failed => paint.wrap("31;1", "FAIL   "),
        Status::Skipped => paint.wrap("33", "skipped"),
    };
    let loss = case.loss.as_ref().map_or("error".to_string(), |l| {
        let values = l.to_f64();
        match values.len() {
            1 => format!("{:.6}", values[0]),
            n => format!("[{n} values]"),
        }
    });
    let d = &case.difference;
    // A skipped case compared nothing: no numbers to show.
    let [max_abs, max_rel, ulp] = if case.status == Status::Skipped {
        ["-".to_string(), "-".to_string(), "-".to_string()]
    } else {
        [
            format!("{:.2e}", d.max_abs),
            format!("{:.2e}", d.max_rel),
            if d.max_ulp == u64::MAX {
                "nan".to_string()
            } else {
                d.max_ulp.to_string()
            },
        ]
    };
    // A failure's details follow on their own lines, in assert_close's words.
    let note = if case.status == Status::Failed {
        let pairs: Vec<String> = case
            .comparisons
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{} vs {}", c.between.0, c.between.1))
            .collect();
        format!("differ: {}", pairs.join(", "))
    } else {
        case.note.clone()
    };
    outln!(
        "  {:<width$}  {status}  {loss:>14}  {max_abs:>9}  {max_rel:>9}  {ulp:>6}  {note}",
        case.name,
    )?;
    if case.status == Status::Failed {
        print_failure(case)?;
    }
    for claim in &case.claims {
        let verdict = if claim.holds {
            paint.wrap("32", "holds")
        } else if claim.wrong.len() < claim.claim.value.len() {
            let at: Vec<String> = claim.wrong.iter().map(|i| format!("#{i}")).collect();
            paint.wrap("31", &format!("does not hold at {}", at.join(" ")))
        } else {
            paint.wrap("31", "does not hold")
        };
        let actual = claim
            .actual
            .as_ref()
            .map_or("cannot be computed".to_string(), |a| list(a));
        outln!(
            "    claim {} = {} (atol {}, {}): {verdict}; true value {actual}",
            claim.claim.quantity.name(),
            list(&claim.claim.value),
            claim.claim.atol,
            claim.claim.source
        )?;
    }
    Ok(())
}

/// Each failing comparison: for values, every differing output as
/// torch.testing.assert_close reports it, with both values at the worst
/// element; for rejections, who rejected and with what.
fn print_failure(case: &CaseReport) -> std::io::Result<()> {
    for c in case.comparisons.iter().filter(|c| !c.passed) {
        let (a, b) = c.between;
        match &c.disagreement {
            Some(Disagreement::Values) => {
                for o in c.outputs.iter().filter(|o| !o.passed()) {
                    let d = &o.difference;
                    outln!("    {a} vs {b}: {}", o.output)?;
                    if let Some((x, y)) = &d.shape_mismatch {
                        outln!("      shapes differ: {x:?} vs {y:?}")?;
                        continue;
                    }
                    let share = 100.0 * d.mismatched as f64 / d.numel.max(1) as f64;
                    outln!(
                        "      Mismatched elements: {} / {} ({share:.1}%)",
                        d.mismatched,
                        d.numel
                    )?;
                    for (kind, worst, allowed) in [
                        ("absolute", &d.greatest_abs, o.tolerance.atol),
                        ("relative", &d.greatest_rel, o.tolerance.rtol),
                    ] {
                        if let Some(w) = worst {
                            outln!(
                                "      Greatest {kind} difference: {:.3e} at index {} (up to {allowed:e} allowed); {a} {}, {b} {}",
                                w.value,
                                index(&w.index),
                                w.actual,
                                w.expected
                            )?;
                        }
                    }
                }
            }
            Some(_) => outln!("    {a} vs {b}: {}", c.detail)?,
            None => {}
        }
    }
    if let Some(f) = &case.float64 {
        let sides: Vec<String> = f
            .sides
            .iter()
            .map(|s| format!("{} {:.1e}", s.side, s.max_abs))
            .collect();
        outln!("    error vs the float64 answer ({}): {}", f.source, sides.join(", "))?;
    }
    Ok(())
}

/// An index as assert_close prints it: `(3, 17)`, `()` for a 0-d tensor.
fn index(at: &[usize]) -> String {
    let parts: Vec<String> = at.iter().map(usize::to_string).collect();
    format!("({})", parts.join(", "))
}

fn list(values: &[f64]) -> String {
    if values.len() == 1 {
        return format!("{:.6}", values[0]);
    }
    let items: Vec<String> = values.iter().map(|v| format!("{v:.4}")).collect();
    format!("[{}]", items.join(", "))
}
