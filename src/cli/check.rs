//! `ce-parity check [PATH...]`: every case through Rust and live libtorch,
//! compared with each other and with the recorded values.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;

use ce_parity::compare::Overrides;
use ce_parity::fixtures::{self, Case};
use ce_parity::runner::{run_rust, tolerance, verdict, CaseReport, Status};

use super::live::{libtorch_version, most_trusted, run_libtorch};
use super::tensors::TensorArgs;
use super::yours::{self, OutputArgs};
use super::{human, json, junit, rejection};

#[derive(clap::Args)]
pub struct Args {
    /// Fixture files or folders (searched for *.json); none: the bundled fixtures.
    paths: Vec<PathBuf>,
    /// Relative tolerance for every dtype (default: torch.testing.assert_close's per dtype).
    #[arg(long, allow_negative_numbers = true)]
    rtol: Option<f64>,
    /// Absolute tolerance for every dtype (default: assert_close's per dtype).
    #[arg(long, allow_negative_numbers = true)]
    atol: Option<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Compare Rust with the recorded values only, without running libtorch.
    #[arg(long)]
    no_libtorch: bool,
    /// Run only the cases whose id (FILE::NAME) contains TEXT.
    #[arg(short = 'k', long = "case", value_name = "TEXT")]
    case_filter: Option<String>,
    /// Print only failing cases and the summary.
    #[arg(short, long)]
    quiet: bool,
    /// Or check tensors saved with np.save directly (--input, --target, …).
    #[command(flatten)]
    tensors: TensorArgs,
    /// Your outputs for those tensors, judged against libtorch.
    #[command(flatten)]
    yours: OutputArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    /// JUnit XML: one test case per case, for CI runners.
    Junit,
}

/// The reports of one fixture file.
pub struct FileReport {
    pub file: String,
    pub cases: Vec<CaseReport>,
}

/// What the JSON report says about the run itself.
pub struct RunFacts {
    /// libtorch's version when the build has it, else None.
    pub libtorch_version: Option<&'static str>,
    /// Whether libtorch ran live.
    pub live: bool,
    /// Wall time of the whole run.
    pub elapsed: std::time::Duration,
}

/// Totals over every file.
#[derive(Default)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Totals {
    pub fn of(files: &[FileReport]) -> Totals {
        let mut t = Totals::default();
        for case in files.iter().flat_map(|f| &f.cases) {
            match case.status {
                Status::Passed => t.passed += 1,
                Status::Failed => t.failed += 1,
                Status::Skipped => t.skipped += 1,
            }
        }
        t
    }

    /// `N passed, M failed` with `, K skipped` when any were skipped.
    pub fn summary(&self) -> String {
        let mut s = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            s.push_str(&format!(", {} skipped", self.skipped));
        }
        s
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let overrides = Overrides::new(args.rtol, args.atol).map_err(anyhow::Error::msg)?;
    let live = !args.no_libtorch;
    let files: Vec<FileReport> = match args.tensors.given()? {
        Some(mut given) => {
            anyhow::ensure!(
                args.paths.is_empty(),
                "give fixture paths or --input/--tensors, not both"
            );
            if let Some(filter) = &args.case_filter {
                let id = case_id(&given.case.name, &given.case.name);
                anyhow::ensure!(
                    id.contains(filter.as_str()),
                    "-k {filter:?}: the case {id} does not contain it"
                );
            }
            let yours = yours::outputs(&args.yours, &mut given)?;
            rejection::ensure_accepted(&given.case, live)?;
            let report = match &yours {
                Some(yours) => yours::judge(&given.case, yours, overrides, live)?,
                None => check_case(&given.case, overrides, live),
            };
            vec![FileReport {
                file: given.case.name.clone(),
                cases: vec![report],
            }]
        }
        None => {
            anyhow::ensure!(
                args.yours.loss.is_none() && args.yours.grad_input.is_none(),
                "--loss and --grad need the tensors they were computed from: --input/--target or --tensors"
            );
            let fixtures = select(load_all(&args.paths)?, args.case_filter.as_deref())?;
            fixtures
                .iter()
                .map(|(file, fixture)| FileReport {
                    file: file.clone(),
                    cases: fixture.cases.iter().map(|c| check_case(c, overrides, live)).collect(),
                })
                .collect()
        }
    };
    let totals = Totals::of(&files);
    match args.format {
        Format::Human => human::print(&files, &totals, args.quiet)?,
        Format::Json => {
            let facts = RunFacts {
                libtorch_version: libtorch_version(),
                live: live && libtorch_version().is_some(),
                elapsed: started.elapsed(),
            };
            json::print(&files, &totals, &facts)?
        }
        Format::Junit => junit::print(&files, started.elapsed())?,
    }
    Ok(if totals.failed > 0 {
        ExitCode::from(1)
    } else if totals.passed == 0 {
        // Parity is a claim about compared values; with none compared there
        // is no verdict to give, which exit 0 would hide.
        eprintln!("ce-parity: nothing was checked ({}); no verdict", totals.summary());
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The id reports and `-k` use for a case: `FILE::NAME`.
pub fn case_id(file: &str, case: &str) -> String {
    format!("{file}::{case}")
}

/// Keeps the cases whose id contains `filter`, and the files that still
/// have one; an error when nothing matches.
fn select(
    fixtures: Vec<(String, fixtures::Fixture)>,
    filter: Option<&str>,
) -> anyhow::Result<Vec<(String, fixtures::Fixture)>> {
    let Some(filter) = filter else {
        return Ok(fixtures);
    };
    let kept: Vec<_> = fixtures
        .into_iter()
        .filter_map(|(file, mut fixture)| {
            fixture.cases.retain(|c| case_id(&file, &c.name).contains(filter));
            (!fixture.cases.is_empty()).then_some((file, fixture))
        })
        .collect();
    anyhow::ensure!(!kept.is_empty(), "-k {filter:?}: no case id (FILE::NAME) contains it");
    Ok(kept)
}

/// Parses every fixture before running anything, so a bad file stops the run
/// with exit 2 and nothing half-reported.
fn load_all(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, fixtures::Fixture)>> {
    let mut out = Vec::new();
    if paths.is_empty() {
        let out = fixtures::bundled().context("bundled fixture is invalid (a build from a broken checkout?)")?;
        anyhow::ensure!(!out.is_empty(), "no bundled fixtures in this build");
        return Ok(out);
    }
    for path in paths {
        super::tensors::ensure_not_npy(path)?;
        let files = fixtures::discover(path)?;
        anyhow::ensure!(!files.is_empty(), "{}: no *.json fixture files found", path.display());
        for file in files {
            let parsed = fixtures::load(&file)?;
            out.push((file.display().to_string(), parsed));
        }
    }
    Ok(out)
}

fn check_case(case: &Case, overrides: Overrides, live: bool) -> CaseReport {
    let rust = run_rust(case);
    let libtorch = if live { run_libtorch(case) } else { None };
    let float64 = |c: &Case| most_trusted(c, live);
    verdict(case, &rust, libtorch.as_ref(), float64, tolerance(case, overrides))
}
