//! The `ce-parity` binary: a thin layer over the library.
//! Exit codes: 0 parity, 1 mismatch, 2 usage, I/O or parse error, tensors
//! libtorch rejects, or no verdict (nothing was compared).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ce-parity: {error:#}");
            ExitCode::from(2)
        }
    }
}
