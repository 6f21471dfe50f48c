//! `ce-parity refresh FILE...`: records libtorch's values (or its error) as
//! each case's `expected`, keeping everything else. For maintainers who add
//! cases by hand; the rewrite is atomic.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use ce_parity::fixtures::{self, Expected};
use ce_parity::reference::{producer, run_libtorch};
use ce_parity::runner::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// Fixture files to re-record in place.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    for file in &args.files {
        let mut fixture = fixtures::load(file)?;
        for case in &mut fixture.cases {
            let outcome = run_libtorch(case);
            if let Outcome::Skipped(why) = &outcome {
                anyhow::bail!(
                    "{}: case {:?}: libtorch cannot run it: {why}",
                    file.display(),
                    case.name
                );
            }
            let result = outcome.to_recorded().expect("not skipped");
            case.expected = Some(Expected {
                producer: producer(),
                result,
            });
        }
        fixtures::save(file, &fixture, true).with_context(|| format!("{}: cannot write", file.display()))?;
        eprintln!("{}: recorded {} case(s)", file.display(), fixture.cases.len());
    }
    Ok(ExitCode::SUCCESS)
}
