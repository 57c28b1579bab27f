//! synthpool's core on a Cortex-M4F under QEMU: what the firmware binaries (`src/bin/`)
//! share with the host-side test (`tests/checksum.rs`), so both run the same loop.
//!
//! The firmware plays `demo/demo.osc` through [`Player`] exactly as `host/src/render.rs`
//! does (the lines due before block k are applied, then block k renders), and hashes every
//! sample with [`fnv1a_f32`]: equal hashes mean bit-identical audio.
#![no_std]
#![deny(unsafe_code)]

use core::fmt::Write;

#[cfg(target_os = "none")]
mod runtime;
#[cfg(target_os = "none")]
pub use runtime::exit;

use synthpool_core::block::{BLOCK, Block};
use synthpool_core::command::Error;
use synthpool_core::rack::Rack;
use synthpool_core::script::Player;
use synthpool_core::topology::Topology;

/// Sample rate of every firmware render, Hz.
pub const SAMPLE_RATE_HZ: u32 = 48_000;

/// The demo patch and its music, compiled into the image.
pub const DEMO_SCRIPT: &str = include_str!("../../demo/demo.osc");

/// Blocks the demo firmware renders: 2 s at 48 kHz (1500 * 64 = 96 000 frames), which
/// covers every part of the demo patch and keeps the QEMU run to a few seconds.
pub const DEMO_BLOCKS: u64 = 1500;

/// The demo logs its running checksum after every this many blocks (30 lines for 2 s).
pub const LOG_EVERY_BLOCKS: u64 = 50;

/// FNV-1a 64-bit offset basis: the hash of no bytes, where every checksum starts.
pub const FNV1A_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a 64-bit prime.
const FNV1A_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Continues the FNV-1a 64-bit `hash` over `samples`: the 4 little-endian bytes of each
/// sample's bit pattern (`f32::to_bits`), in order. Start from [`FNV1A_OFFSET`].
///
/// Bit patterns, not values: -0.0 and 0.0 differ, and so would two NaNs.
pub fn fnv1a_f32(mut hash: u64, samples: &[f32]) -> u64 {
    for sample in samples {
        for byte in sample.to_bits().to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(FNV1A_PRIME);
        }
    }
    hash
}

/// What a render did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// FNV-1a 64 of every sample rendered ([`fnv1a_f32`]).
    pub checksum: u64,
    /// Samples rendered (blocks * [`BLOCK`]).
    pub samples: u64,
    /// Script lines applied.
    pub applied: u32,
    /// Script lines refused (unreadable, or refused by the rack); each changed nothing.
    pub refused: u32,
}

/// Prepares `rack` at [`SAMPLE_RATE_HZ`] and renders `blocks` blocks of `script`, applying
/// each line before the block it is due in, as `host/src/render.rs` does.
///
/// After each block, `on_block(index, block, checksum so far)`; for each refused line,
/// `on_refused(line number, error)`.
pub fn render<
    const MODULES: usize,
    const CABLES: usize,
    const DELAYS: usize,
    const DELAY_LEN: usize,
    const REVERBS: usize,
    const COMB_LEN: usize,
    const ALLPASS_LEN: usize,
>(
    rack: &mut Rack<MODULES, CABLES, DELAYS, DELAY_LEN, REVERBS, COMB_LEN, ALLPASS_LEN>,
    script: &str,
    blocks: u64,
    mut on_block: impl FnMut(u64, &Block, u64),
    mut on_refused: impl FnMut(usize, Error),
) -> Rendered {
    rack.prepare(SAMPLE_RATE_HZ as f32);
    let mut topology = rack.topology();
    let mut player = Player::new(script);
    let mut rendered = Rendered { checksum: FNV1A_OFFSET, samples: 0, applied: 0, refused: 0 };
    let mut block = [0.0; BLOCK];
    for index in 0..blocks {
        let (applied, refused) = apply_due(rack, &mut topology, &mut player, index, &mut on_refused);
        rendered.applied += applied;
        rendered.refused += refused;
        rack.process(&mut block);
        rendered.checksum = fnv1a_f32(rendered.checksum, &block);
        rendered.samples += BLOCK as u64;
        on_block(index, &block, rendered.checksum);
    }
    rendered
}

/// Applies the lines of `player` due before block `index` renders (see
/// `Player::next_due_for_block`); returns how many were applied and how many refused.
/// A refused line changes nothing; `on_refused(line number, error)` hears of it.
pub fn apply_due<
    const MODULES: usize,
    const CABLES: usize,
    const DELAYS: usize,
    const DELAY_LEN: usize,
    const REVERBS: usize,
    const COMB_LEN: usize,
    const ALLPASS_LEN: usize,
>(
    rack: &mut Rack<MODULES, CABLES, DELAYS, DELAY_LEN, REVERBS, COMB_LEN, ALLPASS_LEN>,
    topology: &mut Topology<MODULES, CABLES>,
    player: &mut Player<'_>,
    index: u64,
    mut on_refused: impl FnMut(usize, Error),
) -> (u32, u32) {
    let (mut applied, mut refused) = (0, 0);
    while let Some(due) = player.next_due_for_block(index, SAMPLE_RATE_HZ as f32) {
        let outcome = due
            .map_err(|e| (e.number, e.error))
            .and_then(|line| rack.submit(topology, &line.request).map_err(|error| (line.number, error)));
        match outcome {
            Ok(()) => applied += 1,
            Err((line, error)) => {
                refused += 1;
                on_refused(line, error);
            }
        }
    }
    (applied, refused)
}

/// Largest absolute sample of `block`.
pub fn peak(block: &Block) -> f32 {
    block.iter().fold(0.0, |peak: f32, x| peak.max(x.abs()))
}

/// Writes the standard voice, `voices` times, into `out`, the same text as
/// `synthpool_benches::voice_script`: vco (band-limited saw, 55..880 Hz spread evenly in
/// pitch) -> vcf (low-pass 2000 Hz, Q 2) -> vca (x 0.05) <- adsr (10 ms, 100 ms, 0.7,
/// 200 ms, gate held), every vca into the output. Module ids 1 ..= 4 * voices.
///
/// # Errors
/// `out` is too small (about 700 bytes a voice).
pub fn voice_script<const N: usize>(voices: usize, out: &mut heapless::String<N>) -> core::fmt::Result {
    for v in 0..voices {
        let base = 1 + 4 * v;
        let (vco, vcf, vca, adsr) = (base, base + 1, base + 2, base + 3);
        let octaves = if voices > 1 { 4.0 * v as f32 / (voices - 1) as f32 } else { 0.0 };
        let freq = 55.0 * libm::powf(2.0, octaves);
        write!(
            out,
            "/module/new vco {vco}\n/module/set {vco} wave saw\n/module/set {vco} freq_hz {freq}\n\
             /module/new vcf {vcf}\n/module/set {vcf} mode lowpass\n/module/set {vcf} cutoff_hz 2000\n/module/set {vcf} q 2\n\
             /module/new vca {vca}\n/module/set {vca} gain 0.05\n\
             /module/new adsr {adsr}\n/module/set {adsr} attack_s 0.01\n/module/set {adsr} decay_s 0.1\n\
             /module/set {adsr} sustain 0.7\n/module/set {adsr} release_s 0.2\n/module/set {adsr} gate 1\n\
             /patch {vco} out {vcf} in\n/patch {vcf} out {vca} in\n/patch {adsr} out {vca} cv\n/patch {vca} out 0 in\n"
        )?;
    }
    Ok(())
}
