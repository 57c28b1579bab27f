//! LFO: low-frequency control oscillator (sine, triangle, saw, square, sample-and-hold) on a
//! `u32` phase accumulator, with depth and offset: out = offset + depth * shape(phase).
//!
//! A control signal, so the shapes are naive (not band-limited); changes of rate, depth and
//! offset glide over one block, and a shape change crossfades over one block. The `u32`
//! phase (2^32 per cycle) keeps 0.001 Hz moving (an f32 phase near 0.5 would lose
//! increments below 6e-8 cycles) and gives the same bits on every target. The sine is
//! micromath's (called as `F32Ext::sin`, so std's never shadows it in tests): off by up to
//! 0.002 (-54 dB), inaudible on a control signal, and cheaper than an accurate one.
//! Sample-and-hold draws a new value in -1..1 each cycle from
//! a counter hashed by Chris Wellons' `lowbias32` (integer maths only: the same sequence for
//! the same seed on every target).
use crate::block::{BLOCK, Block};
use crate::describe::{Curve, OUT, ParamSpec, SEED_MAX, UnitDescription};
use crate::dsp::Glide;
use crate::dsp::random::{bipolar, lowbias32};
use micromath::F32Ext;

/// Waveform of the [`Lfo`]; all but square and sample-and-hold start at 0.0 rising.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LfoShape {
    /// sin(2 pi phase).
    Sine,
    /// 0 at phase 0, +1 at a quarter cycle, -1 at three quarters.
    Triangle,
    /// Rising ramp from -1 to 1, 0.0 at phase 0 (drops at half a cycle).
    Saw,
    /// +1 for the first half cycle, -1 for the second.
    Square,
    /// A new random value in -1..1 at the start of each cycle, held.
    SampleHold,
}

impl LfoShape {
    /// Parameter names in index order.
    pub const NAMES: [&'static str; 5] = ["sine", "triangle", "saw", "square", "sh"];

    /// The shape with index `i` in [`LfoShape::NAMES`], or `None` past the end.
    pub fn from_index(i: u32) -> Option<Self> {
        match i {
            0 => Some(Self::Sine),
            1 => Some(Self::Triangle),
            2 => Some(Self::Saw),
            3 => Some(Self::Square),
            4 => Some(Self::SampleHold),
            _ => None,
        }
    }
}

/// One cycle of phase: the `u32` phase counts 2^32 per cycle.
/// The lfo as the protocol sees it.
pub const DESCRIPTION: UnitDescription = UnitDescription {
    name: "lfo",
    inputs: &[],
    outputs: &OUT,
    params: &[
        ParamSpec::num("rate_hz", &["rate", "freq_hz", "freq"], "Hz", (0.001, 1000.0), 1.0, Curve::Exponential),
        ParamSpec::choice("shape", &LfoShape::NAMES, 0.0),
        ParamSpec::num("depth", &[], "", (-1000.0, 1000.0), 1.0, Curve::Linear),
        ParamSpec::num("offset", &[], "", (-1000.0, 1000.0), 0.0, Curve::Linear),
        ParamSpec::num("seed", &[], "", (0.0, SEED_MAX), 1.0, Curve::Linear).noted("0..2^24").unpatchable(),
    ],
};
const RATE_HZ: u8 = DESCRIPTION.param("rate_hz");
const SHAPE: u8 = DESCRIPTION.param("shape");
const DEPTH: u8 = DESCRIPTION.param("depth");
const OFFSET: u8 = DESCRIPTION.param("offset");
const SEED: u8 = DESCRIPTION.param("seed");
const TURN: f32 = 4_294_967_296.0;
const QUARTER: u32 = 0x4000_0000;
const INV_BLOCK: f32 = 1.0 / BLOCK as f32;
/// Rate ceiling as a fraction of fs (only bites at sample rates below 2.2 kHz).
const MAX_RATE_NORM: f32 = 0.45;
/// Weyl-sequence step (2^32 / golden ratio): consecutive counters differ in many bits.
const GOLDEN: u32 = 0x9E37_79B9;

/// Low-frequency oscillator for modulation: output offset + depth * shape, shape in -1..=1.
#[derive(Clone, Debug)]
pub struct Lfo {
    fs_hz: f32,
    rate_hz: f32,
    shape: LfoShape,
    depth: Glide,
    offset: Glide,
    seed: u32,
    /// The rate in cycles per sample (its target follows `rate_hz` at each block).
    rate_norm: Glide,
    /// The shape the last block ended on: a change crossfades from it.
    shape_now: LfoShape,
    /// Phase of the last sample rendered.
    phase: u32,
    /// Sample-and-hold: the held value and the generator's counter.
    held: f32,
    counter: u32,
}

impl Default for Lfo {
    fn default() -> Self {
        Self::new()
    }
}

impl Lfo {
    /// A 1 Hz sine, depth 1, offset 0, seed 1, for 48 kHz until `prepare`.
    pub const fn new() -> Self {
        Self {
            fs_hz: 48_000.0,
            rate_hz: 1.0,
            shape: LfoShape::Sine,
            depth: Glide::new(1.0),
            offset: Glide::new(0.0),
            seed: 1,
            rate_norm: Glide::new(0.000_020_833_334), // 1 Hz / 48 kHz
            shape_now: LfoShape::Sine,
            phase: 0,
            held: 0.0,
            counter: 0,
        }
    }

