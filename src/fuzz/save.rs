//! Saving a shrunk failure as a fixture: the reference's values recorded as
//! `expected`, written atomically under a name no existing file has.

use std::io;
use std::path::{Path, PathBuf};

use crate::fixtures::{self, Case, Expected, Fixture};
use crate::runner::Outcome;

/// Writes `case` into a new file `seed{seed}-case{index}[-k].json` in `dir`
/// (created if needed) with `reference` recorded as `expected`, and returns
/// its path. An existing file is never replaced.
///
/// # Errors
/// I/O errors; `InvalidInput` when the reference skipped the case (nothing to record).
pub fn save_shrunk(
    dir: &Path,
    seed: u64,
    index: u64,
    case: &Case,
    reference: &Outcome,
    producer: &str,
    description: &str,
) -> io::Result<PathBuf> {
    let result = reference.to_recorded().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the reference skipped this case; nothing to record",
        )
    })?;
    let mut case = case.clone();
    case.expected = Some(Expected {
        producer: producer.to_string(),
        result,
    });
    let fixture = Fixture {
        description: description.to_string(),
        cases: vec![case],
    };
    std::fs::create_dir_all(dir)?;
    for k in 1.. {
        let name = if k == 1 {
            format!("seed{seed}-case{index}.json")
        } else {
            format!("seed{seed}-case{index}-{k}.json")
        };
        let path = dir.join(name);
        match fixtures::save(&path, &fixture, false) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
            Ok(()) => return Ok(path),
        }
    }
    unreachable!("some k names a free file")
}
