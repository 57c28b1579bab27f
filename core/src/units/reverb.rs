//! Reverb: Freeverb (Jezar at Dreampoint, 2000, public domain), stereo: per channel eight
//! parallel lowpass-feedback combs into four series allpasses, with Freeverb's tunings and
//! scalings; the right channel's loops are `STEREO_SPREAD` samples longer (at 44.1 kHz), which
//! decorrelates the two tails. As in Freeverb, both channels' loops take `left + right`; the
//! dry part keeps its side.
//!
//! Layout for speed. Every loop is at least a block long, so within a block nothing reads
//! what the same block wrote. A channel's eight combs share one ring of frames (frame n holds
//! what each comb wrote at n) and one write index that moves a block at a time; comb c reads
//! the frame its length ago. So a block writes 64 whole frames, reads one contiguous run per
//! comb, and runs the eight damping recursions sample-major as eight independent chains
//! (two SIMD vectors' worth) with no per-sample index arithmetic. The ring is followed by a
//! mirror of its first block, so no read run ever wraps. The allpasses then run over the
//! block as slices, which LLVM vectorises. The right channel runs only in blocks where
//! something takes it (`out` is the left channel, the mono reverb of before, bit for bit).
use crate::block::{BLOCK, Block, SILENCE, StereoBlock};
use crate::describe::{Curve, ParamSpec, Port, STEREO_OUTS, UnitDescription};
use crate::dsp::{Glide, Ramp, flush};

/// The reverb as the protocol sees it.
pub const DESCRIPTION: UnitDescription = UnitDescription {
    name: "reverb",
    inputs: &[Port::with_note("in", "both channels"), Port::audio("left"), Port::audio("right")],
    outputs: &STEREO_OUTS,
    params: &[
        ParamSpec::num("room", &["size"], "", (0.0, 1.0), 0.5, Curve::Linear),
        ParamSpec::num("damp", &[], "", (0.0, 1.0), 0.5, Curve::Linear),
        ParamSpec::num("mix", &[], "", (0.0, 1.0), 0.3, Curve::Linear),
    ],
};
/// Input port indices.
pub const IN: usize = DESCRIPTION.input("in");
/// See [`IN`].
pub const LEFT_IN: usize = DESCRIPTION.input("left");
/// See [`IN`].
pub const RIGHT_IN: usize = DESCRIPTION.input("right");
const ROOM: u8 = DESCRIPTION.param("room");
const DAMP: u8 = DESCRIPTION.param("damp");
const MIX: u8 = DESCRIPTION.param("mix");

/// Comb lengths in samples at 44.1 kHz (Freeverb's `combtuningL1..8`).
const COMB_TUNINGS: [usize; COMBS] = [1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617];
/// Allpass lengths in samples at 44.1 kHz (Freeverb's `allpasstuningL1..4`).
const ALLPASS_TUNINGS: [usize; ALLPASSES] = [556, 441, 341, 225];
/// What the right channel adds to every loop, samples at 44.1 kHz (Freeverb's `stereospread`).
const STEREO_SPREAD: usize = 23;
/// The rate Freeverb's tunings are for, Hz.
const TUNING_RATE_HZ: usize = 44_100;
const COMBS: usize = 8;
const ALLPASSES: usize = 4;
/// Freeverb's allpass feedback.
const ALLPASS_FEEDBACK: f32 = 0.5;
/// Freeverb's `fixedgain` 0.015 applies to left + right: a mono input counts twice.
const INPUT_GAIN: f32 = 0.03;
/// Freeverb's `fixedgain`, on `left + right` when they are patched apart.
const STEREO_INPUT_GAIN: f32 = 0.015;
/// Freeverb's `scalewet`.
const WET_SCALE: f32 = 3.0;
/// Comb feedback = room * ROOM_SCALE + ROOM_OFFSET (Freeverb's `scaleroom`, `offsetroom`).
const ROOM_SCALE: f32 = 0.28;
const ROOM_OFFSET: f32 = 0.7;
/// Damping one-pole coefficient = damp * DAMP_SCALE (Freeverb's `scaledamp`).
const DAMP_SCALE: f32 = 0.4;
/// A block of loop samples all below this (-400 dB) is set to exactly 0.0: the tail ends,
/// and no denormal ever circulates. One compare per block instead of a flush per sample;
/// the eight combs decay within 1.5x of each other's rate (their lengths), so none is
/// anywhere near the denormal range (-758 dB) while another is still above this.
const LOOP_SILENCE: f32 = 1.0e-20;
/// A read run that cannot be formed (never happens: the lengths are clamped) reads this.
const SILENT_FRAMES: [[f32; COMBS]; BLOCK] = [[0.0; COMBS]; BLOCK];

