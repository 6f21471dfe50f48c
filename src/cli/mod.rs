//! Command-line interface: one module per command, one per output format.

#[macro_use]
mod out;
#[cfg(feature = "torch")]
mod alloc;
#[cfg(feature = "torch")]
mod bench;
mod check;
mod clip_step_tensors;
mod explain;
mod explain_clip_step;
mod explain_human;
mod explain_json;
#[cfg(feature = "torch")]
mod fuzz;
mod human;
mod json;
mod junit;
mod live;
#[cfg(feature = "torch")]
mod record;
#[cfg(feature = "torch")]
mod refresh;
mod rejection;
mod tensors;
mod yours;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ce-parity",
    version,
    about = "PyTorch's cross_entropy in Rust, checked against libtorch case by case"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check fixture cases: Rust vs live libtorch vs recorded values.
    Check(check::Args),
    /// Explain one case step by step (no arguments: the article's example),
    /// each step checked against libtorch.
    Explain(explain::Args),
    /// Time Rust and libtorch side by side on large shapes, with memory floors.
    #[cfg(feature = "torch")]
    Bench(bench::Args),
    /// Search for cases where Rust and libtorch disagree; shrink and save them.
    #[cfg(feature = "torch")]
    Fuzz(fuzz::Args),
    /// Write a fixture from .npy or .safetensors tensors, with libtorch's values as `expected`.
    #[cfg(feature = "torch")]
    Record(record::Args),
    /// Re-record `expected` in fixture files from live libtorch (for maintainers).
    #[cfg(feature = "torch")]
    Refresh(refresh::Args),
}

/// Parses arguments and runs the command; errors become exit code 2 in `main`.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage_error = e.use_stderr();
            // `--help | head -1`: a closed pipe ends the help quietly.
            if let Err(io) = e.print() {
                anyhow::ensure!(io.kind() == std::io::ErrorKind::BrokenPipe, io);
            }
            return Ok(ExitCode::from(if usage_error { 2 } else { 0 }));
        }
    };
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Explain(args) => explain::run(args),
        #[cfg(feature = "torch")]
        Command::Bench(args) => bench::run(args),
        #[cfg(feature = "torch")]
        Command::Fuzz(args) => fuzz::run(args),
        #[cfg(feature = "torch")]
        Command::Record(args) => record::run(args),
        #[cfg(feature = "torch")]
        Command::Refresh(args) => refresh::run(args),
    }
}
