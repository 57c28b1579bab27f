//! The patches the benchmarks time, as scripts, and a rack large enough for them.
use synthpool_core::BLOCK;
use synthpool_core::rack::Rack;
use synthpool_core::script::{Player, write_voice_script};

/// Frames per second of the benchmarks.
pub const SAMPLE_RATE_HZ: f32 = 48_000.0;

/// A rack for 256 standard voices (4 modules and 4 cables each) and the fx patch.
pub type BenchRack = Rack<1040, 1040, 1, { 1 << 15 }, 1, 2048, 1024>;

/// The standard voice, `voices` times (see [`write_voice_script`]).
pub fn voice_script(voices: usize) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write_voice_script(voices, &mut s);
    s
}

/// The fx patch: one standard voice -> delay (300 ms, feedback 0.4, mix 0.3) -> reverb (room
/// 0.8, damp 0.5, mix 0.3) -> output.
pub fn fx_script() -> String {
    "/module/new delay 100\n/module/set 100 time_s 0.3\n/module/set 100 feedback 0.4\n/module/set 100 mix 0.3\n\
     /module/new reverb 101\n/module/set 101 room 0.8\n/module/set 101 damp 0.5\n/module/set 101 mix 0.3\n\
     /patch 100 out 101 in\n/patch 101 out 0 in\n"
        .to_string()
        + &voice_script(1).replace("/patch 3 out 0 in", "/patch 3 out 100 in")
}

/// The stereo fx patch: the fx patch with its delay in ping-pong (its echoes alternating
/// sides) into the reverb's two sides, and the reverb's `left` and `right` to the output's.
pub fn stereo_fx_script() -> String {
    fx_script()
        .replace(
            "/patch 100 out 101 in\n",
            "/module/set 100 mode pingpong\n/patch 100 left 101 left\n/patch 100 right 101 right\n",
        )
        .replace("/patch 101 out 0 in\n", "/patch 101 left 0 left\n/patch 101 right 0 right\n")
}

/// A prepared rack playing `script` (every line applied before the first block).
///
/// # Panics
/// If a line of the script is refused: the benchmark would time the wrong patch.
pub fn rack_playing(script: &str) -> Box<BenchRack> {
    let mut rack = Box::new(BenchRack::new());
    rack.prepare(SAMPLE_RATE_HZ);
    let mut topology = rack.topology();
    let mut player = Player::new(script);
    let mut refused = None;
    // Every line is due before the first block of a script without `@` times.
    while !player.finished() {
        rack.apply_due(&mut topology, &mut player, u64::MAX / 2, |line, error| refused = Some((line, error)));
        if let Some((line, error)) = refused {
            panic!("script line {line}: {error}");
        }
    }
    rack
}

/// Renders `seconds` and returns the samples: the benches check them before timing.
pub fn render(rack: &mut BenchRack, seconds: f32) -> Vec<f32> {
    let blocks = (seconds * SAMPLE_RATE_HZ / BLOCK as f32).ceil() as usize;
    let mut out = Vec::with_capacity(blocks * BLOCK);
    let mut block = synthpool_core::block::STEREO_SILENCE;
    for _ in 0..blocks {
        rack.process(&mut block);
        out.extend_from_slice(&block[0]);
    }
    out
}
