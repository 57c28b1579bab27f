//! Noise: white (uniform, from a hashed counter) or pink (Paul Kellet's refined filter,
//! "pk3", musicdsp.org 2000: six one-pole sections summed, within 0.05 dB of -3 dB/octave).
//!
//! White sample n is `lowbias32(counter + n * golden)` (Chris Wellons' integer hash of a Weyl
//! sequence, like SplitMix): a counter-based generator, so a block's samples are independent
//! of each other and the loop vectorises, unlike a serial xorshift (~6 cycles per sample of
//! dependent shifts). The top 24 bits become a float in -1..1 exactly, so every target gives
//! identical bits. The seed picks the start of the sequence through the same hash.
//!
//! Pink is the white noise through Kellet's filter (designed at 44.1 kHz; at 48 kHz it stays
//! within 0.1 dB of -3 dB/octave from 10 Hz to 23 kHz), scaled to the white noise's RMS
//! (-4.77 dB). Pink is near Gaussian: its peaks pass +-1 (+-2.6 over a minute), where white
//! stays inside -1..1.
use crate::block::{BLOCK, Block};
use crate::describe::{Curve, OUT, ParamSpec, SEED_MAX, UnitDescription};
use crate::dsp::random::{bipolar, lowbias32};
use crate::dsp::{Glide, flush};

/// Spectrum of the [`Noise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseColor {
    /// Flat spectrum, uniform in -1..1.
    White,
    /// -3 dB per octave, same RMS as white.
    Pink,
}

impl NoiseColor {
    /// Parameter names in index order.
    pub const NAMES: [&'static str; 2] = ["white", "pink"];

    /// The colour with index `i` in [`NoiseColor::NAMES`], or `None` past the end.
    pub fn from_index(i: u32) -> Option<Self> {
        match i {
            0 => Some(Self::White),
            1 => Some(Self::Pink),
            _ => None,
        }
    }
}

/// The noise as the protocol sees it.
pub const DESCRIPTION: UnitDescription = UnitDescription {
    name: "noise",
    inputs: &[],
    outputs: &OUT,
    params: &[
        ParamSpec::choice("color", &NoiseColor::NAMES, 0.0),
        ParamSpec::num("level", &[], "", (0.0, 1.0), 1.0, Curve::Linear),
        ParamSpec::num("seed", &[], "", (0.0, SEED_MAX), 1.0, Curve::Linear).noted("0..2^24").unpatchable(),
    ],
};
const COLOR: u8 = DESCRIPTION.param("color");
const LEVEL: u8 = DESCRIPTION.param("level");
const SEED: u8 = DESCRIPTION.param("seed");

const INV_BLOCK: f32 = 1.0 / BLOCK as f32;
/// Weyl-sequence step (2^32 / golden ratio): consecutive counters differ in many bits.
const GOLDEN: u32 = 0x9E37_79B9;
/// Kellet's poles and input weights for b0..b5 (b6 is a one-sample delay of 0.115926 x).
const POLES: [f32; 6] = [0.998_86, 0.993_32, 0.969, 0.8665, 0.55, -0.7616];
const WEIGHTS: [f32; 6] = [0.055_517_9, 0.075_075_9, 0.153_852, 0.310_485_6, 0.532_952_2, -0.016_898];
const DELAYED: f32 = 0.115_926;
const DIRECT: f32 = 0.5362;
/// 1 / sqrt(sum of the filter's squared impulse response, 9.3179): pink RMS = white RMS.
const PINK_GAIN: f32 = 0.327_597_4;

/// Noise source: white or pink, with a seed and a level.
#[derive(Clone, Debug)]
pub struct Noise {
    fs_hz: f32,
    color: NoiseColor,
    level: Glide,
    seed: u32,
    /// The colour the last block ended on: a change crossfades from it.
    color_now: NoiseColor,
    /// Weyl counter of the last sample generated.
    counter: u32,
    /// Kellet's filter state b0..b5, then b6.
    pink: [f32; 7],
}

impl Default for Noise {
    fn default() -> Self {
        Self::new()
    }
}

impl Noise {
    /// White noise at level 1.0, seed 1, for 48 kHz until `prepare`.
    pub const fn new() -> Self {
        Self {
            fs_hz: 48_000.0,
            color: NoiseColor::White,
            level: Glide::new(1.0),
            seed: 1,
            color_now: NoiseColor::White,
            counter: 0,
            pink: [0.0; 7],
        }
    }

    /// Sets the sample rate (Hz, positive and finite, else ignored; the spectrum does not
    /// depend on it beyond the pink filter's fixed design) and resets.
    pub fn prepare(&mut self, sample_rate_hz: f32) {
        if sample_rate_hz.is_finite() && sample_rate_hz > 0.0 {
            self.fs_hz = sample_rate_hz;
        }
        self.reset();
    }