/// One channel's loops: eight combs in a shared ring of `COMB_LEN` frames, each up to
/// `COMB_LEN - 2 * BLOCK` samples long, and four allpasses of up to `ALLPASS_LEN` samples.
#[derive(Clone, Debug)]
struct Channel<const COMB_LEN: usize, const ALLPASS_LEN: usize> {
    /// The combs' shared ring of `COMB_LEN - BLOCK` frames, then a mirror of its first BLOCK.
    frames: [[f32; COMBS]; COMB_LEN],
    /// Frame the next block writes: a multiple of BLOCK below `COMB_LEN - BLOCK`.
    comb_write: usize,
    comb_len: [usize; COMBS],
    /// Each comb's damping lowpass state times the comb feedback (Freeverb's `filterstore * feedback`).
    comb_state: [f32; COMBS],
    allpasses: [[f32; ALLPASS_LEN]; ALLPASSES],
    allpass_len: [usize; ALLPASSES],
    /// Ring index each allpass reads (its oldest sample) and then writes.
    allpass_pos: [usize; ALLPASSES],
}

/// Freeverb reverb, stereo: two [`Channel`]s (left, right) and the parameters they share.
#[derive(Clone, Debug)]
pub struct Reverb<const COMB_LEN: usize, const ALLPASS_LEN: usize> {
    /// Left (the mono reverb, `out`), then right (its loops `STEREO_SPREAD` longer).
    channels: [Channel<COMB_LEN, ALLPASS_LEN>; 2],
    /// The right channel ran last block: when it starts again its loops start empty.
    right_running: bool,
    fs_hz: f32,
    /// Room size parameter, linear 0.0..=1.0.
    room: f32,
    /// Damping parameter, linear 0.0..=1.0.
    damp: f32,
    /// Dry/wet, linear 0.0..=1.0, ramped over each block.
    mix: Glide,
    /// Comb feedback (from `room`) and damping coefficient (from `damp`), ramped over each block.
    feedback: Glide,
    damping: Glide,
}

/// Reverb for the host: comb loops up to 3968 samples (96 kHz needs 3520, 3575 on the
/// right), allpasses up to 1024 (all of Freeverb's but the longest, 556 at 44.1 kHz, at
/// 96 kHz); 288 KiB, two channels.
pub type HostReverb = Reverb<4096, 1024>;
/// Reverb for the firmware: comb loops up to 1920 samples (48 kHz needs 1760, 1785 on the
/// right); 160 KiB, two channels.
pub type FirmwareReverb = Reverb<2048, 1024>;

impl<const COMB_LEN: usize, const ALLPASS_LEN: usize> Channel<COMB_LEN, ALLPASS_LEN> {
    /// Frames in the combs' ring (the rest is its mirror).
    const RING: usize = COMB_LEN - BLOCK;
    /// Longest comb: a read run must miss the block's write run, so a block short of the ring.
    const MAX_COMB: usize = Self::RING - BLOCK;

    /// Silent loops tuned for 48 kHz, `spread` samples (at 44.1 kHz) longer than Freeverb's.
    const fn new(spread: usize) -> Self {
        // Whole blocks of ring plus a block of mirror, and every loop at least a block long.
        const { assert!(COMB_LEN >= 3 * BLOCK && COMB_LEN.is_multiple_of(BLOCK) && ALLPASS_LEN >= BLOCK) };
        Self {
            frames: [[0.0; COMBS]; COMB_LEN],
            comb_write: 0,
            comb_len: tuned_lengths(&COMB_TUNINGS, spread, 48_000, COMB_LEN - 2 * BLOCK),
            comb_state: [0.0; COMBS],
            allpasses: [[0.0; ALLPASS_LEN]; ALLPASSES],
            allpass_len: tuned_lengths(&ALLPASS_TUNINGS, spread, 48_000, ALLPASS_LEN),
            allpass_pos: [0; ALLPASSES],
        }
    }

    /// Scales the loop lengths to `fs` (whole hertz), clamped to the capacities.
    fn tune(&mut self, spread: usize, fs: usize) {
        self.comb_len = tuned_lengths(&COMB_TUNINGS, spread, fs, Self::MAX_COMB);
        self.allpass_len = tuned_lengths(&ALLPASS_TUNINGS, spread, fs, ALLPASS_LEN);
    }

    /// Clears every loop, in place.
    fn clear(&mut self) {
        self.frames.fill([0.0; COMBS]);
        for allpass in &mut self.allpasses {
            allpass.fill(0.0);
        }
        self.comb_write = 0;
        self.comb_state = [0.0; COMBS];
        self.allpass_pos = [0; ALLPASSES];
    }

