//! Output: the rack's output module (id 0), what is heard: its inputs times `level`, on two
//! channels. `in` plays on both (so a mono patch is heard the same, bit for bit, on each
//! side); `left` and `right` add to one side each. Its one output, `out`, is the left
//! channel (what it was before there were two: `in` times `level`); the rack keeps the
//! right beside it.
use crate::block::Block;
use crate::describe::{Curve, OUT, ParamSpec, Port, UnitDescription};
use crate::dsp::{Glide, Ramp};

/// The output as the protocol sees it.
pub const DESCRIPTION: UnitDescription = UnitDescription {
    name: "output",
    inputs: &[Port::with_note("in", "both channels"), Port::audio("left"), Port::audio("right")],
    outputs: &OUT,
    params: &[ParamSpec::num("level", &["gain"], "", (0.0, 4.0), 1.0, Curve::Linear)],
};
/// Input port indices.
pub const IN: usize = DESCRIPTION.input("in");
/// See [`IN`].
pub const LEFT_IN: usize = DESCRIPTION.input("left");
/// See [`IN`].
pub const RIGHT_IN: usize = DESCRIPTION.input("right");
const LEVEL: u8 = DESCRIPTION.param("level");

/// The rack's output: a gain on what is patched into it, per channel.
#[derive(Clone, Debug)]
pub struct Output {
    /// The level, linear 0.0..=4.0, ramped over each block (as a VCA's gain: the same bits).
    level: Glide,
}

impl Default for Output {
    fn default() -> Self {
        Self::new()
    }
}

impl Output {
    /// An output at level 1.0.
    pub const fn new() -> Self {
        Self { level: Glide::new(DESCRIPTION.spec(LEVEL).default) }
    }

    /// Readies the unit for `sample_rate_hz` (it does not depend on it) and resets it.
    pub fn prepare(&mut self, _sample_rate_hz: f32) {
        self.reset();
    }

    /// Primes the level ramp (no sweep in the next block).
    pub fn reset(&mut self) {
        self.level.settle();
    }

    /// Level, linear 0.0..=4.0 (+12 dB), default 1.0; ramps linearly over the next block.
    /// Clamped; a non-finite value is ignored.
    pub fn set_level(&mut self, level: f32) {
        if level.is_finite() {
            self.level.set(DESCRIPTION.clamp(LEVEL, level));
        }
    }

    /// Sets parameter `index` of [`DESCRIPTION`] (others are ignored).
    pub fn set_param(&mut self, index: u8, value: f32) {
        if index == LEVEL {
            self.set_level(value);
        }
    }

    /// Writes the left channel, `(input + left) * level`, to `out` and, given `right_out`,
    /// the right, `(input + right) * level`, to it. Unpatched inputs are silence.
    pub fn process(
        &mut self,
        input: Option<&Block>,
        left: Option<&Block>,
        right: Option<&Block>,
        out: &mut Block,
        right_out: Option<&mut Block>,
    ) {
        let level = self.level.next_block();
        gain(input, left, level, out);
        if let Some(right_out) = right_out {
            if left.is_none() && right.is_none() {
                // `in` alone: the same on both sides, worked out once.
                *right_out = *out;
            } else {
                gain(input, right, level, right_out);
            }
        }
    }
}

/// `(a + b) * level` into `y` (`x * level` where one of them is patched: a VCA's
/// arithmetic, bit for bit; silence where neither is).
fn gain(a: Option<&Block>, b: Option<&Block>, level: Ramp, y: &mut Block) {
    // Steady (the usual case): the ramp would add exactly 0.0 at every sample, as in the VCA,
    // and the per-sample index conversion counts on a Cortex-M4F.
    let flat = level.is_flat().then_some(level.start);
    match (a, b, flat) {
        (None, None, _) => y.fill(0.0),
        (Some(x), None, Some(g)) | (None, Some(x), Some(g)) => y.iter_mut().zip(x).for_each(|(y, x)| *y = x * g),
        (Some(x), None, None) | (None, Some(x), None) => {
            y.iter_mut().zip(x).enumerate().for_each(|(i, (y, x))| *y = x * level.at(i));
        }
        (Some(a), Some(b), Some(g)) => y.iter_mut().zip(a).zip(b).for_each(|((y, a), b)| *y = (a + b) * g),
        (Some(a), Some(b), None) => {
            y.iter_mut().zip(a).zip(b).enumerate().for_each(|(i, ((y, a), b))| *y = (a + b) * level.at(i));
        }
    }
}
