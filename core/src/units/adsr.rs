//! ADSR envelope: linear attack, exponential decay and release that aim past their end level
//! (the "target ratio" of Nigel Redmon, EarLevel Engineering, "Envelope generators", 2013)
//! so each stage lands exactly on its end level at its set time, with no step and no tail.
//!
//! Each stage is rendered in closed form from the point where it was anchored (its start, or
//! the last parameter change): the attack as `start + step * n`, decay and release as
//! `target + distance * c^n`, with c^n = exp(n ln c) once per block and a table of
//! c^1..=c^64 inside it. So a block costs one multiply-add per sample with no loop-carried
//! dependency (LLVM vectorises it), and rounding never accumulates from block to block:
//! a 60 s stage still lands within a few samples of 60 s.
use crate::block::{BLOCK, Block};
use crate::describe::{Curve, OUT, ParamSpec, Port, UnitDescription};
use crate::dsp::{flush, math};

/// The adsr as the protocol sees it.
pub const DESCRIPTION: UnitDescription = UnitDescription {
    name: "adsr",
    inputs: &[Port::with_note("gate", "high above 0.5")],
    outputs: &OUT,
    params: &[
        ParamSpec::num("attack_s", &["attack"], "s", (0.0005, 60.0), 0.01, Curve::Exponential),
        ParamSpec::num("decay_s", &["decay"], "s", (0.0005, 60.0), 0.1, Curve::Exponential),
        ParamSpec::num("sustain", &[], "", (0.0, 1.0), 0.7, Curve::Linear),
        ParamSpec::num("release_s", &["release"], "s", (0.0005, 60.0), 0.2, Curve::Exponential),
        ParamSpec::num("gate", &[], "", (0.0, 1.0), 0.0, Curve::Linear).noted("on above 0.5").unpatchable(),
    ],
};
/// Input port index.
pub const GATE_IN: usize = DESCRIPTION.input("gate");
const ATTACK_S: u8 = DESCRIPTION.param("attack_s");
const DECAY_S: u8 = DESCRIPTION.param("decay_s");
const SUSTAIN: u8 = DESCRIPTION.param("sustain");
const RELEASE_S: u8 = DESCRIPTION.param("release_s");
const GATE: u8 = DESCRIPTION.param("gate");

/// Decay and release aim this fraction of their distance beyond their end level and stop
/// when they reach it: the curve is within 0.1% of its distance one time constant before.
const TARGET_RATIO: f32 = 0.001;

// The gate parameter keeps one bit a sample of the block.
const _: () = assert!(BLOCK <= u64::BITS as usize);

/// ln((1 + TARGET_RATIO) / TARGET_RATIO) = ln(1001): the log-decay over one stage time, so
/// `(distance + overshoot) * c^N = overshoot` lands on the end level after N samples.
const LN_OVERSHOOT: f32 = 6.908_755;

/// Where the envelope is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Idle,
    Attack,
    Decay,
    Sustain,
    Release,
}

/// Attack-decay-sustain-release envelope generator, output 0.0..=1.0.
#[derive(Clone, Debug)]
pub struct Adsr {
    fs_hz: f32,
    attack_s: f32,
    decay_s: f32,
    /// Sustain level, linear 0.0..=1.0.
    sustain: f32,
    release_s: f32,
    /// The gate parameter as the next block starts (on when set with a value above 0.5).
    gate: bool,
    /// Samples of the next block where the gate parameter changes, bit i for sample i
    /// ([`Adsr::set_gate_at`]; an untimed change is at sample 0).
    gate_changes: u64,
    /// The value it changes to at each of those samples, bit i for sample i.
    gate_values: u64,
    /// A time or the sample rate changed: the coefficients below are recomputed next block.
    coefs_stale: bool,
    /// Attack rise per sample, 1 / (attack_s * fs).
    attack_step: f32,
    /// ln of the decay coefficient c (per sample, negative).
    decay_log: f32,
    /// `decay_pow[k]` = c^(k + 1) for the decay coefficient c.
    decay_pow: [f32; BLOCK],
    /// ln of the release coefficient c (per sample, negative).
    release_log: f32,
    /// `release_pow[k]` = c^(k + 1) for the release coefficient c.
    release_pow: [f32; BLOCK],
    stage: Stage,
    level: f32,
    /// Effective gate at the last sample (parameter or input).
    gate_was: bool,
    /// Attack: the level at the anchor. Decay, release: the distance from `target` there.
    anchor: f32,
    /// Samples rendered since the anchor.
    elapsed: u32,
    /// Decay: sustain - overshoot. Release: -TARGET_RATIO times the level it started from,
    /// so a release takes release_s from any level.
    target: f32,
    /// Per-sample glide toward a changed sustain level in this block.
    sustain_step: f32,
}

