//! What a unit says about itself: its ports and parameters, as `const` data.
//!
//! Each unit file holds one [`UnitDescription`] (`units::vco::DESCRIPTION`): its input and
//! output ports and its parameters with their unit, range, default, curve and, for an
//! enumeration, the names of its choices. Everything else follows from it: the protocol's
//! [`Kind`](crate::module::Kind) tables, the checks of a request
//! ([`Topology`](crate::topology::Topology)), the unit's own `set_param` dispatch and clamps
//! (its parameter indices are looked up by name at compile time, [`UnitDescription::param`]),
//! the host's `/patch/dump`, and PROTOCOL.md's table, which a test checks against it.

/// How a parameter's value maps to what is heard: how a modulation of it is scaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// Heard in proportion to the value (levels, mixes, widths): modulated in its range.
    Linear,
    /// Heard in ratios (frequencies, times, Q): modulated in octaves.
    Exponential,
}

/// A port as the protocol sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port {
    /// Protocol name (`pitch`).
    pub name: &'static str,
    /// What a cable into it means, for PROTOCOL.md (`octaves, +1 doubles`); empty for plain
    /// audio.
    pub note: &'static str,
}

impl Port {
    /// A port carrying plain audio.
    pub const fn audio(name: &'static str) -> Self {
        Self { name, note: "" }
    }

    /// A port whose signal is read in the terms `note` gives.
    pub const fn with_note(name: &'static str, note: &'static str) -> Self {
        Self { name, note }
    }
}

/// Largest seed: seeds travel as f32, which holds every integer up to 2^24 exactly.
pub const SEED_MAX: f32 = 16_777_216.0;

/// The outputs of a mono unit: one, `out`.
pub const OUT: [Port; 1] = [Port::audio("out")];

/// The outputs of a stereo unit: `out`, its mono signal (what it rendered before it had
/// two channels, bit for bit, so an existing patch sounds as it did), then `left` and
/// `right`. `out` is always port 0: a cable written `/patch 1 out ...` means the same on
/// every kind.
pub const STEREO_OUTS: [Port; 3] = [Port::audio("out"), Port::audio("left"), Port::audio("right")];

/// A parameter as the protocol sees it: value range, default, and names for enumerations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamSpec {
    /// Protocol name, with its unit where it has one (`freq_hz`).
    pub name: &'static str,
    /// Other accepted names (`freq`).
    pub aliases: &'static [&'static str],
    /// Unit of the value (`Hz`, `s`); empty for a plain number (a linear 0..1 level, a Q).
    pub unit: &'static str,
    /// Smallest value; lower values are clamped to it.
    pub min: f32,
    /// Largest value; higher values are clamped to it (for a frequency, 0.45 fs also
    /// applies: see `range_note`).
    pub max: f32,
    /// Value of a new module.
    pub default: f32,
    /// How the value is heard.
    pub curve: Curve,
    /// Names of an enumeration's choices, by index; empty for a continuous parameter.
    pub choices: &'static [&'static str],
    /// The range as PROTOCOL.md says it, where `min..max` alone would not be true (a limit
    /// that depends on the sample rate or the target); empty otherwise.
    pub range_note: &'static str,
    /// True when a cable may move it: it has an input port of its own name (every
    /// continuous parameter but a seed or a gate, which mean nothing between two values).
    pub patchable: bool,
}

impl ParamSpec {
    /// A continuous parameter of `unit` in `min ..= max`.
    pub const fn num(
        name: &'static str,
        aliases: &'static [&'static str],
        unit: &'static str,
        (min, max): (f32, f32),
        default: f32,
        curve: Curve,
    ) -> Self {
        Self { name, aliases, unit, min, max, default, curve, choices: &[], range_note: "", patchable: true }
    }

    /// An enumeration: its value is an index into `choices`.
    pub const fn choice(name: &'static str, choices: &'static [&'static str], default: f32) -> Self {
        let max = (choices.len() - 1) as f32;
        Self {
            name,
            aliases: &[],
            unit: "",
            min: 0.0,
            max,
            default,
            curve: Curve::Linear,
            choices,
            range_note: "",
            patchable: false,
        }
    }

    /// The same parameter, its range written `note` in PROTOCOL.md.
    pub const fn noted(self, note: &'static str) -> Self {
        Self { range_note: note, ..self }
    }

    /// The same parameter with no input port: a cable cannot move it (a seed, a gate).
    pub const fn unpatchable(self) -> Self {
        Self { patchable: false, ..self }
    }

    /// Where a cable carrying `v` puts the parameter whose knob is at `knob`: for an
    /// exponential parameter `v` is octaves (the knob times 2^v), for a linear one a share of
    /// the range (the knob plus `v` times max - min); clamped to the range, however far past
    /// it `v` goes. Non-finite only when `v` is, which every `set_*` ignores.
    #[inline]
    pub fn modulated(&self, knob: f32, v: f32) -> f32 {
        if !v.is_finite() {
            return f32::NAN;
        }
        let value = match self.curve {
            Curve::Exponential => knob * crate::dsp::math::exp2(v),
            Curve::Linear => knob + v * (self.max - self.min),
        };
        // Past f32's range the product is infinite (clamped like any value) or, for a knob
        // of 0 times infinity, NaN: the knob then stays where it is.
        if value.is_nan() { self.clamp(knob) } else { self.clamp(value) }
    }

    /// True when `name` is this parameter's name or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }

    /// True for an enumeration (its value is a choice index).
    pub const fn is_choice(&self) -> bool {
        !self.choices.is_empty()
    }

    /// `value` clamped to `min ..= max`.
    #[inline]
    pub fn clamp(&self, value: f32) -> f32 {
        value.clamp(self.min, self.max)
    }
}

