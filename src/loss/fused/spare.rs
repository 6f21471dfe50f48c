//! Buffers kept per thread from one parallel task to the next, and from
//! one call to the next.
//!
//! Rayon runs a `*_init` closure once per piece it splits the work into: a
//! K-dim forward over 8×21×256×256 made 24–43 fresh scratches per call,
//! each a few allocations that the first tile then zeroes (and that the
//! allocator may hand back to the system in between, to be faulted in and
//! cleared again), and each starting without the next tile already copied.
//! A [`Spare`] takes a buffer that this thread used before, and puts it
//! back when dropped.

use std::any::Any;
use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// At most this many buffers wait per thread: more than are ever in use at
/// once on one thread (a task's and a nested task's), few enough to keep
/// the memory held between calls small (a K-dim scratch is tens of KiB, a
/// K-dim job's slots 64 KiB; a row scratch for probability targets holds
/// one coefficient per class). Buffers sized by the input (a task's terms,
/// a copy of its logits) are not kept.
const KEPT: usize = 8;

thread_local! {
    static KEPT_BUFFERS: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer that can wait for its next task.
pub(super) trait Reusable: Default + 'static {
    /// Forgets what the last task left that the next must not rely on.
    fn forget(&mut self);
}

impl<T: 'static> Reusable for Vec<T> {
    /// A vector's users overwrite or clear what they read.
    fn forget(&mut self) {}
}

/// A buffer of type `B` from this thread's kept ones (or a new one), kept
/// again when dropped.
pub(super) struct Spare<B: Reusable>(Option<Box<B>>);

impl<B: Reusable> Spare<B> {
    /// A kept buffer of type `B`, forgotten, or a new one.
    pub fn take() -> Self {
        let kept = KEPT_BUFFERS
            .try_with(|kept| {
                let mut kept = kept.borrow_mut();
                // The last kept: the warmest in cache.
                let at = kept.iter().rposition(|b| b.is::<B>())?;
                kept.swap_remove(at).downcast::<B>().ok()
            })
            .ok()
            .flatten();
        let mut buffer = kept.unwrap_or_default();
        buffer.forget();
        Spare(Some(buffer))
    }
}

impl<B: Reusable> Drop for Spare<B> {
    fn drop(&mut self) {
        let Some(buffer) = self.0.take() else { return };
        // During the thread's exit the list may be gone: then the buffer is
        // simply freed.
        let _ = KEPT_BUFFERS.try_with(|kept| {
            if let Ok(mut kept) = kept.try_borrow_mut() {
                if kept.len() < KEPT {
                    kept.push(buffer);
                }
            }
        });
    }
}

impl<B: Reusable> Deref for Spare<B> {
    type Target = B;
    fn deref(&self) -> &B {
        self.0.as_deref().expect("held until dropped")
    }
}

impl<B: Reusable> DerefMut for Spare<B> {
    fn deref_mut(&mut self) -> &mut B {
        self.0.as_deref_mut().expect("held until dropped")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Marked {
        value: u32,
        forgotten: bool,
    }

    impl Reusable for Marked {
        fn forget(&mut self) {
            self.forgotten = true;
        }
    }

    /// A dropped buffer comes back to the next taker on the same thread,
    /// forgotten; two taken at once are two buffers.
    #[test]
    fn a_dropped_buffer_is_taken_again_forgotten() {
        {
            let mut first = Spare::<Marked>::take();
            first.value = 7;
            first.forgotten = false;
        }
        let again = Spare::<Marked>::take();
        assert_eq!((again.value, again.forgotten), (7, true));
        let other = Spare::<Marked>::take();
        assert_eq!(other.value, 0);
        // Another type never receives it.
        let vector = Spare::<Vec<u8>>::take();
        assert!(vector.is_empty());
    }
}
