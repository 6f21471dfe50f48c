//! `explain`'s human output: the call, the input, the four steps as aligned
//! matrices with 4 decimals (as the article prints them), each with its
//! formula and its verdict against libtorch, then the document's claims.
//! A case larger than [`SHOWN`] samples or classes shows its first rows and
//! columns, and says so; every value is still checked.

use ce_parity::explain::{plain_number, Check, Explanation, Layout, Step, Verdict, Window, SHOWN};
use ce_parity::fixtures::{Case, Quantity};
use ce_parity::runner::ClaimReport;
use ce_parity::tensor::Data;

/// Prints the explanation of the case from `file` as text.
pub fn print(file: &str, explained: &Explanation<'_>) -> std::io::Result<()> {
    crate::cli::out::write(format_args!("{}", render(file, explained)))
}

fn render(file: &str, e: &Explanation<'_>) -> String {
    let case = e.case;
    let window = e.window();
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!("{} ({file})", case.name));
    line(call(case));
    // K-dim input: a sample is a position (n, d1, …).
    let positions = if case.input.shape.len() > 2 {
        " (positions (n, d1, …) in row-major order)"
    } else {
        ""
    };
    line(format!(
        "input {} {:?}: {}{positions} of {}",
        case.input.dtype,
        case.input.shape,
        counted(e.geometry.samples(), "sample"),
        counted(e.geometry.classes, "class"),
    ));
    line(format!(
        "each step checked against {}, within {}'s tolerance (rtol {:e}, atol {:e})",
        if e.live {
            "libtorch (live)"
        } else {
            "the recorded values (libtorch not run)"
        },
        case.input.dtype,
        e.tolerance.rtol,
        e.tolerance.atol
    ));
    if let Some(message) = window.message() {
        line(format!("{message}; {}", coverage(e)));
    }
    line(String::new());
    line(if case.target.dtype.is_float() {
        "Input: logits x[i,c] (the targets are class probabilities t[i,c], smoothed in step 2)".to_string()
    } else {
        "Input: logits x[i,c] and targets y_i".to_string()
    });
    let ignored = ignored_samples(case, &window);
    for text in input_rows(case, &window) {
        line(text);
    }
    for (number, step) in e.steps.iter().enumerate() {
        line(String::new());
        line(format!("Step {}. {}", number + 1, step.title()));
        line(format!("  {}", step.formula));
        for text in values(step, &window, &ignored) {
            line(text);
        }
        line(format!("  {}", verdict(step)));
    }
    if !e.claims.is_empty() {
        let holding = e.claims.iter().filter(|c| c.holds).count();
        line(String::new());
        line(format!(
            "The document's printed numbers: {holding} of {} claims hold",
            e.claims.len()
        ));
        for claim in &e.claims {
            for text in claim_lines(claim, e, &window) {
                line(text);
            }
        }
    }
    line(String::new());
    line(summary(e));
    out
}

/// The call as PyTorch code, with the case's options.
fn call(case: &Case) -> String {
    let mut options = Vec::new();
    if let Some(weight) = &case.weight {
        let w = weight.to_f64();
        if w.len() <= SHOWN {
            let items: Vec<String> = w.iter().map(|&v| plain_number(v)).collect();
            options.push(format!("weight=[{}]", items.join(", ")));
        } else {
            options.push(format!("weight=<{} values>", w.len()));
        }
    }
    if case.ignore_index != ce_parity::loss::DEFAULT_IGNORE_INDEX {
        options.push(format!("ignore_index={}", case.ignore_index));
    }
    options.push(format!("reduction=\"{}\"", case.reduction));
    options.push(format!("label_smoothing={}", case.label_smoothing));
    format!("F.cross_entropy(x, y, {})", options.join(", "))
}

/// "every value was checked", or what the verdicts cover when a step is unchecked.
fn coverage(e: &Explanation<'_>) -> String {
    if e.count(Verdict::Unchecked) == 0 {
        "every value was checked".to_string()
    } else {
        "every value was computed; each checked step's verdict covers all its values".to_string()
    }
}

