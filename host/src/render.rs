//! Offline rendering of a patch script, as fast as the CPU allows.
//!
//! One in-process [`HostRack`] renders the whole patch: the reference that the server's
//! render mode (the same script through the worker pool, `server::render`) is checked
//! against (`host/tests/pool.rs`).
use std::io;
use std::path::Path;
use synthpool_core::BLOCK;
use synthpool_core::block::{CHANNELS, STEREO_SILENCE, StereoBlock};
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

/// Renders `seconds` of `script` at `sample_rate_hz`, with `input` as the audio input (block
/// by block, silence after its end); returns the samples (stereo, interleaved: left, right)
/// and every line that was refused (those change nothing, as they would live).
pub fn render_script(
    script: &str,
    seconds: f64,
    sample_rate_hz: u32,
    input: &[StereoBlock],
) -> (Vec<f32>, Vec<ScriptProblem>) {
    // The host rack is 31.9 MB of fixed arrays: build it on a thread whose stack holds it
    // rather than risk the main thread's.
    let (script, input) = (script.to_owned(), input.to_vec());
    let worker = std::thread::Builder::new()
        .name("render".into())
        .stack_size(RACK_BUILDER_STACK)
        .spawn(move || render_on_this_thread(&script, seconds, sample_rate_hz, &input));
    match worker.map(|handle| handle.join()) {
        Ok(Ok(result)) => result,
        _ => (Vec::new(), vec![ScriptProblem { line: 0, message: "render thread failed".into() }]),
    }
}

fn render_on_this_thread(
    script: &str,
    seconds: f64,
    sample_rate_hz: u32,
    input: &[StereoBlock],
) -> (Vec<f32>, Vec<ScriptProblem>) {
    let mut rack = Box::new(HostRack::new());
    rack.prepare(sample_rate_hz as f32);
    let mut topology = rack.topology();
    let mut player = Player::new(script);
    let blocks = (seconds * sample_rate_hz as f64 / BLOCK as f64).ceil() as u64;
    let mut samples = Vec::with_capacity(blocks as usize * BLOCK * CHANNELS);
    let mut problems = Vec::new();
    let mut block = STEREO_SILENCE;
    for index in 0..blocks {
        rack.apply_due(&mut topology, &mut player, index, |line, error| {
            problems.push(ScriptProblem { line, message: format!("{}: {error}", error.name()) })
        });
        *rack.capture_mut() = input.get(index as usize).copied().unwrap_or(STEREO_SILENCE);
        rack.process(&mut block);
        append_interleaved(&block, &mut samples);
    }
    (samples, problems)
}

/// Writes `block`'s frames into `out` (`BLOCK * CHANNELS` samples), interleaved: left, right.
pub fn interleave(block: &StereoBlock, out: &mut [f32]) {
    for (i, frame) in out.chunks_exact_mut(CHANNELS).take(BLOCK).enumerate() {
        frame[0] = block[0][i];
        frame[1] = block[1][i];
    }
}

/// Appends `block`'s frames to `samples`, interleaved: left, right.
pub fn append_interleaved(block: &StereoBlock, samples: &mut Vec<f32>) {
    let at = samples.len();
    samples.resize(at + BLOCK * CHANNELS, 0.0);
    interleave(block, &mut samples[at..]);
}

/// Reads up to a block of interleaved frames of `channels` samples into `block`: the first
/// channel on the left, the second on the right (a mono source on both sides; channels past
/// the second ignored). Frames past `frames`' end leave `block` as it was.
pub fn deinterleave(frames: &[f32], channels: usize, block: &mut StereoBlock) {
    let right = usize::from(channels > 1);
    for (i, frame) in frames.chunks_exact(channels.max(1)).take(BLOCK).enumerate() {
        block[0][i] = frame[0];
        block[1][i] = frame[right];
    }
}

/// The WAV format synthpool writes: stereo, 32-bit float.
pub fn wav_spec(sample_rate_hz: u32) -> hound::WavSpec {
    hound::WavSpec {
        channels: CHANNELS as u16,
        sample_rate: sample_rate_hz,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    }
}

