//! `ce-parity explain [FILE --case NAME | --input X.npy --target T.npy …]`:
//! one case step by step — softmax, smoothed target, each sample's loss, the
//! reduction — each step checked against libtorch, and the document's printed
//! numbers audited. With no arguments: the article's example.
//!
//! `explain --clip-step` (or any `clip_step` case, from a fixture or a
//! `--tensors` file): OpenCLIP's loss step — normalised embeddings, the
//! scale, the logits, each direction's smoothed cross-entropy, the loss and
//! every gradient — each step checked against libtorch; with no other
//! arguments, the bundled clip_step/article/float32.
//!
//! Exit codes: 0 when no step disagrees, 1 when one does, 2 for errors (an
//! unknown case names the file and the case).

use std::path::PathBuf;
use std::process::ExitCode;

use ce_parity::explain::{explain, explain_clip_step, Against, Verdict};
use ce_parity::fixtures::{self, Case, LossKind};

use super::tensors::TensorArgs;
use super::{explain_clip_step as clip_step_out, explain_human, explain_json, rejection};

/// The case `ce-parity explain` explains with no arguments.
const ARTICLE_CASE: &str = "article/smoothing_0.1/mean";

/// The case `ce-parity explain --clip-step` explains with no other arguments:
/// the article's setting (smoothing 0.1) one level up, in OpenCLIP's step.
const ARTICLE_CLIP_STEP: &str = "clip_step/article/float32";

/// Up to this many case names are listed when `--case` names none of them.
const LISTED_NAMES: usize = 12;

#[derive(clap::Args)]
pub struct Args {
    /// Fixture file holding the case (none: the bundled fixtures).
    file: Option<PathBuf>,
    /// The case to explain (default: the file's only case; with no FILE, the
    /// article's example, article/smoothing_0.1/mean).
    #[arg(long, value_name = "NAME")]
    case: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Check against the recorded values only, without running libtorch.
    #[arg(long)]
    no_libtorch: bool,
    /// Explain OpenCLIP's loss step from embeddings (a clip_step case; with
    /// no FILE, --case or --tensors, the bundled clip_step/article/float32).
    #[arg(long)]
    clip_step: bool,
    /// Or explain tensors saved with np.save (--input, --target, …).
    #[command(flatten)]
    tensors: TensorArgs,
}

/// Explains the chosen case; the exit code says whether a step disagrees.
/// explain's output formats (JUnit has no meaning for one explained case).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (file, case) = select(&args)?;
    let against = if args.no_libtorch {
        Against::Recorded
    } else {
        Against::Libtorch
    };
    if let LossKind::ClipStep { .. } = case.loss {
        let explained = explain_clip_step(&case, against).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        match args.format {
            Format::Human => clip_step_out::print_human(&file, &explained)?,
            Format::Json => clip_step_out::print_json(&file, &explained)?,
        }
        return Ok(exit_code(explained.verdict()));
    }
    anyhow::ensure!(
        !args.clip_step,
        "--clip-step: {file}: case {} computes the {} loss, not OpenCLIP's step (a clip_step case)",
        case.name,
        case.loss.name()
    );
    let explained = explain(&case, against).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    match args.format {
        Format::Human => explain_human::print(&file, &explained)?,
        Format::Json => explain_json::print(&file, &explained)?,
    }
    Ok(exit_code(explained.verdict()))
}

fn exit_code(verdict: Verdict) -> ExitCode {
    match verdict {
        Verdict::Disagree => ExitCode::from(1),
        Verdict::Agree | Verdict::Unchecked => ExitCode::SUCCESS,
    }
}

/// The case to explain, with where it came from (a file path, or the tensors' description).
fn select(args: &Args) -> anyhow::Result<(String, Case)> {
    if let Some(given) = args.tensors.given()? {
        anyhow::ensure!(
            args.file.is_none() && args.case.is_none(),
            "give a fixture FILE (with --case) or --input/--tensors, not both"
        );
        rejection::ensure_accepted(&given.case, !args.no_libtorch)?;
        return Ok((given.source, given.case));
    }
    if let Some(path) = &args.file {
        super::tensors::ensure_not_npy(path)?;
        let fixture = fixtures::load(path)?;
        return pick(&path.display().to_string(), fixture.cases, args.case.as_deref());
    }
    let default = if args.clip_step {
        ARTICLE_CLIP_STEP
    } else {
        ARTICLE_CASE
    };
    let name = args.case.as_deref().unwrap_or(default);
    let bundled = fixtures::bundled()?;
    for (path, fixture) in bundled {
        if let Some(case) = fixture.cases.into_iter().find(|c| c.name == name) {
            return Ok((path, case));
        }
    }
    anyhow::bail!("the bundled fixtures have no case named {name:?}; `ce-parity check` lists their cases")
}

/// The case named `name` in `file`, or its only case when no name is given.
fn pick(file: &str, cases: Vec<Case>, name: Option<&str>) -> anyhow::Result<(String, Case)> {
    let names: Vec<String> = cases.iter().map(|c| c.name.clone()).collect();
    let found = match name {
        Some(name) => cases.into_iter().find(|c| c.name == name),
        None if cases.len() == 1 => cases.into_iter().next(),
        None => anyhow::bail!(
            "{file}: holds {} cases; choose one with --case NAME ({})",
            names.len(),
            listing(&names)
        ),
    };
    match found {
        Some(case) => Ok((file.to_string(), case)),
        None => anyhow::bail!(
            "{file}: no case named {:?} ({})",
            name.unwrap_or_default(),
            listing(&names)
        ),
    }
}

/// "its cases: a, b, c", or the first few and how many more.
fn listing(names: &[String]) -> String {
    match names.len() {
        0 => "it has no cases".to_string(),
        n if n <= LISTED_NAMES => format!("its cases: {}", names.join(", ")),
        n => format!(
            "its cases include {}, and {} more",
            names[..LISTED_NAMES].join(", "),
            n - LISTED_NAMES
        ),
    }
}
