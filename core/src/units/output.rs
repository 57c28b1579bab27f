//! Output: the rack's output module (id 0), what is heard: its input times `level`.
use crate::block::Block;
use crate::describe::{Curve, OUT, ParamSpec, Port, UnitDescription};
use crate::units::vca::Vca;

/// The output as the protocol sees it.
pub const DESCRIPTION: UnitDescription = UnitDescription {
    name: "output",
    inputs: &[Port::audio("in")],
    outputs: &OUT,
    params: &[ParamSpec::num("level", &["gain"], "", (0.0, 4.0), 1.0, Curve::Linear)],
};
/// Input port index.
pub const IN: usize = DESCRIPTION.input("in");
const LEVEL: u8 = DESCRIPTION.param("level");

/// The rack's output: a gain on what is patched into it.
#[derive(Clone, Debug)]
pub struct Output {
    /// The level, ramped over each block as a VCA's gain.
    gain: Vca,
}

impl Default for Output {
    fn default() -> Self {
        Self::new()
    }
}

impl Output {
    /// An output at level 1.0 (a new VCA's gain: the module tests check the defaults).
    pub const fn new() -> Self {
        Self { gain: Vca::new() }
    }

    /// Readies the unit for `sample_rate_hz` and resets it.
    pub fn prepare(&mut self, sample_rate_hz: f32) {
        self.gain.prepare(sample_rate_hz);
    }

    /// Primes the level ramp (no sweep in the next block).
    pub fn reset(&mut self) {
        self.gain.reset();
    }

    /// Level, linear 0.0..=4.0 (+12 dB), default 1.0; ramps linearly over the next block.
    /// Clamped; a non-finite value is ignored.
    pub fn set_level(&mut self, level: f32) {
        self.gain.set_gain(DESCRIPTION.clamp(LEVEL, level));
    }

    /// Sets parameter `index` of [`DESCRIPTION`] (others are ignored).
    pub fn set_param(&mut self, index: u8, value: f32) {
        if index == LEVEL {
            self.set_level(value);
        }
    }

    /// Writes `input * level` to `out`; unpatched (None) is silence.
    pub fn process(&mut self, input: Option<&Block>, out: &mut Block) {
        self.gain.process(input, None, out);
    }
}
