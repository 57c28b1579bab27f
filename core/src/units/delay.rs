//! Delay: a circular buffer read at a fractional delay (linear interpolation), with
//! feedback and a dry/wet mix. A changed time glides like tape (a one-pole of 50 ms on the
//! delay length, its rate capped): the pitch bends, nothing clicks. In `pingpong` mode the
//! echoes alternate between `left` and `right`: one line read at the time (left) and at
//! twice it (right), the right tap times the feedback fed back, so echo k comes after k
//! times the time at feedback^(k-1), as in mono, on the left for odd k, on the right for
//! even; the longest time is half the line's.
//!
//! Capacity is in the type: `Delay<MAX_SAMPLES>` holds a `[f32; MAX_SAMPLES]` (a power of
//! two, so ring indices are masked). It is large: construct it in place (a `static`, a
//! module slot) and use `reset` / `prepare` / `set_defaults`, never move it by value.
use crate::block::{BLOCK, Block, SILENCE, StereoBlock};
use crate::describe::{Curve, ParamSpec, Port, STEREO_OUTS, UnitDescription};
use crate::dsp::{Glide, Ramp, flush};

/// The delay as the protocol sees it.
pub const DESCRIPTION: UnitDescription = UnitDescription {
    name: "delay",
    inputs: &[Port::audio("in")],
    outputs: &STEREO_OUTS,
    params: &[
        // The longest time is (MAX_SAMPLES - 4) / fs: 2.73 s for a `HostDelay` at 48 kHz
        // (half that in `pingpong`).
        ParamSpec::num("time_s", &["time"], "s", (0.0, 2.7), 0.3, Curve::Exponential)
            .noted("0..2.7 s on the host, 0.34 s on the firmware, half in `pingpong`"),
        ParamSpec::num("feedback", &[], "", (-0.98, 0.98), 0.4, Curve::Linear),
        ParamSpec::num("mix", &[], "", (0.0, 1.0), 0.3, Curve::Linear),
        ParamSpec::choice("mode", &["mono", "pingpong"], 0.0),
    ],
};
/// Input port index.
pub const IN: usize = DESCRIPTION.input("in");
const TIME_S: u8 = DESCRIPTION.param("time_s");
const FEEDBACK: u8 = DESCRIPTION.param("feedback");
const MIX: u8 = DESCRIPTION.param("mix");
const MODE: u8 = DESCRIPTION.param("mode");

/// Glide time constant of the delay length, seconds: ~50 ms, quick but no zipper.
const GLIDE_S: f32 = 0.05;

/// Fastest the delay length may glide, samples per sample: the pitch bends at most to 0.5x
/// (lengthening) or 1.5x (shortening), never backwards, however far the time jumps.
const MAX_GLIDE_RATE: f32 = 0.5;

/// A glide this close to its target (samples) ends on it: 1e-4 of a sample is a phase
/// error below -70 dB even at 10 kHz.
const GLIDE_SNAP: f32 = 1.0e-4;

/// Delay line with feedback and dry/wet mix, up to `MAX_SAMPLES - 4` samples long.
#[derive(Clone, Debug)]
pub struct Delay<const MAX_SAMPLES: usize> {
    buf: [f32; MAX_SAMPLES],
    /// Ring index the next input sample is written to.
    write: usize,
    fs_hz: f32,
    /// Delay time parameter, seconds.
    time_s: f32,
    /// Feedback, -0.98..=0.98, ramped over each block.
    feedback: Glide,
    /// Dry/wet, linear 0.0..=1.0, ramped over each block.
    mix: Glide,
    /// Delay length the glide heads for, samples (from `time_s` at the last block).
    target_samples: f32,
    /// Current delay length minus `target_samples`, samples: decays to 0 in the glide.
    glide_offset: f32,
    /// Echoes alternate between the sides (`mode` `pingpong`).
    pingpong: bool,
    /// Glide one-pole coefficient per sample, 1 / (GLIDE_S * fs).
    glide_coef: f32,
    /// `glide_pow[i]` = (1 - glide_coef)^(i + 1).
    glide_pow: [f32; BLOCK],
}

