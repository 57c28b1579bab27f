//! `Module`: the units behind one enum (static dispatch), with named ports and parameters.
//!
//! [`Kind`] describes what the protocol may say about a module: its input port names and its
//! parameters with their ranges, defaults and, for enumerations, the names of the choices.
//! Every module has one output, `out`. Delay and reverb keep their long buffers in the rack's
//! fixed pools; their `Module` variant only names the pool entry.
use crate::block::Block;
use crate::units::adsr::Adsr;
use crate::units::delay::Delay;
use crate::units::lfo::{Lfo, LfoShape};
use crate::units::mixer::{MIXER_INPUTS, Mixer};
use crate::units::noise::{Noise, NoiseColor};
use crate::units::reverb::Reverb;
use crate::units::vca::Vca;
use crate::units::vcf::{FilterMode, Vcf};
use crate::units::vco::{Vco, Wave};

/// Most input ports any kind has (the mixer's four).
pub const MAX_INPUTS: usize = 4;
const _: () = assert!(MIXER_INPUTS <= MAX_INPUTS);

/// Most parameters any kind has (the mixer's four gains and a level).
pub const MAX_PARAMS: usize = 5;

/// Modules of one kind that the rack renders together, one per lane of the same arithmetic
/// (SIMD across voices: 4 lanes fill SSE and NEON registers).
pub const LANES: usize = 4;

/// The name of every module's single output port.
pub const OUTPUT_PORT: &str = "out";

/// What a module is. `Output` exists once, as id 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// The rack's output: what is patched into its `in` is what is heard.
    Output,
    /// Band-limited oscillator: saw, square, triangle, sine.
    Vco,
    /// Resonant state-variable filter: low-pass, high-pass, band-pass.
    Vcf,
    /// Amplifier with a gain and a control input.
    Vca,
    /// Attack-decay-sustain-release envelope.
    Adsr,
    /// Low-frequency oscillator with sample-and-hold.
    Lfo,
    /// White or pink noise from a seeded generator.
    Noise,
    /// Interpolated delay line with feedback.
    Delay,
    /// Freeverb-class reverb.
    Reverb,
    /// Four inputs, a gain each, an output level.
    Mixer,
    /// One end of a cable between workers, made by the host (not in [`Kind::ALL`]: no user
    /// creates one): what is patched into its `in` is published as a link channel's block.
    Send,
    /// The other end: its output is the link channel's block of this same block, which the
    /// worker that sends it publishes (silence if it comes too late).
    Receive,
}

/// A parameter as the protocol sees it: value range, default, and names for enumerations.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    /// Protocol name, with its unit where it has one (`freq_hz`).
    pub name: &'static str,
    /// Other accepted names (`freq`).
    pub aliases: &'static [&'static str],
    /// Smallest value; lower values are clamped to it.
    pub min: f32,
    /// Largest value; higher values are clamped to it (for a frequency, 0.45 fs also applies).
    pub max: f32,
    /// Value of a new module.
    pub default: f32,
    /// Names of an enumeration's choices, by index; empty for a continuous parameter.
    pub choices: &'static [&'static str],
}

