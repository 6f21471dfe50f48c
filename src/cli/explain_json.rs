//! `explain --format json`: one JSON object.
//!
//! ```text
//! {
//!   "case": name, "file": where the case came from,
//!   "call": {"dtype", "input_shape", "target": "class indices" | "class probabilities",
//!            "weight": [..] | null, "ignore_index", "reduction", "label_smoothing"},
//!   "samples": N·d1·…, "classes": C,
//!   "live_libtorch": whether libtorch ran (else only recorded values were compared),
//!   "tolerance": {"rtol", "atol"}  (the input dtype's, torch.testing.assert_close's),
//!   "shown": {"samples", "classes", "complete", "message": "showing 8 of 50 samples …" | null},
//!   "steps": [{
//!     "step": 1..4, "name": "softmax" | "smoothed_target" | "loss_per_sample" | "loss",
//!     "title", "formula", "shape": the step's full shape,
//!     "layout": "classes" | "samples" | "scalar",
//!     "rust", "libtorch": the shown values — rows of classes per sample, one
//!         value per sample, or one number; NaN (an ignored sample's smoothed
//!         target) and infinities as null; "libtorch" null when unchecked,
//!     "checked_against": "libtorch", "the recorded values", both joined by
//!         " and ", or "" when unchecked,
//!     "verdict": "agree" | "disagree" | "unchecked",
//!     "max_abs_err", "mismatched": over every value of the step, null when unchecked,
//!     "note": why a step disagrees or is unchecked, or how a close call was settled
//!   }],
//!   "claims": [{"quantity", "claimed", "atol", "source", "actual", "holds", "wrong_indices"}],
//!   "summary": {"verdict": "agree" | "disagree" | "unchecked", "steps_agree",
//!               "steps_disagree", "steps_unchecked", "claims_hold", "claims_do_not_hold",
//!               "loss_from": who computed the loss the claims are audited against}
//! }
//! ```
//! Values are cut to the shown window like the human output (at most 8
//! samples and 8 classes); the verdicts cover every value.

use serde_json::{json, Value};

use ce_parity::explain::{Explanation, Layout, Step, Verdict};
use ce_parity::tensor::Tensor;

use super::json::{claim, finite_or_null};

/// Prints the explanation of the case from `file` as one JSON object.
pub fn print(file: &str, explained: &Explanation<'_>) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(&document(file, explained))?)?;
    Ok(())
}

fn document(file: &str, e: &Explanation<'_>) -> Value {
    let case = e.case;
    let window = e.window();
    let steps: Vec<Value> = e
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let shown = |t: &Tensor| shown_values(step.layout(), &t.to_f64(), e);
            let difference = step.check.difference.as_ref();
            json!({
                "step": i + 1,
                "name": step.quantity.name(),
                "title": step.title(),
                "formula": step.formula,
                "shape": step.rust.shape,
                "layout": layout_name(step),
                "rust": shown(&step.rust),
                "libtorch": step.libtorch.as_ref().map(shown),
                "checked_against": step.check.against,
                "verdict": step.check.verdict.name(),
                "max_abs_err": difference.map(|d| finite_or_null(d.max_abs)),
                "mismatched": difference.map(|d| d.mismatched),
                "note": step.check.note,
            })
        })
        .collect();
    let holding = e.claims.iter().filter(|c| c.holds).count();
    json!({
        "case": case.name,
        "file": file,
        "call": {
            "dtype": case.input.dtype.name(),
            "input_shape": case.input.shape,
            "target": if case.target.dtype.is_float() { "class probabilities" } else { "class indices" },
            "weight": case.weight.as_ref().map(|w| w.to_f64().into_iter().map(finite_or_null).collect::<Vec<_>>()),
            "ignore_index": case.ignore_index,
            "reduction": case.reduction.name(),
            "label_smoothing": case.label_smoothing,
        },
        "samples": e.geometry.samples(),
        "classes": e.geometry.classes,
        "live_libtorch": e.live,
        "tolerance": {"rtol": e.tolerance.rtol, "atol": e.tolerance.atol},
        "shown": {
            "samples": window.samples,
            "classes": window.classes,
            "complete": window.complete(),
            "message": window.message(),
        },
        "steps": steps,
        "claims": e.claims.iter().map(claim).collect::<Vec<_>>(),
        "summary": {
            "verdict": e.verdict().name(),
            "steps_agree": e.count(Verdict::Agree),
            "steps_disagree": e.count(Verdict::Disagree),
            "steps_unchecked": e.count(Verdict::Unchecked),
            "claims_hold": holding,
            "claims_do_not_hold": e.claims.len() - holding,
            "loss_from": e.loss_from,
        },
    })
}

fn layout_name(step: &Step) -> &'static str {
    match step.layout() {
        Layout::Classes => "classes",
        Layout::Samples => "samples",
        Layout::Scalar => "scalar",
    }
}

/// The values the window shows, shaped by the step's layout.
fn shown_values(layout: Layout, values: &[f64], e: &Explanation<'_>) -> Value {
    let window = e.window();
    let numbers = |row: Vec<f64>| row.into_iter().map(finite_or_null).collect::<Vec<_>>();
    match layout {
        Layout::Classes => json!(window.rows(values).into_iter().map(numbers).collect::<Vec<_>>()),
        Layout::Samples => json!(numbers(window.per_sample(values))),
        Layout::Scalar => values.first().map_or(Value::Null, |&v| finite_or_null(v)),
    }
}
