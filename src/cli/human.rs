//! Human output: an aligned table per file, claims under their case, and the
//! summary as the last line. Colour only on a terminal.

use std::io::IsTerminal;

use ce_parity::runner::{CaseReport, Status};

use super::check::{FileReport, Totals};

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

pub fn print(files: &[FileReport], totals: &Totals) -> std::io::Result<()> {
    let paint = Paint(std::io::stdout().is_terminal());
    for file in files {
        outln!("{}", file.file)?;
        let width = file.cases.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
        outln!(
            "  {:<width$}  {:<7}  {:>14}  {:>9}  {:>9}  {:>6}  note",
            "case",
            "status",
            "loss",
            "max_abs",
            "max_rel",
            "ulp"
        )?;
        for case in &file.cases {
            print_case(case, width, &paint)?;
        }
        outln!()?;
    }
    outln!("{}", totals.summary())
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
    outln!(
        "  {:<width$}  {status}  {loss:>14}  {max_abs:>9}  {max_rel:>9}  {ulp:>6}  {}",
        case.name,
        case.note
    )?;
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

fn list(values: &[f64]) -> String {
    if values.len() == 1 {
        return format!("{:.6}", values[0]);
    }
    let items: Vec<String> = values.iter().map(|v| format!("{v:.4}")).collect();
    format!("[{}]", items.join(", "))
}
