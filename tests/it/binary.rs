//! Running the `ce-parity` binary from tests.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `ce-parity ARGS` in `dir`.
pub fn ce_parity(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ce-parity"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run ce-parity")
}
