//! `Module`: the units behind one enum (static dispatch), with named ports and parameters.
//!
//! [`Kind`] is what the protocol may say about a module: each kind's ports and parameters are
//! its unit's [`UnitDescription`] (in the unit's file), and [`Module::set`] hands a parameter
//! index to the unit's own `set_param`. Every module has the output `out`; the stereo ones
//! (output, mixer, reverb, input) also `left` and `right` ([`crate::describe::STEREO_OUTS`]). Delay and reverb
//! keep their long buffers in the rack's fixed pools; their `Module` variant only names the
//! pool entry.
use crate::block::{Block, StereoBlock};
use crate::describe::OUT;
pub use crate::describe::{Curve, ParamSpec, Port, UnitDescription};
use crate::units::adsr::{self, Adsr};
use crate::units::delay::{self, Delay};
use crate::units::input;
use crate::units::lfo::{self, Lfo};
use crate::units::mixer::{self, MIXER_INPUTS, Mixer};
use crate::units::noise::{self, Noise};
use crate::units::output::{self, Output};
use crate::units::reverb::{self, Reverb};
use crate::units::sequencer::{self, Sequencer};
use crate::units::vca::{self, Vca};
use crate::units::vcf::{self, Vcf};
use crate::units::vco::{self, Vco};

/// Most signal inputs any kind has (the mixer's four): the ports a unit's `process` reads.
/// A parameter's own port is not one of them: the rack turns its cables into a per-block
/// value before the unit renders ([`Module::modulate`]), so the per-module arrays the rack
/// walks every block stay four wide.
pub const MAX_INPUTS: usize = {
    let mut most = 0;
    let mut i = 0;
    while i < Kind::EVERY.len() {
        let count = Kind::EVERY[i].description().inputs.len();
        if count > most {
            most = count;
        }
        i += 1;
    }
    most
};
const _: () = assert!(MIXER_INPUTS <= MAX_INPUTS);

/// Most input ports any kind has, its parameters' own ports included (the sequencer's clock
/// and 19 parameters: [`UnitDescription::input_count`]).
pub const MAX_PORTS: usize = {
    let mut most = 0;
    let mut i = 0;
    while i < Kind::EVERY.len() {
        let count = Kind::EVERY[i].description().input_count();
        if count > most {
            most = count;
        }
        i += 1;
    }
    most
};
const _: () = assert!(MAX_PORTS <= u8::MAX as usize);

/// Most parameters any kind has (the sequencer's 8 pitches, 8 gates, rate, out and gate length).
pub const MAX_PARAMS: usize = 19;
// `Rack`'s per-slot mask of moved parameters is a u32.
const _: () = assert!(MAX_PARAMS <= 32);

// Every description fits the fixed arrays of ports and parameters.
const _: () = {
    let mut i = 0;
    while i < Kind::EVERY.len() {
        let d = Kind::EVERY[i].description();
        assert!(d.inputs.len() <= MAX_INPUTS && d.params.len() <= MAX_PARAMS && d.params.len() <= u8::MAX as usize);
        i += 1;
    }
};

/// Modules of one kind that the rack renders together, one per lane of the same arithmetic
/// (SIMD across voices: 4 lanes fill SSE and NEON registers).
pub const LANES: usize = 4;

/// The name of every module's first output port, its mono signal.
pub const OUTPUT_PORT: &str = OUT[0].name;

/// Most outputs any kind has (`out`, `left`, `right`).
pub const MAX_OUTPUTS: usize = 3;
// Every description fits: the rack keeps each slot's outputs past `out` in a StereoBlock.
const _: () = {
    let mut i = 0;
    while i < Kind::EVERY.len() {
        let d = Kind::EVERY[i].description();
        assert!(d.outputs.len() == 1 || d.outputs.len() == MAX_OUTPUTS);
        i += 1;
    }
};

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
    /// 8 steps of pitch and gate, on its own clock or a cable's.
    Sequencer,
    /// The audio input (the capture side of the host's device), left and right.
    Input,
    /// One end of a cable between workers, made by the host (not in [`Kind::ALL`]: no user
    /// creates one): what is patched into its `in` is published as a link channel's block.
    Send,
    /// The other end: its output is the link channel's block of this same block, which the
    /// worker that sends it publishes (silence if it comes too late).
    Receive,
}

/// The host's end of a cable between workers that sends ([`Kind::Send`]).
const SEND: UnitDescription =
    UnitDescription { name: "send", inputs: &[Port::audio("in")], outputs: &OUT, params: &[] };
/// The end that receives ([`Kind::Receive`]).
const RECEIVE: UnitDescription = UnitDescription { name: "receive", inputs: &[], outputs: &OUT, params: &[] };

