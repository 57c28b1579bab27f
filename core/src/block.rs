//! The unit of audio work: one block of samples of one signal, and the stereo pair of them
//! the rack plays.

/// Frames per block: 64 frames is 1.333 ms at 48 kHz, the budget every block must meet.
pub const BLOCK: usize = 64;

/// One block of mono audio or control signal, nominally -1.0..=1.0 for audio.
pub type Block = [f32; BLOCK];

/// A block of silence.
pub const SILENCE: Block = [0.0; BLOCK];

/// Channels of the rack's output and of the audio input: left, then right.
pub const CHANNELS: usize = 2;

/// One block of each channel ([`CHANNELS`]): index 0 is left, 1 right.
pub type StereoBlock = [Block; CHANNELS];

/// A stereo block of silence.
pub const STEREO_SILENCE: StereoBlock = [SILENCE; CHANNELS];

/// A block's number on the host's clock: counted from 0 and wrapping at 2^32 (every 66 days
/// at 48 kHz). Two generations compare by their wrapping distance ([`Generation::reached`]),
/// which is right across the wrap for any two within 2^31 blocks (33 days) of each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct Generation(pub u32);

impl Generation {
    /// True when this block is `other` or comes after it (fewer than 2^31 blocks after).
    #[inline]
    pub const fn reached(self, other: Generation) -> bool {
        self.0.wrapping_sub(other.0) as i32 >= 0
    }

    /// The block `blocks` after this one.
    #[inline]
    pub const fn after(self, blocks: u32) -> Generation {
        Generation(self.0.wrapping_add(blocks))
    }

    /// Blocks from `earlier` to this one (wrapping: 0 for the same block).
    #[inline]
    pub const fn since(self, earlier: Generation) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_reaches_itself_and_those_before_it_across_the_wrap() {
        for base in [0, 1, 1 << 31, u32::MAX - 2, u32::MAX] {
            let g = Generation(base);
            assert!(g.reached(g));
            assert!(g.after(1).reached(g) && !g.reached(g.after(1)), "{base}");
            assert!(g.after(3).reached(g.after(2)) && !g.after(2).reached(g.after(3)), "{base}");
            // Half the range away is the limit: one block short of it still counts as later.
            assert!(g.after((1 << 31) - 1).reached(g) && !g.reached(g.after((1 << 31) - 1)), "{base}");
            assert_eq!(g.after(5).since(g), 5);
        }
        assert_eq!(Generation(u32::MAX).after(1), Generation(0));
    }
}