/// Writes interleaved stereo float samples (left, right) to a 32-bit float WAV file.
///
/// # Errors
/// The file cannot be created or written.
pub fn write_wav(path: &Path, samples: &[f32], sample_rate_hz: u32) -> Result<(), hound::Error> {
    let mut writer = hound::WavWriter::create(path, wav_spec(sample_rate_hz))?;
    for &s in samples {
        writer.write_sample(s)?;
    }
    writer.finalize()
}

/// Reads a WAV file to play as audio input: its frames as stereo blocks (a mono file on both
/// sides; channels past the second ignored; integer samples scaled to -1..1), the last
/// block padded with silence.
///
/// # Errors
/// The file cannot be read, or its sample rate is not `sample_rate_hz` (nothing is
/// resampled).
pub fn read_input_wav(path: &Path, sample_rate_hz: u32) -> io::Result<Vec<StereoBlock>> {
    let reader = hound::WavReader::open(path).map_err(io::Error::other)?;
    let spec = reader.spec();
    if spec.sample_rate != sample_rate_hz {
        return Err(io::Error::other(format!(
            "{} is at {} Hz, not {sample_rate_hz} Hz (nothing is resampled)",
            path.display(),
            spec.sample_rate
        )));
    }
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.into_samples::<f32>().collect::<Result<_, _>>(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader.into_samples::<i32>().map(|s| s.map(|s| s as f32 * scale)).collect::<Result<_, _>>()
        }
    }
    .map_err(io::Error::other)?;
    let channels = spec.channels.max(1) as usize;
    Ok(samples
        .chunks(BLOCK * channels)
        .map(|frames| {
            let mut block = STEREO_SILENCE;
            deinterleave(frames, channels, &mut block);
            block
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, spec: hound::WavSpec, samples: &[i32]) {
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
    }

    #[test]
    fn an_input_wav_of_any_channel_count_reads_as_stereo_blocks() {
        let dir = std::env::temp_dir().join(format!("synthpool-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let int16 = |channels| hound::WavSpec {
            channels,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        // Mono, 16-bit: each sample on both sides, scaled to -1..1; 70 frames are two blocks,
        // the second padded with silence.
        let mono = dir.join("mono.wav");
        write(&mono, int16(1), &(0..70).map(|n| n * 100).collect::<Vec<_>>());
        let blocks = read_input_wav(&mono, 48_000).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0][0][3], 300.0 / 32_768.0);
        assert_eq!(blocks[0][0], blocks[0][1]);
        assert_eq!((blocks[1][0][5], blocks[1][1][6]), (6_900.0 / 32_768.0, 0.0));
        // Three channels: the first two are left and right, the third is ignored.
        let three = dir.join("three.wav");
        write(&three, int16(3), &[1000, 2000, 3000, -1000, -2000, -3000]);
        let blocks = read_input_wav(&three, 48_000).unwrap();
        assert_eq!((blocks[0][0][0], blocks[0][1][0]), (1000.0 / 32_768.0, 2000.0 / 32_768.0));
        assert_eq!((blocks[0][0][1], blocks[0][1][1]), (-1000.0 / 32_768.0, -2000.0 / 32_768.0));
        // Another rate is refused, not resampled.
        let error = read_input_wav(&mono, 44_100).unwrap_err();
        assert!(error.to_string().contains("48000 Hz, not 44100 Hz"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn interleaving_and_back_gives_the_block() {
        let block: StereoBlock = [core::array::from_fn(|i| i as f32), core::array::from_fn(|i| -(i as f32))];
        let mut samples = Vec::new();
        append_interleaved(&block, &mut samples);
        assert_eq!(&samples[..4], &[0.0, -0.0, 1.0, -1.0]);
        let mut back = STEREO_SILENCE;
        deinterleave(&samples, CHANNELS, &mut back);
        assert_eq!(back, block);
    }
}
