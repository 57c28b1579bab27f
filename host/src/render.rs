//! Offline rendering of a patch script, as fast as the CPU allows.
//!
//! One in-process [`HostRack`] renders the whole patch: the reference that the server's
//! render mode (the same script through the worker pool, `server::render`) is checked
//! against (`host/tests/pool.rs`).
use std::path::Path;
use synthpool_core::BLOCK;
use synthpool_core::rack::HostRack;
use synthpool_core::script::Player;

/// Stack for a thread that builds a [`HostRack`] by value (`Box::new(HostRack::new())` makes
/// the value, then moves it into the box), bytes. Measured: building and playing one takes
/// under 1.2 racks of stack in release, 2 at the workspace's dev opt-level 1 and 3 at
/// opt-level 0; the fourth is room for the rest of the thread.
pub const RACK_BUILDER_STACK: usize = 4 * size_of::<HostRack>();

/// A script line that could not be applied, for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptProblem {
    /// 1-based line number.
    pub line: usize,
    /// The error's name and message.
    pub message: String,
}

/// Renders `seconds` of `script` at `sample_rate_hz`; returns the samples (mono) and every
/// line that was refused (those change nothing, as they would live).
pub fn render_script(script: &str, seconds: f64, sample_rate_hz: u32) -> (Vec<f32>, Vec<ScriptProblem>) {
    // The host rack is 24.9 MB of fixed arrays: build it on a thread whose stack holds it
    // rather than risk the main thread's.
    let script = script.to_owned();
    let worker = std::thread::Builder::new()
        .name("render".into())
        .stack_size(RACK_BUILDER_STACK)
        .spawn(move || render_on_this_thread(&script, seconds, sample_rate_hz));
    match worker.map(|handle| handle.join()) {
        Ok(Ok(result)) => result,
        _ => (Vec::new(), vec![ScriptProblem { line: 0, message: "render thread failed".into() }]),
    }
}

fn render_on_this_thread(script: &str, seconds: f64, sample_rate_hz: u32) -> (Vec<f32>, Vec<ScriptProblem>) {
    let mut rack = Box::new(HostRack::new());
    rack.prepare(sample_rate_hz as f32);
    let mut topology = rack.topology();
    let mut player = Player::new(script);
    let blocks = (seconds * sample_rate_hz as f64 / BLOCK as f64).ceil() as u64;
    let mut samples = Vec::with_capacity(blocks as usize * BLOCK);
    let mut problems = Vec::new();
    let mut block = synthpool_core::block::STEREO_SILENCE;
    for index in 0..blocks {
        rack.apply_due(&mut topology, &mut player, index, |line, error| {
            problems.push(ScriptProblem { line, message: format!("{}: {error}", error.name()) })
        });
        rack.process(&mut block);
        samples.extend_from_slice(&block[0]);
    }
    (samples, problems)
}

/// Writes mono float samples to a 32-bit float WAV file.
///
/// # Errors
/// The file cannot be created or written.
pub fn write_wav(path: &Path, samples: &[f32], sample_rate_hz: u32) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: sample_rate_hz,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    for &s in samples {
        writer.write_sample(s)?;
    }
    writer.finalize()
}
