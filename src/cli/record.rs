//! `ce-parity record --input x.npy --target t.npy … --out FILE`: a fixture
//! from your own tensors, with libtorch's loss and gradients as `expected`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use ce_parity::fixtures::{self, Expected, Fixture};
use ce_parity::reference::{producer, run_libtorch};
use ce_parity::runner::Outcome;

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
    let mut case = args
        .tensors
        .case()?
        .context("record needs --input and --target (.npy files)")?;
    if let Some(name) = args.name {
        case.name = name;
    }
    let outcome = run_libtorch(&case);
    let result = match outcome.to_recorded() {
        Some(r) => r,
        None => anyhow::bail!("libtorch cannot run this case: {outcome:?}"),
    };
    case.expected = Some(Expected {
        producer: producer(),
        result,
    });
    let fixture = Fixture {
        description: "Recorded by `ce-parity record` from .npy tensors".into(),
        cases: vec![case],
    };
    fixtures::save(&args.out, &fixture, false).with_context(|| {
        format!(
            "{}: cannot write (record never replaces an existing file)",
            args.out.display()
        )
    })?;
    match &outcome {
        Outcome::Values { loss, .. } => println!(
            "{}: recorded libtorch's loss {} and gradients",
            args.out.display(),
            short(&loss.to_f64())
        ),
        Outcome::Error(e) => println!("{}: recorded libtorch's rejection: {e}", args.out.display()),
        Outcome::Skipped(_) => unreachable!("skips have no record and bailed above"),
    }
    Ok(ExitCode::SUCCESS)
}

fn short(values: &[f64]) -> String {
    match values {
        [v] => format!("{v:.6}"),
        _ => format!("({} values)", values.len()),
    }
}