/// The shown logits, each row with its class index when the targets are indices.
fn input_rows(case: &Case, window: &Window) -> Vec<String> {
    let rows = window.rows(&case.input.to_f64());
    let targets: Vec<String> = match &case.target.data {
        Data::Int(ys) => ys
            .iter()
            .take(window.samples)
            .map(|&y| {
                if y == case.ignore_index {
                    format!("   y = {y} (ignored)")
                } else {
                    format!("   y = {y}")
                }
            })
            .collect(),
        Data::Float(_) => vec![String::new(); rows.len()],
    };
    let mut lines = matrix(&rows, window, &[]);
    for (text, target) in lines.iter_mut().zip(targets) {
        text.push_str(&target);
    }
    lines.extend(more_samples(window));
    lines
}

/// A step's shown Rust values, and libtorch's beneath when they disagree.
fn values(step: &Step, window: &Window, ignored: &[bool]) -> Vec<String> {
    let mut lines = layout_lines(step.layout(), &step.rust.to_f64(), window, ignored);
    if step.check.verdict == Verdict::Disagree {
        if let Some(libtorch) = &step.libtorch {
            lines.push("  libtorch gives:".to_string());
            lines.extend(layout_lines(step.layout(), &libtorch.to_f64(), window, ignored));
        }
    }
    lines
}

fn layout_lines(layout: Layout, values: &[f64], window: &Window, ignored: &[bool]) -> Vec<String> {
    match layout {
        Layout::Classes => {
            let mut lines = matrix(&window.rows(values), window, ignored);
            lines.extend(more_samples(window));
            lines
        }
        Layout::Samples => {
            let column: Vec<Vec<f64>> = window.per_sample(values).into_iter().map(|v| vec![v]).collect();
            let mut lines = matrix(&column, window, ignored);
            lines.extend(more_samples(window));
            lines
        }
        Layout::Scalar => values
            .iter()
            .map(|&v| format!("  loss = {}  ({})", number(v, 4), number(v, 6)))
            .collect(),
    }
}

/// Whether each shown sample's target is `ignore_index`.
fn ignored_samples(case: &Case, window: &Window) -> Vec<bool> {
    match &case.target.data {
        Data::Int(ys) => ys
            .iter()
            .take(window.samples)
            .map(|&y| y == case.ignore_index)
            .collect(),
        Data::Float(_) => Vec::new(),
    }
}

/// Rows labelled by sample, values right-aligned with 4 decimals; an ignored
/// sample's all-NaN row (it has no smoothed target) says so, while NaN from
/// non-finite logits prints as NaN.
fn matrix(rows: &[Vec<f64>], window: &Window, ignored: &[bool]) -> Vec<String> {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|&v| number(v, 4)).collect()).collect();
    let width = cells.iter().flatten().map(|c| c.chars().count()).max().unwrap_or(0);
    let label_width = format!("sample {}", rows.len().saturating_sub(1)).len();
    let cut = window.classes < window.geometry.classes;
    rows.iter()
        .zip(&cells)
        .enumerate()
        .map(|(i, (row, cells))| {
            let label = format!("sample {i}");
            if ignored.get(i) == Some(&true) && !row.is_empty() && row.iter().all(|v| v.is_nan()) {
                return format!("  {label:<label_width$}  (ignored: no target)");
            }
            let body: Vec<String> = cells.iter().map(|c| format!("{c:>width$}")).collect();
            let tail = if cut && row.len() > 1 { "  …" } else { "" };
            format!("  {label:<label_width$}  {}{tail}", body.join("  "))
        })
        .collect()
}

/// "1 sample", "3 classes".
fn counted(n: usize, what: &str) -> String {
    match (n, what.ends_with('s')) {
        (1, _) => format!("1 {what}"),
        (_, true) => format!("{n} {what}es"),
        (_, false) => format!("{n} {what}s"),
    }
}

fn more_samples(window: &Window) -> Option<String> {
    let hidden = window.geometry.samples() - window.samples;
    (hidden > 0).then(|| format!("  … {hidden} more samples"))
}

fn number(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        "nan".to_string()
    } else {
        format!("{v:.decimals$}")
    }
}

fn list(values: &[f64], decimals: usize) -> String {
    let items: Vec<String> = values.iter().map(|&v| number(v, decimals)).collect();
    format!("[{}]", items.join(", "))
}

fn verdict(step: &Step) -> String {
    verdict_line(&step.check)
}

