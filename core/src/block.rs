//! The unit of audio work: one block of mono samples.

/// Frames per block: 64 frames is 1.333 ms at 48 kHz, the budget every block must meet.
pub const BLOCK: usize = 64;

/// One block of mono audio or control signal, nominally -1.0..=1.0 for audio.
pub type Block = [f32; BLOCK];

/// A block of silence.
pub const SILENCE: Block = [0.0; BLOCK];
