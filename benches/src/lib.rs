//! The patches the benchmarks time, as scripts, and a rack large enough for them.
use synthpool_core::BLOCK;
use synthpool_core::rack::Rack;
use synthpool_core::script::Player;

/// Frames per second of the benchmarks.
pub const SAMPLE_RATE_HZ: f32 = 48_000.0;

/// A rack for 256 standard voices (4 modules and 4 cables each) and the fx patch.
pub type BenchRack = Rack<1040, 1040, 1, { 1 << 15 }, 1, 2048, 1024>;

/// The standard voice, `voices` times: vco (band-limited saw, 55..880 Hz spread evenly in
/// pitch) -> vcf (low-pass 2000 Hz, Q 2) -> vca (x 0.05) <- adsr (10 ms, 100 ms, 0.7,
/// 200 ms, gate held), every vca into the output.
pub fn voice_script(voices: usize) -> String {
    let mut s = String::new();
    for v in 0..voices {
        let base = 1 + 4 * v;
        let (vco, vcf, vca, adsr) = (base, base + 1, base + 2, base + 3);
        let octaves = if voices > 1 { 4.0 * v as f32 / (voices - 1) as f32 } else { 0.0 };
        let freq = 55.0 * 2f32.powf(octaves);
        s += &format!(
            "/module/new vco {vco}\n/module/set {vco} wave saw\n/module/set {vco} freq_hz {freq}\n\
             /module/new vcf {vcf}\n/module/set {vcf} mode lowpass\n/module/set {vcf} cutoff_hz 2000\n/module/set {vcf} q 2\n\
             /module/new vca {vca}\n/module/set {vca} gain 0.05\n\
             /module/new adsr {adsr}\n/module/set {adsr} attack_s 0.01\n/module/set {adsr} decay_s 0.1\n\
             /module/set {adsr} sustain 0.7\n/module/set {adsr} release_s 0.2\n/module/set {adsr} gate 1\n\
             /patch {vco} out {vcf} in\n/patch {vcf} out {vca} in\n/patch {adsr} out {vca} cv\n/patch {vca} out 0 in\n"
        );
    }
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

/// A prepared rack playing `script` (every line applied before the first block).
///
/// # Panics
/// If a line of the script is refused: the benchmark would time the wrong patch.
pub fn rack_playing(script: &str) -> Box<BenchRack> {
    let mut rack = Box::new(BenchRack::new());
    rack.prepare(SAMPLE_RATE_HZ);
    let mut topology = rack.topology();
    let mut player = Player::new(script);
    while let Some(line) = player.next_due(f32::INFINITY) {
        let line = line.unwrap_or_else(|e| panic!("script line {}: {:?}", e.number, e.error));
        if let Err(e) = rack.submit(&mut topology, &line.request) {
            panic!("script line {}: {e}", line.number);
        }
    }
    rack
}

/// Renders `seconds` and returns the samples: the benches check them before timing.
pub fn render(rack: &mut BenchRack, seconds: f32) -> Vec<f32> {
    let blocks = (seconds * SAMPLE_RATE_HZ / BLOCK as f32).ceil() as usize;
    let mut out = Vec::with_capacity(blocks * BLOCK);
    let mut block = [0.0; BLOCK];
    for _ in 0..blocks {
        rack.process(&mut block);
        out.extend_from_slice(&block);
    }
    out
}