    /// The channel's wet signal for this block (before `WET_SCALE`), into `wet`, from
    /// `comb_input` (the input times its gain, flushed).
    fn wet(&mut self, comb_input: &Block, ramp: &CombRamps, wet: &mut Block) {
        self.combs(comb_input, wet, ramp);
        for ((allpass, &len), pos) in self.allpasses.iter_mut().zip(&self.allpass_len).zip(&mut self.allpass_pos) {
            let (first, second) = ring_split_mut(allpass, len, *pos);
            let (wet_first, wet_second) = wet.split_at_mut(first.len());
            let loud = allpass_run(wet_first, first) | allpass_run(wet_second, second);
            if !loud {
                first.fill(0.0);
                second.fill(0.0);
            }
            *pos = advance(*pos, len);
        }
    }

    /// The comb bank: writes the sum of the eight combs' outputs to `wet`.
    fn combs(&mut self, comb_input: &Block, wet: &mut Block, ramp: &CombRamps) {
        let write = self.comb_write;
        // Split the frames around this block's write run; each comb's read run, its
        // length before, lies wholly before the write run or wholly after it (in the
        // mirror part if it wraps).
        let (before, rest) = self.frames.split_at_mut(write.min(COMB_LEN));
        let (run, after) = rest.split_at_mut(BLOCK.min(rest.len()));
        let (before, after): (&[[f32; COMBS]], &[[f32; COMBS]]) = (before, after);
        let reads: [&[[f32; COMBS]; BLOCK]; COMBS] = core::array::from_fn(|c| {
            let len = self.comb_len[c]; // BLOCK..=MAX_COMB
            let start = if write >= len { write - len } else { write + Self::RING - len };
            let slice = if start + BLOCK <= write {
                before.get(start..start + BLOCK)
            } else {
                after.get(start.wrapping_sub(write + BLOCK)..).and_then(|s| s.get(..BLOCK))
            };
            slice.and_then(|s| s.try_into().ok()).unwrap_or(&SILENT_FRAMES)
        });

        // Steady parameters (the usual case) keep the coefficients out of the loop.
        let (state, peak) = if ramp.feedback.is_flat() && ramp.damp.is_flat() {
            comb_loop::<false>(&reads, run, wet, comb_input, self.comb_state, ramp)
        } else {
            comb_loop::<true>(&reads, run, wet, comb_input, self.comb_state, ramp)
        };
        if peak < LOOP_SILENCE {
            run.fill([0.0; COMBS]);
        }
        self.comb_state = state.map(flush);
        if write == 0 {
            // Refresh the mirror of the ring's first block.
            self.frames.copy_within(0..BLOCK, Self::RING);
        }
        let next = write + BLOCK;
        self.comb_write = if next >= Self::RING { 0 } else { next };
    }
}

#[allow(clippy::new_without_default)] // no Default: a by-value Reverb is a 288 KiB move
impl<const COMB_LEN: usize, const ALLPASS_LEN: usize> Reverb<COMB_LEN, ALLPASS_LEN> {
    /// A silent reverb: room 0.5, damp 0.5, mix 0.3, loops tuned for 48 kHz.
    pub const fn new() -> Self {
        Self {
            channels: [Channel::new(0), Channel::new(STEREO_SPREAD)],
            right_running: false,
            fs_hz: 48_000.0,
            room: 0.5,
            damp: 0.5,
            mix: Glide::new(0.3),
            feedback: Glide::new(0.5 * ROOM_SCALE + ROOM_OFFSET),
            damping: Glide::new(0.5 * DAMP_SCALE),
        }
    }

    /// Sets the sample rate (Hz, positive; others are ignored), scales the loop lengths to
    /// it (clamped to the capacities) and resets (clears the loops, in place).
    pub fn prepare(&mut self, sample_rate_hz: f32) {
        if sample_rate_hz.is_finite() && sample_rate_hz > 0.0 {
            self.fs_hz = sample_rate_hz;
        }
        // Whole hertz: the lengths are whole samples anyway. +0.5 rounds.
        let fs = (self.fs_hz + 0.5) as usize;
        for (channel, spread) in self.channels.iter_mut().zip([0, STEREO_SPREAD]) {
            channel.tune(spread, fs);
        }
        self.reset();
    }

    /// Clears every loop (in place) and primes the glides to the current parameters.
    pub fn reset(&mut self) {
        for channel in &mut self.channels {
            channel.clear();
        }
        self.right_running = false;
        self.feedback.settle();
        self.damping.settle();
        self.mix.settle();
    }

    /// Restores every parameter to its `new()` value (they glide there over a block); the
    /// loops are neither touched nor copied.
    pub fn set_defaults(&mut self) {
        for (index, spec) in DESCRIPTION.params.iter().enumerate() {
            self.set_param(index as u8, spec.default);
        }
    }