/// Delay for the host: 2.73 s at 48 kHz, 512 KiB.
pub type HostDelay = Delay<{ 1 << 17 }>; // 2.73 s at 48 kHz
/// Delay for the firmware: 0.34 s at 48 kHz, 64 KiB.
pub type FirmwareDelay = Delay<{ 1 << 14 }>; // 0.34 s at 48 kHz, 64 KiB

#[allow(clippy::new_without_default)] // no Default: a by-value Delay is a 512 KiB move
impl<const MAX_SAMPLES: usize> Delay<MAX_SAMPLES> {
    const MASK: usize = MAX_SAMPLES - 1;

    /// A silent delay: time 0.3 s (less if the capacity is smaller), feedback 0.4, mix 0.3.
    pub const fn new() -> Self {
        const { assert!(MAX_SAMPLES.is_power_of_two() && MAX_SAMPLES >= 2 * BLOCK) };
        Self {
            buf: [0.0; MAX_SAMPLES],
            write: 0,
            fs_hz: 48_000.0,
            time_s: 0.3,
            feedback: Glide::new(0.4),
            mix: Glide::new(0.3),
            // 0.3 s at 48 kHz, or the capacity if that is less.
            target_samples: if MAX_SAMPLES - 4 < 14_400 { (MAX_SAMPLES - 4) as f32 } else { 14_400.0 },
            glide_offset: 0.0,
            pingpong: false,
            glide_coef: 1.0 / (GLIDE_S * 48_000.0),
            glide_pow: glide_powers(1.0 / (GLIDE_S * 48_000.0)),
        }
    }

    /// Sets the sample rate (Hz, positive; others are ignored), re-clamps the time to the
    /// capacity at that rate, and resets (clears the buffer, in place).
    pub fn prepare(&mut self, sample_rate_hz: f32) {
        if sample_rate_hz.is_finite() && sample_rate_hz > 0.0 {
            self.fs_hz = sample_rate_hz;
        }
        self.glide_coef = 1.0 / (GLIDE_S * self.fs_hz);
        self.glide_pow = glide_powers(self.glide_coef);
        self.set_time_s(self.time_s);
        self.reset();
    }

    /// Clears the buffer (in place) and primes the glides to the current parameters.
    pub fn reset(&mut self) {
        self.buf.fill(0.0);
        self.write = 0;
        self.target_samples = self.samples_for(self.time_s);
        self.glide_offset = 0.0;
        self.feedback.settle();
        self.mix.settle();
    }

    /// Restores every parameter to its `new()` value (they glide there as after any
    /// `set_*`); the buffer is neither touched nor copied.
    pub fn set_defaults(&mut self) {
        for (index, spec) in DESCRIPTION.params.iter().enumerate() {
            self.set_param(index as u8, spec.default);
        }
    }

    /// Delay time, seconds, 0.0..=(MAX_SAMPLES - 4) / fs (default 0.3); glides over ~50 ms.
    /// Times under one sample play as one sample. Clamped; non-finite ignored.
    pub fn set_time_s(&mut self, seconds: f32) {
        if seconds.is_finite() {
            let min = DESCRIPTION.spec(TIME_S).min;
            self.time_s = seconds.clamp(min, (MAX_SAMPLES - 4) as f32 / self.fs_hz);
        }
    }

    /// Feedback, linear -0.98..=0.98 (default 0.4): the gain of each repeat; ramps over a
    /// block. Clamped; non-finite ignored.
    pub fn set_feedback(&mut self, feedback: f32) {
        if feedback.is_finite() {
            self.feedback.set(DESCRIPTION.clamp(FEEDBACK, feedback));
        }
    }

    /// Dry/wet mix, linear 0.0..=1.0 (default 0.3): 0 is dry only, 1 wet only; ramps over
    /// a block. Clamped; non-finite ignored.
    pub fn set_mix(&mut self, mix: f32) {
        if mix.is_finite() {
            self.mix.set(DESCRIPTION.clamp(MIX, mix));
        }
    }

