//! Declicking: every edit the rack hears goes through a one-block linear ramp.
//!
//! A new module or cable fades in over one block, a freed module or an unpatched cable fades
//! out over one block and is removed after it ("ghosts"). A ghost holds its slot until then;
//! if a new module or cable finds no free slot, the oldest ghost is cut at once (only when
//! more edits than the rack's capacity land within one block). A module handed between racks
//! plays unfaded on both while the cables around it crossfade.
//!
//! The ramp is written once ([`RAMP_IN`], [`RAMP_OUT`]) and every faded block goes through
//! [`Fade::ramp`]: a slot's output, a cable into a sum, a receive that lost its sender.
use crate::block::{BLOCK, Block};

/// Gain of sample `i` of a fade-in: (i + 1) / BLOCK, reaching exactly 1.0 at the block's end.
pub(super) const RAMP_IN: Block = {
    let mut ramp = [0.0; BLOCK];
    let mut i = 0;
    while i < BLOCK {
        ramp[i] = (i + 1) as f32 / BLOCK as f32;
        i += 1;
    }
    ramp
};

/// Gain of sample `i` of a fade-out: 1 - [`RAMP_IN`]`[i]`, reaching exactly 0.0 at the
/// block's end. Worked out here (IEEE, as at run time), so a sample faded through it has the
/// bits `x * (1.0 - g)` had.
pub(super) const RAMP_OUT: Block = {
    let mut ramp = [0.0; BLOCK];
    let mut i = 0;
    while i < BLOCK {
        ramp[i] = 1.0 - RAMP_IN[i];
        i += 1;
    }
    ramp
};

/// Where a module or cable is in its life. repr(u8): all-zero memory is a valid `In`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fade {
    /// Created since the last block: fades in during the next one.
    In,
    /// Fully on.
    Steady,
    /// Freed or unpatched: fades out during the next block, then goes.
    Out,
    /// A module handed over to another rack ([`Rack::leave`](super::Rack::leave): a move between workers):
    /// it renders unfaded for one more block while its cables to modules that stay fade out
    /// (the other rack fades them in), then goes.
    Leave,
    /// A module handed over from another rack this block ([`Rack::adopt`](super::Rack::adopt)): it renders
    /// unfaded, carrying on from the other rack's state, while its cables to modules that did
    /// not arrive with it fade in; then it is steady.
    Arrive,
}

impl Fade {
    /// A module on its way out: freed (fading) or handed over (leaving).
    pub(super) fn gone(self) -> bool {
        matches!(self, Fade::Out | Fade::Leave)
    }
}

impl Fade {
    /// The gains this fade puts on a block, sample by sample; None when it plays unfaded (a
    /// cable is only ever In, Steady or Out; a module may also Leave or Arrive, unfaded).
    #[inline]
    pub(super) fn ramp(self) -> Option<&'static Block> {
        match self {
            Fade::In => Some(&RAMP_IN),
            Fade::Out => Some(&RAMP_OUT),
            Fade::Steady | Fade::Leave | Fade::Arrive => None,
        }
    }
}

/// Fades `block` in place through `fade`.
#[inline]
pub(super) fn fade_in_place(block: &mut Block, fade: Fade) {
    if let Some(ramp) = fade.ramp() {
        block.iter_mut().zip(ramp).for_each(|(x, g)| *x *= g);
    }
}

/// Adds `src` to `sum` through a wire's fade.
#[inline]
pub(super) fn add_faded(sum: &mut Block, src: &Block, fade: Fade) {
    match fade.ramp() {
        None => sum.iter_mut().zip(src).for_each(|(s, x)| *s += x),
        Some(ramp) => sum.iter_mut().zip(src).zip(ramp).for_each(|((s, x), g)| *s += x * g),
    }
}

/// Stores a rendered block as a slot's output, through the slot's fade.
#[inline]
pub(super) fn write_faded(out: &mut Block, rendered: &Block, fade: Fade) {
    match fade.ramp() {
        None => *out = *rendered,
        Some(ramp) => out.iter_mut().zip(rendered).zip(ramp).for_each(|((o, x), g)| *o = x * g),
    }
}

/// A block that goes from `last` to silence over the block without a step: what a receive
/// plays when its sender stops coming.
#[inline]
pub(super) fn ramp_to_silence(out: &mut Block, last: f32) {
    out.iter_mut().zip(&RAMP_OUT).for_each(|(o, g)| *o = last * g);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fade_out_ramp_is_one_minus_the_fade_in_ramp_bit_for_bit() {
        for i in 0..BLOCK {
            assert_eq!(RAMP_OUT[i].to_bits(), (1.0 - RAMP_IN[i]).to_bits(), "sample {i}");
        }
        assert_eq!((RAMP_IN[BLOCK - 1], RAMP_OUT[BLOCK - 1]), (1.0, 0.0));
    }
}
