//! VCA: a linear amplifier, `out = in * gain * cv`, with the gain ramped over each block.
//!
//! The smallest unit, and the template the others copy: `new`, `prepare`, `reset`,
//! `set_*`, `process`, tests.
use crate::block::Block;
use crate::describe::{Curve, OUT, ParamSpec, Port, UnitDescription};
use crate::dsp::Glide;

/// The vca as the protocol sees it.
pub const DESCRIPTION: UnitDescription = UnitDescription {
    name: "vca",
    inputs: &[Port::audio("in"), Port::with_note("cv", "multiplies; unpatched is 1")],
    outputs: &OUT,
    params: &[ParamSpec::num("gain", &["level"], "", (0.0, 4.0), 1.0, Curve::Linear)],
};
/// Input port indices.
pub const IN: usize = DESCRIPTION.input("in");
/// See [`IN`].
pub const CV_IN: usize = DESCRIPTION.input("cv");
const GAIN: u8 = DESCRIPTION.param("gain");

/// Voltage-controlled amplifier: multiplies its input by a gain parameter and a cv input.
#[derive(Clone, Debug)]
pub struct Vca {
    /// Gain, linear 0.0..=4.0, ramped over each block.
    gain: Glide,
}

impl Default for Vca {
    fn default() -> Self {
        Self::new()
    }
}

impl Vca {
    /// A VCA at gain 1.0.
    pub const fn new() -> Self {
        Self { gain: Glide::new(DESCRIPTION.spec(GAIN).default) }
    }

    /// Readies the unit for `sample_rate_hz` (the VCA's behaviour does not depend on it) and resets it.
    pub fn prepare(&mut self, _sample_rate_hz: f32) {
        self.reset();
    }

    /// Starts from silence: the gain ramp is primed to the current gain (no sweep in the next block).
    pub fn reset(&mut self) {
        self.gain.settle();
    }

    /// Gain, linear 0.0..=4.0 (+12 dB), default 1.0; ramps linearly over the next block.
    /// Clamped; a non-finite value is ignored.
    pub fn set_gain(&mut self, gain: f32) {
        if gain.is_finite() {
            self.gain.set(DESCRIPTION.clamp(GAIN, gain));
        }
    }

    /// Sets parameter `index` of [`DESCRIPTION`] (others are ignored).
    pub fn set_param(&mut self, index: u8, value: f32) {
        if index == GAIN {
            self.set_gain(value);
        }
    }

