//! synthpool's core on a Cortex-M4F under QEMU: what the firmware binaries (`src/bin/`)
//! share with the host-side test (`tests/checksum.rs`), so both run the same loop.
//!
//! The firmware plays `demo/demo.osc` through [`Player`] exactly as `host/src/render.rs`
//! does (the lines due before block k are applied, then block k renders), and hashes every
//! sample of both channels with [`fnv1a_f32`], block by block, the left block's 64 samples
//! then the right's: equal hashes mean bit-identical audio on each side.
#![no_std]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
mod runtime;
#[cfg(target_os = "none")]
pub use runtime::exit;

use synthpool_core::block::{BLOCK, CHANNELS, StereoBlock};
use synthpool_core::command::Error;
use synthpool_core::rack::Rack;
use synthpool_core::script::Player;

/// Sample rate of every firmware render, Hz.
pub const SAMPLE_RATE_HZ: u32 = 48_000;

/// The demo patch and its music, compiled into the image.
pub const DEMO_SCRIPT: &str = include_str!("../../demo/demo.osc");

/// Blocks the demo firmware renders: 8 s at 48 kHz (6000 * 64 = 384 000 frames), the demo's
/// whole score (Am - F - C - G; it then repeats). QEMU runs it in about 2 s.
pub const DEMO_BLOCKS: u64 = 6000;

/// The demo logs its running checksum after every this many blocks: every 1/3 s, 24 lines.
pub const LOG_EVERY_BLOCKS: u64 = 250;

pub use synthpool_core::checksum::{FNV1A_OFFSET, fnv1a_f32};

/// What a render did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// FNV-1a 64 of every sample rendered ([`fnv1a_f32`]), per block the left channel's
    /// then the right's.
    pub checksum: u64,
    /// Samples rendered, both channels (blocks * [`BLOCK`] * 2).
    pub samples: u64,
    /// Script lines applied.
    pub applied: u32,
    /// Script lines refused (unreadable, or refused by the rack); each changed nothing.
    pub refused: u32,
}

/// Prepares `rack` at [`SAMPLE_RATE_HZ`] and renders `blocks` blocks of `script`, applying
/// each line before the block it is due in, as `host/src/render.rs` does.
///
/// After each block, `on_block(index, both channels, checksum so far)`; for each refused line,
/// `on_refused(line number, error)`.
pub fn render<
    const MODULES: usize,
    const CABLES: usize,
    const DELAYS: usize,
    const DELAY_LEN: usize,
    const REVERBS: usize,
    const COMB_LEN: usize,
    const ALLPASS_LEN: usize,
    const IDS: usize,
>(
    rack: &mut Rack<MODULES, CABLES, DELAYS, DELAY_LEN, REVERBS, COMB_LEN, ALLPASS_LEN, IDS>,
    script: &str,
    blocks: u64,
    mut on_block: impl FnMut(u64, &StereoBlock, u64),
    mut on_refused: impl FnMut(usize, Error),
) -> Rendered {
    rack.prepare(SAMPLE_RATE_HZ as f32);
    let mut topology = rack.topology();
    let mut player = Player::new(script);
    let mut rendered = Rendered { checksum: FNV1A_OFFSET, samples: 0, applied: 0, refused: 0 };
    let mut both = synthpool_core::block::STEREO_SILENCE;
    for index in 0..blocks {
        let (applied, refused) = rack.apply_due(&mut topology, &mut player, index, &mut on_refused);
        rendered.applied += applied;
        rendered.refused += refused;
        rack.process(&mut both);
        rendered.checksum = fnv1a_f32(rendered.checksum, both.as_flattened());
        rendered.samples += (BLOCK * CHANNELS) as u64;
        on_block(index, &both, rendered.checksum);
    }
    rendered
}

/// Largest absolute sample of `block`, either channel.
pub fn peak(block: &StereoBlock) -> f32 {
    block.as_flattened().iter().fold(0.0, |peak: f32, x| peak.max(x.abs()))
}

pub use synthpool_core::script::write_voice_script as voice_script;
