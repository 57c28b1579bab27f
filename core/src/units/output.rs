//! Output: the rack's output module (id 0), what is heard: its inputs times `level`, on two
//! channels. `in` plays on both (so a mono patch is heard the same, bit for bit, on each
//! side); `left` and `right` add to one side each.
use crate::block::{Block, StereoBlock};
use crate::describe::{Curve, ParamSpec, Port, STEREO_OUTS, UnitDescription};
use crate::dsp::{Glide, Ramp};

/// The output as the protocol sees it.
pub const DESCRIPTION: UnitDescription = UnitDescription {
    name: "output",
    inputs: &[Port::with_note("in", "both channels"), Port::audio("left"), Port::audio("right")],
    outputs: &STEREO_OUTS,
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

    /// Writes `(input + left) * level` to `channels[0]` and `(input + right) * level` to
    /// `channels[1]`, given them; `out` (the mono output) is the left channel, which is
    /// `input * level` while `left` is unpatched. Unpatched inputs are silence.
    pub fn process(
        &mut self,
        input: Option<&Block>,
        left: Option<&Block>,
        right: Option<&Block>,
        out: &mut Block,
        channels: Option<&mut StereoBlock>,
    ) {
        let level = self.level.next_block();
        let Some(channels) = channels else {
            gain(input, left, level, out);
            return;
        };
        gain(input, left, level, &mut channels[0]);
        if left.is_none() && right.is_none() {
            // `in` alone: the same on both sides, worked out once.
            channels[1] = channels[0];
        } else {
            gain(input, right, level, &mut channels[1]);
        }
        *out = channels[0];
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
