//! Instruction counts on a Cortex-M4F: runs the demo, the standard voice and each unit, and
//! brackets every piece of work to count (a "region") with calls of
//! [`synthpool_measure_start`] and [`synthpool_measure_stop`].
//!
//! Under `cargo xtask firmware`, QEMU runs this with the insncount plugin
//! (`firmware-sim/plugin/insncount.c`), which writes the instructions executed in each
//! region, in order. Before each group of regions this logs `measure LABEL xN`: xtask pairs
//! the next N counts with LABEL. The log (labels only) is compared with
//! `firmware-sim/expected/count.out`; the counts depend on the compiler, so they are
//! reported, not compared.
//!
//! On the host this compiles to an empty program, so `cargo test --workspace` can build it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

/// Marks the start of a region: the plugin notes the count at its first instruction.
/// Not inlined, not mangled: xtask finds it in the ELF by name. Its body differs from
/// [`synthpool_measure_stop`]'s, or the linker could fold the two into one address.
#[cfg(target_os = "none")]
#[inline(never)]
#[allow(unsafe_code)] // `no_mangle` only: the plugin needs a fixed symbol name.
#[unsafe(no_mangle)]
pub extern "C" fn synthpool_measure_start() {
    // black_box: an opaque use the optimizer cannot drop, and a compiler barrier for memory.
    core::hint::black_box(0x5354_4152_u32); // "STAR"
}

/// Marks the end of a region: the plugin writes the count since the start at its first
/// instruction.
#[cfg(target_os = "none")]
#[inline(never)]
#[allow(unsafe_code)] // `no_mangle` only: the plugin needs a fixed symbol name.
#[unsafe(no_mangle)]
pub extern "C" fn synthpool_measure_stop() {
    core::hint::black_box(0x5354_4f50_u32); // "STOP"
}

#[cfg(target_os = "none")]
#[cortex_m_rt::entry]
fn main() -> ! {
    measure::overhead();
    measure::demo();
    measure::voices(1);
    measure::voices(8);
    measure::units();
    defmt::info!("done");
    firmware_sim::exit(0)
}

#[cfg(target_os = "none")]
mod measure {
    use super::{synthpool_measure_start, synthpool_measure_stop};
    use core::hint::black_box;
    use firmware_sim::{DEMO_BLOCKS, DEMO_SCRIPT, SAMPLE_RATE_HZ, voice_script};
    use synthpool_core::block::{BLOCK, Block};
    use synthpool_core::rack::{FirmwareRack, Rack};
    use synthpool_core::script::Player;
    use synthpool_core::units::adsr::Adsr;
    use synthpool_core::units::delay::FirmwareDelay;
    use synthpool_core::units::lfo::Lfo;
    use synthpool_core::units::mixer::Mixer;
    use synthpool_core::units::noise::{Noise, NoiseColor};
    use synthpool_core::units::reverb::FirmwareReverb;
    use synthpool_core::units::vca::Vca;
    use synthpool_core::units::vcf::{FilterMode, Vcf};
    use synthpool_core::units::vco::{Vco, Wave};

    /// A rack for 8 standard voices (4 modules and 4 cables each, and the output); it has
    /// no delays or reverbs, so the smallest lines the types accept.
    type VoiceRack = Rack<33, 32, 0, { 2 * BLOCK }, 0, { 3 * BLOCK }, BLOCK>;

    /// Blocks each voice patch renders before it is counted: the cables' and modules'
    /// one-block fades and the 10 ms attack (7.5 blocks) are over.
    const VOICE_WARMUP_BLOCKS: u32 = 16;
    /// Blocks counted per voice patch.
    const VOICE_BLOCKS: u32 = 64;
    /// Blocks counted per unit.
    const UNIT_BLOCKS: u32 = 32;

    const FS: f32 = SAMPLE_RATE_HZ as f32;

    /// Announces the next `regions` regions as `label`.
    fn group(label: &str, regions: u32) {
        defmt::info!("measure {=str} x{=u32}", label, regions);
    }

    /// Runs `work` as one region.
    fn region<R>(work: impl FnOnce() -> R) -> R {
        synthpool_measure_start();
        let result = work();
        synthpool_measure_stop();
        result
    }

    /// Empty regions: what the markers themselves cost, subtracted from every count.
    pub fn overhead() {
        group("overhead", 8);
        for _ in 0..8 {
            region(|| ());
        }
    }

    /// The demo as the demo binary plays it: building the patch (the lines due at block 0:
    /// parsing, checking and applying them), then each block's `Rack::process`.
    pub fn demo() {
        let mut rack = FirmwareRack::new();
        rack.prepare(FS);
        let mut topology = rack.topology();
        let mut player = Player::new(DEMO_SCRIPT);
        let mut block = synthpool_core::block::STEREO_SILENCE;
        group("demo/setup", 1);
        region(|| rack.apply_due(&mut topology, &mut player, 0, |_, _| ()));
        group("demo/process", DEMO_BLOCKS as u32);
        for index in 0..DEMO_BLOCKS {
            if index > 0 {
                rack.apply_due(&mut topology, &mut player, index, |_, _| ());
            }
            region(|| rack.process(&mut block));
            black_box(&block);
        }
    }