impl ParamSpec {
    const fn num(name: &'static str, aliases: &'static [&'static str], min: f32, max: f32, default: f32) -> Self {
        Self { name, aliases, min, max, default, choices: &[] }
    }

    const fn choice(name: &'static str, choices: &'static [&'static str], default: f32) -> Self {
        Self { name, aliases: &[], min: 0.0, max: (choices.len() - 1) as f32, default, choices }
    }

    /// True when `name` is this parameter's name or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }

    /// True for an enumeration (its value is a choice index).
    pub const fn is_choice(&self) -> bool {
        !self.choices.is_empty()
    }
}

// Seeds travel as f32, which holds every integer up to 2^24 exactly.
const SEED_MAX: f32 = 16_777_216.0;

const OUTPUT_PARAMS: [ParamSpec; 1] = [ParamSpec::num("level", &["gain"], 0.0, 4.0, 1.0)];
const VCO_PARAMS: [ParamSpec; 5] = [
    ParamSpec::num("freq_hz", &["freq"], 0.01, 24_000.0, 440.0),
    ParamSpec::choice("wave", &Wave::NAMES, 0.0),
    ParamSpec::num("pw", &["pulse_width"], 0.01, 0.99, 0.5),
    ParamSpec::num("level", &[], 0.0, 1.0, 1.0),
    ParamSpec::num("fm_depth", &[], 0.0, 16.0, 1.0),
];
const VCF_PARAMS: [ParamSpec; 3] = [
    ParamSpec::num("cutoff_hz", &["cutoff", "freq_hz", "freq"], 20.0, 24_000.0, 1000.0),
    ParamSpec::num("q", &["resonance"], 0.5, 25.0, 0.707),
    ParamSpec::choice("mode", &FilterMode::NAMES, 0.0),
];
const VCA_PARAMS: [ParamSpec; 1] = [ParamSpec::num("gain", &["level"], 0.0, 4.0, 1.0)];
const ADSR_PARAMS: [ParamSpec; 5] = [
    ParamSpec::num("attack_s", &["attack"], 0.0005, 60.0, 0.01),
    ParamSpec::num("decay_s", &["decay"], 0.0005, 60.0, 0.1),
    ParamSpec::num("sustain", &[], 0.0, 1.0, 0.7),
    ParamSpec::num("release_s", &["release"], 0.0005, 60.0, 0.2),
    ParamSpec::num("gate", &[], 0.0, 1.0, 0.0),
];
const LFO_PARAMS: [ParamSpec; 5] = [
    ParamSpec::num("rate_hz", &["rate", "freq_hz", "freq"], 0.001, 1000.0, 1.0),
    ParamSpec::choice("shape", &LfoShape::NAMES, 0.0),
    ParamSpec::num("depth", &[], -1000.0, 1000.0, 1.0),
    ParamSpec::num("offset", &[], -1000.0, 1000.0, 0.0),
    ParamSpec::num("seed", &[], 0.0, SEED_MAX, 1.0),
];
const NOISE_PARAMS: [ParamSpec; 3] = [
    ParamSpec::choice("color", &NoiseColor::NAMES, 0.0),
    ParamSpec::num("level", &[], 0.0, 1.0, 1.0),
    ParamSpec::num("seed", &[], 0.0, SEED_MAX, 1.0),
];
const DELAY_PARAMS: [ParamSpec; 3] = [
    ParamSpec::num("time_s", &["time"], 0.0, 2.7, 0.3),
    ParamSpec::num("feedback", &[], -0.98, 0.98, 0.4),
    ParamSpec::num("mix", &[], 0.0, 1.0, 0.3),
];
const REVERB_PARAMS: [ParamSpec; 3] = [
    ParamSpec::num("room", &["size"], 0.0, 1.0, 0.5),
    ParamSpec::num("damp", &[], 0.0, 1.0, 0.5),
    ParamSpec::num("mix", &[], 0.0, 1.0, 0.3),
];
const MIXER_PARAMS: [ParamSpec; 5] = [
    ParamSpec::num("gain1", &[], 0.0, 4.0, 1.0),
    ParamSpec::num("gain2", &[], 0.0, 4.0, 1.0),
    ParamSpec::num("gain3", &[], 0.0, 4.0, 1.0),
    ParamSpec::num("gain4", &[], 0.0, 4.0, 1.0),
    ParamSpec::num("level", &[], 0.0, 4.0, 1.0),
];

impl Kind {
    /// Every kind, in protocol order.
    pub const ALL: [Kind; 10] = [
        Kind::Output,
        Kind::Vco,
        Kind::Vcf,
        Kind::Vca,
        Kind::Adsr,
        Kind::Lfo,
        Kind::Noise,
        Kind::Delay,
        Kind::Reverb,
        Kind::Mixer,
    ];

    /// Lower-case protocol name (`vco`).
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Output => "output",
            Kind::Vco => "vco",
            Kind::Vcf => "vcf",
            Kind::Vca => "vca",
            Kind::Adsr => "adsr",
            Kind::Lfo => "lfo",
            Kind::Noise => "noise",
            Kind::Delay => "delay",
            Kind::Reverb => "reverb",
            Kind::Mixer => "mixer",
            Kind::Send => "send",
            Kind::Receive => "receive",
        }
    }

