//! `--format json`: one JSON document with every case and the totals.

use serde_json::{json, Value};

use ce_parity::compare::{Difference, Worst};
use ce_parity::runner::{CaseReport, ClaimReport, Comparison, Disagreement, Float64Report, OutputDifference, Status};

use super::check::{FileReport, RunFacts, Totals};

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

fn worst(w: &Option<Worst>) -> Value {
    w.as_ref().map_or(Value::Null, |w| {
        json!({
            "value": finite_or_null(w.value),
            "index": w.index,
            "actual": finite_or_null(w.actual),
            "expected": finite_or_null(w.expected),
        })
    })
}

/// One output of a comparison, with assert_close's figures.
fn output(o: &OutputDifference) -> Value {
    let d = &o.difference;
    json!({
        "output": o.output,
        "passed": o.passed(),
        "mismatched": d.mismatched,
        "numel": d.numel,
        "agreed_by_float64": d.by_float64,
        "shape_mismatch": d.shape_mismatch,
        "greatest_abs": worst(&d.greatest_abs),
        "greatest_rel": worst(&d.greatest_rel),
        "atol": o.tolerance.atol,
        "rtol": o.tolerance.rtol,
    })
}

fn comparison(k: &Comparison) -> Value {
    let (kind, messages) = match &k.disagreement {
        None => ("agree", vec![]),
        Some(Disagreement::Values) => ("values_differ", vec![]),
        Some(Disagreement::Errors(a, b)) => ("errors_differ", vec![a.clone(), b.clone()]),
        Some(Disagreement::FirstRejects(a)) => ("first_rejects", vec![a.clone()]),
        Some(Disagreement::SecondRejects(b)) => ("second_rejects", vec![b.clone()]),
    };
    json!({
        "between": [k.between.0, k.between.1],
        "passed": k.passed,
        "kind": kind,
        "errors": messages,
        "detail": k.detail,
        "difference": difference(&k.difference),
        "outputs": k.outputs.iter().map(output).collect::<Vec<_>>(),
    })
}

fn float64(f: &Option<Float64Report>) -> Value {
    f.as_ref().map_or(Value::Null, |f| {
        json!({
            "source": f.source,
            "sides": f.sides.iter().map(|s| json!({
                "side": s.side,
                "max_abs_err": finite_or_null(s.max_abs),
                "share_of_allowance": finite_or_null(s.worst_share),
            })).collect::<Vec<_>>(),
        })
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
        "comparisons": c.comparisons.iter().map(comparison).collect::<Vec<_>>(),
        "float64": float64(&c.float64),
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

/// The report, with what tells one run from another: versions, whether
/// libtorch ran live, its CPU kernel and the elapsed time.
pub fn print(files: &[FileReport], totals: &Totals, run: &RunFacts) -> anyhow::Result<()> {
    let report = json!({
        "ce_parity_version": env!("CARGO_PKG_VERSION"),
        "libtorch_version": run.libtorch_version,
        "libtorch_live": run.live,
        "aten_cpu_capability": run.live.then(ce_parity::machine::aten_capability),
        "elapsed_seconds": run.elapsed.as_secs_f64(),
        "files": files.iter().map(|f| json!({"file": f.file, "cases": f.cases.iter().map(case).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "passed": totals.passed,
        "failed": totals.failed,
        "skipped": totals.skipped,
    });
    outln!("{}", serde_json::to_string_pretty(&report)?)?;
    Ok(())
}
