//! `explain` for a `clip_step` case (`explain --clip-step`): the step's
//! computation in order, each with its formula, its values and its verdict
//! against libtorch, as text or one JSON object.
//!
//! ```text
//! {
//!   "case", "file",
//!   "call": {"loss": "clip_step", "dtype", "image_embeds_shape", "text_embeds_shape",
//!            "logit_scale", "label_smoothing", "grad_output": number | null},
//!   "pairs": N, "width": D, "live_libtorch", "tolerance": {"rtol", "atol"},
//!   "shown": {"rows", "columns", "complete"},
//!   "steps": [{"step": 1..11, "name", "title", "formula", "shape",
//!              "rust", "reference": the shown values (libtorch's, else the
//!                  recorded ones; null when unchecked) — rows, a row, or a number,
//!              "checked_against", "verdict", "max_abs_err", "mismatched", "note"}],
//!   "summary": {"verdict", "steps_agree", "steps_disagree", "steps_unchecked"}
//! }
//! ```
//! Matrices are cut to their first 8 rows and columns, as on screen; the
//! verdicts cover every value.

use serde_json::{json, Value};

use ce_parity::explain::{plain_number, ClipStage, ClipStepExplanation, Verdict, SHOWN};
use ce_parity::tensor::Tensor;

use super::explain_human::verdict_line;
use super::json::finite_or_null;

/// Prints the explanation as text.
pub fn print_human(file: &str, e: &ClipStepExplanation<'_>) -> std::io::Result<()> {
    crate::cli::out::write(format_args!("{}", render(file, e)))
}

/// Prints the explanation as one JSON object.
pub fn print_json(file: &str, e: &ClipStepExplanation<'_>) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(&document(file, e))?)?;
    Ok(())
}

fn render(file: &str, e: &ClipStepExplanation<'_>) -> String {
    let case = e.case;
    let mut out = Vec::new();
    out.push(format!("{} ({file})", case.name));
    out.push(
        "OpenCLIP's loss step: logits = exp(logit_scale)·normalize(image_embeds)·normalize(text_embeds)ᵀ, \
         loss = ½·(CE(logits, arange(N), ε) + CE(logitsᵀ, arange(N), ε))"
            .into(),
    );
    let grad_output = case
        .grad_output
        .as_ref()
        .map(|g| format!(", upstream gradient {}", plain_number(g.to_f64()[0])))
        .unwrap_or_default();
    out.push(format!(
        "image_embeds, text_embeds {} {:?}: {} pairs of width {}; logit_scale {}, label_smoothing {}{grad_output}",
        case.input.dtype,
        case.input.shape,
        e.pairs(),
        case.input.shape.get(1).copied().unwrap_or(0),
        plain_number(e.logit_scale),
        plain_number(case.label_smoothing),
    ));
    out.push(format!(
        "each step checked against {}, within {}'s tolerance (rtol {:e}, atol {:e})",
        if e.live {
            "libtorch (live) and the recorded values"
        } else {
            "the recorded values (libtorch not run)"
        },
        case.input.dtype,
        e.tolerance.rtol,
        e.tolerance.atol
    ));
    if !complete(e) {
        out.push(format!(
            "showing the first {SHOWN} rows and columns; every value was computed and each checked step's verdict covers all its values"
        ));
    }
    for (label, tensor) in [("image", &case.input), ("text", &case.target)] {
        out.push(String::new());
        out.push(format!("Input: {label}_embeds (row i: {label} i)"));
        out.extend(values(label, tensor, 4));
    }
    for (number, stage) in e.steps.iter().enumerate() {
        out.push(String::new());
        out.push(format!("Step {}. {}", number + 1, stage.title));
        out.push(format!("  {}", stage.formula));
        let decimals = if stage.name.starts_with("grad_") { 6 } else { 4 };
        out.extend(values(row_label(stage.name), &stage.rust, decimals));
        if stage.check.verdict == Verdict::Disagree {
            if let Some(reference) = &stage.reference {
                out.push(
                    if e.live {
                        "  libtorch gives:"
                    } else {
                        "  the recorded values give:"
                    }
                    .to_string(),
                );
                out.extend(values(row_label(stage.name), reference, decimals));
            }
        }
        out.push(format!("  {}", verdict_line(&stage.check)));
    }
    out.push(String::new());
    out.push(summary(e));
    out.join("\n") + "\n"
}

/// What a step's rows are: images, or texts.
fn row_label(name: &str) -> &'static str {
    match name {
        "text_features" | "text_losses" | "grad_text_embeds" => "text",
        _ => "image",
    }
}

