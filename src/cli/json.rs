//! `--format json`: one JSON document with every case and the totals.

use serde_json::{json, Value};

use ce_parity::compare::Difference;
use ce_parity::runner::{CaseReport, ClaimReport, Status};

use super::check::{FileReport, Totals};

/// A finite number, or null (JSON has no NaN or infinities).
pub fn finite_or_null(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

fn difference(d: &Difference) -> Value {
    json!({
        "max_abs_err": finite_or_null(d.max_abs),
        "max_rel_err": finite_or_null(d.max_rel),
        "max_ulp": if d.max_ulp == u64::MAX { Value::Null } else { json!(d.max_ulp) },
        "mismatched": d.mismatched,
    })
}

fn case(c: &CaseReport) -> Value {
    let status = match c.status {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
    };
    json!({
        "name": c.name,
        "status": status,
        "note": c.note,
        "loss": c.loss.as_ref().map(|l| l.to_f64().into_iter().map(finite_or_null).collect::<Vec<_>>()),
        "difference": difference(&c.difference),
        "comparisons": c.comparisons.iter().map(|k| json!({
            "between": [k.between.0, k.between.1],
            "passed": k.passed,
            "detail": k.detail,
            "difference": difference(&k.difference),
        })).collect::<Vec<_>>(),
        "claims": c.claims.iter().map(claim).collect::<Vec<_>>(),
    })
}

/// An audited claim (shared with `explain --format json`).
pub fn claim(k: &ClaimReport) -> Value {
    json!({
        "quantity": k.claim.quantity.name(),
        "claimed": k.claim.value,
        "atol": k.claim.atol,
        "source": k.claim.source,
        "actual": k.actual.as_ref().map(|a| a.iter().map(|&v| finite_or_null(v)).collect::<Vec<_>>()),
        "holds": k.holds,
        "wrong_indices": k.wrong,
    })
}

pub fn print(files: &[FileReport], totals: &Totals) -> anyhow::Result<()> {
    let report = json!({
        "files": files.iter().map(|f| json!({"file": f.file, "cases": f.cases.iter().map(case).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "passed": totals.passed,
        "failed": totals.failed,
        "skipped": totals.skipped,
    });
    outln!("{}", serde_json::to_string_pretty(&report)?)?;
    Ok(())
}