    /// Mode: `false` mono (default), `true` ping-pong (echoes alternate left and right;
    /// the time is at most half the line's). Takes effect at the next block.
    pub fn set_pingpong(&mut self, pingpong: bool) {
        self.pingpong = pingpong;
    }

    /// Sets parameter `index` of [`DESCRIPTION`] (others are ignored; `mode` 1 is ping-pong).
    pub fn set_param(&mut self, index: u8, value: f32) {
        match index {
            TIME_S => self.set_time_s(value),
            FEEDBACK => self.set_feedback(value),
            MIX => self.set_mix(value),
            MODE => self.set_pingpong(value >= 0.5),
            _ => {}
        }
    }

    /// Writes `dry * (1 - mix) + wet * mix` to `out`, where wet is the buffer read at the
    /// delay time and the buffer is written with `input + feedback * wet`. `input`
    /// unpatched is silence (the echoes still ring out). A NaN or infinite input sample
    /// reaches only its own output sample: what enters the buffer is flushed. Given `sides`,
    /// `left` and `right` too: in mono both are `out`; in ping-pong each has its own echoes
    /// and `out` has them all (the delay heard in mono).
    pub fn process(&mut self, input: Option<&Block>, out: &mut Block, sides: Option<&mut StereoBlock>) {
        let input = input.unwrap_or(&SILENCE);
        let new_target = self.samples_for(self.time_s);
        if new_target != self.target_samples {
            // The length stays where it is; the offset glides it to the new target.
            self.glide_offset += self.target_samples - new_target;
            self.target_samples = new_target;
        }
        let ramps = Ramps { feedback: self.feedback.next_block(), mix: self.mix.next_block() };

        let whole = self.target_samples as usize; // >= 1, so truncation is floor
        let frac = self.target_samples - whole as f32;
        if self.pingpong {
            self.process_pingpong(input, out, sides, whole, frac, &ramps);
            return;
        }
        if let Some(sides) = sides {
            self.process_mono(input, out, whole, frac, &ramps);
            *sides = [*out; 2];
        } else {
            self.process_mono(input, out, whole, frac, &ramps);
        }
    }

    /// The mono delay's block (see [`Delay::process`]).
    fn process_mono(&mut self, input: &Block, out: &mut Block, whole: usize, frac: f32, ramps: &Ramps) {
        if self.glide_offset == 0.0 && whole > BLOCK {
            self.process_block(input, out, whole, frac, ramps);
        } else {
            self.process_per_sample(input, out, whole, frac, ramps);
        }
    }

    /// Ping-pong, sample by sample: the left tap at the length, the right at twice it (its
    /// echoes one trip later, times the feedback), the line written with the input plus the
    /// right tap times the feedback.
    fn process_pingpong(
        &mut self,
        input: &Block,
        out: &mut Block,
        sides: Option<&mut StereoBlock>,
        whole: usize,
        frac: f32,
        ramps: &Ramps,
    ) {
        let offsets = self.glide_offsets();
        // Twice the length must stay inside the line: the one slot not yet written is at 0.
        let longest = ((MAX_SAMPLES - 4) / 2) as f32;
        let mut taps = [[0.0f32; BLOCK]; 2];
        let mut write = self.write;
        for (i, ((o, x), offset)) in out.iter_mut().zip(input).zip(&offsets).enumerate() {
            let length = (whole as f32 + frac + offset).clamp(1.0, longest);
            let left = self.tap(write, length);
            let right = ramps.feedback.at(i) * self.tap(write, 2.0 * length);
            self.buf[write & Self::MASK] = ramps.write(i, *x, right);
            *o = ramps.mix(i, *x, left + right);
            (taps[0][i], taps[1][i]) = (left, right);
            write = (write + 1) & Self::MASK;
        }
        self.write = write;
        if self.glide_offset != 0.0 {
            let last = offsets[BLOCK - 1];
            self.glide_offset = if last.abs() < GLIDE_SNAP { 0.0 } else { flush(last) };
        }
        if let Some(sides) = sides {
            for (side, taps) in sides.iter_mut().zip(&taps) {
                for (i, ((y, x), wet)) in side.iter_mut().zip(input).zip(taps).enumerate() {
                    *y = ramps.mix(i, *x, *wet);
                }
            }
        }
    }