impl Default for Adsr {
    fn default() -> Self {
        Self::new()
    }
}

impl Adsr {
    /// An envelope with attack 10 ms, decay 100 ms, sustain 0.7, release 200 ms, gate off.
    pub const fn new() -> Self {
        Self {
            fs_hz: 48_000.0,
            attack_s: 0.01,
            decay_s: 0.1,
            sustain: 0.7,
            release_s: 0.2,
            gate: false,
            gate_changes: 0,
            gate_values: 0,
            coefs_stale: true,
            attack_step: 0.0,
            decay_log: 0.0,
            decay_pow: [0.0; BLOCK],
            release_log: 0.0,
            release_pow: [0.0; BLOCK],
            stage: Stage::Idle,
            level: 0.0,
            gate_was: false,
            anchor: 0.0,
            elapsed: 0,
            target: 0.0,
            sustain_step: 0.0,
        }
    }

    /// Sets the sample rate (Hz, positive; others are ignored), recomputes the stage
    /// coefficients and resets.
    pub fn prepare(&mut self, sample_rate_hz: f32) {
        if sample_rate_hz.is_finite() && sample_rate_hz > 0.0 {
            self.fs_hz = sample_rate_hz;
        }
        self.update_coefs();
        self.reset();
    }

    /// Back to level 0, idle, gate seen as off (a gate parameter still on starts an attack
    /// at the next block). Parameters are kept.
    pub fn reset(&mut self) {
        self.stage = Stage::Idle;
        self.level = 0.0;
        self.gate_was = false;
        self.anchor = 0.0;
        self.elapsed = 0;
        self.target = 0.0;
        self.sustain_step = 0.0;
    }

    /// Attack time from 0 to 1, seconds, 0.0005..=60.0 (default 0.01). Clamped; non-finite ignored.
    pub fn set_attack_s(&mut self, seconds: f32) {
        if seconds.is_finite() {
            self.attack_s = DESCRIPTION.clamp(ATTACK_S, seconds);
            self.coefs_stale = true;
        }
    }

    /// Decay time from 1 to the sustain level, seconds, 0.0005..=60.0 (default 0.1).
    /// Clamped; non-finite ignored.
    pub fn set_decay_s(&mut self, seconds: f32) {
        if seconds.is_finite() {
            self.decay_s = DESCRIPTION.clamp(DECAY_S, seconds);
            self.coefs_stale = true;
        }
    }

    /// Sustain level, linear 0.0..=1.0 (default 0.7); a sustaining envelope glides to it over
    /// the next block. Clamped; non-finite ignored.
    pub fn set_sustain(&mut self, level: f32) {
        if level.is_finite() {
            self.sustain = DESCRIPTION.clamp(SUSTAIN, level);
        }
    }

    /// Release time from any level to 0, seconds, 0.0005..=60.0 (default 0.2).
    /// Clamped; non-finite ignored.
    pub fn set_release_s(&mut self, seconds: f32) {
        if seconds.is_finite() {
            self.release_s = DESCRIPTION.clamp(RELEASE_S, seconds);
            self.coefs_stale = true;
        }
    }

    /// Gate parameter: on when `gate` > 0.5 (NaN is off), default off. Applies from the next block.
    pub fn set_gate(&mut self, gate: f32) {
        self.set_gate_at(gate, 0);
    }

    /// As [`Adsr::set_gate`], from sample `frame` of the next block on (0..BLOCK; later
    /// frames count as the last), until a change timed to a later sample: a timed note
    /// starts or ends at its sample, not at the block's start, whatever order the changes
    /// of one block come in (two at one sample: the last made wins).
    pub fn set_gate_at(&mut self, gate: f32, frame: usize) {
        let bit = 1u64 << frame.min(BLOCK - 1);
        self.gate_changes |= bit;
        self.gate_values = if gate > 0.5 { self.gate_values | bit } else { self.gate_values & !bit };
    }

    /// Sets parameter `index` of [`DESCRIPTION`] (others are ignored); the gate from the
    /// next block's start.
    pub fn set_param(&mut self, index: u8, value: f32) {
        self.set_param_at(index, value, 0);
    }