    /// Writes `input * gain * cv` to `out`. `input` unpatched (None) is silence; `cv`
    /// unpatched is 1.0. The cv is not clamped (negative cv ring-modulates). The VCA keeps no
    /// signal state, so a NaN or infinity in `input` or `cv` only reaches the samples it is in.
    pub fn process(&mut self, input: Option<&Block>, cv: Option<&Block>, out: &mut Block) {
        let gain = self.gain.next_block();
        let Some(input) = input else {
            out.fill(0.0);
            return;
        };
        if gain.is_flat() {
            let gain_start = gain.start;
            // Steady gain: the ramp would add exactly 0.0 to gain_start at every sample, so
            // this is the same arithmetic without the per-sample index conversion (it counts
            // on a Cortex-M4F, where nothing vectorises).
            match cv {
                None => out.iter_mut().zip(input).for_each(|(o, x)| *o = x * gain_start),
                Some(cv) => out.iter_mut().zip(input).zip(cv).for_each(|((o, x), c)| *o = x * gain_start * c),
            }
            return;
        }
        match cv {
            None => {
                for (i, (o, x)) in out.iter_mut().zip(input).enumerate() {
                    *o = x * gain.at(i);
                }
            }
            Some(cv) => {
                for (i, ((o, x), c)) in out.iter_mut().zip(input).zip(cv).enumerate() {
                    *o = x * gain.at(i) * c;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{BLOCK, SILENCE};
    use crate::testing::*;
    use proptest::prelude::*;

    fn block_of(x: &[f32]) -> Block {
        let mut b = [0.0; BLOCK];
        b.copy_from_slice(x);
        b
    }

    fn prepared() -> Vca {
        let mut vca = Vca::new();
        vca.prepare(FS);
        vca
    }

    #[test]
    fn gain_half_is_minus_6_02_db() {
        let mut vca = prepared();
        vca.set_gain(0.5);
        vca.reset();
        let x = sine(440.0, 1.0, 0.5);
        let y = run_through(&x, |b| {
            let input = *b;
            vca.process(Some(&input), None, b)
        });
        // 0.01 dB: gain 0.5 is exact in binary, so the only error is the dB rounding of 20 log10(0.5).
        let gain_db = rms_db(&y) - rms_db(&x);
        assert!((gain_db - -6.0206).abs() < 0.01, "gain {gain_db} dB");
        assert!((peak_db(&y) - -6.0206).abs() < 0.01);
    }

    #[test]
    fn gain_ramps_over_one_block_to_the_target() {
        let mut vca = prepared();
        vca.set_gain(0.0);
        let ones = [1.0; BLOCK];
        let mut out = [0.0; BLOCK];
        vca.process(Some(&ones), None, &mut out);
        // Linear ramp from 1.0 to 0.0: sample i is 1 - (i + 1) / 64.
        for (i, y) in out.iter().enumerate() {
            assert!((y - (1.0 - (i + 1) as f32 / BLOCK as f32)).abs() < 1e-6, "sample {i}: {y}");
        }
        vca.process(Some(&ones), None, &mut out);
        assert!(out.iter().all(|&y| y == 0.0));
    }

    #[test]
    fn cv_block_multiplies_sample_by_sample() {
        let mut vca = prepared();
        vca.set_gain(2.0);
        vca.reset();
        let x = sine(300.0, 0.5, 0.1);
        let cv = sine(7.0, 1.0, 0.1); // bipolar: ring modulation is allowed
        let mut y = Vec::new();
        for (xc, cc) in x.chunks_exact(BLOCK).zip(cv.chunks_exact(BLOCK)) {
            let mut out = [0.0; BLOCK];
            vca.process(Some(&block_of(xc)), Some(&block_of(cc)), &mut out);
            y.extend_from_slice(&out);
        }
        let expected: Vec<f32> = x.iter().zip(&cv).take(y.len()).map(|(a, c)| a * 2.0 * c).collect();
        assert!(diff_peak_db(&y, &expected) < -120.0);
    }

    #[test]
    fn unpatched_input_gives_silence_and_silence_stays_silent() {
        let mut vca = prepared();
        vca.set_gain(4.0);
        let cv = [3.0; BLOCK];
        let y = render_s(0.1, |b| vca.process(None, Some(&cv), b));
        assert!(y.iter().all(|&s| s == 0.0));
        let y = render_s(0.1, |b| vca.process(Some(&SILENCE), Some(&cv), b));
        assert!(y.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn gain_jump_to_zero_on_a_low_sine_has_no_click() {
        let mut vca = prepared();
        let x = sine(100.0, 1.0, 0.2);
        let mut n = 0;
        let y = run_through(&x, |b| {
            if n == 80 {
                vca.set_gain(0.0); // mid-signal, 107 ms in, near no particular phase
            }
            if n == 120 {
                vca.set_gain(4.0);
            }
            n += 1;
            let input = *b;
            vca.process(Some(&input), None, b)
        });
        let steady = max_step(&y[..80 * BLOCK]);
        let around = max_step(&y[79 * BLOCK..82 * BLOCK]);
        assert!(around <= 2.0 * steady, "step {around} vs steady {steady}");
        // 0 -> 4 is a bigger jump; it is compared with the steady step at gain 4.
        let around_up = max_step(&y[119 * BLOCK..122 * BLOCK]);
        let steady_up = max_step(&y[130 * BLOCK..]);
        assert!(around_up <= 2.0 * steady_up, "step {around_up} vs steady {steady_up}");
    }

    #[test]
    fn reset_reproduces_the_first_render() {
        let mut vca = prepared();
        vca.set_gain(0.7);
        let x = sine(220.0, 0.8, 0.2);
        let render = |vca: &mut Vca| {
            run_through(&x, |b| {
                let input = *b;
                vca.process(Some(&input), None, b)
            })
        };
        vca.reset();
        let a = render(&mut vca);
        vca.reset();
        let b = render(&mut vca);
        assert_eq!(a, b);
    }

    #[test]
    fn non_finite_input_does_not_poison_later_blocks() {
        let mut vca = prepared();
        let mut bad = [0.5; BLOCK];
        bad[3] = f32::NAN;
        bad[9] = f32::INFINITY;
        let mut cv = [1.0; BLOCK];
        cv[5] = f32::NAN;
        let mut out = [0.0; BLOCK];
        vca.process(Some(&bad), Some(&cv), &mut out);
        let good = [0.5; BLOCK];
        vca.process(Some(&good), Some(&[1.0; BLOCK]), &mut out);
        assert!(out.iter().all(|&y| y == 0.5));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Gain(f32),
        Process { input: bool, cv: bool, amplitude: f32, cv_scale: f32 },
    }

    fn any_value() -> impl Strategy<Value = f32> {
        with_gremlins(-10.0f32..10.0)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any_value().prop_map(Op::Gain),
            (any::<bool>(), any::<bool>(), -4.0f32..4.0, -4.0f32..4.0)
                .prop_map(|(input, cv, amplitude, cv_scale)| Op::Process { input, cv, amplitude, cv_scale }),
        ]
    }

    proptest! {
        #[test]
        fn random_settings_stay_finite_and_bounded(ops in prop::collection::vec(op(), 1..60)) {
            let mut vca = prepared();
            for (k, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Gain(g) => vca.set_gain(g),
                    Op::Process { input, cv, amplitude, cv_scale } => {
                        let x: Block = core::array::from_fn(|i| amplitude * ((i + k) as f64 * 0.37).sin() as f32);
                        let c: Block = core::array::from_fn(|i| cv_scale * ((i * 3 + k) as f64 * 0.11).cos() as f32);
                        let mut out = [f32::NAN; BLOCK];
                        vca.process(input.then_some(&x), cv.then_some(&c), &mut out);
                        // Gain at most 4: |out| <= 4 |in| |cv| <= 4 * 4 * 4.
                        prop_assert!(out.iter().all(|y| y.is_finite() && y.abs() <= 64.0));
                    }
                }
            }
        }
    }
}