    /// The line `length` samples (1 or more, fractional: linear interpolation) before `write`.
    #[inline(always)]
    fn tap(&self, write: usize, length: f32) -> f32 {
        let whole = length as usize; // length >= 1: truncation is floor
        let fraction = length - whole as f32;
        let newer = self.buf[write.wrapping_sub(whole) & Self::MASK];
        let older = self.buf[write.wrapping_sub(whole + 1) & Self::MASK];
        newer + fraction * (older - newer)
    }

    /// Steady length of more than a block: every tap of this block was written before it,
    /// so the block is computed from one slice of the buffer into another (vectorised).
    fn process_block(&mut self, input: &Block, out: &mut Block, whole: usize, frac: f32, ramps: &Ramps) {
        // Taps: the BLOCK + 1 samples from `whole + 1` before this block's first sample.
        let start = self.write.wrapping_sub(whole + 1) & Self::MASK;
        let write = self.write;
        self.write = (write + BLOCK) & Self::MASK;
        // Usually neither run wraps, and the read run lies wholly before or after the
        // write run in memory: split the buffer between them.
        if write + BLOCK <= MAX_SAMPLES {
            if start + BLOCK < write {
                let (head, tail) = self.buf.split_at_mut(write);
                if let (Some(taps), Some(dst)) = (head.get(start..start + BLOCK + 1), tail.get_mut(..BLOCK)) {
                    block_kernel(taps, dst, input, out, frac, ramps);
                    return;
                }
            } else if write + BLOCK <= start && start + BLOCK < MAX_SAMPLES {
                let (head, tail) = self.buf.split_at_mut(start);
                if let (Some(taps), Some(dst)) = (tail.get(..BLOCK + 1), head.get_mut(write..write + BLOCK)) {
                    block_kernel(taps, dst, input, out, frac, ramps);
                    return;
                }
            }
        }
        // A run wraps (once in MAX_SAMPLES / BLOCK blocks): through copies.
        let taps: [f32; BLOCK + 1] = core::array::from_fn(|j| self.buf[(start + j) & Self::MASK]);
        let mut written = [0.0; BLOCK];
        block_kernel(&taps, &mut written, input, out, frac, ramps);
        for (j, y) in written.iter().enumerate() {
            self.buf[(write + j) & Self::MASK] = *y;
        }
    }

    /// Gliding length, or one within a block: sample by sample.
    fn process_per_sample(&mut self, input: &Block, out: &mut Block, whole: usize, frac: f32, ramps: &Ramps) {
        if self.glide_offset == 0.0 {
            self.per_sample::<false>(input, out, whole, frac, ramps, &[0.0; BLOCK]);
        } else {
            let offsets = self.glide_offsets();
            self.per_sample::<true>(input, out, whole, frac, ramps, &offsets);
            let last = offsets[BLOCK - 1];
            self.glide_offset = if last.abs() < GLIDE_SNAP { 0.0 } else { flush(last) };
        }
    }

    /// The per-sample loop; without GLIDING the length is `whole + frac` throughout.
    #[inline(always)]
    fn per_sample<const GLIDING: bool>(
        &mut self,
        input: &Block,
        out: &mut Block,
        whole: usize,
        frac: f32,
        ramps: &Ramps,
        offsets: &[f32; BLOCK],
    ) {
        let mut write = self.write;
        for (i, ((o, x), offset)) in out.iter_mut().zip(input).zip(offsets).enumerate() {
            let (length, fraction) = if GLIDING {
                // Length = whole + frac + offset, split into integer and fraction without floor().
                let part = frac + offset;
                let truncated = part as i32;
                let floor = if (truncated as f32) > part { truncated - 1 } else { truncated };
                // At least one sample: the slot at `write` is not yet written.
                ((whole as i32 + floor).max(1) as usize, part - floor as f32)
            } else {
                (whole, frac)
            };
            let newer = self.buf[write.wrapping_sub(length) & Self::MASK];
            let older = self.buf[write.wrapping_sub(length + 1) & Self::MASK];
            let wet = newer + fraction * (older - newer);
            self.buf[write & Self::MASK] = ramps.write(i, *x, wet);
            *o = ramps.mix(i, *x, wet);
            write = (write + 1) & Self::MASK;
        }
        self.write = write;
    }