    /// Room size, linear 0.0..=1.0 (default 0.5): comb feedback 0.7..=0.98, longer decay;
    /// glides over a block. Clamped; non-finite ignored.
    pub fn set_room(&mut self, room: f32) {
        if room.is_finite() {
            self.room = DESCRIPTION.clamp(ROOM, room);
            self.feedback.set(self.room * ROOM_SCALE + ROOM_OFFSET);
        }
    }

    /// High-frequency damping, linear 0.0..=1.0 (default 0.5): 1 darkens the tail most;
    /// glides over a block. Clamped; non-finite ignored.
    pub fn set_damp(&mut self, damp: f32) {
        if damp.is_finite() {
            self.damp = DESCRIPTION.clamp(DAMP, damp);
            self.damping.set(self.damp * DAMP_SCALE);
        }
    }

    /// Dry/wet mix, linear 0.0..=1.0 (default 0.3): 0 is dry only, 1 wet only; glides over
    /// a block. Clamped; non-finite ignored.
    pub fn set_mix(&mut self, mix: f32) {
        if mix.is_finite() {
            self.mix.set(DESCRIPTION.clamp(MIX, mix));
        }
    }

    /// Sets parameter `index` of [`DESCRIPTION`] (others are ignored).
    pub fn set_param(&mut self, index: u8, value: f32) {
        match index {
            ROOM => self.set_room(value),
            DAMP => self.set_damp(value),
            MIX => self.set_mix(value),
            _ => {}
        }
    }

    /// Writes the left channel, `dry * (1 - mix) + wet * mix`, to `out` and, given `sides`,
    /// the left and right channels to them. The dry part of a side is `input` plus that
    /// side's own input (`left`, `right`); both sides' loops take the sum of the two, as
    /// Freeverb's do. Unpatched inputs are silence (the tail still rings out). A NaN or
    /// infinite input sample reaches only its own output sample: what enters the loops is
    /// flushed. Without `sides` the right channel's loops stand still (and start empty when
    /// it runs again): a reverb heard in mono costs what it did before it had two channels.
    pub fn process(
        &mut self,
        input: Option<&Block>,
        left: Option<&Block>,
        right: Option<&Block>,
        out: &mut Block,
        sides: Option<&mut StereoBlock>,
    ) {
        let input = input.unwrap_or(&SILENCE);
        if left.is_none() && right.is_none() {
            // The input is flushed once here, for all loops: no NaN or inf gets in.
            let comb_input: Block = core::array::from_fn(|i| flush(input[i] * INPUT_GAIN));
            self.render(input, input, &comb_input, out, sides);
        } else {
            let side = |s: Option<&Block>| -> Block { core::array::from_fn(|i| input[i] + s.map_or(0.0, |s| s[i])) };
            let (l, r) = (side(left), side(right));
            let comb_input: Block = core::array::from_fn(|i| flush((l[i] + r[i]) * STEREO_INPUT_GAIN));
            self.render(&l, &r, &comb_input, out, sides);
        }
    }

    /// The block from the dry sides and what the loops take: see [`Reverb::process`].
    fn render(
        &mut self,
        dry_left: &Block,
        dry_right: &Block,
        comb_input: &Block,
        out: &mut Block,
        sides: Option<&mut StereoBlock>,
    ) {
        let ramp = CombRamps { feedback: self.feedback.next_block(), damp: self.damping.next_block() };
        let mix = self.mix.next_block();
        let [left_loops, right_loops] = &mut self.channels;
        let mut wet = [0.0f32; BLOCK];
        left_loops.wet(comb_input, &ramp, &mut wet);
        mix_out(dry_left, &wet, mix, out);
        match sides {
            Some(sides) => {
                if !self.right_running {
                    right_loops.clear();
                    self.right_running = true;
                }
                sides[0] = *out;
                right_loops.wet(comb_input, &ramp, &mut wet);
                mix_out(dry_right, &wet, mix, &mut sides[1]);
            }
            None => self.right_running = false,
        }
    }
}

/// `dry * (1 - mix) + wet * WET_SCALE * mix`, mix ramped over the block.
fn mix_out(dry: &Block, wet: &Block, mix: Ramp, out: &mut Block) {
    for (i, ((o, x), w)) in out.iter_mut().zip(dry).zip(wet).enumerate() {
        let mix = mix.at(i);
        // This form keeps mix 0 exactly dry.
        *o = x * (1.0 - mix) + (w * WET_SCALE) * mix;
    }
}

/// This block's ramps of comb feedback and damping coefficient. The comb loop steps them by
/// accumulation (`start + step + step ...`), not by index as [`Ramp::at`]: the loop carries
/// the state anyway, and that is the arithmetic the firmware's checksum was recorded with.
struct CombRamps {
    feedback: Ramp,
    damp: Ramp,
}

