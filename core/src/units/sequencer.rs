//! Sequencer: 8 steps of pitch (octaves) and gate, stepped by its own clock (`rate_hz`, on
//! a `u32` phase as the lfo's) or by the rising edges of a cable into `clock`.
//!
//! A module has one output today, so `out` carries either the steps' pitch (for a vco's
//! `pitch`) or their gate (for an adsr's `gate`), as the `out` parameter says: a voice takes
//! two sequencers with the same settings and clock. Both are control signals, stepped at the
//! sample a step starts (a vco's pitch input follows per sample, an adsr's gate at the sample).
//!
//! The gate of an enabled step is high for the first `gate_len` of the step on the own
//! clock, and while the clock input is high (above 0.5) on a cable. The first step plays
//! from the first sample; on a cable each rise (from at most 0.5 to above) moves on a step.
use crate::block::Block;
use crate::describe::{Curve, OUT, ParamSpec, Port, UnitDescription};

/// Steps in the sequence.
pub const STEPS: usize = 8;

/// What the sequencer's `out` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequencerOut {
    /// The step's pitch, octaves (for a vco's `pitch`: +1 doubles its frequency).
    Pitch,
    /// The step's gate: 1.0 or 0.0 (for an adsr's `gate`).
    Gate,
}

impl SequencerOut {
    /// Parameter names in index order.
    pub const NAMES: [&'static str; 2] = ["pitch", "gate"];

    /// The choice with index `i` in [`SequencerOut::NAMES`], or `None` past the end.
    pub fn from_index(i: u32) -> Option<Self> {
        match i {
            0 => Some(Self::Pitch),
            1 => Some(Self::Gate),
            _ => None,
        }
    }
}

const fn pitch(name: &'static str) -> ParamSpec {
    ParamSpec::num(name, &[], "oct", (-4.0, 4.0), 0.0, Curve::Linear)
}

const fn gate(name: &'static str) -> ParamSpec {
    ParamSpec::num(name, &[], "", (0.0, 1.0), 1.0, Curve::Linear).noted("on above 0.5").unpatchable()
}

/// The sequencer as the protocol sees it.
pub const DESCRIPTION: UnitDescription = UnitDescription {
    name: "sequencer",
    inputs: &[Port::with_note("clock", "a step on each rise above 0.5; unpatched: `rate_hz`")],
    outputs: &OUT,
    params: &[
        ParamSpec::num("rate_hz", &["rate"], "Hz", (0.01, 100.0), 2.0, Curve::Exponential),
        ParamSpec::choice("out", &SequencerOut::NAMES, 0.0),
        ParamSpec::num("gate_len", &[], "", (0.01, 1.0), 0.5, Curve::Linear),
        pitch("pitch1"),
        pitch("pitch2"),
        pitch("pitch3"),
        pitch("pitch4"),
        pitch("pitch5"),
        pitch("pitch6"),
        pitch("pitch7"),
        pitch("pitch8"),
        gate("gate1"),
        gate("gate2"),
        gate("gate3"),
        gate("gate4"),
        gate("gate5"),
        gate("gate6"),
        gate("gate7"),
        gate("gate8"),
    ],
};
/// Input port index.
pub const CLOCK_IN: usize = DESCRIPTION.input("clock");
const RATE_HZ: u8 = DESCRIPTION.param("rate_hz");
const OUT_PARAM: u8 = DESCRIPTION.param("out");
const GATE_LEN: u8 = DESCRIPTION.param("gate_len");
const PITCH1: u8 = DESCRIPTION.param("pitch1");
const PITCH8: u8 = DESCRIPTION.param("pitch8");
const GATE1: u8 = DESCRIPTION.param("gate1");
const GATE8: u8 = DESCRIPTION.param("gate8");
const _: () = assert!(PITCH8 as usize == PITCH1 as usize + STEPS - 1 && GATE8 as usize == GATE1 as usize + STEPS - 1);

/// One cycle of phase: the `u32` phase counts 2^32 per step.
const TURN: f32 = 4_294_967_296.0;
/// The own clock's ceiling as a fraction of fs: a step lasts at least 2 samples.
const MAX_RATE_NORM: f32 = 0.45;

/// 8-step sequencer of pitch and gate.
#[derive(Clone, Debug)]
pub struct Sequencer {
    fs_hz: f32,
    rate_hz: f32,
    out: SequencerOut,
    gate_len: f32,
    /// Each step's pitch, octaves.
    pitches: [f32; STEPS],
    /// Each step's gate: on or off.
    gates: [bool; STEPS],
    /// The step playing: 0..STEPS.
    step: u8,
    /// The own clock's phase within the step (2^32 a step).
    phase: u32,
    /// The clock input's last sample was above 0.5.
    clock_high: bool,
}

impl Default for Sequencer {
    fn default() -> Self {
        Self::new()
    }
}

impl Sequencer {
    /// Steps of pitch 0 with their gates on, 2 steps a second, pitch out, gates half a step
    /// long, for 48 kHz until `prepare`.
    pub const fn new() -> Self {
        Self {
            fs_hz: 48_000.0,
            rate_hz: 2.0,
            out: SequencerOut::Pitch,
            gate_len: 0.5,
            pitches: [0.0; STEPS],
            gates: [true; STEPS],
            step: 0,
            phase: 0,
            clock_high: false,
        }
    }