    /// Restarts the sequence from the seed with a silent pink filter and no glide in
    /// progress; parameters are kept.
    pub fn reset(&mut self) {
        self.counter = lowbias32(self.seed);
        self.pink = [0.0; 7];
        self.level.settle();
        self.color_now = self.color;
    }

    /// Colour; a change crossfades old and new over one block.
    pub fn set_color(&mut self, color: NoiseColor) {
        self.color = color;
    }

    /// Output level, linear 0.0 ..= 1.0; glides over one block.
    pub fn set_level(&mut self, level: f32) {
        if level.is_finite() {
            self.level.set(DESCRIPTION.clamp(LEVEL, level));
        }
    }

    /// Seed of the sequence (any value, 0 included): the sequence restarts from it with the
    /// next block, and at every `reset`.
    pub fn set_seed(&mut self, seed: u32) {
        self.seed = seed;
        self.counter = lowbias32(seed);
    }

    /// Sets parameter `index` of [`DESCRIPTION`] (others are ignored); an enumeration's
    /// value is its choice index, a seed's is truncated to a whole number.
    pub fn set_param(&mut self, index: u8, value: f32) {
        match index {
            COLOR => {
                if let Some(color) = NoiseColor::from_index(value as u32) {
                    self.set_color(color)
                }
            }
            LEVEL => self.set_level(value),
            SEED => self.set_seed(value as u32),
            _ => {}
        }
    }

    /// Renders one block of noise.
    pub fn process(&mut self, out: &mut Block) {
        let base = self.counter;
        let mut white = [0.0f32; BLOCK];
        for (i, w) in white.iter_mut().enumerate() {
            let n = GOLDEN.wrapping_mul(i as u32 + 1);
            // Top 24 bits as a signed integer: exact in f32, uniform in -1..1.
            *w = bipolar(lowbias32(base.wrapping_add(n)));
        }
        self.counter = base.wrapping_add(GOLDEN.wrapping_mul(BLOCK as u32));

        let level = self.level.next_block();
        match (self.color_now, self.color) {
            (NoiseColor::White, NoiseColor::White) => {
                for (i, (o, &w)) in out.iter_mut().zip(&white).enumerate() {
                    *o = w * level.at(i);
                }
            }
            (NoiseColor::Pink, NoiseColor::Pink) => {
                self.pink_into(&white, out);
                for (i, o) in out.iter_mut().enumerate() {
                    *o *= level.at(i);
                }
            }
            (from, _) => {
                // Crossfade. The pink filter runs only while pink is heard: it resumes from
                // the state it held (its slowest section settles within ~20 ms).
                self.pink_into(&white, out);
                for (i, (o, &w)) in out.iter_mut().zip(&white).enumerate() {
                    let t = (i + 1) as f32 * INV_BLOCK;
                    let pink_share = if from == NoiseColor::Pink { 1.0 - t } else { t };
                    let mixed = w + pink_share * (*o - w);
                    *o = mixed * level.at(i);
                }
                self.color_now = self.color;
            }
        }
    }

