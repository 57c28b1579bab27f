//! The rack's index from module id to slot: one read per command, no walk over the slots.
use crate::command::ModuleId;

/// Which slot holds each live module id (ghosts fading out have none): commands find their
/// slots in one read instead of a walk over every slot. Entry `id` holds the slot + 1, and
/// 0 for none, so that all-zero memory (a fresh shared mapping,
/// [`Rack::init_zeroed`](super::Rack::init_zeroed)) is an empty index; ids from `IDS` on are
/// never bound (a command naming one is ignored).
pub(super) struct SlotIndex<const IDS: usize> {
    pub(super) slot_plus_one: [u16; IDS],
}

impl<const IDS: usize> SlotIndex<IDS> {
    /// No id bound.
    pub(super) const fn new() -> Self {
        Self { slot_plus_one: [0; IDS] }
    }

    /// The slot of live module `id`, if any.
    #[inline]
    pub(super) fn get(&self, id: ModuleId) -> Option<usize> {
        match self.slot_plus_one.get(id as usize) {
            Some(&n) if n != 0 => Some(n as usize - 1),
            _ => None,
        }
    }

    /// Binds `id` to `slot`; false (and nothing changes) when `id` is out of range.
    pub(super) fn bind(&mut self, id: ModuleId, slot: usize) -> bool {
        match self.slot_plus_one.get_mut(id as usize) {
            // slot < MODULES < u16::MAX (asserted in `Rack::new`): slot + 1 fits.
            Some(entry) => {
                *entry = slot as u16 + 1;
                true
            }
            None => false,
        }
    }

    /// Unbinds `id` (nothing for an id out of range).
    pub(super) fn unbind(&mut self, id: ModuleId) {
        if let Some(entry) = self.slot_plus_one.get_mut(id as usize) {
            *entry = 0;
        }
    }

    /// Unbinds every id.
    pub(super) fn clear(&mut self) {
        self.slot_plus_one = [0; IDS];
    }
}