    /// Sets the sample rate (Hz, positive and finite, else ignored) and resets.
    pub fn prepare(&mut self, sample_rate_hz: f32) {
        if sample_rate_hz.is_finite() && sample_rate_hz > 0.0 {
            self.fs_hz = sample_rate_hz;
        }
        self.reset();
    }

    /// Back to the first step, its start; the clock input seen as low. Settings are kept.
    pub fn reset(&mut self) {
        self.step = 0;
        self.phase = 0;
        self.clock_high = false;
    }

    /// Steps a second on the own clock, 0.01..=100 (and at most 0.45 fs). Clamped;
    /// non-finite ignored. A change applies from the next block, in the step playing.
    pub fn set_rate_hz(&mut self, hz: f32) {
        if hz.is_finite() {
            self.rate_hz = DESCRIPTION.clamp(RATE_HZ, hz);
        }
    }

    /// What `out` carries; applies from the next block.
    pub fn set_out(&mut self, out: SequencerOut) {
        self.out = out;
    }

    /// How much of a step its gate is high on the own clock, linear 0.01..=1.0 (1.0: tied to
    /// the next step). Clamped; non-finite ignored.
    pub fn set_gate_len(&mut self, fraction: f32) {
        if fraction.is_finite() {
            self.gate_len = DESCRIPTION.clamp(GATE_LEN, fraction);
        }
    }

    /// Pitch of step `index` (0..STEPS; others are ignored), octaves -4..=4. Clamped;
    /// non-finite ignored.
    pub fn set_pitch(&mut self, index: usize, octaves: f32) {
        if let Some(p) = self.pitches.get_mut(index)
            && octaves.is_finite()
        {
            *p = DESCRIPTION.clamp(PITCH1 + index as u8, octaves);
        }
    }

    /// Gate of step `index` (0..STEPS; others are ignored): on when `gate` > 0.5 (NaN is off).
    pub fn set_gate(&mut self, index: usize, gate: f32) {
        if let Some(g) = self.gates.get_mut(index) {
            *g = gate > 0.5;
        }
    }

    /// Sets parameter `index` of [`DESCRIPTION`] (others are ignored); an enumeration's
    /// value is its choice index.
    pub fn set_param(&mut self, index: u8, value: f32) {
        match index {
            RATE_HZ => self.set_rate_hz(value),
            OUT_PARAM => {
                if let Some(out) = SequencerOut::from_index(value as u32) {
                    self.set_out(out)
                }
            }
            GATE_LEN => self.set_gate_len(value),
            PITCH1..=PITCH8 => self.set_pitch((index - PITCH1) as usize, value),
            GATE1..=GATE8 => self.set_gate((index - GATE1) as usize, value),
            _ => {}
        }
    }

