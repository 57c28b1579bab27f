//! Each unit alone, one block of 64 frames at 48 kHz: ids `unit/variant/block64`, throughput
//! in samples (criterion prints ns per block; divide by 64 for ns per sample).
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use synthpool_core::BLOCK;
use synthpool_core::units::adsr::Adsr;
use synthpool_core::units::delay::Delay;
use synthpool_core::units::lfo::Lfo;
use synthpool_core::units::mixer::Mixer;
use synthpool_core::units::noise::Noise;
use synthpool_core::units::reverb::HostReverb;
use synthpool_core::units::vca::Vca;
use synthpool_core::units::vcf::Vcf;
use synthpool_core::units::vco::{Vco, Wave};

const FS: f32 = 48_000.0;

fn saw_block() -> [f32; BLOCK] {
    let mut vco = Vco::new();
    vco.prepare(FS);
    vco.set_freq_hz(110.0);
    let mut block = [0.0; BLOCK];
    for _ in 0..10 {
        vco.process(None, None, &mut block);
    }
    assert!(block.iter().any(|&s| s != 0.0));
    block
}

fn units(c: &mut Criterion) {
    let mut group = c.benchmark_group("unit");
    group.throughput(Throughput::Elements(BLOCK as u64));
    let input = saw_block();
    let mut out = [0.0; BLOCK];

    for (name, wave) in
        [("vco/saw/block64", Wave::Saw), ("vco/square/block64", Wave::Square), ("vco/sine/block64", Wave::Sine)]
    {
        let mut vco = Vco::new();
        vco.prepare(FS);
        vco.set_wave(wave);
        vco.set_freq_hz(110.0);
        group.bench_function(name, |b| b.iter(|| vco.process(None, None, black_box(&mut out))));
    }
    let mut vcf = Vcf::new();
    vcf.prepare(FS);
    vcf.set_cutoff_hz(2000.0);
    vcf.set_q(2.0);
    group.bench_function("vcf/lowpass/block64", |b| {
        b.iter(|| vcf.process(Some(black_box(&input)), None, black_box(&mut out)))
    });
    let mut vca = Vca::new();
    vca.prepare(FS);
    vca.set_gain(0.05);
    group.bench_function("vca/cv/block64", |b| {
        b.iter(|| vca.process(Some(black_box(&input)), Some(&input), black_box(&mut out)))
    });
    let mut adsr = Adsr::new();
    adsr.prepare(FS);
    adsr.set_gate(1.0);
    group.bench_function("adsr/held/block64", |b| b.iter(|| adsr.process(None, black_box(&mut out))));
    let mut lfo = Lfo::new();
    lfo.prepare(FS);
    group.bench_function("lfo/sine/block64", |b| b.iter(|| lfo.process(black_box(&mut out))));
    let mut noise = Noise::new();
    noise.prepare(FS);
    group.bench_function("noise/white/block64", |b| b.iter(|| noise.process(black_box(&mut out))));
    let mut delay = Box::new(Delay::<{ 1 << 15 }>::new());
    delay.prepare(FS);
    group.bench_function("delay/300ms/block64", |b| {
        b.iter(|| delay.process(Some(black_box(&input)), black_box(&mut out), None))
    });
    let mut reverb = Box::new(HostReverb::new());
    reverb.prepare(FS);
    reverb.set_room(0.8);
    group.bench_function("reverb/room0.8/block64", |b| {
        b.iter(|| reverb.process(Some(black_box(&input)), None, None, black_box(&mut out), None))
    });
    let mut mixer = Mixer::new();
    mixer.prepare(FS);
    group.bench_function("mixer/4in/block64", |b| {
        b.iter(|| {
            mixer.process(
                [Some(black_box(&input)), Some(&input), Some(&input), Some(&input)],
                black_box(&mut out),
                None,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, units);
criterion_main!(benches);