impl Kind {
    /// Every kind, in protocol order.
    pub const ALL: [Kind; 12] = [
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
        Kind::Sequencer,
        Kind::Input,
    ];

    /// Every kind, the host's link ends included.
    const EVERY: [Kind; 14] = [
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
        Kind::Sequencer,
        Kind::Input,
        Kind::Send,
        Kind::Receive,
    ];

    /// The kind's ports and parameters: its unit's description.
    pub const fn description(self) -> &'static UnitDescription {
        match self {
            Kind::Output => &output::DESCRIPTION,
            Kind::Vco => &vco::DESCRIPTION,
            Kind::Vcf => &vcf::DESCRIPTION,
            Kind::Vca => &vca::DESCRIPTION,
            Kind::Adsr => &adsr::DESCRIPTION,
            Kind::Lfo => &lfo::DESCRIPTION,
            Kind::Noise => &noise::DESCRIPTION,
            Kind::Delay => &delay::DESCRIPTION,
            Kind::Reverb => &reverb::DESCRIPTION,
            Kind::Mixer => &mixer::DESCRIPTION,
            Kind::Sequencer => &sequencer::DESCRIPTION,
            Kind::Input => &input::DESCRIPTION,
            Kind::Send => &SEND,
            Kind::Receive => &RECEIVE,
        }
    }

    /// Lower-case protocol name (`vco`).
    pub const fn name(self) -> &'static str {
        self.description().name
    }

    /// The kind called `name`, if any.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Input ports, by port index.
    pub const fn inputs(self) -> &'static [Port] {
        self.description().inputs
    }

    /// Output ports, by port index.
    pub const fn outputs(self) -> &'static [Port] {
        self.description().outputs
    }

    /// Parameters, by parameter index.
    pub const fn params(self) -> &'static [ParamSpec] {
        self.description().params
    }

    /// A new module's parameter values, by parameter index (0.0 past the kind's last).
    pub const fn defaults(self) -> [f32; MAX_PARAMS] {
        let mut values = [0.0; MAX_PARAMS];
        let params = self.params();
        let mut i = 0;
        while i < params.len() {
            values[i] = params[i].default;
            i += 1;
        }
        values
    }

    /// Index of the input port called `name`: one of [`Kind::inputs`], or a patchable
    /// parameter's own port ([`UnitDescription::input_port`]).
    pub fn input_index(self, name: &str) -> Option<u8> {
        self.description().input_port(name)
    }

    /// The name of input port `port` (see [`Kind::input_index`]), if it has one.
    pub fn input_name(self, port: u8) -> Option<&'static str> {
        self.description().input_name(port)
    }

    /// Input ports in all, the parameters' own included ([`UnitDescription::input_count`]).
    pub const fn input_count(self) -> usize {
        self.description().input_count()
    }

    /// Index of the output port called `name`.
    pub fn output_index(self, name: &str) -> Option<u8> {
        self.outputs().iter().position(|p| p.name == name).map(|i| i as u8)
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
    /// See [`Output`].
    Output(Output),
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
    /// See [`Sequencer`].
    Sequencer(Sequencer),
    /// The audio input: the rack fills its outputs from its capture block.
    Input,
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
            Kind::Output => Module::Output(Output::new()),
            Kind::Vco => Module::Vco(Vco::new()),
            Kind::Vcf => Module::Vcf(Vcf::new()),
            Kind::Vca => Module::Vca(Vca::new()),
            Kind::Adsr => Module::Adsr(Adsr::new()),
            Kind::Lfo => Module::Lfo(Lfo::new()),
            Kind::Noise => Module::Noise(Noise::new()),
            Kind::Delay => Module::Delay { pool },
            Kind::Reverb => Module::Reverb { pool },
            Kind::Mixer => Module::Mixer(Mixer::new()),
            Kind::Sequencer => Module::Sequencer(Sequencer::new()),
            Kind::Input => Module::Input,
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
            Module::Sequencer(_) => Kind::Sequencer,
            Module::Input => Kind::Input,
            Module::Send { .. } => Kind::Send,
            Module::Receive { .. } => Kind::Receive,
        })
    }

    /// Prepares a unit held in the slot itself for `sample_rate_hz` (pool units are prepared
    /// by the rack).
    pub fn prepare(&mut self, sample_rate_hz: f32) {
        match self {
            Module::Output(u) => u.prepare(sample_rate_hz),
            Module::Vca(u) => u.prepare(sample_rate_hz),
            Module::Vco(u) => u.prepare(sample_rate_hz),
            Module::Vcf(u) => u.prepare(sample_rate_hz),
            Module::Adsr(u) => u.prepare(sample_rate_hz),
            Module::Lfo(u) => u.prepare(sample_rate_hz),
            Module::Noise(u) => u.prepare(sample_rate_hz),
            Module::Mixer(u) => u.prepare(sample_rate_hz),
            Module::Sequencer(u) => u.prepare(sample_rate_hz),
            Module::Empty
            | Module::Delay { .. }
            | Module::Reverb { .. }
            | Module::Input
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
        match self {
            Module::Empty | Module::Input | Module::Send { .. } | Module::Receive { .. } => {}
            Module::Output(u) => u.set_param(param, value),
            Module::Vco(u) => match at {
                Some(frame) => u.set_param_at(param, value, frame),
                None => u.set_param(param, value),
            },
            Module::Vcf(u) => u.set_param(param, value),
            Module::Vca(u) => u.set_param(param, value),
            Module::Adsr(u) => u.set_param_at(param, value, at.unwrap_or(0)),
            Module::Lfo(u) => u.set_param(param, value),
            Module::Noise(u) => u.set_param(param, value),
            Module::Delay { pool } => {
                if let Some(u) = pools.delays.get_mut(*pool as usize) {
                    u.set_param(param, value)
                }
            }
            Module::Reverb { pool } => {
                if let Some(u) = pools.reverbs.get_mut(*pool as usize) {
                    u.set_param(param, value)
                }
            }
            Module::Mixer(u) => u.set_param(param, value),
            Module::Sequencer(u) => u.set_param(param, value),
        }
    }

    /// Renders one block into `out` from `inputs` (by port index; None = unpatched) and,
    /// for a stereo kind given `sides`, its `left` and `right` outputs into them (a mono
    /// kind ignores `sides`; a stereo one given none renders `out` alone, which costs what
    /// it did before it had two channels).
    pub fn process<const DL: usize, const CL: usize, const AL: usize>(
        &mut self,
        inputs: &[Option<&Block>; MAX_INPUTS],
        out: &mut Block,
        sides: Option<&mut StereoBlock>,
        pools: Pools<'_, DL, CL, AL>,
    ) {
        let ins = inputs;
        match self {
            Module::Empty => *out = [0.0; crate::block::BLOCK],
            Module::Output(u) => u.process(ins[output::IN], ins[output::LEFT_IN], ins[output::RIGHT_IN], out, sides),
            Module::Vco(u) => u.process(ins[vco::PITCH_IN], ins[vco::FM_IN], out),
            Module::Vcf(u) => u.process(ins[vcf::IN], ins[vcf::CUTOFF_IN], out),
            Module::Vca(u) => u.process(ins[vca::IN], ins[vca::CV_IN], out),
            Module::Adsr(u) => u.process(ins[adsr::GATE_IN], out),
            Module::Lfo(u) => u.process(out),
            Module::Noise(u) => u.process(out),
            Module::Delay { pool } => match pools.delays.get_mut(*pool as usize) {
                Some(u) => u.process(ins[delay::IN], out, sides),
                None => *out = [0.0; crate::block::BLOCK],
            },
            Module::Reverb { pool } => match pools.reverbs.get_mut(*pool as usize) {
                Some(u) => u.process(ins[reverb::IN], ins[reverb::LEFT_IN], ins[reverb::RIGHT_IN], out, sides),
                None => *out = [0.0; crate::block::BLOCK],
            },
            Module::Mixer(u) => u.process(core::array::from_fn(|i| ins[mixer::IN1 + i]), out, sides),
            Module::Sequencer(u) => u.process(ins[sequencer::CLOCK_IN], out),
            Module::Send { .. } => *out = ins[0].copied().unwrap_or([0.0; crate::block::BLOCK]),
            // The rack fills these from the link channel and the capture block.
            Module::Receive { .. } | Module::Input => *out = [0.0; crate::block::BLOCK],
        }
    }
}