    /// As [`Adsr::set_param`], timed to sample `frame` of the next block: the gate opens or
    /// closes there ([`Adsr::set_gate_at`]); the other parameters apply from the block's start.
    pub fn set_param_at(&mut self, index: u8, value: f32, frame: usize) {
        match index {
            ATTACK_S => self.set_attack_s(value),
            DECAY_S => self.set_decay_s(value),
            SUSTAIN => self.set_sustain(value),
            RELEASE_S => self.set_release_s(value),
            GATE => self.set_gate_at(value, frame),
            _ => {}
        }
    }

    /// The gate parameter at each sample of the next block, bit i for sample i.
    fn gate_mask(&self) -> u64 {
        let all = |on: bool| if on { u64::MAX } else { 0 };
        match self.gate_changes {
            0 => all(self.gate),
            1 => all(self.gate_values & 1 == 1),
            changes => {
                let (mut on, mut mask) = (self.gate, 0);
                for i in 0..BLOCK {
                    if changes >> i & 1 == 1 {
                        on = self.gate_values >> i & 1 == 1;
                    }
                    mask |= u64::from(on) << i;
                }
                mask
            }
        }
    }

    /// Writes the envelope, 0.0..=1.0, to `out`. The gate at each sample is the gate
    /// parameter OR `gate` input sample > 0.5 (unpatched: the parameter alone). A gate-on
    /// attacks from the current level; a gate-off releases from the current level.
    pub fn process(&mut self, gate: Option<&Block>, out: &mut Block) {
        let sustain = self.sustain;
        if self.coefs_stale {
            self.update_coefs();
            self.anchor_here(sustain); // the new rate continues from the current level
        }
        // A decay at or below a raised sustain level hands over to the sustain glide; a
        // decay toward a changed sustain level continues from where it is.
        if self.stage == Stage::Decay {
            if self.level <= sustain {
                self.stage = Stage::Sustain;
            } else if self.target != decay_target(sustain) {
                self.anchor_here(sustain);
            }
        }
        self.sustain_step =
            if self.stage == Stage::Sustain { (sustain - self.level) * (1.0 / BLOCK as f32) } else { 0.0 };

        // A gate that does not change within the block (the usual case) is rendered in one
        // run; counting is vectorisable where scanning for the changes is not.
        let param = self.gate_mask();
        let uniform_gate = match (gate, param) {
            (_, u64::MAX) => Some(true),
            (None, 0) => Some(false),
            (Some(input), 0) => match input.iter().filter(|&&g| g > 0.5).count() {
                0 => Some(false),
                BLOCK => Some(true),
                _ => None,
            },
            _ => None, // the parameter changes within the block
        };
        let on_at = |i: usize| param >> i & 1 == 1 || gate.is_some_and(|input| input[i] > 0.5);

        let mut i = 0;
        while i < BLOCK {
            let (gate_on, run_end) = match uniform_gate {
                Some(on) => (on, BLOCK),
                None => {
                    let on = on_at(i);
                    (on, (i + 1..BLOCK).find(|&j| on_at(j) != on).unwrap_or(BLOCK))
                }
            };
            if gate_on != self.gate_was {
                self.gate_was = gate_on;
                self.stage = if gate_on { Stage::Attack } else { Stage::Release };
                self.target = -TARGET_RATIO * self.level; // used by a release only
                self.anchor_here(sustain);
            }
            // Always renders at least one sample, so the loop ends.
            i = self.render(out, i, run_end.min(BLOCK), sustain);
        }
        if self.stage == Stage::Sustain {
            self.level = sustain; // the glide's end, exact
        }
        self.level = flush(self.level);
        // The parameter holds its last sample's value from the next block on.
        self.gate = param >> (BLOCK - 1) & 1 == 1;
        self.gate_changes = 0;
    }

    /// Restarts the closed form of the current stage from the current level.
    fn anchor_here(&mut self, sustain: f32) {
        self.elapsed = 0;
        match self.stage {
            Stage::Attack => self.anchor = self.level,
            Stage::Decay => {
                self.target = decay_target(sustain);
                self.anchor = self.level - self.target;
            }
            Stage::Release => self.anchor = self.level - self.target,
            Stage::Idle | Stage::Sustain => {}
        }
    }