    /// The glide offset at each sample of this block: `offset -= clamp(offset * k, +-rate)`
    /// per sample, in closed form where the block allows (no loop-carried dependency).
    fn glide_offsets(&self) -> [f32; BLOCK] {
        let start = self.glide_offset;
        let k = self.glide_coef;
        let mut offsets = [0.0; BLOCK];
        if start == 0.0 {
            // Steady.
        } else if (start * k).abs() <= MAX_GLIDE_RATE {
            // Not rate-capped, and the offset only shrinks: a geometric decay all block.
            for (o, p) in offsets.iter_mut().zip(&self.glide_pow) {
                *o = start * p;
            }
        } else if (start.abs() - MAX_GLIDE_RATE * BLOCK as f32) * k > MAX_GLIDE_RATE {
            // Rate-capped all block: a straight line.
            let step = if start > 0.0 { -MAX_GLIDE_RATE } else { MAX_GLIDE_RATE };
            for (i, o) in offsets.iter_mut().enumerate() {
                *o = start + step * (i as i32 + 1) as f32;
            }
        } else {
            // The block where the cap lets go (once per glide).
            let mut offset = start;
            for o in &mut offsets {
                offset -= (offset * k).clamp(-MAX_GLIDE_RATE, MAX_GLIDE_RATE);
                *o = offset;
            }
        }
        offsets
    }

    /// Delay length in samples for `seconds` at the current rate, 1.0..=MAX_SAMPLES - 4.
    fn samples_for(&self, seconds: f32) -> f32 {
        (seconds * self.fs_hz).clamp(1.0, (MAX_SAMPLES - 4) as f32)
    }
}

/// One steady block: sample i reads between x[n - whole] = `taps[i + 1]` and
/// x[n - whole - 1] = `taps[i]`, writes `dst[i]` and outputs `out[i]`.
#[inline(always)]
fn block_kernel(taps: &[f32], dst: &mut [f32], input: &Block, out: &mut Block, frac: f32, ramps: &Ramps) {
    let (older, newer) = (taps, taps.get(1..).unwrap_or_default());
    let rows = out.iter_mut().zip(dst).zip(input).zip(newer.iter().zip(older));
    for (i, (((o, y), x), (newer, older))) in rows.enumerate() {
        let wet = newer + frac * (older - newer);
        *y = ramps.write(i, *x, wet);
        *o = ramps.mix(i, *x, wet);
    }
}

/// This block's ramps of feedback and mix.
struct Ramps {
    feedback: Ramp,
    mix: Ramp,
}

impl Ramps {
    /// What enters the buffer at sample `i`: input plus feedback, flushed (NaN, inf and
    /// denormals never circulate).
    #[inline(always)]
    fn write(&self, i: usize, x: f32, wet: f32) -> f32 {
        flush(x + self.feedback.at(i) * wet)
    }

    /// The output at sample `i`; this form keeps mix 0 exactly dry and mix 1 exactly wet.
    #[inline(always)]
    fn mix(&self, i: usize, x: f32, wet: f32) -> f32 {
        let mix = self.mix.at(i);
        x * (1.0 - mix) + wet * mix
    }
}

