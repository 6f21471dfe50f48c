//! libtorch as the commands reach it: live when the build has the `torch`
//! feature and the user did not say `--no-libtorch`, absent otherwise.

use ce_parity::fixtures::Case;
use ce_parity::runner::{run_rust, Outcome};

/// libtorch's outcome for `case`; None when this build has no libtorch.
#[cfg(feature = "torch")]
pub fn run_libtorch(case: &Case) -> Option<Outcome> {
    Some(ce_parity::reference::run_libtorch(case))
}

/// libtorch's outcome for `case`; None when this build has no libtorch.
#[cfg(not(feature = "torch"))]
pub fn run_libtorch(_case: &Case) -> Option<Outcome> {
    None
}

/// libtorch's version when this build has it.
#[cfg(feature = "torch")]
pub fn libtorch_version() -> Option<&'static str> {
    Some(ce_parity::reference::libtorch_version())
}

/// libtorch's version when this build has it.
#[cfg(not(feature = "torch"))]
pub fn libtorch_version() -> Option<&'static str> {
    None
}

/// The most trusted outcome at hand for a (float64) case: libtorch's when
/// `live` and built in, else the Rust loss's.
pub fn most_trusted(case: &Case, live: bool) -> Outcome {
    live.then(|| run_libtorch(case))
        .flatten()
        .unwrap_or_else(|| run_rust(case))
}