    /// Renders the current stage into `out[start..end]`, stopping after the sample where the
    /// stage reaches its end level. Returns the index of the next sample to render.
    fn render(&mut self, out: &mut Block, start: usize, end: usize, sustain: f32) -> usize {
        let Some(run) = out.get_mut(start..end) else {
            return BLOCK;
        };
        let level = self.level;
        let elapsed = self.elapsed as f32; // exact below 2^24 samples (349 s at 48 kHz)
        // (end level, next stage, whether the stage falls to its end level)
        let finish = match self.stage {
            Stage::Idle => {
                run.fill(0.0);
                None
            }
            Stage::Sustain => {
                let step = self.sustain_step;
                for (k, o) in run.iter_mut().enumerate() {
                    *o = level + step * (k as i32 + 1) as f32;
                }
                None
            }
            Stage::Attack => {
                let (from, step) = (self.anchor, self.attack_step);
                for (k, o) in run.iter_mut().enumerate() {
                    *o = from + step * (elapsed + (k as i32 + 1) as f32);
                }
                Some((1.0, Stage::Decay, false))
            }
            Stage::Decay => {
                exponential(run, self.target, self.anchor, self.decay_log, elapsed, &self.decay_pow);
                Some((sustain, Stage::Sustain, true))
            }
            Stage::Release => {
                exponential(run, self.target, self.anchor, self.release_log, elapsed, &self.release_pow);
                Some((0.0, Stage::Idle, true))
            }
        };
        let last = run.last().copied().unwrap_or(level);
        if let Some((end_level, next, falling)) = finish {
            let reached = |y: f32| {
                if falling { y <= end_level } else { y >= end_level }
            };
            // The stages are monotonic: check the last sample, and only then find the first.
            if reached(last)
                && let Some(k) = run.iter().position(|&y| reached(y))
            {
                if let Some(o) = run.get_mut(k) {
                    *o = end_level;
                }
                self.level = end_level;
                self.stage = next;
                self.sustain_step = 0.0; // a decay lands exactly on the sustain level
                self.anchor_here(sustain);
                return start + k + 1;
            }
        }
        self.level = last;
        self.elapsed = self.elapsed.saturating_add(run.len() as u32);
        end
    }

    /// Recomputes the attack step and the decay and release coefficients for the current
    /// times and sample rate (libm `exp`, only when one of them changed).
    fn update_coefs(&mut self) {
        self.attack_step = 1.0 / (self.attack_s * self.fs_hz);
        self.decay_log = -LN_OVERSHOOT / (self.decay_s * self.fs_hz);
        power_table(&mut self.decay_pow, self.decay_log);
        self.release_log = -LN_OVERSHOOT / (self.release_s * self.fs_hz);
        power_table(&mut self.release_pow, self.release_log);
        self.coefs_stale = false;
    }
}

/// Where a decay toward `sustain` aims: past it by TARGET_RATIO of the full decay (1 - sustain).
fn decay_target(sustain: f32) -> f32 {
    sustain - TARGET_RATIO * (1.0 - sustain)
}

/// `run[k] = target + distance * c^(elapsed + k + 1)` with ln c = `log_c`: an exponential
/// approach to `target`, `distance` away at the anchor `elapsed` samples ago.
fn exponential(run: &mut [f32], target: f32, distance: f32, log_c: f32, elapsed: f32, pow: &[f32; BLOCK]) {
    // One libm exp per run (at most a few per block), and none right after an anchor.
    let scale = if elapsed > 0.0 { distance * math::exp(log_c * elapsed) } else { distance };
    for (o, p) in run.iter_mut().zip(pow) {
        *o = target + scale * p;
    }
}

