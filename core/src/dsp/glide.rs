//! One glide: a parameter that moves linearly to its target over one block, so that a change
//! is neither a zipper nor a click (stmlib's `ParameterInterpolator`, as a value that keeps
//! where the last block ended).
//!
//! Sample `i` of a block (0-based) is `start + step * (i + 1)`, `step = (target - start) / 64`:
//! the last sample lands on the target up to one rounding, and the next block starts from the
//! target exactly. Computed by index, not by accumulation, so there is no loop-carried
//! dependency and the loops that use it vectorise; the index goes through `i32` (SSE2 converts
//! i32 to f32 four at a time, not usize).
use crate::block::BLOCK;

/// 1.0, 2.0 ..= 64.0: sample `i` of a ramp is `start + step * RAMP[i]`, as [`Ramp::at`]. A
/// table for loops that LLVM does not vectorise with an index conversion in them.
pub const RAMP: [f32; BLOCK] = {
    let mut ramp = [0.0; BLOCK];
    let mut i = 0;
    while i < BLOCK {
        ramp[i] = (i + 1) as f32;
        i += 1;
    }
    ramp
};

/// A parameter's target and where its glide stands: the value the last block ended on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Glide {
    target: f32,
    now: f32,
}

/// One block's glide: sample `i` is [`Ramp::at`]`(i)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ramp {
    /// The value before the block's first sample (the last block's end).
    pub start: f32,
    /// The change per sample: (target - start) / BLOCK.
    pub step: f32,
}

impl Glide {
    /// Steady at `value` (no glide in the next block).
    pub const fn new(value: f32) -> Self {
        Self { target: value, now: value }
    }

    /// The value reached: where the next block's glide starts.
    pub const fn now(&self) -> f32 {
        self.now
    }

    /// The value it glides to.
    pub const fn target(&self) -> f32 {
        self.target
    }

    /// True when the next block would not move.
    pub fn is_steady(&self) -> bool {
        self.now == self.target
    }

    /// Sets the target; the next block glides to it. The caller clamps and filters
    /// non-finite values.
    pub fn set(&mut self, target: f32) {
        self.target = target;
    }

    /// Jumps to the target: no glide in the next block (a unit's `reset`).
    pub fn settle(&mut self) {
        self.now = self.target;
    }

    /// Starts a block: its ramp from where the last block ended to the target, which the
    /// block after starts from.
    #[inline]
    pub fn next_block(&mut self) -> Ramp {
        let ramp = Ramp::between(self.now, self.target);
        self.now = self.target;
        ramp
    }
}

impl Ramp {
    /// The ramp from `start` (before sample 0) to `end` (at sample BLOCK - 1).
    #[inline]
    pub fn between(start: f32, end: f32) -> Self {
        // 1 / 64 is exact: this is (end - start) / 64.
        Self { start, step: (end - start) * (1.0 / BLOCK as f32) }
    }

    /// The value at sample `i` of the block, 0-based: `start + step * (i + 1)`.
    #[inline(always)]
    pub fn at(&self, i: usize) -> f32 {
        self.start + self.step * (i as i32 + 1) as f32
    }

    /// True when every sample is `start` (a steady parameter: loops can skip the ramp, whose
    /// additions would add exactly 0.0).
    pub fn is_flat(&self) -> bool {
        self.step == 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glide_reaches_its_target_at_the_block_end_and_stays() {
        let mut glide = Glide::new(1.0);
        glide.set(0.0);
        assert!(!glide.is_steady());
        let ramp = glide.next_block();
        for i in 0..BLOCK {
            assert!((ramp.at(i) - (1.0 - (i + 1) as f32 / BLOCK as f32)).abs() < 1e-6, "sample {i}");
        }
        assert_eq!(ramp.at(BLOCK - 1), 0.0);
        assert!(glide.is_steady());
        let steady = glide.next_block();
        assert!(steady.is_flat() && (0..BLOCK).all(|i| steady.at(i) == 0.0));
    }

    #[test]
    fn settle_skips_the_glide() {
        let mut glide = Glide::new(0.25);
        glide.set(4.0);
        glide.settle();
        assert_eq!((glide.now(), glide.target()), (4.0, 4.0));
        assert!(glide.next_block().is_flat());
    }
}
