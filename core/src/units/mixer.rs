//! Mixer: `out = level * sum(gain_i * in_i)` over four inputs, every gain ramped over each
//! block; `left` and `right` pan each input by the equal-power law: at pan `p` (-1..1) the
//! input's gains are `cos(theta)` and `sin(theta)`, `theta = (p + 1) pi / 4`, so its power
//! is the same at every pan, and at pan 0 each side is `cos(pi / 4)`, -3.01 dB.
use crate::block::{BLOCK, Block, StereoBlock};
use crate::describe::{Curve, ParamSpec, Port, STEREO_OUTS, UnitDescription};
use crate::dsp::math::{PI, cos, sin};
use crate::dsp::{Glide, Ramp};

/// Number of mixer inputs (in1..in4, indices 0..MIXER_INPUTS).
pub const MIXER_INPUTS: usize = 4;

const fn gain(name: &'static str) -> ParamSpec {
    ParamSpec::num(name, &[], "", (0.0, 4.0), 1.0, Curve::Linear)
}

const fn pan(name: &'static str) -> ParamSpec {
    ParamSpec::num(name, &[], "", (-1.0, 1.0), 0.0, Curve::Linear)
}

/// The mixer as the protocol sees it.
pub const DESCRIPTION: UnitDescription = UnitDescription {
    name: "mixer",
    inputs: &[Port::audio("in1"), Port::audio("in2"), Port::audio("in3"), Port::audio("in4")],
    outputs: &STEREO_OUTS,
    // The pans after the level: the older parameters keep their indices (and ports).
    params: &[
        gain("gain1"),
        gain("gain2"),
        gain("gain3"),
        gain("gain4"),
        gain("level"),
        pan("pan1"),
        pan("pan2"),
        pan("pan3"),
        pan("pan4"),
    ],
};
/// Input port index of in1; in2..in4 follow.
pub const IN1: usize = DESCRIPTION.input("in1");
const _: () = assert!(DESCRIPTION.input("in4") == IN1 + MIXER_INPUTS - 1);
const GAIN1: u8 = DESCRIPTION.param("gain1");
const GAIN4: u8 = DESCRIPTION.param("gain4");
const _: () = assert!(GAIN4 as usize == GAIN1 as usize + MIXER_INPUTS - 1);
const LEVEL: u8 = DESCRIPTION.param("level");
const PAN1: u8 = DESCRIPTION.param("pan1");
const PAN4: u8 = DESCRIPTION.param("pan4");
const _: () = assert!(PAN4 as usize == PAN1 as usize + MIXER_INPUTS - 1);

/// The equal-power pan law: (left, right) gains of an input at pan `pan`, -1.0..=1.0.
pub fn pan_gains(pan: f32) -> (f32, f32) {
    let theta = (pan + 1.0) * (0.25 * PI);
    (cos(theta), sin(theta))
}

/// Four-input mixer with a gain and a pan per input and an output level.
#[derive(Clone, Debug)]
pub struct Mixer {
    /// Input gains, linear 0.0..=4.0.
    gains: [f32; MIXER_INPUTS],
    /// Output level, linear 0.0..=4.0.
    level: f32,
    /// `level * gains[i]`, ramped over each block (the target follows at each block).
    applied: [Glide; MIXER_INPUTS],
    /// Input pans, -1.0 (left) ..= 1.0 (right).
    pans: [f32; MIXER_INPUTS],
    /// Each input's (left, right) pan gains, [`pan_gains`] of `pans`, worked out when a pan
    /// is set (two libm calls, not per block).
    pan_gains: [(f32, f32); MIXER_INPUTS],
    /// `level * gains[i] * pan_gains[i]`, per side, ramped over each block; they move only
    /// in blocks that render `left` and `right`.
    applied_sides: [[Glide; MIXER_INPUTS]; 2],
}

/// Both sides' gains at pan 0: cos(pi / 4) = sin(pi / 4), rounded to f32.
const CENTRE: f32 = core::f32::consts::FRAC_1_SQRT_2;

impl Default for Mixer {
    fn default() -> Self {
        Self::new()
    }
}