    /// `voices` standard voices (the benches' `voice_script`) in a rack.
    pub fn voices(voices: usize) {
        let mut script = heapless::String::<8192>::new();
        if voice_script(voices, &mut script).is_err() {
            defmt::panic!("the script of {=usize} voices does not fit its String", voices);
        }
        let mut rack = VoiceRack::new();
        rack.prepare(FS);
        let mut topology = rack.topology();
        let mut player = Player::new(&script);
        let (_, refused) = rack.apply_due(&mut topology, &mut player, 0, |line, error| {
            defmt::error!("voice script line {=usize} refused: {=str}", line, error.name())
        });
        if refused > 0 || !player.finished() {
            defmt::panic!("the voice script did not apply");
        }
        let mut block = synthpool_core::block::STEREO_SILENCE;
        for _ in 0..VOICE_WARMUP_BLOCKS {
            rack.process(&mut block);
        }
        match voices {
            1 => group("voices x1/process", VOICE_BLOCKS),
            8 => group("voices x8/process", VOICE_BLOCKS),
            _ => defmt::panic!("no label for {=usize} voices", voices),
        }
        for _ in 0..VOICE_BLOCKS {
            region(|| rack.process(&mut block));
            black_box(&block);
        }
    }

    /// Each unit alone, one `process` call per region, on the inputs of the standard voice:
    /// a 110 Hz saw for the audio inputs, a sustain level (0.7) for the vca's cv.
    pub fn units() {
        let mut saw = Vco::new();
        saw.prepare(FS);
        saw.set_wave(Wave::Saw);
        saw.set_freq_hz(110.0);
        let mut input = [0.0; BLOCK];
        let mut out = [0.0; BLOCK];
        // Renders the next input block outside the region, then `process` inside it.
        let mut each_block = |label: &str, process: &mut dyn FnMut(&Block, &mut Block)| {
            group(label, UNIT_BLOCKS);
            for _ in 0..UNIT_BLOCKS {
                saw.process(None, None, &mut input);
                region(|| process(black_box(&input), &mut out));
                black_box(&out);
            }
        };

        for (label, wave) in [
            ("unit/vco saw", Wave::Saw),
            ("unit/vco square", Wave::Square),
            ("unit/vco triangle", Wave::Triangle),
            ("unit/vco sine", Wave::Sine),
        ] {
            let mut vco = Vco::new();
            vco.prepare(FS);
            vco.set_wave(wave);
            vco.set_freq_hz(220.0);
            each_block(label, &mut |_, out| vco.process(None, None, out));
        }

        let mut vcf = Vcf::new();
        vcf.prepare(FS);
        vcf.set_mode(FilterMode::LowPass);
        vcf.set_cutoff_hz(2000.0);
        vcf.set_q(2.0);
        each_block("unit/vcf lowpass", &mut |input, out| vcf.process(Some(input), None, out));

        let mut vca = Vca::new();
        vca.prepare(FS);
        vca.set_gain(0.05);
        let cv = [0.7; BLOCK]; // the standard envelope's sustain level
        each_block("unit/vca", &mut |input, out| vca.process(Some(input), Some(&cv), out));

        let mut adsr = standard_adsr();
        each_block("unit/adsr", &mut |_, out| adsr.process(None, out));

        let mut lfo = Lfo::new();
        lfo.prepare(FS);
        lfo.set_rate_hz(0.11);
        each_block("unit/lfo", &mut |_, out| lfo.process(out));

        for (label, color) in [("unit/noise white", NoiseColor::White), ("unit/noise pink", NoiseColor::Pink)] {
            let mut noise = Noise::new();
            noise.prepare(FS);
            noise.set_color(color);
            each_block(label, &mut |_, out| noise.process(out));
        }

        let mut mixer = Mixer::new();
        mixer.prepare(FS);
        each_block("unit/mixer 4 inputs", &mut |input, out| {
            mixer.process([Some(input), Some(input), Some(input), Some(input)], out, None)
        });
        // The same, its `left` and `right` taken too (each input panned apart).
        for (i, pan) in [-0.75, -0.25, 0.25, 0.75].into_iter().enumerate() {
            mixer.set_pan(i, pan);
        }
        let mut sides = [[0.0; BLOCK]; 2];
        each_block("unit/mixer 4 inputs stereo", &mut |input, out| {
            mixer.process([Some(input), Some(input), Some(input), Some(input)], out, Some(&mut sides))
        });

        let mut delay = FirmwareDelay::new();
        delay.prepare(FS);
        delay.set_time_s(0.3);
        delay.set_feedback(0.35);
        each_block("unit/delay", &mut |input, out| delay.process(Some(input), out, None));
        // The same delay in ping-pong, its sides taken (a 0.15 s time: two trips fit the line).
        delay.set_pingpong(true);
        delay.set_time_s(0.15);
        delay.prepare(FS);
        each_block("unit/delay pingpong", &mut |input, out| delay.process(Some(input), out, Some(&mut sides)));

        let mut reverb = FirmwareReverb::new();
        reverb.prepare(FS);
        reverb.set_room(0.8);
        reverb.set_damp(0.5);
        each_block("unit/reverb", &mut |input, out| reverb.process(Some(input), None, None, out, None));
        // The same reverb, its `left` and `right` taken: the right channel's loops run too.
        reverb.prepare(FS);
        each_block("unit/reverb stereo", &mut |input, out| {
            reverb.process(Some(input), None, None, out, Some(&mut sides))
        });
    }

    /// The standard voice's envelope, gate held: 10 ms, 100 ms, 0.7, 200 ms.
    fn standard_adsr() -> Adsr {
        let mut adsr = Adsr::new();
        adsr.prepare(FS);
        adsr.set_attack_s(0.01);
        adsr.set_decay_s(0.1);
        adsr.set_sustain(0.7);
        adsr.set_release_s(0.2);
        adsr.set_gate(1.0);
        adsr
    }
}