/// A 0-d tensor as one number; a vector as one row; a matrix as labelled rows.
fn values(label: &str, t: &Tensor, decimals: usize) -> Vec<String> {
    let v = t.to_f64();
    let number = |x: f64| {
        if x.is_nan() {
            "nan".into()
        } else {
            format!("{x:.decimals$}")
        }
    };
    match t.shape.as_slice() {
        [] => v.iter().map(|&x| format!("  = {}  ({x})", number(x))).collect(),
        [n] => {
            let cells: Vec<String> = v.iter().take(SHOWN).map(|&x| number(x)).collect();
            let more = if *n > SHOWN { ", …" } else { "" };
            vec![format!("  by {label}: [{}{more}]", cells.join(", "))]
        }
        [rows, cols, ..] => {
            let cells: Vec<Vec<String>> = (0..(*rows).min(SHOWN))
                .map(|r| (0..(*cols).min(SHOWN)).map(|c| number(v[r * cols + c])).collect())
                .collect();
            let width = cells.iter().flatten().map(|c| c.chars().count()).max().unwrap_or(0);
            let label_width = format!("{label} {}", cells.len().saturating_sub(1)).len();
            let mut lines: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(r, row)| {
                    let body: Vec<String> = row.iter().map(|c| format!("{c:>width$}")).collect();
                    let tail = if *cols > SHOWN { "  …" } else { "" };
                    format!("  {:<label_width$}  {}{tail}", format!("{label} {r}"), body.join("  "))
                })
                .collect();
            if *rows > SHOWN {
                lines.push(format!("  … {} more rows", rows - SHOWN));
            }
            lines
        }
    }
}

fn complete(e: &ClipStepExplanation<'_>) -> bool {
    e.case.input.shape.iter().all(|&d| d <= SHOWN)
}

fn summary(e: &ClipStepExplanation<'_>) -> String {
    super::explain_human::step_counts(e.steps.iter().map(|s| s.check.verdict))
}

fn document(file: &str, e: &ClipStepExplanation<'_>) -> Value {
    let case = e.case;
    let steps: Vec<Value> = e
        .steps
        .iter()
        .enumerate()
        .map(|(i, stage)| stage_json(i + 1, stage))
        .collect();
    json!({
        "case": case.name,
        "file": file,
        "call": {
            "loss": "clip_step",
            "dtype": case.input.dtype.name(),
            "image_embeds_shape": case.input.shape,
            "text_embeds_shape": case.target.shape,
            "logit_scale": finite_or_null(e.logit_scale),
            "label_smoothing": case.label_smoothing,
            "grad_output": case.grad_output.as_ref().map(|g| finite_or_null(g.to_f64()[0])),
        },
        "pairs": e.pairs(),
        "width": case.input.shape.get(1).copied().unwrap_or(0),
        "live_libtorch": e.live,
        "tolerance": {"rtol": e.tolerance.rtol, "atol": e.tolerance.atol},
        "shown": {"rows": SHOWN, "columns": SHOWN, "complete": complete(e)},
        "steps": steps,
        "summary": {
            "verdict": e.verdict().name(),
            "steps_agree": e.count(Verdict::Agree),
            "steps_disagree": e.count(Verdict::Disagree),
            "steps_unchecked": e.count(Verdict::Unchecked),
        },
    })
}

fn stage_json(number: usize, stage: &ClipStage) -> Value {
    let difference = stage.check.difference.as_ref();
    json!({
        "step": number,
        "name": stage.name,
        "title": stage.title,
        "formula": stage.formula,
        "shape": stage.rust.shape,
        "rust": shown(&stage.rust),
        "reference": stage.reference.as_ref().map(shown),
        "checked_against": stage.check.against,
        "verdict": stage.check.verdict.name(),
        "max_abs_err": difference.map(|d| finite_or_null(d.max_abs)),
        "mismatched": difference.map(|d| d.mismatched),
        "note": stage.check.note,
    })
}

/// The shown values: a number, a row, or rows (at most [`SHOWN`] of each).
fn shown(t: &Tensor) -> Value {
    let v = t.to_f64();
    match t.shape.as_slice() {
        [] => v.first().map_or(Value::Null, |&x| finite_or_null(x)),
        [_] => json!(v.iter().take(SHOWN).map(|&x| finite_or_null(x)).collect::<Vec<_>>()),
        [rows, cols, ..] => json!((0..(*rows).min(SHOWN))
            .map(|r| (0..(*cols).min(SHOWN))
                .map(|c| finite_or_null(v[r * cols + c]))
                .collect::<Vec<_>>())
            .collect::<Vec<_>>()),
    }
}