/// (1 - `coef`)^(i + 1) for i in 0..BLOCK: the uncapped glide's decay over a block.
const fn glide_powers(coef: f32) -> [f32; BLOCK] {
    let mut pow = [0.0; BLOCK];
    let mut p = 1.0;
    let mut i = 0;
    while i < BLOCK {
        p *= 1.0 - coef;
        pow[i] = p;
        i += 1;
    }
    pow
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use proptest::prelude::*;
    use std::sync::Mutex;

    /// 0.68 s at 48 kHz, 128 KiB: most tests use this one.
    type TestDelay = Delay<{ 1 << 15 }>;

    /// The host delay lives in a static: built at compile time, never on the stack.
    static HOST: Mutex<HostDelay> = Mutex::new(HostDelay::new());

    fn prepared(time_s: f32, feedback: f32, mix: f32) -> Box<TestDelay> {
        let mut d = Box::new(TestDelay::new());
        d.set_time_s(time_s);
        d.set_feedback(feedback);
        d.set_mix(mix);
        d.prepare(FS);
        d
    }

    fn through<const N: usize>(d: &mut Delay<N>, x: &[f32]) -> Vec<f32> {
        run_through(x, |b| {
            let input = *b;
            d.process(Some(&input), b, None)
        })
    }

    fn impulse(seconds: f32) -> Vec<f32> {
        let mut x = vec![0.0; (seconds * FS) as usize];
        x[0] = 1.0;
        x
    }

    #[test]
    fn impulse_returns_at_the_time_and_decays_by_feedback() {
        for time_s in [0.3, 0.01, 0.000_5, 0.123_45] {
            let mut d = prepared(time_s, 0.5, 1.0);
            let y = through(&mut *d, &impulse(4.0 * time_s + 0.05));
            let delay = time_s * FS;
            // Echo k at k * delay; with a fractional delay it spreads over two samples,
            // and its centre of mass is where it belongs.
            for k in 1..=3 {
                let centre = delay * k as f32;
                let lo = centre as usize - 2;
                let window = &y[lo..lo + 6];
                let energy: f32 = window.iter().sum();
                let com = lo as f32 + window.iter().enumerate().map(|(i, v)| i as f32 * v).sum::<f32>() / energy;
                let expected_gain = 0.5f64.powi(k - 1) as f32;
                eprintln!("delay {time_s} s echo {k}: at {com:.3} (expected {centre:.3}), gain {energy:.5}");
                assert!((com - centre).abs() < 1.0, "echo {k} at {com}, expected {centre}");
                // Linear interpolation passes DC exactly: each echo's sum is feedback^(k-1).
                assert!((energy - expected_gain).abs() < 1e-4, "echo {k} gain {energy}");
            }
            // Nothing before the first echo.
            assert!(y[..(delay as usize).saturating_sub(1)].iter().all(|&v| v == 0.0));
        }
    }

    #[test]
    fn host_delay_reaches_its_capacity_in_place() {
        let mut d = HOST.lock().unwrap_or_else(|e| e.into_inner());
        d.set_defaults();
        d.prepare(FS);
        d.set_time_s(10.0); // clamped to (2^17 - 4) / 48 kHz = 2.7306 s
        d.set_mix(1.0);
        d.reset();
        let y = through(&mut *d, &impulse(2.8));
        let at = y.iter().position(|&v| v != 0.0).unwrap_or(0);
        assert_eq!(at, (1 << 17) - 4);
        assert_eq!(y[at], 1.0);
    }

    #[test]
    fn mix_0_is_dry_exactly_and_mix_1_is_wet_only() {
        let x = sine(440.0, 0.8, 0.5);
        let mut d = prepared(0.05, 0.7, 0.0);
        assert_eq!(through(&mut *d, &x), x);
        let mut d = prepared(0.05, 0.0, 1.0);
        let y = through(&mut *d, &x);
        let n = (0.05 * FS) as usize;
        assert!(y[..n].iter().all(|&v| v == 0.0));
        assert_eq!(&y[n..], &x[..x.len() - n]);
    }

    #[test]
    fn time_glide_has_no_click_and_bends_pitch() {
        let x = sine(200.0, 0.5, 1.5);
        let mut d = prepared(0.3, 0.4, 0.5);
        let mut n = 0;
        let y = run_through(&x, |b| {
            if n == 500 {
                d.set_time_s(0.31); // 0.67 s in, after the first echoes have built up
            }
            n += 1;
            let input = *b;
            d.process(Some(&input), b, None)
        });
        let steady = max_step(&y[400 * BLOCK..500 * BLOCK]);
        let around = max_step(&y[499 * BLOCK..560 * BLOCK]);
        eprintln!("delay glide 0.3 -> 0.31 s: max step {around:.5} vs steady {steady:.5}");
        assert!(around <= 2.0 * steady, "step {around} vs steady {steady}");
        // The glide ends: 1 s later the length is exactly the new target.
        assert_eq!(d.glide_offset, 0.0);
        assert_eq!(d.target_samples, 0.31 * FS);
    }

    #[test]
    fn a_far_time_jump_glides_at_a_capped_rate() {
        let mut d = prepared(0.01, 0.0, 1.0);
        let x = sine(300.0, 0.5, 0.5);
        let mut n = 0;
        let y = run_through(&x, |b| {
            if n == 100 {
                d.set_time_s(0.6);
            }
            n += 1;
            let input = *b;
            d.process(Some(&input), b, None)
        });
        // At most half a sample per sample: the wet pitch falls to 0.5x, no lower, no click.
        let steady = max_step(&y[50 * BLOCK..100 * BLOCK]);
        assert!(max_step(&y[99 * BLOCK..]) <= 1.01 * steady);
        let f = freq_by_zero_crossings(&y[150 * BLOCK..300 * BLOCK], FS);
        assert!((f - 150.0).abs() < 2.0, "pitch while gliding {f} Hz");
    }

    #[test]
    fn feedback_and_mix_jumps_have_no_click() {
        type Change = fn(&mut TestDelay);
        let changes: [(&str, Change); 4] = [
            ("feedback -> 0.98", |d| d.set_feedback(0.98)),
            ("feedback -> -0.98", |d| d.set_feedback(-0.98)),
            ("mix -> 1", |d| d.set_mix(1.0)),
            ("mix -> 0", |d| d.set_mix(0.0)),
        ];
        for (name, change) in changes {
            let mut d = prepared(0.1, 0.3, 0.5);
            let x = sine(150.0, 0.5, 1.0);
            let mut n = 0;
            let y = run_through(&x, |b| {
                if n == 400 {
                    change(&mut d);
                }
                n += 1;
                let input = *b;
                d.process(Some(&input), b, None)
            });
            let steady = max_step(&y[300 * BLOCK..400 * BLOCK]).max(max_step(&y[700 * BLOCK..]));
            let around = max_step(&y[399 * BLOCK..402 * BLOCK]);
            assert!(around <= 2.0 * steady, "{name}: step {around} vs steady {steady}");
        }
    }

    #[test]
    fn full_feedback_with_loud_input_stays_bounded() {
        // 10 ms is 4 periods of 400 Hz and 4.5 of 450 Hz: every repeat adds in phase, the
        // worst case, for positive and negative feedback.
        for (feedback, hz) in [(0.98, 400.0), (-0.98, 450.0)] {
            let mut d = prepared(0.01, feedback, 1.0);
            let x = sine(hz, 1.0, 10.0);
            let y = through(&mut *d, &x);
            let peak = y.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            eprintln!("delay feedback {feedback}, full-scale input: peak {peak:.2}");
            // Sum of 0.98^k = 50: the geometric bound of any in-phase build-up (plus rounding).
            assert!(peak <= 50.0 * 1.0001, "peak {peak}");
            assert!(peak > 45.0, "the build-up is the worst case: {peak}");
        }
    }

    #[test]
    fn silence_in_silence_out_and_the_tail_flushes_to_zero() {
        let mut d = prepared(0.05, 0.5, 0.5);
        let y = render_s(1.0, |b| d.process(None, b, None));
        assert!(y.iter().all(|&v| v == 0.0));
        // Loud input, then silence: 0.5^100 is below the flush threshold 1e-30, so after
        // 100 repeats of 50 ms (5 s) the buffer holds exactly 0.0.
        let _ = through(&mut *d, &sine(100.0, 1.0, 0.5));
        let tail = render_s(8.0, |b| d.process(None, b, None));
        let last_nonzero = tail.iter().rposition(|&v| v != 0.0).unwrap_or(0);
        eprintln!("delay 50 ms, feedback 0.5: tail exactly 0.0 after {:.2} s", last_nonzero as f32 / FS);
        assert!(all_finite(&tail));
        assert!(tail[tail.len() - 20_000..].iter().all(|&v| v == 0.0));
        assert!(d.buf.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn nan_and_inf_input_do_not_stay_in_the_buffer() {
        let mut d = prepared(0.01, 0.9, 0.5);
        let mut x = sine(300.0, 0.5, 0.5);
        x[1000] = f32::NAN;
        x[2000] = f32::INFINITY;
        x[3000] = f32::NEG_INFINITY;
        let y = through(&mut *d, &x);
        let bad: Vec<usize> = (0..y.len()).filter(|&i| !y[i].is_finite()).collect();
        assert_eq!(bad, vec![1000, 2000, 3000]);
        // Also while gliding (the per-sample path).
        let mut d = prepared(0.01, 0.9, 0.5);
        d.set_time_s(0.0005);
        let y = through(&mut *d, &x);
        let bad: Vec<usize> = (0..y.len()).filter(|&i| !y[i].is_finite()).collect();
        assert_eq!(bad, vec![1000, 2000, 3000]);
    }

    #[test]
    fn reset_reproduces_the_first_render() {
        let mut d = prepared(0.02, 0.6, 0.5);
        let x = sine(330.0, 0.7, 0.3);
        let render = |d: &mut TestDelay| {
            let mut n = 0;
            run_through(&x, |b| {
                if n == 20 {
                    d.set_time_s(0.025);
                }
                n += 1;
                let input = *b;
                d.process(Some(&input), b, None)
            })
        };
        let a = render(&mut d);
        d.set_time_s(0.02);
        d.reset();
        let b = render(&mut d);
        assert_eq!(a, b);
    }

    #[test]
    fn set_defaults_restores_parameters_and_keeps_the_buffer() {
        let mut d = prepared(0.01, 0.9, 1.0);
        let _ = through(&mut *d, &sine(300.0, 0.5, 0.1));
        let buffer_before = d.buf;
        d.set_defaults();
        assert_eq!((d.time_s, d.feedback.target(), d.mix.target()), (0.3, 0.4, 0.3));
        assert_eq!(d.buf, buffer_before);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Time(f32),
        Feedback(f32),
        Mix(f32),
        Process(Option<f32>),
        Defaults,
        Reset,
    }

    fn any_value() -> impl Strategy<Value = f32> {
        with_gremlins(prop_oneof![-1.0f32..2.0, 0.0f32..0.01])
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => any_value().prop_map(Op::Time),
            1 => any_value().prop_map(Op::Feedback),
            1 => any_value().prop_map(Op::Mix),
            6 => prop::option::of(-1.0f32..1.0).prop_map(Op::Process),
            1 => Just(Op::Defaults),
            1 => Just(Op::Reset),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_settings_stay_finite_and_bounded(ops in prop::collection::vec(op(), 1..80)) {
            let mut d = Box::new(Delay::<{ 1 << 12 }>::new());
            d.prepare(FS);
            for (k, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Time(s) => d.set_time_s(s),
                    Op::Feedback(f) => d.set_feedback(f),
                    Op::Mix(m) => d.set_mix(m),
                    Op::Defaults => d.set_defaults(),
                    Op::Reset => d.reset(),
                    Op::Process(amplitude) => {
                        let x = amplitude.map(|a| -> Block { core::array::from_fn(|i| a * ((i + k) as f64 * 0.3).sin() as f32) });
                        let mut out = [f32::NAN; BLOCK];
                        d.process(x.as_ref(), &mut out, None);
                        // |in| <= 1 and sum of 0.98^k = 50 bound every echo.
                        prop_assert!(out.iter().all(|v| v.is_finite() && v.abs() <= 51.0), "{:?}", out);
                    }
                }
            }
        }
    }
}