    /// The kind called `name`, if any.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Input port names, by port index.
    pub const fn inputs(self) -> &'static [&'static str] {
        match self {
            Kind::Output => &["in"],
            Kind::Vco => &["pitch", "fm"],
            Kind::Vcf => &["in", "cutoff"],
            Kind::Vca => &["in", "cv"],
            Kind::Adsr => &["gate"],
            Kind::Lfo | Kind::Noise | Kind::Receive => &[],
            Kind::Delay | Kind::Reverb | Kind::Send => &["in"],
            Kind::Mixer => &["in1", "in2", "in3", "in4"],
        }
    }

    /// Parameters, by parameter index.
    pub const fn params(self) -> &'static [ParamSpec] {
        match self {
            Kind::Output => &OUTPUT_PARAMS,
            Kind::Vco => &VCO_PARAMS,
            Kind::Vcf => &VCF_PARAMS,
            Kind::Vca => &VCA_PARAMS,
            Kind::Adsr => &ADSR_PARAMS,
            Kind::Lfo => &LFO_PARAMS,
            Kind::Noise => &NOISE_PARAMS,
            Kind::Delay => &DELAY_PARAMS,
            Kind::Reverb => &REVERB_PARAMS,
            Kind::Mixer => &MIXER_PARAMS,
            Kind::Send | Kind::Receive => &[],
        }
    }

    /// Index of the input port called `name`.
    pub fn input_index(self, name: &str) -> Option<u8> {
        self.inputs().iter().position(|&n| n == name).map(|i| i as u8)
    }

    /// Index of the parameter called `name` (or one of its aliases).
    pub fn param_index(self, name: &str) -> Option<u8> {
        self.params().iter().position(|p| p.answers_to(name)).map(|i| i as u8)
    }

    /// True for kinds with a kernel that renders [`LANES`] modules at once, on targets with
    /// 4-lane float SIMD (x86-64's SSE, aarch64's NEON). A Cortex-M4F has none: there four
    /// lanes are four filters' work plus the shuffling, so filters run one by one (the same
    /// bits either way: the lanes kernel is the scalar kernel, lane by lane).
    pub const fn has_lanes(self) -> bool {
        matches!(self, Kind::Vcf) && cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))
    }

    /// True for kinds whose state lives in one of the rack's pools.
    pub const fn uses_pool(self) -> bool {
        matches!(self, Kind::Delay | Kind::Reverb)
    }
}

/// One rack slot's unit. Delay and reverb name their entry in the rack's pools.
// Slots are a fixed array sized for the largest unit whatever the variants: boxing the large
// ones is not possible without an allocator, and would not save memory here.
#[allow(clippy::large_enum_variant)]
// repr(u8): a defined layout whose tag 0 is `Empty`, so all-zero memory (a fresh shared
// memory region) holds valid empty slots.
#[repr(u8)]
#[derive(Clone, Debug)]
pub enum Module {
    /// A free slot.
    Empty,
    /// The output module (a VCA without control input; `level` is its gain).
    Output(Vca),
    /// See [`Vco`].
    Vco(Vco),
    /// See [`Vcf`].
    Vcf(Vcf),
    /// See [`Vca`].
    Vca(Vca),
    /// See [`Adsr`].
    Adsr(Adsr),
    /// See [`Lfo`].
    Lfo(Lfo),
    /// See [`Noise`].
    Noise(Noise),
    /// A delay; `pool` indexes the rack's delay pool.
    Delay {
        /// Index into the rack's delay pool.
        pool: u8,
    },
    /// A reverb; `pool` indexes the rack's reverb pool.
    Reverb {
        /// Index into the rack's reverb pool.
        pool: u8,
    },
    /// See [`Mixer`].
    Mixer(Mixer),
    /// A cable's end on the sending worker ([`Kind::Send`]): its output is its input, which
    /// the rack publishes on link channel `channel`.
    Send {
        /// The link channel (an index into the host's shared channels).
        channel: u16,
    },
    /// A cable's end on the receiving worker ([`Kind::Receive`]): the rack fills its output
    /// from link channel `channel`.
    Receive {
        /// The link channel.
        channel: u16,
        /// The last block came: when one does not (its sender late or dead), the input
        /// ramps from its last sample to silence over the block, and the next that comes
        /// fades in, so a sender's loss is not heard as a click.
        heard: bool,
    },
}

