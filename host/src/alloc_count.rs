//! The allocation counter: how the host proves the audio path allocates nothing. Both
//! binaries install [`CountingAlloc`] as their global allocator; it counts the allocations
//! and frees made on threads inside a [`CountAllocations`] scope (the audio thread's block,
//! each worker's loop), and `/status` and `synthpool render` report
//! [`counted_allocations`]. Its `GlobalAlloc` impl, which forwards to the system allocator,
//! is in `shm.rs`, the one file allowed `unsafe`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// A global allocator that counts the allocations and frees made on threads inside a
/// [`CountAllocations`] scope (the audio path), and passes everything to the system
/// allocator. Both binaries install it; the counts prove the audio path allocates nothing.
pub struct CountingAlloc;

static AUDIO_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static AUDIO_FREES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// The allocator calls these on every allocation: they touch only atomics and a
// const-initialised thread local, neither of which allocates.
fn counting() -> bool {
    // try_with: a thread being torn down has no thread locals left; it is not counted.
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

/// Counts one allocation if this thread is inside a [`CountAllocations`] scope.
pub(crate) fn note_allocation() {
    if counting() {
        AUDIO_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts one free if this thread is inside a [`CountAllocations`] scope.
pub(crate) fn note_free() {
    if counting() {
        AUDIO_FREES.fetch_add(1, Ordering::Relaxed);
    }
}

/// While alive, allocations and frees on this thread are counted (when the process uses
/// [`CountingAlloc`]); dropping it restores what was before, so scopes nest.
pub struct CountAllocations {
    was: bool,
}

impl CountAllocations {
    /// Starts counting on this thread.
    pub fn here() -> Self {
        let was = COUNTING.with(|c| c.replace(true));
        Self { was }
    }
}

impl Drop for CountAllocations {
    fn drop(&mut self) {
        let was = self.was;
        let _ = COUNTING.try_with(|c| c.set(was));
    }
}

/// Allocations and frees counted inside [`CountAllocations`] scopes in this process so far
/// (allocations, frees; a realloc counts as one of each).
pub fn counted_allocations() -> (u64, u64) {
    (AUDIO_ALLOCATIONS.load(Ordering::Relaxed), AUDIO_FREES.load(Ordering::Relaxed))
}