impl Module {
    /// Moves each parameter whose own port is patched (bit `i` of `patched` for parameter
    /// `i`) from its knob (`knobs`, by parameter index) by the block mean of its cables
    /// (`means[i]`, [`ParamSpec::modulated`]), before the block is rendered; a parameter
    /// whose cable has gone (its bit in `moved`) goes back to its knob. Bit `i` of `moved` is
    /// set while parameter `i` is moved. Per block: the unit glides to the value over the
    /// block as it does to a knob's, so a cable cannot click. The mean, not the first sample:
    /// an audio-rate cable averages over the block instead of being sampled at 750 Hz into
    /// aliases. The rack calls it only for a module with some parameter patched or moved.
    pub fn modulate<const DL: usize, const CL: usize, const AL: usize>(
        &mut self,
        means: &[f32; MAX_PARAMS],
        patched: u32,
        knobs: &[f32; MAX_PARAMS],
        moved: &mut u32,
        mut pools: Pools<'_, DL, CL, AL>,
    ) {
        let Some(kind) = self.kind() else { return };
        let mut todo = patched | *moved;
        while todo != 0 {
            let index = todo.trailing_zeros() as usize;
            let bit = 1u32 << index;
            todo &= !bit;
            let (Some(spec), Some(&knob)) = (kind.params().get(index), knobs.get(index)) else { continue };
            if patched & bit != 0 && spec.patchable {
                self.set(index as u8, spec.modulated(knob, means[index]), pools.reborrow());
                *moved |= bit;
            } else if *moved & bit != 0 {
                self.set(index as u8, knob, pools.reborrow());
                *moved &= !bit;
            }
        }
    }

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
                let ins = inputs.map(|lane| lane[vcf::IN]);
                let cutoffs = inputs.map(|lane| lane[vcf::CUTOFF_IN]);
                Vcf::process_lanes([a, b, c, d], ins, cutoffs, outs);
            }
            units => {
                for ((unit, inputs), out) in units.into_iter().zip(inputs).zip(outs) {
                    unit.process(inputs, out, None, pools.reborrow());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BLOCK;
    use crate::testing::FS;
    use crate::units::delay::FirmwareDelay;
    use crate::units::reverb::FirmwareReverb;

    #[test]
    fn names_resolve_both_ways() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
            for (i, port) in kind.inputs().iter().enumerate() {
                assert_eq!(kind.input_index(port.name), Some(i as u8));
            }
            assert_eq!(kind.output_index(OUTPUT_PORT), Some(0));
            assert!(kind.inputs().len() <= MAX_INPUTS && kind.params().len() <= MAX_PARAMS);
            for (i, p) in kind.params().iter().enumerate() {
                assert_eq!(kind.param_index(p.name), Some(i as u8));
                for alias in p.aliases {
                    assert_eq!(kind.param_index(alias), Some(i as u8), "{alias}");
                }
                assert!(p.min <= p.default && p.default <= p.max, "{}.{}", kind.name(), p.name);
                assert!(!p.is_choice() || p.curve == Curve::Linear && p.unit.is_empty(), "{}", p.name);
            }
        }
        assert_eq!(Kind::from_name("VCO"), None);
        assert_eq!(Kind::from_name("send"), None, "no user creates a link end");
    }

    /// One module with pools of its own, rendering from a fixed input on every port.
    struct Bench {
        module: Module,
        delays: Vec<FirmwareDelay>,
        reverbs: Vec<FirmwareReverb>,
    }

    impl Bench {
        fn new(kind: Kind) -> Self {
            let mut delays = vec![FirmwareDelay::new()];
            let mut reverbs = vec![FirmwareReverb::new()];
            delays[0].prepare(FS);
            reverbs[0].prepare(FS);
            Self { module: Module::new(kind, 0, FS), delays, reverbs }
        }

        fn set(&mut self, param: u8, value: f32) {
            let pools = Pools { delays: &mut self.delays, reverbs: &mut self.reverbs };
            self.module.set(param, value, pools);
        }

        /// 20 blocks from a 0.9-peak 110 Hz sine into every input (it opens a gate on its
        /// peaks and moves a pitch or a cutoff by a fraction of an octave), every output.
        fn render(&mut self) -> Vec<u32> {
            let mut bits = Vec::new();
            for n in 0..20 {
                let x: Block = core::array::from_fn(|i| {
                    0.9 * (core::f64::consts::TAU * 110.0 * (n * BLOCK + i) as f64 / FS as f64).sin() as f32
                });
                let inputs = [Some(&x); MAX_INPUTS];
                let (mut out, mut sides) = ([0.0; BLOCK], [[0.0; BLOCK]; 2]);
                let pools = Pools { delays: &mut self.delays, reverbs: &mut self.reverbs };
                self.module.process(&inputs, &mut out, Some(&mut sides), pools);
                bits.extend(out.iter().chain(sides.iter().flatten()).map(|y| y.to_bits()));
            }
            bits
        }
    }

    #[test]
    fn a_new_unit_sounds_as_one_set_to_its_described_defaults() {
        for kind in Kind::ALL {
            let fresh = Bench::new(kind).render();
            let mut set = Bench::new(kind);
            for (index, spec) in kind.params().iter().enumerate() {
                set.set(index as u8, spec.default);
            }
            assert_eq!(fresh, set.render(), "{}", kind.name());
        }
    }

    #[test]
    fn a_unit_clamps_to_its_described_range() {
        for kind in Kind::ALL {
            for (index, spec) in kind.params().iter().enumerate() {
                // A range note says the limit is not min..max alone (it depends on the sample
                // rate or the target, or the value is not clamped but read: a gate, a seed).
                if spec.is_choice() || !spec.range_note.is_empty() {
                    continue;
                }
                let span = spec.max - spec.min;
                for (edge, beyond) in [(spec.min, spec.min - 2.0 * span - 1.0), (spec.max, spec.max + 2.0 * span + 1.0)]
                {
                    let (mut at, mut past) = (Bench::new(kind), Bench::new(kind));
                    at.set(index as u8, edge);
                    past.set(index as u8, beyond);
                    assert_eq!(at.render(), past.render(), "{}.{} at {beyond}", kind.name(), spec.name);
                }
            }
        }
    }

    /// The range and default of `spec` as PROTOCOL.md writes them: `(0..4, 1)`,
    /// `(`saw` `square`, saw)`.
    fn range_and_default(spec: &ParamSpec) -> String {
        let range = if spec.is_choice() {
            spec.choices.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(" ")
        } else if spec.range_note.is_empty() {
            format!("{}..{}", spec.min, spec.max)
        } else {
            spec.range_note.to_string()
        };
        let default = match spec.choices.get(spec.default as usize) {
            Some(name) => (*name).to_string(),
            None => format!("{}", spec.default),
        };
        format!("({range}, {default})")
    }

    /// The text from the first `(` after `at` to its `)`.
    fn parenthesis_after(cell: &str, at: usize) -> &str {
        let open = at + cell[at..].find('(').unwrap_or(cell.len() - at);
        let close = open + cell[open..].find(')').map_or(cell.len() - open, |c| c + 1);
        &cell[open..close]
    }

    #[test]
    fn protocol_md_lists_every_kind_port_and_param() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../PROTOCOL.md")).unwrap();
        let table = doc.split("## Kinds, ports and parameters").nth(1).unwrap().split("\n## ").next().unwrap();
        let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| `")).collect();
        assert_eq!(rows.len(), Kind::ALL.len(), "one row per kind");
        for kind in Kind::ALL {
            let row = rows
                .iter()
                .find(|l| l.starts_with(&format!("| `{}` |", kind.name())))
                .unwrap_or_else(|| panic!("PROTOCOL.md has no row for {}", kind.name()));
            let cells: Vec<&str> = row.split('|').collect();
            let (inputs, params, outputs) = (cells[2], cells[3], cells[4]);
            let listed: Vec<String> = kind.outputs().iter().map(|p| format!("`{}`", p.name)).collect();
            assert_eq!(outputs.trim(), listed.join(" "), "{}: outputs", kind.name());
            for port in kind.inputs() {
                let listed = if port.note.is_empty() {
                    format!("`{}`", port.name)
                } else {
                    format!("`{}` ({})", port.name, port.note)
                };
                assert!(inputs.contains(&listed), "{}: input {listed}", kind.name());
            }
            for p in kind.params() {
                // The mixer's gains are written as a range: `gain1`..`gain4`.
                let stem = p.name.trim_end_matches(|c: char| c.is_ascii_digit());
                let at = params
                    .find(&format!("`{}`", p.name))
                    .or_else(|| params.find(&format!("`{stem}1`..`{stem}")).filter(|_| stem != p.name))
                    .unwrap_or_else(|| panic!("{}: param {}", kind.name(), p.name));
                assert_eq!(parenthesis_after(params, at), range_and_default(p), "{}.{}", kind.name(), p.name);
            }
        }
        let inputs = doc.split("### Parameter inputs").nth(1).unwrap().split("\n## ").next().unwrap();
        for kind in Kind::ALL {
            for p in kind.params().iter().filter(|p| !p.patchable) {
                let stem = p.name.trim_end_matches(|c: char| c.is_ascii_digit());
                let named = if p.is_choice() {
                    format!("`{}`", p.name)
                } else if stem == p.name {
                    format!("`{}.{}`", kind.name(), p.name)
                } else {
                    format!("`{stem}1`..`{stem}")
                };
                assert!(inputs.contains(&named), "{}.{}: say it has no input", kind.name(), p.name);
            }
        }
        for error in ["UnknownAddress", "WrongArgs", "RackFull", "WouldCycle", "OutputModule", "NotFinite"] {
            assert!(doc.contains(&format!("| `{error}` |")), "{error}");
        }
    }
}