/// The rack's pools of long-buffer units, lent to a module while it runs.
pub struct Pools<'a, const DELAY_LEN: usize, const COMB_LEN: usize, const ALLPASS_LEN: usize> {
    /// Delay lines.
    pub delays: &'a mut [Delay<DELAY_LEN>],
    /// Reverbs.
    pub reverbs: &'a mut [Reverb<COMB_LEN, ALLPASS_LEN>],
}

impl<const DL: usize, const CL: usize, const AL: usize> Pools<'_, DL, CL, AL> {
    /// The same pools, lent again for a shorter while.
    pub fn reborrow(&mut self) -> Pools<'_, DL, CL, AL> {
        Pools { delays: self.delays, reverbs: self.reverbs }
    }
}

impl Module {
    /// A new module of `kind` with default parameters, prepared for `sample_rate_hz`.
    /// Pool kinds are given their pool entry `pool`, which the caller prepares.
    pub fn new(kind: Kind, pool: u8, sample_rate_hz: f32) -> Self {
        let mut module = match kind {
            Kind::Output => Module::Output(Vca::new()),
            Kind::Vco => Module::Vco(Vco::new()),
            Kind::Vcf => Module::Vcf(Vcf::new()),
            Kind::Vca => Module::Vca(Vca::new()),
            Kind::Adsr => Module::Adsr(Adsr::new()),
            Kind::Lfo => Module::Lfo(Lfo::new()),
            Kind::Noise => Module::Noise(Noise::new()),
            Kind::Delay => Module::Delay { pool },
            Kind::Reverb => Module::Reverb { pool },
            Kind::Mixer => Module::Mixer(Mixer::new()),
            // Channel 0 until the rack gives it its own (`Command::Link`).
            Kind::Send => Module::Send { channel: 0 },
            Kind::Receive => Module::Receive { channel: 0, heard: true },
        };
        module.prepare(sample_rate_hz);
        module
    }

    /// The kind, or None for an empty slot.
    pub const fn kind(&self) -> Option<Kind> {
        Some(match self {
            Module::Empty => return None,
            Module::Output(_) => Kind::Output,
            Module::Vco(_) => Kind::Vco,
            Module::Vcf(_) => Kind::Vcf,
            Module::Vca(_) => Kind::Vca,
            Module::Adsr(_) => Kind::Adsr,
            Module::Lfo(_) => Kind::Lfo,
            Module::Noise(_) => Kind::Noise,
            Module::Delay { .. } => Kind::Delay,
            Module::Reverb { .. } => Kind::Reverb,
            Module::Mixer(_) => Kind::Mixer,
            Module::Send { .. } => Kind::Send,
            Module::Receive { .. } => Kind::Receive,
        })
    }

    /// Prepares a unit held in the slot itself for `sample_rate_hz` (pool units are prepared
    /// by the rack).
    pub fn prepare(&mut self, sample_rate_hz: f32) {
        match self {
            Module::Output(u) | Module::Vca(u) => u.prepare(sample_rate_hz),
            Module::Vco(u) => u.prepare(sample_rate_hz),
            Module::Vcf(u) => u.prepare(sample_rate_hz),
            Module::Adsr(u) => u.prepare(sample_rate_hz),
            Module::Lfo(u) => u.prepare(sample_rate_hz),
            Module::Noise(u) => u.prepare(sample_rate_hz),
            Module::Mixer(u) => u.prepare(sample_rate_hz),
            Module::Empty
            | Module::Delay { .. }
            | Module::Reverb { .. }
            | Module::Send { .. }
            | Module::Receive { .. } => {}
        }
    }

