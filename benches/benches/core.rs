//! The core's figures: the standard voice (ns per voice-sample for 1, 16, 64 and 256 voices)
//! and the fx patch (ns per sample). `cargo xtask bench` writes them into BENCHMARKS.md.
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use synthpool_benches::{fx_script, rack_playing, render, stereo_fx_script, voice_script};
use synthpool_core::BLOCK;
use synthpool_core::measure::rms;

fn voices(c: &mut Criterion) {
    let mut group = c.benchmark_group("voice");
    for n in [1usize, 16, 64, 256] {
        let mut rack = rack_playing(&voice_script(n));
        // Check the sound before timing it: past the attack and decay, finite and audible,
        // scaled with the voice count (each voice ~0.05 * 0.7 of a filtered saw).
        let out = render(&mut rack, 0.5);
        assert!(out.iter().all(|s| s.is_finite()), "non-finite output");
        let level = rms(&out[out.len() / 2..]);
        assert!(level > 0.005 && level < 0.05 * n as f64, "voice x{n}: rms {level}");
        group.throughput(Throughput::Elements((BLOCK * n) as u64));
        group.bench_with_input(BenchmarkId::new("saw-vcf-vca-adsr", n), &n, |b, _| {
            let mut block = synthpool_core::block::STEREO_SILENCE;
            b.iter(|| {
                rack.process(black_box(&mut block));
                black_box(&block);
            })
        });
    }
    group.finish();
}

/// The fx patch, mono, and its stereo version (a ping-pong delay into the stereo reverb,
/// both sides to the output): ns per sample (a stereo sample is a frame of both sides).
fn fx(c: &mut Criterion) {
    let mut group = c.benchmark_group("fx");
    group.throughput(Throughput::Elements(BLOCK as u64));
    for (name, script) in [("voice-delay-reverb", fx_script()), ("stereo-voice-pingpong-reverb", stereo_fx_script())] {
        let mut rack = rack_playing(&script);
        let out = render(&mut rack, 1.0);
        assert!(out.iter().all(|s| s.is_finite()), "{name}: non-finite output");
        assert!(rms(&out[out.len() / 2..]) > 0.002, "{name}: silent");
        group.bench_function(name, |b| {
            let mut block = synthpool_core::block::STEREO_SILENCE;
            b.iter(|| {
                rack.process(black_box(&mut block));
                black_box(&block);
            })
        });
    }
    group.finish();
}

/// The clock the workers time modules with (CLOCK_MONOTONIC through the vDSO, as
/// `clock::now_ns`), and per-slot sums as the workers keep them.
struct Clock {
    start: std::time::Instant,
    spent: [u64; 256],
}

impl synthpool_core::rack::SlotTimer for Clock {
    fn now(&mut self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn charge(&mut self, slot: usize, spent: u64) {
        if let Some(s) = self.spent.get_mut(slot) {
            *s += spent;
        }
    }
}

/// What per-module timing costs a 60-voice rack: untimed, every block timed, and one block
/// in 64 timed (what the workers do: `worker::TIME_MODULES_EVERY`).
fn timing(c: &mut Criterion) {
    let mut rack = rack_playing(&voice_script(60));
    render(&mut rack, 0.5);
    let mut clock = Clock { start: std::time::Instant::now(), spent: [0; 256] };
    let mut group = c.benchmark_group("timing");
    group.throughput(Throughput::Elements((BLOCK * 60) as u64));
    let mut block = synthpool_core::block::STEREO_SILENCE;
    group.bench_function("60-voices/untimed", |b| {
        b.iter(|| {
            rack.process(black_box(&mut block));
            black_box(&block);
        })
    });
    group.bench_function("60-voices/every-block", |b| {
        b.iter(|| {
            rack.process_timed(black_box(&mut block), &mut clock);
            black_box(&block);
        })
    });
    let mut n = 0u32;
    group.bench_function("60-voices/every-64th", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            if n.is_multiple_of(64) {
                rack.process_timed(black_box(&mut block), &mut clock);
            } else {
                rack.process(black_box(&mut block));
            }
            black_box(&block);
        })
    });
    group.finish();
    assert!(clock.spent.iter().filter(|&&s| s > 0).count() > 200, "every module was charged");
}

criterion_group!(benches, voices, fx, timing);
criterion_main!(benches);