/// "✓ agrees with libtorch (max abs err …)", "✗ disagrees …" or "· unchecked: …".
pub fn verdict_line(c: &Check) -> String {
    let err = match &c.difference {
        Some(d) if d.max_abs == 0.0 => " (exactly)".to_string(),
        Some(d) => format!(" (max abs err {:.1e})", d.max_abs),
        None => String::new(),
    };
    let note = if c.note.is_empty() {
        String::new()
    } else {
        format!("; {}", c.note)
    };
    match c.verdict {
        Verdict::Agree => format!("✓ agrees with {}{err}{note}", c.against),
        Verdict::Disagree => format!("✗ DISAGREES with {}{err}{note}", c.against),
        Verdict::Unchecked => format!("· {}", c.note),
    }
}

/// A claim: what was printed, whether it holds, and the true values where not.
fn claim_lines(claim: &ClaimReport, e: &Explanation<'_>, window: &Window) -> Vec<String> {
    let printed = &claim.claim.value;
    let mut lines = vec![format!("  {} ({})", claim.claim.quantity.name(), claim.claim.source)];
    let shown_printed = if let (true, [value]) = (claim.claim.scalar, printed.as_slice()) {
        plain_number(*value)
    } else {
        list(&printed[..printed.len().min(SHOWN)], 4) + if printed.len() > SHOWN { " …" } else { "" }
    };
    let Some(actual) = &claim.actual else {
        lines.push(format!(
            "    printed {shown_printed} — cannot be checked: the value cannot be computed here"
        ));
        return lines;
    };
    if actual.len() != printed.len() {
        lines.push(format!(
            "    printed {shown_printed} — does not hold: {} values printed, the case has {}",
            printed.len(),
            actual.len()
        ));
        return lines;
    }
    if claim.holds {
        lines.push(format!("    printed {shown_printed} — holds"));
        return lines;
    }
    let by_row = matches!(claim.claim.quantity, Quantity::Softmax | Quantity::SmoothedTarget)
        && actual.len() == e.case.input.numel();
    if let [actual] = actual.as_slice() {
        let who = if claim.claim.quantity == Quantity::Loss {
            format!("{} gives", e.loss_from)
        } else {
            "true value".to_string()
        };
        lines.push(format!(
            "    printed {shown_printed} — does not hold; {who} {}",
            number(*actual, 6)
        ));
    } else if by_row {
        let mut samples: Vec<usize> = claim.wrong.iter().map(|&i| e.geometry.sample_at(i)).collect();
        samples.sort_unstable();
        samples.dedup();
        lines.push(format!(
            "    does not hold for {} of {} samples:",
            samples.len(),
            e.geometry.samples()
        ));
        for &sample in samples.iter().take(SHOWN) {
            lines.push(format!(
                "    sample {sample}: printed {}, true {}",
                list(&e.geometry.row(printed, sample, window.classes), 4),
                list(&e.geometry.row(actual, sample, window.classes), 4)
            ));
        }
    } else {
        lines.push(format!(
            "    does not hold at {} of {} values:",
            claim.wrong.len(),
            actual.len()
        ));
        for &i in claim.wrong.iter().take(SHOWN) {
            lines.push(format!(
                "    sample {i}: printed {}, true {}",
                plain_number(printed[i]),
                number(actual[i], 6)
            ));
        }
    }
    lines
}

/// "A of N steps agree, D disagree, U unchecked" (zero counts left out).
pub(super) fn step_counts(verdicts: impl Iterator<Item = Verdict>) -> String {
    let verdicts: Vec<Verdict> = verdicts.collect();
    let count = |v: Verdict| verdicts.iter().filter(|&&x| x == v).count();
    let (agree, disagree, unchecked) = (
        count(Verdict::Agree),
        count(Verdict::Disagree),
        count(Verdict::Unchecked),
    );
    let mut text = format!("{agree} of {} steps agree", verdicts.len());
    if disagree > 0 {
        text.push_str(&format!(", {disagree} disagree"));
    }
    if unchecked > 0 {
        text.push_str(&format!(", {unchecked} unchecked"));
    }
    text
}

fn summary(e: &Explanation<'_>) -> String {
    let mut text = step_counts(e.steps.iter().map(|s| s.check.verdict));
    if !e.claims.is_empty() {
        let wrong = e.claims.iter().filter(|c| !c.holds).count();
        text.push_str(&format!(
            "; {wrong} of the document's {} printed numbers do not hold",
            e.claims.len()
        ));
    }
    text
}