    /// Pink noise from `white` through Kellet's filter, scaled to white's RMS.
    fn pink_into(&mut self, white: &Block, out: &mut Block) {
        let [mut b0, mut b1, mut b2, mut b3, mut b4, mut b5, mut b6] = self.pink;
        let [p0, p1, p2, p3, p4, p5] = POLES;
        let [w0, w1, w2, w3, w4, w5] = WEIGHTS;
        for (o, &x) in out.iter_mut().zip(white) {
            b0 = p0 * b0 + w0 * x;
            b1 = p1 * b1 + w1 * x;
            b2 = p2 * b2 + w2 * x;
            b3 = p3 * b3 + w3 * x;
            b4 = p4 * b4 + w4 * x;
            b5 = p5 * b5 + w5 * x;
            *o = PINK_GAIN * ((b0 + b1) + (b2 + b3) + (b4 + b5) + (b6 + DIRECT * x));
            b6 = DELAYED * x;
        }
        // flush: zero denormals, inf and NaN before they feed back (SC's zapgremlins).
        self.pink = [flush(b0), flush(b1), flush(b2), flush(b3), flush(b4), flush(b5), flush(b6)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use proptest::prelude::*;

    fn noise(color: NoiseColor, seed: u32) -> Noise {
        let mut n = Noise::new();
        n.set_color(color);
        n.set_seed(seed);
        n.prepare(FS);
        n
    }

    fn render(n: &mut Noise, seconds: f32) -> Vec<f32> {
        render_s(seconds, |b| n.process(b))
    }

    /// Mean power spectral density in dB over `lo..hi` Hz: Welch average of 4096-sample
    /// Blackman-Harris spectra.
    fn band_db(x: &[f32], lo: f32, hi: f32) -> f32 {
        let n = 4096;
        let mut power = vec![0.0f64; n / 2];
        let segments: Vec<&[f32]> = x.chunks_exact(n).collect();
        for seg in &segments {
            for (p, db) in power.iter_mut().zip(spectrum_db(seg)) {
                *p += 10f64.powf(db as f64 / 10.0);
            }
        }
        let bin_hz = FS as f64 / n as f64;
        let (a, b) = ((lo as f64 / bin_hz).ceil() as usize, (hi as f64 / bin_hz).floor() as usize);
        let mean = power[a..b].iter().sum::<f64>() / ((b - a) * segments.len()) as f64;
        (10.0 * mean.log10()) as f32
    }

    #[test]
    fn same_seed_same_noise_different_seed_different() {
        for color in [NoiseColor::White, NoiseColor::Pink] {
            let a = render(&mut noise(color, 5), 0.2);
            let b = render(&mut noise(color, 5), 0.2);
            let c = render(&mut noise(color, 6), 0.2);
            let zero = render(&mut noise(color, 0), 0.2);
            assert_eq!(a, b);
            assert_ne!(a, c);
            assert_ne!(a, zero);
            // Seed 0 still gives noise: RMS within 0.5 dB of the others'.
            assert!((rms_db(&zero) - rms_db(&a)).abs() < 0.5);
        }
        // set_seed restarts the sequence at the next block.
        let mut n = noise(NoiseColor::White, 1);
        render(&mut n, 0.1);
        n.set_seed(5);
        let restarted = render(&mut n, 0.2);
        assert_eq!(restarted, render(&mut noise(NoiseColor::White, 5), 0.2));
    }

    #[test]
    fn golden_first_values_for_seed_1() {
        let mut n = noise(NoiseColor::White, 1);
        let mut out = [0.0; BLOCK];
        n.process(&mut out);
        // Integer hash and an exact int-to-float step: identical bits on every target.
        assert_eq!(out[..4], GOLDEN_WHITE);
    }
    const GOLDEN_WHITE: [f32; 4] = [-0.608_503_6, 0.980_681_8, 0.702_069_9, 0.398_836_02];

    #[test]
    fn white_mean_and_rms_match_a_uniform_distribution() {
        let x = render(&mut noise(NoiseColor::White, 1), 10.0);
        let mean = x.iter().map(|&s| s as f64).sum::<f64>() / x.len() as f64;
        // Standard error of the mean: (1 / sqrt 3) / sqrt(480 000) = 8.3e-4; allow 4 of them.
        assert!(mean.abs() < 0.0034, "mean {mean}");
        // Uniform in -1..1: RMS 1 / sqrt 3 = -4.77 dB; its estimate over 480 000 samples
        // varies by ~0.005 dB.
        let rms = rms_db(&x);
        assert!((rms - -4.771).abs() < 0.03, "rms {rms} dB");
        assert!(x.iter().all(|&s| (-1.0..1.0).contains(&s)));
        // Neighbours uncorrelated: lag-1 correlation within 4 standard errors (0.0014).
        let r1 = x.windows(2).map(|w| w[0] as f64 * w[1] as f64).sum::<f64>() / x.len() as f64 * 3.0;
        assert!(r1.abs() < 0.006, "lag-1 correlation {r1}");
    }

    #[test]
    fn white_is_flat() {
        let x = render(&mut noise(NoiseColor::White, 3), 10.0);
        let bands: Vec<f32> = (0..7).map(|k| (100u32 << k) as f32).map(|lo| band_db(&x, lo, 2.0 * lo)).collect();
        let (lo, hi) = bands.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        eprintln!("white octave bands 100 Hz..12.8 kHz: {bands:?}");
        // 0.5 dB: the 100-200 Hz band averages 9 bins x 117 segments (+-0.15 dB).
        assert!(hi - lo < 0.5, "white bands {bands:?}");
    }

    #[test]
    fn pink_falls_3_db_per_octave_at_white_rms() {
        let x = render(&mut noise(NoiseColor::Pink, 1), 10.0);
        let low = band_db(&x, 100.0, 200.0);
        let high = band_db(&x, 6400.0, 12_800.0);
        let slope = (high - low) / 6.0;
        eprintln!("pink slope {slope:.2} dB/octave (100-200 Hz vs 6.4-12.8 kHz)");
        // +-1 dB/octave per the brief; Kellet's filter is -3.0 here, the estimate +-0.05.
        assert!((slope - -3.0).abs() < 1.0, "slope {slope}");
        assert!((slope - -3.0).abs() < 0.2, "slope {slope}");
        let white = render(&mut noise(NoiseColor::White, 1), 10.0);
        let (p, w) = (rms_db(&x), rms_db(&white));
        // Same RMS within 0.3 dB: 10 s of pink still wanders (its lowest pole is at 8.7 Hz).
        assert!((p - w).abs() < 0.3, "pink {p} dB vs white {w} dB");
        let mean = x.iter().sum::<f32>() / x.len() as f32;
        assert!(mean.abs() < 0.05, "pink mean {mean}");
    }

    #[test]
    fn level_glides_and_zero_is_silence() {
        let mut n = noise(NoiseColor::White, 1);
        let mut reference = noise(NoiseColor::White, 1);
        n.set_level(0.0);
        n.reset();
        let silent = render(&mut n, 0.1);
        assert!(silent.iter().all(|&s| s == 0.0));
        reference.set_level(1.0);
        render(&mut reference, 0.1);
        // The jump 0 -> 1 is a linear ramp over one block, sample for sample.
        n.set_level(1.0);
        let mut ramped = [0.0; BLOCK];
        let mut full = [0.0; BLOCK];
        n.process(&mut ramped);
        reference.process(&mut full);
        for i in 0..BLOCK {
            let expected = full[i] * (i + 1) as f32 / BLOCK as f32;
            assert!((ramped[i] - expected).abs() < 1e-6, "sample {i}");
        }
        n.process(&mut ramped);
        reference.process(&mut full);
        assert_eq!(ramped, full);
    }

    #[test]
    fn color_change_crossfades() {
        let mut n = noise(NoiseColor::White, 2);
        for _ in 0..20 {
            n.process(&mut [0.0; BLOCK]);
        }
        let mut white = n.clone();
        let mut pink = n.clone();
        pink.color = NoiseColor::Pink;
        pink.color_now = NoiseColor::Pink;
        n.set_color(NoiseColor::Pink);
        let (mut a, mut w, mut p) = ([0.0; BLOCK], [0.0; BLOCK], [0.0; BLOCK]);
        n.process(&mut a);
        white.process(&mut w);
        pink.process(&mut p);
        // The same white through both paths: the block is exactly the linear blend.
        for i in 0..BLOCK {
            let t = (i + 1) as f32 / BLOCK as f32;
            assert!((a[i] - (w[i] + t * (p[i] - w[i]))).abs() < 1e-6);
        }
    }

    #[test]
    fn reset_reproduces_the_first_render() {
        for color in [NoiseColor::White, NoiseColor::Pink] {
            let mut n = noise(color, 9);
            n.set_level(0.7);
            n.reset();
            let a = render(&mut n, 0.3);
            n.reset();
            let b = render(&mut n, 0.3);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn pink_state_is_flushed_to_zero_after_level_zero_input() {
        // The filter only sees the generator, so check the flush directly: a denormal state
        // is zeroed at the end of a block.
        let mut n = noise(NoiseColor::Pink, 1);
        n.pink = [f32::MIN_POSITIVE / 4.0, f32::NAN, 0.5, 0.0, 0.0, 0.0, f32::INFINITY];
        let mut out = [0.0; BLOCK];
        n.process(&mut out);
        assert!(n.pink.iter().all(|s| s.is_finite() && (*s == 0.0 || s.abs() > 1e-30)));
        n.process(&mut out);
        assert!(all_finite(&out));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn random_settings_stay_finite_and_bounded(
            ops in proptest::collection::vec((0u8..6, prop_oneof![
                Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY), Just(1e30f32),
                Just(-1e30f32), -10.0f32..10.0]), 1..30),
        ) {
            let mut n = Noise::new();
            n.prepare(FS);
            for &(op, v) in &ops {
                match op {
                    0 => n.set_color(NoiseColor::from_index(v.abs() as u32 % 2).unwrap_or(NoiseColor::White)),
                    1 => n.set_level(v),
                    2 => n.set_seed(v.to_bits()),
                    3 => n.reset(),
                    4 => n.prepare(if v.is_finite() && v > 1.0 { v * 10_000.0 } else { FS }),
                    _ => {}
                }
                for _ in 0..3 {
                    let mut out = [0.0; BLOCK];
                    n.process(&mut out);
                    prop_assert!(all_finite(&out));
                    // White within +-1; pink's Gaussian-like tail: 5 is > 8 standard deviations.
                    prop_assert!(out.iter().all(|s| s.abs() < 5.0));
                }
            }
        }
    }
}
