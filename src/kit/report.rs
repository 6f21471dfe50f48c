//! The kit's report: `check`'s per-case verdicts, totals, and a listing of
//! what failed for a test's panic message.

use std::collections::BTreeMap;
use std::fmt;

use crate::runner::{CaseReport, Status};

/// The verdict on one case, and where the case came from.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseResult {
    /// The fixture file, e.g. `fixtures/article.json`.
    pub file: String,
    /// `check`'s report: status, comparisons, max abs error, ULPs and a note.
    /// As in `check`, `rust` names the implementation under test and
    /// `expected` libtorch's recorded result (e.g. `rust vs expected: loss: …`).
    pub report: CaseReport,
    /// Whether a gradient was compared (the implementation gave one and
    /// libtorch's was recorded).
    pub gradient_checked: bool,
}

/// Case counts by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Cases that agree with libtorch's recorded result.
    pub passed: usize,
    /// Cases that differ, or where the implementation panicked or answered malformed.
    pub failed: usize,
    /// Cases not run: unsupported, or nothing recorded to compare with.
    pub skipped: usize,
}

/// Every case's verdict, in fixture order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// One result per case of the fixtures given.
    pub cases: Vec<CaseResult>,
}

/// Failures listed in full before the listing is cut short.
const LISTED: usize = 40;

impl Report {
    /// How many cases passed, failed and were skipped.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for case in &self.cases {
            match case.report.status {
                Status::Passed => t.passed += 1,
                Status::Failed => t.failed += 1,
                Status::Skipped => t.skipped += 1,
            }
        }
        t
    }

    /// `N passed, M failed` with `, K skipped` when any were skipped, as `ce-parity check` says it.
    pub fn summary(&self) -> String {
        let t = self.totals();
        let mut s = format!("{} passed, {} failed", t.passed, t.failed);
        if t.skipped > 0 {
            s.push_str(&format!(", {} skipped", t.skipped));
        }
        s
    }

    /// True when nothing failed and at least one case passed: a run that
    /// checked nothing proves nothing, so it is not a success.
    pub fn all_passed(&self) -> bool {
        let t = self.totals();
        t.failed == 0 && t.passed > 0
    }

    /// The cases with a given status.
    pub fn with_status(&self, status: Status) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(move |c| c.report.status == status)
    }

    /// The case named `name` (the first, if several files share it).
    pub fn case(&self, name: &str) -> Option<&CaseResult> {
        self.cases.iter().find(|c| c.report.name == name)
    }

    /// For tests: returns when [`all_passed`](Report::all_passed).
    ///
    /// # Panics
    /// When a case failed, or when no case was checked (all skipped, or no
    /// cases); the message is this report's [`Display`](fmt::Display): the
    /// totals, the failed cases and what differs, the skip reasons.
    #[track_caller]
    pub fn assert_passed(&self) {
        if !self.all_passed() {
            panic!("cross-entropy parity check did not pass\n{self}");
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.totals();
        let gradients = self.cases.iter().filter(|c| c.gradient_checked).count();
        writeln!(f, "{} (gradients compared in {gradients})", self.summary())?;
        if t.passed == 0 && t.failed == 0 {
            writeln!(
                f,
                "nothing was checked: every one of the {} case(s) was skipped",
                t.skipped
            )?;
        }
        for case in self.with_status(Status::Failed).take(LISTED) {
            let r = &case.report;
            let d = &r.difference;
            let ulp = match d.max_ulp {
                u64::MAX => "nan".to_string(),
                n => n.to_string(),
            };
            writeln!(
                f,
                "FAIL {}: {} (max abs err {:.3e}, max ulp {ulp})",
                case.file, r.name, d.max_abs
            )?;
            writeln!(f, "     {}", r.note)?;
        }
        if t.failed > LISTED {
            writeln!(f, "... and {} more failed case(s)", t.failed - LISTED)?;
        }
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for case in self.with_status(Status::Skipped) {
            *reasons.entry(case.report.note.as_str()).or_default() += 1;
        }
        let mut reasons: Vec<(&str, usize)> = reasons.into_iter().collect();
        reasons.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        if !reasons.is_empty() {
            writeln!(f, "skipped, by reason:")?;
        }
        for (reason, count) in reasons {
            writeln!(f, "  {count:>5}  {reason}")?;
        }
        Ok(())
    }
}
