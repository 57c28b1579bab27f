//! Measurements of rendered sound: level, pitch, clicks, one tone's amplitude. The core's unit
//! tests, the end-to-end tests, the host's tests and the benchmarks all measure with these, so
//! a tolerance means the same in each.
//!
//! `no_std` and allocation-free like the rest of the core: sums run in f64 and the
//! transcendental functions come from libm, so a measure gives the same bits on every target.
//! Levels are dBFS of amplitude: a full-scale sine has a peak of 0 dB and an RMS of -3.01 dB.

/// Peak level of `x`, dBFS: 20 log10 of the largest |sample|, NaN samples ignored
/// (-inf for silence or an empty slice).
pub fn peak_db(x: &[f32]) -> f64 {
    20.0 * libm::log10(f64::from(x.iter().fold(0.0f32, |m, s| m.max(s.abs()))))
}

/// Peak level of `a - b` sample by sample, dBFS: "a equals b" is `diff_peak_db(a, b) < -90.0`.
/// +inf when the lengths differ (two signals of different lengths are never equal).
pub fn diff_peak_db(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let peak = a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    20.0 * libm::log10(f64::from(peak))
}

/// RMS level of `x`, linear: 1.0 is a full-scale square, 0.707 a full-scale sine (0.0 for an
/// empty slice).
pub fn rms(x: &[f32]) -> f64 {
    libm::sqrt(mean_square(x))
}

/// RMS level of `x`, dBFS: 10 log10 of the mean square (-inf for silence or an empty slice).
pub fn rms_db(x: &[f32]) -> f64 {
    10.0 * libm::log10(mean_square(x))
}

/// Mean of the squared samples, linear (full scale squared is 1.0; 0.0 for an empty slice).
fn mean_square(x: &[f32]) -> f64 {
    x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len().max(1) as f64
}

/// Pitch of `x` in Hz at `sample_rate_hz`, from its upward zero crossings (each placed between
/// its two samples by linear interpolation), counted from the first to the last: over one
/// second the resolution is ~0.01 Hz. 0.0 with fewer than two crossings.
pub fn freq_by_zero_crossings(x: &[f32], sample_rate_hz: f32) -> f64 {
    let mut first = None;
    let mut last = 0.0f64;
    let mut periods = 0usize;
    for (n, pair) in x.windows(2).enumerate() {
        let (a, b) = (f64::from(pair[0]), f64::from(pair[1]));
        if a < 0.0 && b >= 0.0 {
            let t = n as f64 + -a / (b - a);
            if first.is_none() {
                first = Some(t);
            } else {
                periods += 1;
            }
            last = t;
        }
    }
    match first {
        Some(t0) if periods > 0 => periods as f64 * f64::from(sample_rate_hz) / (last - t0),
        _ => 0.0,
    }
}

/// Largest absolute sample-to-sample step of `x`, linear full scale (a step from -1 to 1 is
/// 2.0): a click shows as a step far above the signal's own (0.0 for fewer than 2 samples).
pub fn max_step(x: &[f32]) -> f32 {
    x.windows(2).fold(0.0f32, |m, w| m.max((w[1] - w[0]).abs()))
}

/// Amplitude, linear full scale, of the `hz` component of `x` at `sample_rate_hz`: one DFT bin
/// over the whole slice (a full-scale sine of `hz` reads 1.0). Exact when `x` holds a whole
/// number of periods of `hz`; then tones a whole number of periods apart do not leak into each
/// other. Per block, `x.chunks_exact(BLOCK)` with a tone of `k` cycles a block
/// (`hz = k * sample_rate_hz / BLOCK`: 750 Hz is 1 at 48 kHz) follows each tone of a sum.
pub fn tone_amplitude(x: &[f32], hz: f64, sample_rate_hz: f32) -> f64 {
    let w = core::f64::consts::TAU * hz / f64::from(sample_rate_hz);
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (n, &s) in x.iter().enumerate() {
        let phase = w * n as f64;
        re += f64::from(s) * libm::cos(phase);
        im -= f64::from(s) * libm::sin(phase);
    }
    2.0 * libm::hypot(re, im) / x.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BLOCK;

    const FS: f32 = 48_000.0;

    fn sine(hz: f64, amplitude: f32, samples: usize) -> impl Iterator<Item = f32> {
        let w = core::f64::consts::TAU * hz / f64::from(FS);
        (0..samples).map(move |n| amplitude * libm::sin(w * n as f64) as f32)
    }

    #[test]
    fn a_full_scale_sine_reads_0_db_peak_minus_3_01_db_rms_and_its_pitch() {
        let x: std::vec::Vec<f32> = sine(440.0, 1.0, 48_000).collect();
        // 0.05 Hz: crossings over 1 s resolve ~0.01 Hz.
        assert!((freq_by_zero_crossings(&x, FS) - 440.0).abs() < 0.05);
        assert!((rms_db(&x) + 3.01).abs() < 0.01);
        assert!((rms(&x) - core::f64::consts::FRAC_1_SQRT_2).abs() < 1e-4);
        // 0.01 dB: some sample falls within half a step (0.029 rad) of a crest: -0.004 dB.
        assert!(peak_db(&x).abs() < 0.01);
        assert!(diff_peak_db(&x, &x) == f64::NEG_INFINITY);
        assert!(diff_peak_db(&x, &x[1..]) == f64::INFINITY);
        // The largest step of a sine is its slope, 2 pi f / fs per sample.
        let slope = (core::f64::consts::TAU * 440.0 / f64::from(FS)) as f32;
        assert!((max_step(&x) - slope).abs() < 1e-4);
    }

    #[test]
    fn silence_and_empty_slices_read_as_nothing() {
        assert_eq!(peak_db(&[0.0; BLOCK]), f64::NEG_INFINITY);
        assert_eq!(rms_db(&[]), f64::NEG_INFINITY);
        assert_eq!((rms(&[]), max_step(&[0.5]), freq_by_zero_crossings(&[], FS)), (0.0, 0.0, 0.0));
        assert_eq!(tone_amplitude(&[], 750.0, FS), 0.0);
    }

    #[test]
    fn tones_on_different_bins_of_a_block_are_measured_apart() {
        // 750 Hz and 6 kHz make 1 and 8 cycles a block at 48 kHz: bins 1 and 8.
        let x: std::vec::Vec<f32> =
            sine(750.0, 0.5, BLOCK).zip(sine(6000.0, 0.25, BLOCK)).map(|(a, b)| a + b).collect();
        assert!((tone_amplitude(&x, 750.0, FS) - 0.5).abs() < 1e-6);
        assert!((tone_amplitude(&x, 6000.0, FS) - 0.25).abs() < 1e-6);
        assert!(tone_amplitude(&x, 1500.0, FS) < 1e-6);
    }
}