    /// Renders one block of pitch (octaves) or gate (0.0 or 1.0), as `out` says. `clock`:
    /// each rise above 0.5 moves on a step (unpatched: the own clock at `rate_hz`); a
    /// non-finite clock sample counts as low.
    pub fn process(&mut self, clock: Option<&Block>, out: &mut Block) {
        let pitch = self.out == SequencerOut::Pitch;
        match clock {
            Some(clock) => {
                for (o, &c) in out.iter_mut().zip(clock) {
                    let high = c > 0.5;
                    if high && !self.clock_high {
                        self.step = (self.step + 1) % STEPS as u8;
                    }
                    self.clock_high = high;
                    let step = self.step as usize % STEPS;
                    *o = if pitch { self.pitches[step] } else { f32::from(u8::from(high && self.gates[step])) };
                }
            }
            None => {
                let rate_norm = (self.rate_hz / self.fs_hz).min(MAX_RATE_NORM);
                // Below 0.45 * 2^32: fits an i32.
                let inc = (rate_norm * TURN) as i32 as u32;
                // The gate falls at this phase (the whole step at gate_len 1.0).
                let gate_end = ((self.gate_len * TURN) as u64).min(u64::from(u32::MAX)) as u32;
                let tied = self.gate_len >= 1.0;
                for o in out.iter_mut() {
                    let step = self.step as usize % STEPS;
                    let gate = self.gates[step] && (tied || self.phase < gate_end);
                    *o = if pitch { self.pitches[step] } else { f32::from(u8::from(gate)) };
                    let (phase, wrapped) = self.phase.overflowing_add(inc);
                    self.phase = phase;
                    if wrapped {
                        self.step = (self.step + 1) % STEPS as u8;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BLOCK;
    use crate::testing::*;
    use crate::units::vco::{Vco, Wave};
    use proptest::prelude::*;

    fn prepared() -> Sequencer {
        let mut s = Sequencer::new();
        s.prepare(FS);
        s
    }

    const PITCHES: [f32; STEPS] = [0.0, 1.0, 0.5, -1.0, 7.0 / 12.0, 2.0, -0.25, 1.5];

    #[test]
    fn each_step_plays_its_pitch_through_a_vco() {
        // 4 steps a second: 12,000 samples a step; a 220 Hz sine vco follows the pitch.
        let mut seq = prepared();
        seq.set_rate_hz(4.0);
        for (i, &p) in PITCHES.iter().enumerate() {
            seq.set_pitch(i, p);
        }
        let mut vco = Vco::new();
        vco.set_wave(Wave::Sine);
        vco.set_freq_hz(220.0);
        vco.prepare(FS);
        let out = render_s(2.0, |b| {
            let mut pitch = [0.0; BLOCK];
            seq.process(None, &mut pitch);
            vco.process(Some(&pitch), None, b);
        });
        for (i, &p) in PITCHES.iter().enumerate() {
            // The middle 10,000 samples of the step (the vco's 4-sample latency aside).
            let step = &out[i * 12_000 + 1000..i * 12_000 + 11_000];
            let hz = freq_by_zero_crossings(step, FS);
            let expected = 220.0 * 2f64.powf(f64::from(p));
            eprintln!("step {i}: {hz:.2} Hz, expected {expected:.2}");
            // 1%: crossings over 0.21 s of 55..880 Hz resolve a few tenths of a hertz.
            assert!((hz / expected - 1.0).abs() < 0.01, "step {i}: {hz} Hz, expected {expected}");
        }
    }

    #[test]
    fn gates_open_at_each_step_for_gate_len_of_it() {
        // 10 steps a second: 4800 samples a step, the gate high for the first 1200.
        let mut seq = prepared();
        seq.set_rate_hz(10.0);
        seq.set_gate_len(0.25);
        seq.set_out(SequencerOut::Gate);
        let gates = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0];
        for (i, &g) in gates.iter().enumerate() {
            seq.set_gate(i, g);
        }
        let out = render_s(1.0, |b| seq.process(None, b));
        assert!(out.iter().all(|&s| s == 0.0 || s == 1.0));
        // The gate's runs of 1.0: (first sample, length).
        let mut runs = Vec::new();
        for (i, &s) in out.iter().enumerate() {
            match (s == 1.0, i > 0 && out[i - 1] == 1.0) {
                (true, false) => runs.push((i, 1usize)),
                (true, true) => runs.last_mut().unwrap().1 += 1,
                _ => {}
            }
        }
        let expected: Vec<usize> = (0..10).filter(|k| gates[k % STEPS] == 1.0).collect();
        assert_eq!(runs.len(), expected.len(), "{runs:?}");
        for (&(start, len), k) in runs.iter().zip(expected) {
            // 2 samples: the u32 phase advances 894,784 a sample, 4800.0009 samples a step,
            // and a step starts on the sample after the phase wraps.
            assert!(start.abs_diff(k * 4800) <= 2 && len.abs_diff(1200) <= 1, "step {k}: run {start}, {len}");
        }
    }

    #[test]
    fn a_clock_cable_moves_a_step_on_each_rise_and_gates_while_high() {
        // A clock 1000 samples high, 1000 low; its first rise at sample 500.
        let clock: Vec<f32> = (0..20_000).map(|i| if (i + 1500) % 2000 < 1000 { 1.0 } else { 0.0 }).collect();
        let mut pitch = prepared();
        let mut gate = prepared();
        gate.set_out(SequencerOut::Gate);
        gate.set_gate(2, 0.0);
        for (i, &p) in PITCHES.iter().enumerate() {
            pitch.set_pitch(i, p);
        }
        let pitches = run_through(&clock, |b| {
            let c = *b;
            pitch.process(Some(&c), b)
        });
        let gates = run_through(&clock, |b| {
            let c = *b;
            gate.process(Some(&c), b)
        });
        assert!(pitches[..500].iter().all(|&p| p == PITCHES[0]), "step 1 plays until the first rise");
        for k in 0..9 {
            let rise = 500 + 2000 * k;
            let step = (k + 1) % STEPS;
            assert!(pitches[rise..rise + 2000].iter().all(|&p| p == PITCHES[step]), "rise {k}");
            let high = &gates[rise..rise + 1000];
            let low = &gates[rise + 1000..rise + 2000];
            let on = if step == 2 { 0.0 } else { 1.0 };
            assert!(high.iter().all(|&g| g == on) && low.iter().all(|&g| g == 0.0), "rise {k}");
        }
    }

    #[test]
    fn reset_reproduces_the_first_render() {
        let mut seq = prepared();
        seq.set_rate_hz(37.0);
        for (i, &p) in PITCHES.iter().enumerate() {
            seq.set_pitch(i, p);
        }
        let a = render_s(0.5, |b| seq.process(None, b));
        seq.reset();
        assert_eq!(a, render_s(0.5, |b| seq.process(None, b)));
    }

    proptest! {
        #[test]
        fn random_settings_stay_finite_and_in_range(
            ops in prop::collection::vec((0u8..20, with_gremlins(-1000.0f32..1000.0)), 1..40),
            clock_hz in prop_oneof![Just(0.0f32), 1.0f32..5000.0],
        ) {
            let mut seq = prepared();
            let clock: Block = core::array::from_fn(|i| crate::dsp::math::sin(i as f32 * clock_hz / FS * 6.3));
            for (k, (param, value)) in ops.into_iter().enumerate() {
                seq.set_param(param, value);
                let mut out = [f32::NAN; BLOCK];
                seq.process((clock_hz > 0.0 && k % 2 == 0).then_some(&clock), &mut out);
                // Pitches are clamped to +-4 octaves, gates are 0 or 1.
                prop_assert!(out.iter().all(|y| y.is_finite() && y.abs() <= 4.0));
            }
        }
    }
}
