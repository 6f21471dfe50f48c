//! `ce-parity fuzz`: random cases through Rust and live libtorch; failures
//! are shrunk and saved as fixtures with libtorch's values as `expected`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use ce_parity::compare::Overrides;
use ce_parity::fuzz::{self, Config, Surface};
use ce_parity::reference::{producer, run_libtorch};
use ce_parity::runner::{run_rust, Implementation};

/// Candidates the shrinker may try per failure.
const SHRINK_BUDGET: usize = 2000;

#[derive(clap::Args)]
pub struct Args {
    /// Number of cases (default 1000, or unlimited with --time).
    #[arg(long)]
    cases: Option<u64>,
    /// Seed; a run is reproducible from it (default: from the clock, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Start no new case after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    time: Option<f64>,
    /// Folder for shrunk failing cases (created when needed).
    #[arg(long, value_name = "DIR", default_value = "fuzz-failures")]
    out: PathBuf,
    /// Parts of the surface: default, all, core, feature names, -name to remove
    /// (kdim, unbatched, probabilities, uint8, half, nonfinite, empty, huge,
    /// negative, invalid, clip, clip_step).
    #[arg(long, default_value = "default")]
    surface: String,
    /// Worker threads (default: the number of cores); results do not depend on it.
    #[arg(long)]
    jobs: Option<usize>,
    /// Shrink and save at most this many failures, the first ones by index.
    #[arg(long, default_value_t = 5)]
    max_shrink: usize,
    /// List at most this many failures, one per line; the rest are counted.
    #[arg(long, default_value_t = 20)]
    show: usize,
    /// Relative tolerance for every dtype (default: assert_close's per dtype, as `check`).
    #[arg(long, allow_negative_numbers = true)]
    rtol: Option<f64>,
    /// Absolute tolerance for every dtype (default: assert_close's per dtype, as `check`).
    #[arg(long, allow_negative_numbers = true)]
    atol: Option<f64>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let surface = Surface::parse(&args.surface).map_err(|e| anyhow::anyhow!("--surface: {e}"))?;
    let time_limit = match args.time {
        Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
        Some(t) => anyhow::bail!("--time must be a positive number of seconds, got {t}"),
        None => None,
    };
    let cases = args.cases.unwrap_or(if time_limit.is_some() { u64::MAX } else { 1000 });
    let seed = args.seed.unwrap_or_else(clock_seed);
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    anyhow::ensure!(jobs >= 1, "--jobs must be at least 1");
    let tolerance = Overrides::new(args.rtol, args.atol).map_err(anyhow::Error::msg)?;
    // Parallelism comes from the workers; libtorch's own threads would fight them.
    tch::set_num_threads(1);
    // A panic in the loss is caught and reported as a failing case (its message
    // in the note); the default hook would print it, with a backtrace, on every
    // shrinking step.
    std::panic::set_hook(Box::new(|_| {}));
    let config = Config {
        seed,
        cases,
        time_limit,
        surface,
        jobs,
        tolerance,
    };
    outln!("fuzz: seed {seed}, surface {}, {jobs} job(s)", config.surface)?;

    let bar = progress_bar(cases);
    let under_test: Implementation = &run_rust;
    let reference: Implementation = &run_libtorch;
    let summary = fuzz::run(&config, under_test, reference, &|| bar.inc(1));
    bar.finish_and_clear();

    for failure in summary.failures.iter().take(args.show) {
        outln!("FAIL case {}: {}", failure.index, failure.note)?;
    }
    if summary.failures.len() > args.show {
        outln!("… and {} more failures", summary.failures.len() - args.show)?;
    }
    for failure in summary.failures.iter().take(args.max_shrink) {
        let index = failure.index;
        let saved = fuzz::shrink_and_save(
            &config,
            index,
            under_test,
            reference,
            SHRINK_BUDGET,
            &args.out,
            &producer(),
        );
        match saved {
            Ok(Some(saved)) => outln!(
                "case {index} shrunk to input {:?} ({} candidates tried): {}",
                saved.shrunk.case.input.shape,
                saved.shrunk.evaluations,
                saved.path.display()
            )?,
            Ok(None) => outln!("case {index}: passes when run again; nothing saved")?,
            Err(e) => outln!("case {index}: cannot save the shrunk case: {e}")?,
        }
    }
    if summary.run < cases && time_limit.is_some() {
        outln!("stopped at the time limit after {} cases", summary.run)?;
    }
    outln!("{}", summary.line())?;
    Ok(if summary.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn progress_bar(cases: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    if cases == u64::MAX {
        return ProgressBar::new_spinner()
            .with_style(ProgressStyle::with_template("{spinner} {pos} cases, {elapsed}").expect("valid template"));
    }
    ProgressBar::new(cases).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} cases, {elapsed} (eta {eta})").expect("valid template"),
    )
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