/// The comb bank's block, sample-major: comb c's taps are `reads[c][i][c]`; writes the new
/// frames to `run` and the sum of the taps to `wet`. The eight combs are two explicit
/// four-lane halves, the shape LLVM turns into SIMD. Returns the new damping states and
/// the largest magnitude written.
///
/// Each comb's state is feedback times Freeverb's `filterstore`:
/// `state = feedback * (1 - damp) * tap + damp * state`, and the loop is written `input + state`.
#[inline(always)]
fn comb_loop<const RAMP: bool>(
    reads: &[&[[f32; COMBS]; BLOCK]; COMBS],
    run: &mut [[f32; COMBS]],
    wet: &mut Block,
    comb_input: &Block,
    state: [f32; COMBS],
    ramp: &CombRamps,
) -> ([f32; COMBS], f32) {
    let [s0, s1, s2, s3, s4, s5, s6, s7] = state;
    let (mut lo, mut hi) = ([s0, s1, s2, s3], [s4, s5, s6, s7]);
    // Peaks by compare-and-select per lane: vectorises, where f32::max's NaN rules would
    // chain every sample's maximum onto the last.
    let (mut peak_lo, mut peak_hi) = ([0.0f32; 4], [0.0f32; 4]);
    let (mut feedback, mut damp) = (ramp.feedback.start, ramp.damp.start);
    let mut gain = feedback * (1.0 - damp);
    for (i, ((frame, w), &x)) in run.iter_mut().zip(wet.iter_mut()).zip(comb_input).enumerate() {
        if RAMP {
            feedback += ramp.feedback.step;
            damp += ramp.damp.step;
            gain = feedback * (1.0 - damp);
        }
        let t_lo = [reads[0][i][0], reads[1][i][1], reads[2][i][2], reads[3][i][3]];
        let t_hi = [reads[4][i][4], reads[5][i][5], reads[6][i][6], reads[7][i][7]];
        for j in 0..4 {
            lo[j] = t_lo[j] * gain + lo[j] * damp;
            hi[j] = t_hi[j] * gain + hi[j] * damp;
        }
        let f_lo = [x + lo[0], x + lo[1], x + lo[2], x + lo[3]];
        let f_hi = [x + hi[0], x + hi[1], x + hi[2], x + hi[3]];
        *frame = [f_lo[0], f_lo[1], f_lo[2], f_lo[3], f_hi[0], f_hi[1], f_hi[2], f_hi[3]];
        for j in 0..4 {
            let (a, b) = (f_lo[j].abs(), f_hi[j].abs());
            peak_lo[j] = if a > peak_lo[j] { a } else { peak_lo[j] };
            peak_hi[j] = if b > peak_hi[j] { b } else { peak_hi[j] };
        }
        // Freeverb's output is the sum of the comb reads, before damping.
        let v = [t_lo[0] + t_hi[0], t_lo[1] + t_hi[1], t_lo[2] + t_hi[2], t_lo[3] + t_hi[3]];
        *w = (v[0] + v[2]) + (v[1] + v[3]);
    }
    let peak = peak_lo.iter().chain(&peak_hi).fold(0.0f32, |m, &p| if p > m { p } else { m });
    ([lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]], peak)
}

/// Freeverb's allpass over a run, in place: out = buffered - in; buffer = in + 0.5 buffered.
/// Returns whether anything written reached LOOP_SILENCE.
#[inline(always)]
fn allpass_run(signal: &mut [f32], buf: &mut [f32]) -> bool {
    let mut loud = false;
    for (x, b) in signal.iter_mut().zip(buf) {
        let buffered = *b;
        *b = *x + buffered * ALLPASS_FEEDBACK;
        *x = buffered - *x;
        loud |= b.abs() >= LOOP_SILENCE;
    }
    loud
}

/// Loop lengths for `tunings` plus `spread` (samples at 44.1 kHz) at `fs_hz`, rounded,
/// clamped to BLOCK..=`capacity`.
const fn tuned_lengths<const N: usize>(
    tunings: &[usize; N],
    spread: usize,
    fs_hz: usize,
    capacity: usize,
) -> [usize; N] {
    let mut lengths = [0; N];
    let mut i = 0;
    while i < N {
        let scaled = ((tunings[i] + spread) * fs_hz + TUNING_RATE_HZ / 2) / TUNING_RATE_HZ;
        lengths[i] = if scaled < BLOCK {
            BLOCK
        } else if scaled > capacity {
            capacity
        } else {
            scaled
        };
        i += 1;
    }
    lengths
}

/// `pos` one block on around a loop of `len` (`len` >= BLOCK): a compare, not a modulo.
fn advance(pos: usize, len: usize) -> usize {
    let next = pos + BLOCK;
    if next >= len { next - len } else { next }
}