/// Fills `pow[k]` with c^(k + 1), where ln c = `log_c`. Every eighth power is an exact `exp`,
/// the others multiply up from it (at most 7 roundings).
fn power_table(pow: &mut [f32; BLOCK], log_c: f32) {
    let c = math::exp(log_c);
    let mut p = 1.0;
    for (k, slot) in pow.iter_mut().enumerate() {
        let n = k + 1;
        p = if n % 8 == 0 { math::exp(log_c * n as f32) } else { p * c };
        *slot = p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use proptest::prelude::*;

    fn adsr(attack_s: f32, decay_s: f32, sustain: f32, release_s: f32) -> Adsr {
        let mut env = Adsr::new();
        env.set_attack_s(attack_s);
        env.set_decay_s(decay_s);
        env.set_sustain(sustain);
        env.set_release_s(release_s);
        env.prepare(FS);
        env
    }

    /// Renders with the gate parameter on for `gate_s`, then off for `off_s`.
    fn note(env: &mut Adsr, gate_s: f32, off_s: f32) -> Vec<f32> {
        env.set_gate(1.0);
        let mut y = render_s(gate_s, |b| env.process(None, b));
        env.set_gate(0.0);
        y.extend(render_s(off_s, |b| env.process(None, b)));
        y
    }

    fn first_index(y: &[f32], from: usize, pred: impl Fn(f32) -> bool) -> usize {
        from + y[from..].iter().position(|&v| pred(v)).unwrap_or(y.len())
    }

    #[test]
    fn stage_timings_match_the_settings() {
        for (a, d, s, r) in [
            (0.01, 0.1, 0.7, 0.2),
            (1.0, 0.5, 0.3, 2.0),
            (0.002, 0.03, 0.05, 0.05),
            (0.5, 5.0, 0.5, 20.0),
            (0.5, 60.0, 0.5, 60.0),
            (0.5, 37.0, 0.5, 45.0),
        ] {
            let mut env = adsr(a, d, s, r);
            let gate_s = a + d + 0.2;
            let y = note(&mut env, gate_s, r + 0.2);
            let peak = first_index(&y, 0, |v| v == 1.0);
            let at_sustain = first_index(&y, peak, |v| v == s);
            let gate_off = render_len(gate_s);
            let at_zero = first_index(&y, gate_off, |v| v == 0.0);
            let (attack, decay, release) =
                (peak as f32 + 1.0, (at_sustain - peak) as f32, (at_zero - gate_off) as f32 + 1.0);
            eprintln!(
                "adsr {a}/{d}/{s}/{r}: attack {attack} (set {}), decay {decay} (set {}), release {release} (set {}) samples",
                a * FS,
                d * FS,
                r * FS
            );
            // One block: the brief's tolerance; the design lands within a sample or two.
            assert!((attack - a * FS).abs() <= BLOCK as f32, "attack {attack}");
            assert!((decay - d * FS).abs() <= BLOCK as f32, "decay {decay}");
            assert!((release - r * FS).abs() <= BLOCK as f32, "release {release}");
            // Exactly 1.0 at the top, exactly the sustain level while held, exactly 0 after.
            assert!(y[at_sustain..gate_off].iter().all(|&v| v == s));
            assert!(y[at_zero..].iter().all(|&v| v == 0.0));
            assert!(y.iter().all(|&v| (0.0..=1.0).contains(&v)));
            // Decay and release are exponential: halfway through the decay, the remaining
            // distance to sustain is sqrt(1001)^-1 of the start (minus the overshoot), ~3%.
            let mid = peak + (d * FS / 2.0) as usize;
            let remaining = (y[mid] - s) / (1.0 - s);
            assert!((remaining - 0.0306).abs() < 0.003, "half-decay remaining {remaining}");
        }
    }

    fn render_len(seconds: f32) -> usize {
        // As render_s counts blocks (its f32 quotient, rounded up).
        ((seconds * FS / BLOCK as f32) as f64).ceil() as usize * BLOCK
    }

    #[test]
    fn attack_is_linear_at_one_over_attack_s() {
        let mut env = adsr(0.1, 0.1, 0.5, 0.1);
        let y = note(&mut env, 0.05, 0.0);
        // 0.05 s into a 0.1 s attack: half way; per-sample rise 1 / 4800.
        let mid = (0.05 * FS) as usize - 1;
        assert!((y[mid] - 0.5).abs() < 1e-4, "{}", y[mid]);
        assert!((y[100] - y[99] - 1.0 / 4800.0).abs() < 1e-6);
    }

    #[test]
    fn retrigger_mid_release_and_mid_decay_has_no_jump() {
        let (a, d, s, r) = (0.01, 0.3, 0.4, 1.0);
        let attack_step = 1.0 / (a * FS);
        // Mid-decay: gate off for two ms, then on again; mid-release: gate back on.
        let mut env = adsr(a, d, s, r);
        env.set_gate(1.0);
        let mut y = render_s(0.1, |b| env.process(None, b)); // well into the decay
        env.set_gate(0.0);
        y.extend(render_s(0.002, |b| env.process(None, b)));
        env.set_gate(1.0);
        let retrigger_1 = y.len();
        y.extend(render_s(0.5, |b| env.process(None, b)));
        env.set_gate(0.0);
        y.extend(render_s(0.1, |b| env.process(None, b))); // mid-release, near 0.2
        let retrigger_2 = y.len();
        env.set_gate(1.0);
        y.extend(render_s(0.1, |b| env.process(None, b)));
        // Mid-decay through the gate input: it drops for one sample (sample 10 of a block).
        let mut env_in = adsr(a, d, s, r);
        let high = [1.0; BLOCK];
        let mut dip = [1.0; BLOCK];
        dip[10] = 0.0;
        let mut z = render_s(0.1, |b| env_in.process(Some(&high), b));
        let retrigger_3 = z.len() + 11;
        let mut dip_block = [0.0; BLOCK];
        env_in.process(Some(&dip), &mut dip_block);
        z.extend_from_slice(&dip_block);
        z.extend(render_s(0.1, |b| env_in.process(Some(&high), b)));
        let offset = y.len();
        y.extend(z);
        for at in [retrigger_1, retrigger_2, offset + retrigger_3] {
            assert!(y[at - 1] > 0.1 && y[at - 1] < 0.99, "retrigger from {}", y[at - 1]);
            let step = max_step(&y[at - 1..at + 200]);
            eprintln!("adsr retrigger from {:.4}: max step {step:.6} (attack step {attack_step:.6})", y[at - 1]);
            // A float rounding of the attack step is the only slack.
            assert!(step <= attack_step * 1.0001, "step {step} vs attack step {attack_step}");
            assert!(y[at] > y[at - 1]);
        }
    }

    #[test]
    fn gate_off_mid_attack_and_mid_decay_releases_from_the_current_level() {
        let release_s = 0.3;
        for gate_s in [0.005, 0.05] {
            // 10 ms attack: 5 ms is mid-attack, 50 ms mid-decay.
            let mut env = adsr(0.01, 0.2, 0.3, release_s);
            let y = note(&mut env, gate_s, 0.5);
            let off = render_len(gate_s);
            let from = y[off - 1];
            assert!(from > 0.35 && from < 0.99, "released from {from}");
            // The release starts at its steepest: ln(1001) * (1.001 * level) / (release_s * fs).
            let release_slope = LN_OVERSHOOT * 1.001 * from / (release_s * FS);
            let step = y[off - 1] - y[off];
            assert!(step > 0.0 && step <= release_slope * 1.001, "step {step} vs slope {release_slope}");
            let at_zero = first_index(&y, off, |v| v == 0.0);
            let release = (at_zero - off + 1) as f32;
            assert!((release - release_s * FS).abs() <= 2.0, "release took {release} samples");
        }
    }

    #[test]
    fn gate_input_port_works_sample_accurately() {
        let mut env = adsr(0.001, 0.01, 0.5, 0.01);
        // Gate input goes high at sample 10 of block 0 and low at sample 40 of block 20.
        let mut n = 0;
        let y = render_s(0.1, |b| {
            let gate: Block = core::array::from_fn(|i| {
                let t = n * BLOCK + i;
                if (10..20 * BLOCK + 40).contains(&t) { 1.0 } else { 0.0 }
            });
            n += 1;
            env.process(Some(&gate), b)
        });
        assert!(y[..10].iter().all(|&v| v == 0.0));
        assert!(y[10] > 0.0);
        let peak = first_index(&y, 0, |v| v == 1.0);
        // 1 ms attack: 48 samples from sample 10; one sample of slack for 48 * (1 / 48) < 1.
        assert!((10 + 48 - 1..=10 + 48).contains(&peak), "peak at {peak}");
        assert_eq!(y[20 * BLOCK + 39], 0.5);
        assert!(y[20 * BLOCK + 40] < 0.5);
        let at_zero = first_index(&y, 20 * BLOCK + 40, |v| v == 0.0);
        assert!((at_zero as i64 - (20 * BLOCK + 40 + 480 - 1) as i64).abs() <= 2, "release ends at {at_zero}");
        // The gate parameter ORs with the input: parameter on keeps the note held.
        env.reset();
        env.set_gate(1.0);
        let off = [0.0; BLOCK];
        let y = render_s(0.1, |b| env.process(Some(&off), b));
        assert_eq!(y[y.len() - 1], 0.5);
    }

    #[test]
    fn a_gate_timed_to_a_sample_opens_and_closes_there() {
        // The same note through the gate input and through timed parameter changes: on at
        // sample 10 of block 0, off at sample 40 of block 20, a blip on at 50 and off at 60 of
        // block 30, and an on at 63 of block 40: the same samples, bit for bit, whatever the
        // order the changes of one block are made in.
        let events =
            [(10, 1.0), (20 * BLOCK + 40, 0.0), (30 * BLOCK + 50, 1.0), (30 * BLOCK + 60, 0.0), (40 * BLOCK + 63, 1.0)];
        let gate_at = |t: usize| events.iter().rev().find(|&&(at, _)| at <= t).map_or(0.0, |&(_, g)| g);
        let mut by_input = adsr(0.001, 0.01, 0.5, 0.01);
        let mut n = 0;
        let expected = render_s(0.1, |b| {
            let gate: Block = core::array::from_fn(|i| gate_at(n * BLOCK + i));
            n += 1;
            by_input.process(Some(&gate), b)
        });
        let mut by_param = adsr(0.001, 0.01, 0.5, 0.01);
        let mut n = 0;
        let y = render_s(0.1, |b| {
            // Made in reverse order within each block: the samples decide, not the order.
            for &(at, g) in events.iter().rev().filter(|&&(at, _)| at / BLOCK == n) {
                by_param.set_gate_at(g, at % BLOCK);
            }
            n += 1;
            by_param.process(None, b)
        });
        assert_eq!(y, expected);
        assert!(y[..10].iter().all(|&v| v == 0.0) && y[10] > 0.0);
        assert!(y[30 * BLOCK + 49] < y[30 * BLOCK + 50], "the blip re-attacks at its sample");
        assert!(y[40 * BLOCK + 62] == 0.0 && y[40 * BLOCK + 63] > 0.0, "the last sample of a block");
        // Untimed changes are the frame-0 case, and the parameter holds after its block.
        let mut a = adsr(0.001, 0.01, 0.5, 0.01);
        let mut b = a.clone();
        a.set_gate(1.0);
        b.set_gate_at(1.0, 0);
        let (ya, yb) = (render_s(0.01, |o| a.process(None, o)), render_s(0.01, |o| b.process(None, o)));
        assert_eq!(ya, yb);
        // Frames past the block count as its last sample.
        let mut late = adsr(0.001, 0.01, 0.5, 0.01);
        late.set_gate_at(1.0, 500);
        let y = render_s(0.01, |o| late.process(None, o));
        assert!(y[..BLOCK - 1].iter().all(|&v| v == 0.0) && y[BLOCK - 1] > 0.0);
    }

    #[test]
    fn gate_via_parameter_works_and_threshold_is_half() {
        let mut env = adsr(0.001, 0.001, 0.6, 0.001);
        env.set_gate(0.5); // not above 0.5: off
        let y = render_s(0.05, |b| env.process(None, b));
        assert!(y.iter().all(|&v| v == 0.0));
        env.set_gate(0.51);
        let y = render_s(0.05, |b| env.process(None, b));
        assert_eq!(y[y.len() - 1], 0.6);
        env.set_gate(f32::NAN);
        let y = render_s(0.05, |b| env.process(None, b));
        assert_eq!(y[y.len() - 1], 0.0);
    }

    #[test]
    fn sustain_changes_glide_without_a_step() {
        let mut env = adsr(0.001, 0.01, 0.2, 0.1);
        env.set_gate(1.0);
        let mut y = render_s(0.1, |b| env.process(None, b));
        let at = y.len();
        env.set_sustain(1.0);
        y.extend(render_s(0.05, |b| env.process(None, b)));
        env.set_sustain(0.0);
        y.extend(render_s(0.05, |b| env.process(None, b)));
        // Jumps of 0.8 and 1.0 glide over one block: at most 1.0 / 64 per sample.
        let step = max_step(&y[at - 1..]);
        assert!(step <= 1.0 / 64.0 * 1.001, "step {step}");
        assert_eq!(y[at + BLOCK - 1], 1.0);
        assert_eq!(y[y.len() - 1], 0.0);
        // Raised mid-decay: the decay hands over to the glide, no step either.
        let mut env = adsr(0.001, 0.5, 0.0, 0.1);
        env.set_gate(1.0);
        let mut y = render_s(0.2, |b| env.process(None, b));
        let at = y.len();
        env.set_sustain(0.9);
        y.extend(render_s(0.05, |b| env.process(None, b)));
        assert!(max_step(&y[at - 1..]) <= 0.9 / 64.0);
        assert_eq!(y[y.len() - 1], 0.9);
    }

    #[test]
    fn time_changes_mid_stage_have_no_step() {
        // Attack 0.5 s, decay 1 s: at 0.1 s mid-attack, at 0.7 s mid-decay; with the gate
        // off at 2 s, at 2.1 s mid-release. Each time jumps from slow to fast there.
        type Change = fn(&mut Adsr);
        let cases: [(&str, f32, Change); 3] = [
            ("attack", 0.1, |e| e.set_attack_s(0.002)),
            ("decay", 0.7, |e| e.set_decay_s(0.01)),
            ("release", 2.1, |e| e.set_release_s(0.01)),
        ];
        for (name, change_s, change) in cases {
            let mut env = adsr(0.5, 1.0, 0.3, 1.0);
            env.set_gate(1.0);
            let mut y = Vec::new();
            let mut n = 0;
            while (y.len() as f32) < (change_s + 0.1) * FS {
                if n == render_len(2.0) / BLOCK {
                    env.set_gate(0.0);
                }
                if n == render_len(change_s) / BLOCK {
                    change(&mut env);
                }
                let mut b = [0.0; BLOCK];
                env.process(None, &mut b);
                y.extend_from_slice(&b);
                n += 1;
            }
            let at = render_len(change_s);
            let before = max_step(&y[at - 2 * BLOCK..at]);
            let after = max_step(&y[at + 1..at + 2 * BLOCK]);
            let around = max_step(&y[at - 2..at + 2]);
            assert!(around <= 2.0 * before.max(after), "{name}: step {around} vs steady {before} / {after}");
            let level = y[at - 1];
            assert!(level > 0.05 && level < 0.99 && level != 0.3, "{name}: changed at {level}");
        }
    }

    #[test]
    fn silent_without_a_gate() {
        let mut env = Adsr::new();
        env.prepare(FS);
        let y = render_s(0.5, |b| env.process(None, b));
        assert!(y.iter().all(|&v| v == 0.0));
        let y = render_s(0.5, |b| env.process(Some(&[0.4; BLOCK]), b));
        assert!(y.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn reset_reproduces_the_first_render() {
        let mut env = adsr(0.02, 0.05, 0.5, 0.1);
        let a = note(&mut env, 0.2, 0.2);
        env.reset();
        let b = note(&mut env, 0.2, 0.2);
        assert_eq!(a, b);
        // Also from the middle of a note.
        env.set_gate(1.0);
        render_s(0.01, |b| env.process(None, b));
        env.reset();
        let c = note(&mut env, 0.2, 0.2);
        assert_eq!(a, c);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Attack(f32),
        Decay(f32),
        Sustain(f32),
        Release(f32),
        Gate(f32),
        Process(Option<[bool; 4]>),
        Reset,
    }

    fn any_value() -> impl Strategy<Value = f32> {
        with_gremlins(prop_oneof![-1.0f32..2.0, 0.0f32..0.05, Just(0.0)])
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => any_value().prop_map(Op::Attack),
            1 => any_value().prop_map(Op::Decay),
            1 => any_value().prop_map(Op::Sustain),
            1 => any_value().prop_map(Op::Release),
            1 => any_value().prop_map(Op::Gate),
            4 => prop::option::of(any::<[bool; 4]>()).prop_map(Op::Process),
            1 => Just(Op::Reset),
        ]
    }

    proptest! {
        #[test]
        fn random_settings_stay_finite_and_within_0_1(ops in prop::collection::vec(op(), 1..80)) {
            let mut env = Adsr::new();
            env.prepare(FS);
            for op in ops {
                match op {
                    Op::Attack(s) => env.set_attack_s(s),
                    Op::Decay(s) => env.set_decay_s(s),
                    Op::Sustain(l) => env.set_sustain(l),
                    Op::Release(s) => env.set_release_s(s),
                    Op::Gate(g) => env.set_gate(g),
                    Op::Reset => env.reset(),
                    Op::Process(gate) => {
                        // The gate input switches in quarters of the block.
                        let input = gate.map(|q| -> Block { core::array::from_fn(|i| if q[i / 16] { 1.0 } else { f32::NAN }) });
                        let mut out = [f32::NAN; BLOCK];
                        env.process(input.as_ref(), &mut out);
                        prop_assert!(out.iter().all(|v| (0.0..=1.0).contains(v)), "{:?}", out);
                    }
                }
            }
        }
    }
}
