//! Command-line interface: one module per command, one per output format.

#[cfg(feature = "torch")]
mod alloc;
#[cfg(feature = "torch")]
mod bench;
mod bundled;
mod check;
mod human;
mod json;
#[cfg(feature = "torch")]
mod refresh;

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
    /// Time Rust and libtorch side by side on large f32 shapes, beside memory floors.
    #[cfg(feature = "torch")]
    Bench(bench::Args),
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
            e.print()?;
            return Ok(ExitCode::from(if usage_error { 2 } else { 0 }));
        }
    };
    match cli.command {
        Command::Check(args) => check::run(args),
        #[cfg(feature = "torch")]
        Command::Bench(args) => bench::run(args),
        #[cfg(feature = "torch")]
        Command::Refresh(args) => refresh::run(args),
    }
}
