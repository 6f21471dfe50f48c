//! How the kit judges: which cases run, the tolerance, what counts as the
//! same rejection, and what a panic means.

use std::fmt;
use std::sync::Arc;

use super::Supports;
use crate::compare::Tolerance;

/// Whether your rejection of a case libtorch rejects is the same one:
/// given libtorch's first line and your whole message.
type RejectionMatch = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// How [`check`](super::check) judges: which cases run, the tolerance,
/// rejections and panics.
#[derive(Clone, Default)]
pub struct CheckOptions {
    pub(super) supports: Supports,
    pub(super) tolerance: Option<Tolerance>,
    pub(super) rejection_match: Option<RejectionMatch>,
    pub(super) panics_as_rejections: bool,
    pub(super) cases: Vec<String>,
    pub(super) files: Vec<String>,
}

impl fmt::Debug for CheckOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckOptions")
            .field("supports", &self.supports)
            .field("tolerance", &self.tolerance)
            .field("rejection_match", &self.rejection_match.is_some())
            .field("panics_as_rejections", &self.panics_as_rejections)
            .field("cases", &self.cases)
            .field("files", &self.files)
            .finish()
    }
}

impl CheckOptions {
    /// Every cross-entropy case, `check`'s tolerances, any error wording,
    /// a panic fails its case.
    pub fn new() -> CheckOptions {
        CheckOptions::default()
    }

    /// Runs only the cases `supports` lets through; the rest are skipped with the reason.
    pub fn supports(self, supports: Supports) -> CheckOptions {
        CheckOptions { supports, ..self }
    }

    /// One tolerance for every dtype instead of assert_close's per-dtype defaults.
    pub fn tolerance(self, tolerance: Tolerance) -> CheckOptions {
        CheckOptions {
            tolerance: Some(tolerance),
            ..self
        }
    }

    /// When on, a rejection passes only if its first line is libtorch's.
    /// Off by default: rejecting what libtorch rejects is enough, since
    /// libraries word their errors differently. Off also drops a rule given
    /// to [`rejections_match`](Self::rejections_match).
    pub fn same_error_messages(self, on: bool) -> CheckOptions {
        if on {
            self.rejections_match(|libtorch, yours| yours.lines().next().unwrap_or("").trim_end() == libtorch)
        } else {
            CheckOptions {
                rejection_match: None,
                ..self
            }
        }
    }

    /// A rejection of a case libtorch rejects passes only when
    /// `matches(libtorch_first_line, your_message)` holds: a substring, a
    /// table of your messages, or a regex of your own. Otherwise the case
    /// fails as "rejection differs".
    ///
    /// ```
    /// use ce_parity::kit::CheckOptions;
    ///
    /// // An out-of-range class must be rejected as one, whatever the wording.
    /// let options = CheckOptions::new().rejections_match(|libtorch, yours| {
    ///     !libtorch.contains("out of bounds") || yours.contains("out of range")
    /// });
    /// # let _ = options;
    /// ```
    pub fn rejections_match<F>(self, matches: F) -> CheckOptions
    where
        F: Fn(&str, &str) -> bool + Send + Sync + 'static,
    {
        CheckOptions {
            rejection_match: Some(Arc::new(matches)),
            ..self
        }
    }

    /// When on, a panic in your implementation is its rejection of the case
    /// (message `panicked: …`), judged as one, and the panic hook stays
    /// silent for it; for libraries that assert instead of returning errors.
    /// Off by default: a panic fails its case and is printed as usual.
    /// (Under `panic = "abort"` a panic still ends the process.)
    pub fn panics_as_rejections(self, on: bool) -> CheckOptions {
        CheckOptions {
            panics_as_rejections: on,
            ..self
        }
    }

    /// Runs only the case named `name` (added to any named before); the
    /// report holds nothing else. Names are unique within a file, e.g.
    /// `surface/float16/4d__mean`.
    pub fn case(mut self, name: impl Into<String>) -> CheckOptions {
        self.cases.push(name.into());
        self
    }

    /// Runs only the cases of the fixture file `file` (added to any named
    /// before), as the report names it, e.g. `fixtures/surface.json`.
    pub fn file(mut self, file: impl Into<String>) -> CheckOptions {
        self.files.push(file.into());
        self
    }

    /// Whether the case filters take `name` of `file`.
    pub(super) fn selects(&self, file: &str, name: &str) -> bool {
        (self.files.is_empty() || self.files.iter().any(|f| f == file))
            && (self.cases.is_empty() || self.cases.iter().any(|c| c == name))
    }

    /// Whether your rejection counts as libtorch's.
    pub(super) fn same_rejection(&self, libtorch: &str, yours: &str) -> bool {
        self.rejection_match.as_ref().is_none_or(|m| m(libtorch, yours))
    }
}