    /// Sets the sample rate (Hz, positive and finite, else ignored) and resets.
    pub fn prepare(&mut self, sample_rate_hz: f32) {
        if sample_rate_hz.is_finite() && sample_rate_hz > 0.0 {
            self.fs_hz = sample_rate_hz;
        }
        self.reset();
    }

    /// Restarts from phase 0 and the seed's first random value, with no glide in progress;
    /// parameters are kept.
    pub fn reset(&mut self) {
        self.rate_norm = Glide::new(self.rate_norm_target());
        self.depth.settle();
        self.offset.settle();
        self.shape_now = self.shape;
        self.phase = 0;
        self.counter = lowbias32(self.seed);
        self.held = self.draw();
    }

    /// Rate in Hz, clamped to 0.001 ..= 1000 (and 0.45 * fs); glides over one block.
    pub fn set_rate_hz(&mut self, hz: f32) {
        if hz.is_finite() {
            self.rate_hz = DESCRIPTION.clamp(RATE_HZ, hz);
        }
    }

    /// Shape; a change crossfades old and new over one block.
    pub fn set_shape(&mut self, shape: LfoShape) {
        self.shape = shape;
    }

    /// Depth (output units per unit of shape), clamped to -1000 ..= 1000; glides.
    pub fn set_depth(&mut self, depth: f32) {
        if depth.is_finite() {
            self.depth.set(DESCRIPTION.clamp(DEPTH, depth));
        }
    }

    /// Offset added to the output, clamped to -1000 ..= 1000; glides.
    pub fn set_offset(&mut self, offset: f32) {
        if offset.is_finite() {
            self.offset.set(DESCRIPTION.clamp(OFFSET, offset));
        }
    }

    /// Seed of the sample-and-hold sequence (any value, 0 included): the sequence restarts
    /// from it at the next cycle (the held value is kept until then), and at every `reset`.
    pub fn set_seed(&mut self, seed: u32) {
        self.seed = seed;
        self.counter = lowbias32(seed);
    }

    /// Sets parameter `index` of [`DESCRIPTION`] (others are ignored); an enumeration's
    /// value is its choice index, a seed's is truncated to a whole number.
    pub fn set_param(&mut self, index: u8, value: f32) {
        match index {
            RATE_HZ => self.set_rate_hz(value),
            SHAPE => {
                if let Some(shape) = LfoShape::from_index(value as u32) {
                    self.set_shape(shape)
                }
            }
            DEPTH => self.set_depth(value),
            OFFSET => self.set_offset(value),
            SEED => self.set_seed(value as u32),
            _ => {}
        }
    }