/// The BLOCK positions from `pos` around the first `len` samples of `buf` (BLOCK <= `len`
/// <= `buf.len()`, `pos` < `len`), as the part before the wrap and the part after it.
fn ring_split_mut(buf: &mut [f32], len: usize, pos: usize) -> (&mut [f32], &mut [f32]) {
    let (ring, _) = buf.split_at_mut(len.min(buf.len()));
    let (head, tail) = ring.split_at_mut(pos.min(ring.len()));
    let (first, _) = tail.split_at_mut(BLOCK.min(tail.len()));
    let (second, _) = head.split_at_mut((BLOCK - first.len()).min(head.len()));
    (first, second)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use proptest::prelude::*;

    fn prepared(room: f32, damp: f32, mix: f32) -> Box<HostReverb> {
        let mut r = Box::new(HostReverb::new());
        r.set_room(room);
        r.set_damp(damp);
        r.set_mix(mix);
        r.prepare(FS);
        r
    }

    fn through<const C: usize, const A: usize>(r: &mut Reverb<C, A>, x: &[f32]) -> Vec<f32> {
        run_through(x, |b| {
            let input = *b;
            r.process(Some(&input), None, None, b, None)
        })
    }

    fn impulse(seconds: f32) -> Vec<f32> {
        let mut x = vec![0.0; (seconds * FS) as usize];
        x[0] = 1.0;
        x
    }

    /// Reverberation time by Schroeder backward integration: the -5..-35 dB slope of the
    /// energy decay curve, extrapolated to 60 dB (T30), seconds.
    fn rt60_s(ir: &[f32]) -> f32 {
        let mut edc = vec![0.0f64; ir.len()];
        let mut sum = 0.0f64;
        for i in (0..ir.len()).rev() {
            sum += (ir[i] as f64).powi(2);
            edc[i] = sum;
        }
        let db = |i: usize| 10.0 * (edc[i] / edc[0]).log10();
        let t5 = (0..ir.len()).position(|i| db(i) < -5.0).unwrap_or(0);
        let t35 = (0..ir.len()).position(|i| db(i) < -35.0).unwrap_or(ir.len());
        (2.0 * (t35 - t5) as f64 / FS as f64) as f32
    }

    /// Freeverb's per-comb decay: 60 dB over the comb feedback's loss per trip round the
    /// mean comb loop, seconds (the low-frequency RT60 of the comb bank).
    fn comb_rt60_s(room: f32) -> f32 {
        let feedback = (room * ROOM_SCALE + ROOM_OFFSET) as f64;
        let mean_len: f64 = COMB_TUNINGS.iter().map(|&t| t as f64 * 48_000.0 / 44_100.0).sum::<f64>() / 8.0;
        (-3.0 * mean_len / (48_000.0 * feedback.log10())) as f32
    }

    /// Freeverb as Jezar wrote it (revmodel, comb and allpass processing), mono, sample by
    /// sample with one ring per loop: the reference the block-wise layout must match.
    fn reference_wet(x: &[f32], room: f32, damp: f32) -> Vec<f32> {
        let feedback = room * ROOM_SCALE + ROOM_OFFSET;
        let damp1 = damp * DAMP_SCALE;
        let damp2 = 1.0 - damp1;
        let lengths = tuned_lengths(&COMB_TUNINGS, 0, 48_000, 4096);
        let mut combs: Vec<(Vec<f32>, usize, f32)> = lengths.iter().map(|&l| (vec![0.0; l], 0, 0.0)).collect();
        let lengths = tuned_lengths(&ALLPASS_TUNINGS, 0, 48_000, 1024);
        let mut allpasses: Vec<(Vec<f32>, usize)> = lengths.iter().map(|&l| (vec![0.0; l], 0)).collect();
        x.iter()
            .map(|&x| {
                let input = x * INPUT_GAIN;
                let mut out = 0.0;
                for (buf, idx, filterstore) in &mut combs {
                    let output = buf[*idx];
                    *filterstore = output * damp2 + *filterstore * damp1;
                    buf[*idx] = input + *filterstore * feedback;
                    *idx = (*idx + 1) % buf.len();
                    out += output;
                }
                for (buf, idx) in &mut allpasses {
                    let bufout = buf[*idx];
                    let output = -out + bufout;
                    buf[*idx] = out + bufout * ALLPASS_FEEDBACK;
                    *idx = (*idx + 1) % buf.len();
                    out = output;
                }
                out * WET_SCALE
            })
            .collect()
    }

    /// Deterministic white noise in -amplitude..amplitude (a 32-bit LCG).
    fn noise(amplitude: f32, seconds: f32) -> Vec<f32> {
        let mut seed = 0x1234_5678u32;
        (0..(seconds * FS) as usize)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                amplitude * ((seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0)
            })
            .collect()
    }

    #[test]
    fn matches_freeverb_sample_by_sample() {
        for (room, damp) in [(0.5, 0.5), (0.95, 0.0), (0.1, 1.0)] {
            let x = noise(0.5, 2.0);
            let mut r = prepared(room, damp, 1.0);
            let y = through(&mut *r, &x);
            let reference = reference_wet(&x, room, damp);
            let diff = diff_peak_db(&y, &reference);
            eprintln!(
                "reverb room {room} damp {damp}: differs from Freeverb by {diff:.1} dB (wet peak {:.1} dB)",
                peak_db(&y)
            );
            // -100 dB: the only difference is rounding (feedback folded into the damper state).
            assert!(diff < -100.0, "room {room} damp {damp}: {diff} dB");
        }
    }

    #[test]
    fn decay_time_grows_with_room_size() {
        let mut times = Vec::new();
        for room in [0.3, 0.6, 0.9] {
            let mut r = prepared(room, 0.0, 1.0);
            let ir = through(&mut *r, &impulse(12.0));
            let t = rt60_s(&ir);
            let theory = comb_rt60_s(room);
            eprintln!("reverb room {room}, damp 0: RT60 {t:.2} s (comb theory {theory:.2} s)");
            // 15%: the comb lengths spread +-15% around their mean, and the allpasses smear.
            assert!((t / theory - 1.0).abs() < 0.15, "room {room}: RT60 {t} s vs {theory} s");
            times.push(t);
        }
        assert!(times[0] < times[1] && times[1] < times[2], "{times:?}");
        assert!(times[2] > 3.0 * times[0]);
    }

    #[test]
    fn damping_reduces_the_high_frequencies_of_the_tail() {
        let mut hf_minus_lf = Vec::new();
        for damp in [0.0, 1.0] {
            let mut r = prepared(0.8, damp, 1.0);
            let ir = through(&mut *r, &impulse(1.5));
            // The tail from 0.2 s (after the early echoes), 2^15 samples.
            let s = spectrum_db(&ir[9600..9600 + 32768]);
            let band_db = |lo: f32, hi: f32| {
                let bin = |hz: f32| (hz * 32768.0 / FS) as usize;
                let power: f64 = s[bin(lo)..bin(hi)].iter().map(|&d| 10f64.powf(d as f64 / 10.0)).sum();
                10.0 * power.log10()
            };
            let diff = (band_db(5000.0, 10_000.0) - band_db(200.0, 1000.0)) as f32;
            eprintln!("reverb damp {damp}: tail 5-10 kHz minus 0.2-1 kHz = {diff:.1} dB");
            hf_minus_lf.push(diff);
        }
        // Damp 1 (a one-pole at coefficient 0.4 in each loop) loses far more treble per trip.
        assert!(hf_minus_lf[1] < hf_minus_lf[0] - 10.0, "{hf_minus_lf:?}");
    }

    #[test]
    fn mix_0_is_dry_exactly() {
        let x = sine(440.0, 0.8, 0.5);
        let mut r = prepared(0.9, 0.2, 0.0);
        assert_eq!(through(&mut *r, &x), x);
    }

    #[test]
    fn silence_in_silence_out_and_the_tail_flushes_to_exactly_zero() {
        let mut r = prepared(0.5, 0.5, 0.5);
        let y = render_s(0.5, |b| r.process(None, None, None, b, None));
        assert!(y.iter().all(|&v| v == 0.0));
        let _ = through(&mut *r, &sine(300.0, 1.0, 0.5));
        let tail = render_s(30.0, |b| r.process(None, None, None, b, None));
        let last_nonzero = tail.iter().rposition(|&v| v != 0.0).unwrap_or(0);
        eprintln!("reverb room 0.5: tail exactly 0.0 after {:.1} s", last_nonzero as f32 / FS);
        // Comb feedback 0.84 over ~31 ms loops: 1e-30 (-600 dB) is reached in ~12 s.
        assert!(last_nonzero < (20.0 * FS) as usize);
        assert!(
            r.channels[0].frames.iter().flatten().chain(r.channels[0].allpasses.iter().flatten()).all(|&v| v == 0.0)
        );
        assert_eq!(r.channels[0].comb_state, [0.0; COMBS]);
    }

    #[test]
    fn nan_input_does_not_poison_the_tail() {
        let mut r = prepared(0.7, 0.3, 0.5);
        let mut x = sine(300.0, 0.5, 1.0);
        x[1000] = f32::NAN;
        x[5000] = f32::INFINITY;
        let y = through(&mut *r, &x);
        let bad: Vec<usize> = (0..y.len()).filter(|&i| !y[i].is_finite()).collect();
        assert_eq!(bad, vec![1000, 5000]);
    }

    #[test]
    fn room_damp_and_mix_jumps_have_no_click() {
        type Change = fn(&mut HostReverb);
        let changes: [(&str, Change); 6] = [
            ("room -> 1", |r| r.set_room(1.0)),
            ("room -> 0", |r| r.set_room(0.0)),
            ("damp -> 1", |r| r.set_damp(1.0)),
            ("damp -> 0", |r| r.set_damp(0.0)),
            ("mix -> 1", |r| r.set_mix(1.0)),
            ("mix -> 0", |r| r.set_mix(0.0)),
        ];
        for (name, change) in changes {
            let mut r = prepared(0.5, 0.5, 0.5);
            // 440 Hz: a steady tone comes out of Freeverb ~6 dB above the dry level, so a mix
            // jump is a level jump; at 440 Hz the 64-sample crossfade's slope stays below
            // the tone's own. (At 120 Hz, on a comb resonance, the wet is +9 dB.)
            let x = sine(440.0, 0.5, 2.0);
            let mut n = 0;
            let y = run_through(&x, |b| {
                if n == 1000 {
                    change(&mut r);
                }
                n += 1;
                let input = *b;
                r.process(Some(&input), None, None, b, None)
            });
            let steady = max_step(&y[800 * BLOCK..1000 * BLOCK]).max(max_step(&y[1300 * BLOCK..]));
            let around = max_step(&y[999 * BLOCK..1002 * BLOCK]);
            assert!(around <= 2.0 * steady, "{name}: step {around} vs steady {steady}");
        }
    }

    #[test]
    fn reset_reproduces_the_first_render() {
        let mut r = prepared(0.6, 0.4, 0.5);
        let x = sine(330.0, 0.7, 0.5);
        let render = |r: &mut HostReverb| {
            let mut n = 0;
            run_through(&x, |b| {
                if n == 50 {
                    r.set_room(0.9);
                }
                n += 1;
                let input = *b;
                r.process(Some(&input), None, None, b, None)
            })
        };
        let a = render(&mut r);
        r.set_room(0.6);
        r.reset();
        let b = render(&mut r);
        assert_eq!(a, b);
    }

    #[test]
    fn lengths_scale_with_the_rate_and_clamp_to_the_capacity() {
        let mut r = prepared(0.5, 0.5, 0.3);
        assert_eq!(r.channels[0].comb_len, [1215, 1293, 1390, 1476, 1548, 1623, 1695, 1760]);
        assert_eq!(r.channels[0].allpass_len, [605, 480, 371, 245]);
        r.prepare(44_100.0);
        assert_eq!(r.channels[0].comb_len, COMB_TUNINGS);
        assert_eq!(r.channels[0].allpass_len, ALLPASS_TUNINGS);
        r.prepare(96_000.0);
        assert_eq!(r.channels[0].comb_len[7], 3520);
        let mut f = Box::new(FirmwareReverb::new());
        assert_eq!(f.channels[0].comb_len, [1215, 1293, 1390, 1476, 1548, 1623, 1695, 1760]);
        f.prepare(96_000.0);
        assert!(f.channels[0].comb_len.iter().all(|&l| l <= 1920));
        assert_eq!(f.channels[0].comb_len[7], 1920);
    }

    #[test]
    fn set_defaults_restores_parameters_and_keeps_the_loops() {
        let mut r = prepared(0.9, 0.1, 1.0);
        let _ = through(&mut *r, &sine(300.0, 0.5, 0.2));
        let frames = r.channels[0].frames;
        r.set_defaults();
        assert_eq!((r.room, r.damp, r.mix.target()), (0.5, 0.5, 0.3));
        assert_eq!(r.channels[0].frames, frames);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Room(f32),
        Damp(f32),
        Mix(f32),
        Process(Option<f32>),
        Defaults,
        Reset,
    }

    fn any_value() -> impl Strategy<Value = f32> {
        with_gremlins(-1.0f32..2.0)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => any_value().prop_map(Op::Room),
            1 => any_value().prop_map(Op::Damp),
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
            let mut r = Box::new(FirmwareReverb::new());
            r.prepare(FS);
            for (k, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Room(v) => r.set_room(v),
                    Op::Damp(v) => r.set_damp(v),
                    Op::Mix(v) => r.set_mix(v),
                    Op::Defaults => r.set_defaults(),
                    Op::Reset => r.reset(),
                    Op::Process(amplitude) => {
                        let x = amplitude.map(|a| -> Block { core::array::from_fn(|i| a * ((i + k) as f64 * 0.3).sin() as f32) });
                        let mut out = [f32::NAN; BLOCK];
                        r.process(x.as_ref(), None, None, &mut out, None);
                        prop_assert!(out.iter().all(|v| v.is_finite() && v.abs() < 100.0), "{:?}", out);
                    }
                }
            }
        }
    }
}
