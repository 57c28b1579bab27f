//! The core's figures: the standard voice (ns per voice-sample for 1, 16, 64 and 256 voices)
//! and the fx patch (ns per sample). `cargo xtask bench` writes them into BENCHMARKS.md.
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use synthpool_benches::{fx_script, rack_playing, render, voice_script};
use synthpool_core::BLOCK;

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32).sqrt()
}

fn voices(c: &mut Criterion) {
    let mut group = c.benchmark_group("voice");
    for n in [1usize, 16, 64, 256] {
        let mut rack = rack_playing(&voice_script(n));
        // Check the sound before timing it: past the attack and decay, finite and audible,
        // scaled with the voice count (each voice ~0.05 * 0.7 of a filtered saw).
        let out = render(&mut rack, 0.5);
        assert!(out.iter().all(|s| s.is_finite()), "non-finite output");
        let level = rms(&out[out.len() / 2..]);
        assert!(level > 0.005 && level < 0.05 * n as f32, "voice x{n}: rms {level}");
        group.throughput(Throughput::Elements((BLOCK * n) as u64));
        group.bench_with_input(BenchmarkId::new("saw-vcf-vca-adsr", n), &n, |b, _| {
            let mut block = [0.0; BLOCK];
            b.iter(|| {
                rack.process(black_box(&mut block));
                black_box(&block);
            })
        });
    }
    group.finish();
}

fn fx(c: &mut Criterion) {
    let mut rack = rack_playing(&fx_script());
    let out = render(&mut rack, 1.0);
    assert!(out.iter().all(|s| s.is_finite()), "non-finite output");
    assert!(rms(&out[out.len() / 2..]) > 0.002, "fx patch silent");
    let mut group = c.benchmark_group("fx");
    group.throughput(Throughput::Elements(BLOCK as u64));
    group.bench_function("voice-delay-reverb", |b| {
        let mut block = [0.0; BLOCK];
        b.iter(|| {
            rack.process(black_box(&mut block));
            black_box(&block);
        })
    });
    group.finish();
}

criterion_group!(benches, voices, fx);
criterion_main!(benches);
