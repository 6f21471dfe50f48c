//! Saving a shrunk failure as a fixture: the reference's values recorded as
//! `expected`, written atomically under a name no existing file has.

use std::io;
use std::path::{Path, PathBuf};

use super::{case, judge_case, minimise, Config, Shrunk};
use crate::fixtures::{self, Case, Expected, Fixture};
use crate::runner::{Implementation, Outcome};

/// A failure of a run, shrunk and saved.
#[derive(Clone, Debug)]
pub struct SavedFailure {
    /// The shrinking, with the shrunk case.
    pub shrunk: Shrunk,
    /// How the shrunk case fails, as `check` words it.
    pub note: String,
    /// The fixture written.
    pub path: PathBuf,
}

/// What `ce-parity fuzz` does with a failure: regenerates case `index` of
/// the run, shrinks it ([`minimise`], at most `budget` candidates) and saves
/// it into `dir` with the reference's values ([`save_shrunk`]). None when the
/// case does not fail (nothing is written).
///
/// # Errors
/// As [`save_shrunk`].
pub fn shrink_and_save(
    config: &Config,
    index: u64,
    under_test: Implementation,
    reference: Implementation,
    budget: usize,
    dir: &Path,
    producer: &str,
) -> io::Result<Option<SavedFailure>> {
    let found = case(config.seed, index, &config.surface);
    let Some(shrunk) = minimise(&found, under_test, reference, budget, config.tolerance) else {
        return Ok(None);
    };
    let note = judge_case(&shrunk.case, under_test, reference, config.tolerance).note;
    let description = format!(
        "Found by `ce-parity fuzz --seed {} --surface {}` (case {index}), shrunk in {} steps: {note}",
        config.seed, config.surface, shrunk.steps
    );
    let path = save_shrunk(
        dir,
        config.seed,
        index,
        &shrunk.case,
        &reference(&shrunk.case),
        producer,
        &description,
    )?;
    Ok(Some(SavedFailure { shrunk, note, path }))
}

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