impl Mixer {
    /// A mixer with every gain and the level at 1.0 (unity sum).
    pub const fn new() -> Self {
        Self {
            gains: [1.0; MIXER_INPUTS],
            level: 1.0,
            applied: [Glide::new(1.0); MIXER_INPUTS],
            pans: [0.0; MIXER_INPUTS],
            pan_gains: [(CENTRE, CENTRE); MIXER_INPUTS],
            applied_sides: [[Glide::new(CENTRE); MIXER_INPUTS]; 2],
        }
    }

    /// Readies the unit for `sample_rate_hz` (the mixer's behaviour does not depend on it) and resets it.
    pub fn prepare(&mut self, _sample_rate_hz: f32) {
        self.reset();
    }

    /// Primes the gain ramps to the current settings (no sweep in the next block).
    pub fn reset(&mut self) {
        self.applied = self.targets().map(Glide::new);
        self.applied_sides = [0, 1].map(|side| self.side_targets(side).map(Glide::new));
    }

    /// Gain of input `index` (0..MIXER_INPUTS; others are ignored), linear 0.0..=4.0 (+12 dB),
    /// default 1.0; ramps over the next block. Clamped; a non-finite value is ignored.
    pub fn set_gain(&mut self, index: usize, gain: f32) {
        if let Some(g) = self.gains.get_mut(index)
            && gain.is_finite()
        {
            *g = DESCRIPTION.clamp(GAIN1 + index as u8, gain);
        }
    }

    /// Output level, linear 0.0..=4.0 (+12 dB), default 1.0; ramps over the next block.
    /// Clamped; a non-finite value is ignored.
    pub fn set_level(&mut self, level: f32) {
        if level.is_finite() {
            self.level = DESCRIPTION.clamp(LEVEL, level);
        }
    }

    /// Pan of input `index` (0..MIXER_INPUTS; others are ignored), -1.0 (left only) ..= 1.0
    /// (right only), default 0.0 (centre: -3.01 dB each side); ramps over the next block.
    /// Clamped; a non-finite value is ignored.
    pub fn set_pan(&mut self, index: usize, pan: f32) {
        if let (Some(p), Some(gains)) = (self.pans.get_mut(index), self.pan_gains.get_mut(index))
            && pan.is_finite()
        {
            *p = DESCRIPTION.clamp(PAN1 + index as u8, pan);
            *gains = if *p == 0.0 { (CENTRE, CENTRE) } else { pan_gains(*p) };
        }
    }

    /// Sets parameter `index` of [`DESCRIPTION`] (others are ignored).
    pub fn set_param(&mut self, index: u8, value: f32) {
        match index {
            GAIN1..=GAIN4 => self.set_gain((index - GAIN1) as usize, value),
            LEVEL => self.set_level(value),
            PAN1..=PAN4 => self.set_pan((index - PAN1) as usize, value),
            _ => {}
        }
    }

    /// Writes `level * sum(gain_i * in_i)` to `out` and, given `sides`, each input panned
    /// to `sides[0]` (left) and `sides[1]` (right); unpatched (None) inputs are skipped, and
    /// with none patched the outputs are silence. No state: a NaN input reaches only its own
    /// samples. Without `sides` (nothing takes `left` or `right`) the mono mix alone is the
    /// work, as before the mixer had sides.
    pub fn process(
        &mut self,
        inputs: [Option<&Block>; MIXER_INPUTS],
        out: &mut Block,
        sides: Option<&mut StereoBlock>,
    ) {
        let targets = self.targets();
        mix(&inputs, &mut self.applied, targets, out);
        if let Some(sides) = sides {
            for (side, channel) in sides.iter_mut().enumerate() {
                let targets = self.side_targets(side);
                mix(&inputs, &mut self.applied_sides[side], targets, channel);
            }
        }
    }

    fn targets(&self) -> [f32; MIXER_INPUTS] {
        self.gains.map(|g| g * self.level)
    }

    /// What `side` (0 left, 1 right) takes of each input: level, gain and pan.
    fn side_targets(&self, side: usize) -> [f32; MIXER_INPUTS] {
        core::array::from_fn(|i| {
            let (left, right) = self.pan_gains[i];
            self.gains[i] * self.level * if side == 0 { left } else { right }
        })
    }
}