/// One unit's ports and parameters: what the protocol may say to it.
#[derive(Clone, Copy, Debug)]
pub struct UnitDescription {
    /// Lower-case protocol name of the kind (`vco`).
    pub name: &'static str,
    /// Input ports, by port index.
    pub inputs: &'static [Port],
    /// Output ports, by port index.
    pub outputs: &'static [Port],
    /// Parameters, by parameter index.
    pub params: &'static [ParamSpec],
}

impl UnitDescription {
    /// Index of the parameter called `name` (not an alias). For the unit's own constants:
    /// evaluated at compile time, where a name the description lacks fails the build.
    pub const fn param(&self, name: &str) -> u8 {
        let mut i = 0;
        while i < self.params.len() && !str_eq(self.params[i].name, name) {
            i += 1;
        }
        assert!(i < self.params.len(), "the description has no parameter of this name");
        i as u8
    }

    /// Index of the input port called `name`, as [`UnitDescription::param`].
    pub const fn input(&self, name: &str) -> usize {
        let mut i = 0;
        while i < self.inputs.len() && !str_eq(self.inputs[i].name, name) {
            i += 1;
        }
        assert!(i < self.inputs.len(), "the description has no input of this name");
        i
    }

    /// Index of the output port called `name`, as [`UnitDescription::param`].
    pub const fn output(&self, name: &str) -> usize {
        let mut i = 0;
        while i < self.outputs.len() && !str_eq(self.outputs[i].name, name) {
            i += 1;
        }
        assert!(i < self.outputs.len(), "the description has no output of this name");
        i
    }

    /// True when the unit has more outputs than `out` (`left` and `right`).
    pub const fn is_stereo(&self) -> bool {
        self.outputs.len() > 1
    }

    /// Input ports in all: the [`UnitDescription::inputs`] and, after them, one per
    /// parameter (port `inputs.len() + i` moves parameter `i`; an unpatchable one's port
    /// has no name and takes no cable).
    pub const fn input_count(&self) -> usize {
        self.inputs.len() + self.params.len()
    }

    /// The port called `name`: an input port, else a patchable parameter's own port (by its
    /// name, not an alias). An input keeps its name where a parameter shares it (the adsr's
    /// `gate`).
    pub fn input_port(&self, name: &str) -> Option<u8> {
        if let Some(i) = self.inputs.iter().position(|p| p.name == name) {
            return Some(i as u8);
        }
        let i = self.params.iter().position(|p| p.patchable && p.name == name)?;
        Some((self.inputs.len() + i) as u8)
    }

    /// The name of port `port` (an input or a patchable parameter's), if it has one.
    pub fn input_name(&self, port: u8) -> Option<&'static str> {
        let port = port as usize;
        match self.inputs.get(port) {
            Some(p) => Some(p.name),
            None => {
                let spec = self.params.get(port - self.inputs.len())?;
                spec.patchable.then_some(spec.name)
            }
        }
    }

    /// Parameter `index`'s description; for the unit's constants, as [`UnitDescription::param`].
    pub const fn spec(&self, index: u8) -> &'static ParamSpec {
        &self.params[index as usize]
    }

    /// `value` clamped to parameter `index`'s range (unchanged for an index out of range).
    #[inline]
    pub fn clamp(&self, index: u8, value: f32) -> f32 {
        match self.params.get(index as usize) {
            Some(spec) => spec.clamp(value),
            None => value,
        }
    }
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