    /// Renders one block: offset + depth * shape(phase).
    pub fn process(&mut self, out: &mut Block) {
        self.rate_norm.set(self.rate_norm_target());
        let rate = self.rate_norm.next_block();
        let mut inc = [0u32; BLOCK];
        for (i, step) in inc.iter_mut().enumerate() {
            // Below 0.45 * 2^32: fits an i32.
            *step = (rate.at(i) * TURN) as i32 as u32;
        }
        let mut phases = [0u32; BLOCK];
        let mut phase = self.phase;
        for (p, &step) in phases.iter_mut().zip(&inc) {
            phase = phase.wrapping_add(step);
            *p = phase;
        }
        self.phase = phase;

        let mut shape = self.shape_values(self.shape_now, &phases, &inc);
        if self.shape_now != self.shape {
            let new = self.shape_values(self.shape, &phases, &inc);
            for (i, (s, n)) in shape.iter_mut().zip(&new).enumerate() {
                let t = (i + 1) as f32 * INV_BLOCK;
                *s += t * (n - *s);
            }
            self.shape_now = self.shape;
        }

        let (depth, offset) = (self.depth.next_block(), self.offset.next_block());
        for (i, (o, &s)) in out.iter_mut().zip(&shape).enumerate() {
            *o = offset.at(i) + depth.at(i) * s;
        }
    }

    fn rate_norm_target(&self) -> f32 {
        (self.rate_hz / self.fs_hz).min(MAX_RATE_NORM)
    }

    /// Shape values -1..=1 for the block's phases; sample-and-hold draws at each wrap.
    fn shape_values(&mut self, shape: LfoShape, phases: &[u32; BLOCK], inc: &[u32; BLOCK]) -> [f32; BLOCK] {
        let mut v = [0.0f32; BLOCK];
        match shape {
            LfoShape::Sine => {
                for (v, &p) in v.iter_mut().zip(phases) {
                    // p as i32 is the phase in -0.5..0.5 turns: -pi..pi radians.
                    *v = F32Ext::sin(p as i32 as f32 * (core::f32::consts::TAU / TURN));
                }
            }
            LfoShape::Triangle => {
                for (v, &p) in v.iter_mut().zip(phases) {
                    *v = 2.0 * saw(p.wrapping_add(QUARTER)).abs() - 1.0;
                }
            }
            LfoShape::Saw => {
                for (v, &p) in v.iter_mut().zip(phases) {
                    *v = saw(p);
                }
            }
            LfoShape::Square => {
                for (v, &p) in v.iter_mut().zip(phases) {
                    *v = if (p as i32) >= 0 { 1.0 } else { -1.0 };
                }
            }
            LfoShape::SampleHold => {
                for ((v, &p), &step) in v.iter_mut().zip(phases).zip(inc) {
                    // The phase moved forward by `step`: it wrapped iff it is now below it.
                    if p < step {
                        self.held = self.draw();
                    }
                    *v = self.held;
                }
            }
        }
        v
    }

