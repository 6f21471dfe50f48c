//! Calling an implementation under test so that its panic is caught, and,
//! when asked, not printed.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Set while this thread runs an implementation whose panics are rejections.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `f`; a panic becomes `Err` with its message. With `quiet`, the panic
/// hook says nothing for a panic on this thread during `f` (other threads'
/// panics, and this thread's afterwards, reach the hook that was installed).
pub(super) fn guarded<T>(quiet: bool, f: impl FnOnce() -> T) -> Result<T, String> {
    if quiet {
        // The hook is process-wide: install, once, one that defers to the
        // previous hook unless the panicking thread asked for quiet.
        QUIET_HOOK.call_once(|| {
            let previous = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                if !QUIET.with(Cell::get) {
                    previous(info);
                }
            }));
        });
    }
    let was = QUIET.with(|q| q.replace(quiet));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| message(&*payload))
}

fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
