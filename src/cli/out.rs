//! Standard output for every command. A reader that stops reading
//! (`ce-parity check | head -1`) closes the pipe: the output ends there,
//! quietly, and the command still finishes its work and exits with its
//! verdict. (Rust ignores SIGPIPE, so `println!` would panic instead.)

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write found the pipe closed; later output is dropped.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout, or nothing once the reader has gone.
///
/// # Errors
/// Write errors other than a closed pipe (e.g. a full disk).
pub fn write(text: std::fmt::Arguments<'_>) -> io::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut stdout = io::stdout().lock();
    match stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other,
    }
}

/// `println!` through [`write`]: evaluates to an `io::Result<()>`.
macro_rules! outln {
    () => {
        $crate::cli::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}