    /// Next sample-and-hold value, uniform in -1..1 with 24-bit steps (exact in f32).
    fn draw(&mut self) -> f32 {
        self.counter = self.counter.wrapping_add(GOLDEN);
        bipolar(lowbias32(self.counter))
    }
}

/// The phase as a rising ramp -1..1, 0.0 at phase 0.
#[inline]
fn saw(phase: u32) -> f32 {
    phase as i32 as f32 * (1.0 / 2_147_483_648.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use proptest::prelude::*;

    fn lfo(shape: LfoShape, rate_hz: f32) -> Lfo {
        let mut l = Lfo::new();
        l.set_shape(shape);
        l.set_rate_hz(rate_hz);
        l.prepare(FS);
        l
    }

    fn render(l: &mut Lfo, seconds: f32) -> Vec<f32> {
        render_s(seconds, |b| l.process(b))
    }

    fn min_max(x: &[f32]) -> (f32, f32) {
        x.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &s| (lo.min(s), hi.max(s)))
    }

    #[test]
    fn rate_by_zero_crossings() {
        for shape in [LfoShape::Sine, LfoShape::Triangle, LfoShape::Saw, LfoShape::Square] {
            for rate in [2.0f32, 10.0, 200.0] {
                let mut l = lfo(shape, rate);
                let out = render(&mut l, 4.0);
                let hz = freq_by_zero_crossings(&out, FS);
                // 0.01 Hz: crossings over 4 s resolve 0.003 Hz; the u32 phase is exact to 1e-5.
                assert!((hz - f64::from(rate)).abs() < 0.01, "{shape:?} at {rate} Hz: {hz} Hz");
            }
        }
    }

    #[test]
    fn slowest_rate_still_moves() {
        let mut l = lfo(LfoShape::Saw, 0.001);
        let out = render(&mut l, 1.0);
        // 1 s of a 1000 s cycle: the saw rises by 2 / 1000 (within the 0.5 % rate resolution).
        let rise = out[out.len() - 1] - out[0];
        assert!((rise - 0.002).abs() < 0.00002, "rise {rise}");
    }

    #[test]
    fn depth_and_offset_set_the_range() {
        for shape in [LfoShape::Sine, LfoShape::Triangle, LfoShape::Saw, LfoShape::Square] {
            let mut l = lfo(shape, 5.0);
            l.set_depth(2.5);
            l.set_offset(-1.0);
            l.prepare(FS);
            let (lo, hi) = min_max(&render(&mut l, 1.0));
            // 1e-3: 9600 samples per cycle put a sample within 1e-6 of each extreme.
            assert!((hi - 1.5).abs() < 1e-3 && (lo - -3.5).abs() < 1e-3, "{shape:?}: {lo}..{hi}");
        }
        let mut l = lfo(LfoShape::Sine, 5.0);
        l.set_depth(-0.5);
        l.set_offset(10.0);
        l.prepare(FS);
        let out = render(&mut l, 1.0);
        let (lo, hi) = min_max(&out);
        assert!((hi - 10.5).abs() < 1e-3 && (lo - 9.5).abs() < 1e-3);
        // Negative depth inverts: the first quarter cycle goes down.
        assert!(out[2400] < 10.0);
        // A sine LFO is a clean sine: RMS of a 0.5 sine about its offset is -9.03 dB.
        let centred: Vec<f32> = out.iter().map(|s| s - 10.0).collect();
        assert!((rms_db(&centred) - -9.03).abs() < 0.01);
    }

    #[test]
    fn sample_and_hold_is_deterministic_by_seed() {
        let run = |seed: u32| {
            let mut l = lfo(LfoShape::SampleHold, 100.0);
            l.set_seed(seed);
            render(&mut l, 2.0)
        };
        let (a, b, c, zero) = (run(7), run(7), run(8), run(0));
        assert_eq!(a, b);
        // Setting the seed then resetting equals starting with that seed.
        let mut l = lfo(LfoShape::SampleHold, 100.0);
        render(&mut l, 0.3);
        l.set_seed(7);
        l.reset();
        let mut fresh = Lfo::new();
        fresh.set_shape(LfoShape::SampleHold);
        fresh.set_rate_hz(100.0);
        fresh.set_seed(7);
        fresh.prepare(FS);
        assert_eq!(render(&mut l, 1.0), render(&mut fresh, 1.0));
        assert_ne!(a, c);
        assert!(all_finite(&zero) && zero.iter().any(|&s| s != zero[0]), "seed 0 works");
        // One value per cycle: 200 cycles in 2 s, so ~200 changes (+1 for the start).
        let changes = a.windows(2).filter(|w| w[0] != w[1]).count();
        assert!((199..=201).contains(&changes), "{changes} changes");
        // Uniform in -1..1: 200 values spread over the range, mean near 0.
        let (lo, hi) = min_max(&a);
        assert!(lo < -0.9 && hi > 0.9 && lo >= -1.0 && hi < 1.0);
        let held: Vec<f32> = a.iter().step_by(480).copied().collect();
        let mean = held.iter().sum::<f32>() / held.len() as f32;
        // 0.25: four standard errors of the mean of 200 uniforms (0.041 each).
        assert!(mean.abs() < 0.25, "mean {mean}");
    }

    #[test]
    fn sample_and_hold_golden_values_for_seed_1() {
        let mut l = lfo(LfoShape::SampleHold, 1000.0);
        let out = render(&mut l, 0.01);
        let values: Vec<f32> = out.iter().step_by(48).take(4).copied().collect();
        // Integer hash and an exact int-to-float step: identical bits on every target.
        assert_eq!(values, GOLDEN_SH);
    }
    const GOLDEN_SH: [f32; 4] = [-0.608_503_6, 0.980_681_8, 0.702_069_9, 0.398_836_02];

    #[test]
    fn reset_reproduces_the_first_render() {
        for shape in [LfoShape::Sine, LfoShape::Triangle, LfoShape::Saw, LfoShape::Square, LfoShape::SampleHold] {
            let mut l = lfo(shape, 37.0);
            l.set_depth(3.0);
            l.set_offset(0.5);
            l.prepare(FS);
            let a = render(&mut l, 0.5);
            l.reset();
            let b = render(&mut l, 0.5);
            assert_eq!(a, b, "{shape:?}");
        }
    }

    /// Largest step in the blocks around a change made after 0.2 s, and the steady step.
    fn steps_around(l: &mut Lfo, change: impl FnOnce(&mut Lfo)) -> (f32, f32) {
        let before = render(l, 0.2);
        change(l);
        let after = render(l, 0.2);
        let steady = max_step(&before).max(max_step(&after[BLOCK * 4..]));
        let mut around = before[before.len() - BLOCK..].to_vec();
        around.extend_from_slice(&after[..BLOCK * 3]);
        (max_step(&around), steady)
    }

    #[test]
    fn parameter_jumps_glide() {
        type Change = fn(&mut Lfo);
        // A 201.7 Hz sine (steady step 0.026) changed 0.34 cycle after a zero crossing, near
        // its peak: a one-block glide keeps the step within twice the steady one.
        let cases: [(&str, Change); 4] = [
            ("depth", |l| l.set_depth(0.2)),
            ("offset", |l| l.set_offset(0.5)),
            ("rate", |l| l.set_rate_hz(20.0)),
            ("negative depth", |l| l.set_depth(-0.2)),
        ];
        for (name, change) in cases {
            let mut l = lfo(LfoShape::Sine, 201.7);
            let (step, steady) = steps_around(&mut l, change);
            assert!(step <= 2.0 * steady, "{name}: {step} vs {steady}");
        }
        // Far jumps on a slow LFO: the step is the steady one plus the glide's |change| / 64,
        // never the whole jump at once.
        let far: [(&str, f32, Change); 3] = [
            ("depth 1 to -1", 2.0, |l| l.set_depth(-1.0)),
            ("offset 0 to 100", 100.0, |l| l.set_offset(100.0)),
            ("depth 1 to 1000", 999.0, |l| l.set_depth(1000.0)),
        ];
        for (name, change_size, change) in far {
            let mut l = lfo(LfoShape::Sine, 1.3);
            let (step, steady) = steps_around(&mut l, change);
            let glide = change_size / BLOCK as f32;
            assert!(step <= steady + glide * 1.01, "{name}: {step} vs glide {glide}");
        }
        // A shape change crossfades over one block: its steps are at most the gap between
        // the shapes (2 * depth) spread over 64 samples, plus the steady step.
        let mut l = lfo(LfoShape::Sine, 5.0);
        let before = render(&mut l, 0.05);
        l.set_shape(LfoShape::Square);
        let after = render(&mut l, 0.01);
        let mut around = before[before.len() - BLOCK..].to_vec();
        around.extend_from_slice(&after[..BLOCK * 2]);
        assert!(max_step(&around) <= 2.0 / BLOCK as f32 + 2.0 * max_step(&before));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn random_settings_stay_finite_and_in_range(
            ops in proptest::collection::vec((0u8..7, prop_oneof![
                Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY), Just(1e30f32),
                Just(-1e30f32), -2000.0f32..2000.0, 0.0f32..0.01]), 1..30),
        ) {
            let mut l = Lfo::new();
            l.prepare(FS);
            for &(op, v) in &ops {
                match op {
                    0 => l.set_rate_hz(v),
                    1 => l.set_shape(LfoShape::from_index(v.abs() as u32 % 5).unwrap_or(LfoShape::Sine)),
                    2 => l.set_depth(v),
                    3 => l.set_offset(v),
                    4 => l.set_seed(v.to_bits()),
                    5 => l.reset(),
                    _ => l.prepare(if v.is_finite() && v > 100.0 { v } else { FS }),
                }
                for _ in 0..3 {
                    let mut out = [0.0; BLOCK];
                    l.process(&mut out);
                    prop_assert!(all_finite(&out));
                    // |offset| + |depth| <= 2000, plus f32 rounding.
                    prop_assert!(out.iter().all(|s| s.abs() <= 2000.01));
                }
            }
        }
    }
}