    /// Sets parameter `param` (an index into [`Kind::params`]) to `value`. The unit clamps;
    /// an enumeration's value is its choice index. Indices out of range are ignored.
    pub fn set<const DL: usize, const CL: usize, const AL: usize>(
        &mut self,
        param: u8,
        value: f32,
        pools: Pools<'_, DL, CL, AL>,
    ) {
        self.set_timed(param, value, None, pools);
    }

    /// As [`Module::set`], timed to sample `frame` of the next block (a timetagged OSC
    /// bundle): an adsr's gate opens or closes at that sample ([`Adsr::set_gate_at`]) and a
    /// vco's frequency steps there ([`Vco::set_freq_hz_at`]); every other parameter glides
    /// over the block from its start, as untimed.
    pub fn set_at<const DL: usize, const CL: usize, const AL: usize>(
        &mut self,
        param: u8,
        value: f32,
        frame: usize,
        pools: Pools<'_, DL, CL, AL>,
    ) {
        self.set_timed(param, value, Some(frame), pools);
    }

    fn set_timed<const DL: usize, const CL: usize, const AL: usize>(
        &mut self,
        param: u8,
        value: f32,
        at: Option<usize>,
        pools: Pools<'_, DL, CL, AL>,
    ) {
        let choice = value as u32; // enumerations: validated to be a whole index upstream
        match self {
            Module::Empty => {}
            Module::Output(u) | Module::Vca(u) => {
                if param == 0 {
                    u.set_gain(value)
                }
            }
            Module::Vco(u) => match param {
                0 => match at {
                    Some(frame) => u.set_freq_hz_at(value, frame),
                    None => u.set_freq_hz(value),
                },
                1 => {
                    if let Some(w) = Wave::from_index(choice) {
                        u.set_wave(w)
                    }
                }
                2 => u.set_pulse_width(value),
                3 => u.set_level(value),
                4 => u.set_fm_depth(value),
                _ => {}
            },
            Module::Vcf(u) => match param {
                0 => u.set_cutoff_hz(value),
                1 => u.set_q(value),
                2 => {
                    if let Some(m) = FilterMode::from_index(choice) {
                        u.set_mode(m)
                    }
                }
                _ => {}
            },
            Module::Adsr(u) => match param {
                0 => u.set_attack_s(value),
                1 => u.set_decay_s(value),
                2 => u.set_sustain(value),
                3 => u.set_release_s(value),
                4 => u.set_gate_at(value, at.unwrap_or(0)),
                _ => {}
            },
            Module::Lfo(u) => match param {
                0 => u.set_rate_hz(value),
                1 => {
                    if let Some(s) = LfoShape::from_index(choice) {
                        u.set_shape(s)
                    }
                }
                2 => u.set_depth(value),
                3 => u.set_offset(value),
                4 => u.set_seed(value as u32),
                _ => {}
            },
            Module::Noise(u) => match param {
                0 => {
                    if let Some(c) = NoiseColor::from_index(choice) {
                        u.set_color(c)
                    }
                }
                1 => u.set_level(value),
                2 => u.set_seed(value as u32),
                _ => {}
            },
            Module::Delay { pool } => {
                if let Some(u) = pools.delays.get_mut(*pool as usize) {
                    match param {
                        0 => u.set_time_s(value),
                        1 => u.set_feedback(value),
                        2 => u.set_mix(value),
                        _ => {}
                    }
                }
            }
            Module::Reverb { pool } => {
                if let Some(u) = pools.reverbs.get_mut(*pool as usize) {
                    match param {
                        0 => u.set_room(value),
                        1 => u.set_damp(value),
                        2 => u.set_mix(value),
                        _ => {}
                    }
                }
            }
            Module::Mixer(u) => match param {
                0..=3 => u.set_gain(param as usize, value),
                4 => u.set_level(value),
                _ => {}
            },
            Module::Send { .. } | Module::Receive { .. } => {}
        }
    }

