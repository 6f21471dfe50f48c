//! `ce-parity record --input x.npy --target t.npy … --out FILE` (or
//! `--tensors CASE.safetensors`): a fixture from your own tensors, with libtorch's loss and gradients as `expected`.

use ce_parity::fixtures::Values;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use ce_parity::fixtures::{self, Expected, Fixture};
use ce_parity::reference::{producer, run_libtorch};
use ce_parity::runner::Outcome;

use super::rejection;
use super::tensors::TensorArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    tensors: TensorArgs,
    /// The fixture file to write; an existing file is never replaced.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The case's name (default: the input file's name).
    #[arg(long)]
    name: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let given = args
        .tensors
        .given()?
        .context("record needs --input and --target (.npy files), or --tensors CASE.safetensors")?;
    let description = format!("Recorded by `ce-parity record`: {}", given.source);
    let mut case = given.case;
    if let Some(name) = args.name {
        case.name = name;
    }
    // A fixture records a rejection on purpose; tensors given here are meant
    // to be computed, so a rejection is the user's error, as in `check`.
    rejection::ensure_accepted(&case, true)?;
    let outcome = run_libtorch(&case);
    let Outcome::Values(Values { loss, .. }) = &outcome else {
        anyhow::bail!("libtorch cannot run this case: {outcome:?}");
    };
    let loss = loss.to_f64();
    let result = outcome.to_recorded().expect("values are recorded");
    case.expected = Some(Expected {
        producer: producer(),
        result,
    });
    let fixture = Fixture {
        description,
        cases: vec![case],
    };
    fixtures::save(&args.out, &fixture, false).map_err(|e| save_error(&args.out, e))?;
    outln!(
        "{}: recorded libtorch's loss {} and gradients",
        args.out.display(),
        short(&loss)
    )?;
    Ok(ExitCode::SUCCESS)
}

fn short(values: &[f64]) -> String {
    match values {
        [v] => format!("{v:.6}"),
        _ => format!("({} values)", values.len()),
    }
}

/// The write error, naming `--out` (save's messages name the folder, never its temporary file).
fn save_error(out: &Path, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        anyhow::anyhow!(
            "--out {}: the file exists, and record never replaces a file; choose another name",
            out.display()
        )
    } else {
        anyhow::anyhow!("--out {}: cannot write: {e}", out.display())
    }
}