/// `out = sum(ramp_i * in_i)`, each `applied[i]` gliding to `targets[i]` over the block.
fn mix(
    inputs: &[Option<&Block>; MIXER_INPUTS],
    applied: &mut [Glide; MIXER_INPUTS],
    targets: [f32; MIXER_INPUTS],
    out: &mut Block,
) {
    let mut written = false;
    for ((input, applied), target) in inputs.iter().zip(applied).zip(targets) {
        // One ramp of the product level * gain; unpatched inputs glide unheard.
        applied.set(target);
        let ramp: Ramp = applied.next_block();
        let Some(input) = input else { continue };
        let gains = (0..BLOCK).map(|i| ramp.at(i));
        if written {
            for ((o, x), gain) in out.iter_mut().zip(input.iter()).zip(gains) {
                *o += x * gain;
            }
        } else {
            // The first patched input writes: no pass to clear `out` first.
            for ((o, x), gain) in out.iter_mut().zip(input.iter()).zip(gains) {
                *o = x * gain;
            }
            written = true;
        }
    }
    if !written {
        out.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::SILENCE;
    use crate::testing::*;
    use proptest::prelude::*;

    fn prepared() -> Mixer {
        let mut mixer = Mixer::new();
        mixer.prepare(FS);
        mixer
    }

    fn block_at(x: &[f32], n: usize) -> Block {
        let mut b = [0.0; BLOCK];
        b.copy_from_slice(&x[n * BLOCK..(n + 1) * BLOCK]);
        b
    }

    /// Mixes the four signals (None = unpatched) block by block, `each` called before each block.
    fn mix(
        mixer: &mut Mixer,
        signals: [Option<&[f32]>; MIXER_INPUTS],
        mut each: impl FnMut(usize, &mut Mixer),
    ) -> Vec<f32> {
        let blocks = signals.iter().flatten().map(|s| s.len() / BLOCK).min().unwrap_or(0);
        let mut y = Vec::new();
        for n in 0..blocks {
            each(n, mixer);
            let blocks_in = signals.map(|s| s.map(|s| block_at(s, n)));
            let mut out = [f32::NAN; BLOCK];
            mixer.process([0, 1, 2, 3].map(|i| blocks_in[i].as_ref()), &mut out, None);
            y.extend_from_slice(&out);
        }
        y
    }

    #[test]
    fn sums_with_gains_exactly() {
        let mut mixer = prepared();
        mixer.set_gain(0, 0.5);
        mixer.set_gain(1, 0.25);
        mixer.set_gain(2, 2.0);
        mixer.set_level(0.5);
        mixer.reset();
        let a = sine(200.0, 0.5, 0.5);
        let b = sine(1000.0, 0.5, 0.5);
        let c = sine(3000.0, 0.25, 0.5);
        let y = mix(&mut mixer, [Some(&a), Some(&b), Some(&c), None], |_, _| {});
        let expected: Vec<f32> = (0..y.len()).map(|i| 0.5 * (0.5 * a[i] + 0.25 * b[i] + 2.0 * c[i])).collect();
        // The gains are powers of two: the sum differs from the reference by rounding only.
        assert!(diff_peak_db(&y, &expected) < -120.0);

        // Level alone: one input at gain 0.5 and level 1 is -6.02 dB.
        let mut mixer = prepared();
        mixer.set_gain(3, 0.5);
        mixer.reset();
        let y = mix(&mut mixer, [None, None, None, Some(&a)], |_, _| {});
        let gain_db = rms_db(&y) - rms_db(&a[..y.len()]);
        // 0.01 dB: the gain is exact; only the dB rounding of 20 log10(0.5) remains.
        assert!((gain_db - -6.0206).abs() < 0.01, "gain {gain_db} dB");

        // Two equal inputs at unity sum to +6.02 dB.
        let mut mixer = prepared();
        let y = mix(&mut mixer, [Some(&a), Some(&a), None, None], |_, _| {});
        let gain_db = rms_db(&y) - rms_db(&a[..y.len()]);
        assert!((gain_db - 6.0206).abs() < 0.01, "gain {gain_db} dB");
    }

    #[test]
    fn out_of_range_index_and_non_finite_values_are_ignored() {
        let mut mixer = prepared();
        mixer.set_gain(MIXER_INPUTS, 0.0);
        mixer.set_gain(usize::MAX, 0.0);
        mixer.set_gain(0, f32::NAN);
        mixer.set_level(f32::INFINITY);
        mixer.set_gain(1, 9.0); // clamped to 4
        mixer.set_level(-1.0); // clamped to 0
        assert_eq!(mixer.gains, [1.0, 4.0, 1.0, 1.0]);
        assert_eq!(mixer.level, 0.0);
    }

    #[test]
    fn silence_in_silence_out() {
        let mut mixer = prepared();
        mixer.set_level(4.0);
        let y = render_s(0.1, |b| mixer.process([None; MIXER_INPUTS], b, None));
        assert!(y.iter().all(|&s| s == 0.0));
        let y = render_s(0.1, |b| mixer.process([Some(&SILENCE); MIXER_INPUTS], b, None));
        assert!(y.iter().all(|&s| s == 0.0));
        // Level 0 silences a loud input.
        let loud = [1.0; BLOCK];
        mixer.set_level(0.0);
        mixer.reset();
        let y = render_s(0.1, |b| mixer.process([Some(&loud); MIXER_INPUTS], b, None));
        assert!(y.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn gain_and_level_jumps_have_no_click() {
        let a = sine(100.0, 0.25, 0.4);
        let b = sine(150.0, 0.25, 0.4);
        // Each change jumps far (0 <-> 4 and 1 -> 0), at block 60, on low sines.
        type Change = fn(&mut Mixer);
        let changes: [(&str, Change); 4] = [
            ("gain 0 -> 0", |m| m.set_gain(0, 0.0)),
            ("gain 1 -> 4", |m| m.set_gain(1, 4.0)),
            ("level -> 0", |m| m.set_level(0.0)),
            ("level -> 4", |m| m.set_level(4.0)),
        ];
        for (name, change) in changes {
            let mut mixer = prepared();
            let y = mix(&mut mixer, [Some(&a), Some(&b), None, None], |n, m| {
                if n == 60 {
                    change(m)
                }
            });
            let before = max_step(&y[..60 * BLOCK]);
            let after = max_step(&y[(y.len() - 60 * BLOCK)..]);
            let around = max_step(&y[59 * BLOCK..62 * BLOCK]);
            // The steady step is the larger of the two settings' (a jump up ends louder).
            let steady = before.max(after);
            assert!(around <= 2.0 * steady, "{name}: step {around} vs steady {steady}");
        }
    }

    #[test]
    fn reset_reproduces_the_first_render() {
        let mut mixer = prepared();
        let a = sine(220.0, 0.5, 0.2);
        let b = sine(330.0, 0.5, 0.2);
        let render = |mixer: &mut Mixer| {
            mix(mixer, [Some(&a), None, Some(&b), None], |n, m| {
                if n == 10 {
                    m.set_gain(2, 0.1)
                }
            })
        };
        let first = render(&mut mixer);
        mixer.set_gain(2, 1.0);
        mixer.reset();
        let second = render(&mut mixer);
        assert_eq!(first, second);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Gain(usize, f32),
        Level(f32),
        Process([bool; MIXER_INPUTS], f32),
    }

    fn any_value() -> impl Strategy<Value = f32> {
        with_gremlins(-10.0f32..10.0)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..6, any_value()).prop_map(|(i, g)| Op::Gain(i, g)),
            any_value().prop_map(Op::Level),
            (any::<[bool; MIXER_INPUTS]>(), -1.0f32..1.0).prop_map(|(p, a)| Op::Process(p, a)),
        ]
    }

    proptest! {
        #[test]
        fn random_settings_stay_finite_and_bounded(ops in prop::collection::vec(op(), 1..60)) {
            let mut mixer = prepared();
            for (k, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Gain(i, g) => mixer.set_gain(i, g),
                    Op::Level(l) => mixer.set_level(l),
                    Op::Process(patched, amplitude) => {
                        let x: Block = core::array::from_fn(|i| amplitude * ((i + k) as f64 * 0.41).sin() as f32);
                        let mut out = [f32::NAN; BLOCK];
                        mixer.process(patched.map(|p| p.then_some(&x)), &mut out, None);
                        // |out| <= level * sum(gain_i) * |in| <= 4 * 16 * 1.
                        prop_assert!(out.iter().all(|y| y.is_finite() && y.abs() <= 64.0));
                    }
                }
            }
        }
    }
}