    /// Renders one block into `out` from `inputs` (by port index; None = unpatched).
    pub fn process<const DL: usize, const CL: usize, const AL: usize>(
        &mut self,
        inputs: &[Option<&Block>; MAX_INPUTS],
        out: &mut Block,
        pools: Pools<'_, DL, CL, AL>,
    ) {
        let [a, b, c, d] = *inputs;
        match self {
            Module::Empty => *out = [0.0; crate::block::BLOCK],
            Module::Output(u) => u.process(a, None, out),
            Module::Vco(u) => u.process(a, b, out),
            Module::Vcf(u) => u.process(a, b, out),
            Module::Vca(u) => u.process(a, b, out),
            Module::Adsr(u) => u.process(a, out),
            Module::Lfo(u) => u.process(out),
            Module::Noise(u) => u.process(out),
            Module::Delay { pool } => match pools.delays.get_mut(*pool as usize) {
                Some(u) => u.process(a, out),
                None => *out = [0.0; crate::block::BLOCK],
            },
            Module::Reverb { pool } => match pools.reverbs.get_mut(*pool as usize) {
                Some(u) => u.process(a, out),
                None => *out = [0.0; crate::block::BLOCK],
            },
            Module::Mixer(u) => u.process([a, b, c, d], out),
            Module::Send { .. } => *out = a.copied().unwrap_or([0.0; crate::block::BLOCK]),
            // The rack fills it from the link channel.
            Module::Receive { .. } => *out = [0.0; crate::block::BLOCK],
        }
    }
}

impl Module {
    /// Renders [`LANES`] modules, each exactly as [`Module::process`] would: together in
    /// one kernel when all are of one kind that has one ([`Kind::has_lanes`]), else in turn.
    pub fn process_lanes<const DL: usize, const CL: usize, const AL: usize>(
        units: [&mut Module; LANES],
        inputs: &[[Option<&Block>; MAX_INPUTS]; LANES],
        outs: [&mut Block; LANES],
        mut pools: Pools<'_, DL, CL, AL>,
    ) {
        match units {
            [Module::Vcf(a), Module::Vcf(b), Module::Vcf(c), Module::Vcf(d)] => {
                let ins = [inputs[0][0], inputs[1][0], inputs[2][0], inputs[3][0]];
                let cutoffs = [inputs[0][1], inputs[1][1], inputs[2][1], inputs[3][1]];
                Vcf::process_lanes([a, b, c, d], ins, cutoffs, outs);
            }
            units => {
                for ((unit, inputs), out) in units.into_iter().zip(inputs).zip(outs) {
                    unit.process(inputs, out, pools.reborrow());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_both_ways() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
            for (i, port) in kind.inputs().iter().enumerate() {
                assert_eq!(kind.input_index(port), Some(i as u8));
            }
            assert!(kind.inputs().len() <= MAX_INPUTS && kind.params().len() <= MAX_PARAMS);
            for (i, p) in kind.params().iter().enumerate() {
                assert_eq!(kind.param_index(p.name), Some(i as u8));
                for alias in p.aliases {
                    assert_eq!(kind.param_index(alias), Some(i as u8), "{alias}");
                }
                assert!(p.min <= p.default && p.default <= p.max, "{}.{}", kind.name(), p.name);
            }
        }
        assert_eq!(Kind::from_name("VCO"), None);
    }

    #[test]
    fn protocol_md_lists_every_kind_port_and_param() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../PROTOCOL.md")).unwrap();
        for kind in Kind::ALL {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", kind.name())))
                .unwrap_or_else(|| panic!("PROTOCOL.md has no row for {}", kind.name()));
            for name in kind.inputs() {
                assert!(row.contains(&format!("`{name}`")), "{}: input {name}", kind.name());
            }
            for p in kind.params() {
                // The mixer's gains are written as a range: gain1..gain4.
                let listed = row.contains(&format!("`{}`", p.name))
                    || p.name.starts_with("gain") && row.contains("`gain1`..`gain4`");
                assert!(listed, "{}: param {}", kind.name(), p.name);
                for choice in p.choices {
                    assert!(row.contains(&format!("`{choice}`")), "{}: {} choice {choice}", kind.name(), p.name);
                }
            }
        }
        for error in ["UnknownAddress", "WrongArgs", "RackFull", "WouldCycle", "OutputModule", "NotFinite"] {
            assert!(doc.contains(&format!("| `{error}` |")), "{error}");
        }
    }
}
