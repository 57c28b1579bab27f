//! What the core's tests need beside [`crate::measure`] (re-exported here): rendering,
//! spectra, test signals and proptest strategies (test builds only, std available).
//!
//! Levels are dBFS of amplitude (a full-scale sine has a peak of 0 dB and an RMS of
//! -3.01 dB). Spectra use a Blackman-Harris window: its -92 dB sidelobes let a test see an
//! alias 60 dB below a strong partial, which a Hann window (-31 dB) would smear.
// std's float maths is right here: these measures never run on a target.
#![allow(clippy::disallowed_methods)]

use crate::block::{BLOCK, Block};
pub use crate::measure::{diff_peak_db, freq_by_zero_crossings, max_step, peak_db, rms_db};
use proptest::prelude::*;
use rustfft::{FftPlanner, num_complex::Complex};

/// Sample rate used by the unit tests, Hz.
pub const FS: f32 = 48_000.0;

/// Calls `process` on consecutive blocks (each starting zeroed) for `seconds`; returns them joined.
pub fn render_s(seconds: f32, mut process: impl FnMut(&mut Block)) -> Vec<f32> {
    let blocks = (seconds * FS / BLOCK as f32).ceil() as usize;
    let mut out = Vec::with_capacity(blocks * BLOCK);
    for _ in 0..blocks {
        let mut block = [0.0; BLOCK];
        process(&mut block);
        out.extend_from_slice(&block);
    }
    out
}

/// True when every sample is finite.
pub fn all_finite(x: &[f32]) -> bool {
    x.iter().all(|s| s.is_finite())
}

/// Amplitude spectrum in dBFS per bin (a full-scale sine centred on a bin reads 0 dB, one
/// between bins down to -0.83 dB),
/// Blackman-Harris windowed; bin `k` is `k * fs / x.len()` Hz. Uses `x.len()` samples.
pub fn spectrum_db(x: &[f32]) -> Vec<f32> {
    let n = x.len();
    let window: Vec<f64> = (0..n)
        .map(|i| {
            let p = std::f64::consts::TAU * i as f64 / n as f64;
            0.35875 - 0.48829 * p.cos() + 0.14128 * (2.0 * p).cos() - 0.01168 * (3.0 * p).cos()
        })
        .collect();
    let window_sum: f64 = window.iter().sum();
    let mut buf: Vec<Complex<f64>> = x.iter().zip(&window).map(|(&s, w)| Complex::new(s as f64 * w, 0.0)).collect();
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    buf[..n / 2].iter().map(|c| (20.0 * (2.0 * c.norm() / window_sum).log10()) as f32).collect()
}

/// Highest level in dB of `spectrum` within `half_width` bins of the bin nearest `hz`.
pub fn level_near_db(spectrum: &[f32], fs: f32, hz: f32, half_width: usize) -> f32 {
    let n = spectrum.len() * 2;
    let centre = (hz as f64 * n as f64 / fs as f64).round() as usize;
    let lo = centre.saturating_sub(half_width);
    let hi = (centre + half_width).min(spectrum.len() - 1);
    spectrum[lo..=hi].iter().cloned().fold(f32::NEG_INFINITY, f32::max)
}

/// Frequency in Hz of the strongest bin of `spectrum`.
pub fn peak_hz(spectrum: &[f32], fs: f32) -> f32 {
    let (bin, _) = spectrum
        .iter()
        .enumerate()
        .skip(1)
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) });
    bin as f32 * fs / (spectrum.len() * 2) as f32
}

/// A sine of `hz` at `amplitude`, `seconds` long, from phase 0: test input.
pub fn sine(hz: f32, amplitude: f32, seconds: f32) -> Vec<f32> {
    let n = (seconds * FS) as usize;
    (0..n).map(|i| amplitude * (std::f64::consts::TAU * hz as f64 * i as f64 / FS as f64).sin() as f32).collect()
}

/// Feeds `input` through `process` block by block (a tail shorter than a block is zero-padded).
pub fn run_through(input: &[f32], mut process: impl FnMut(&mut Block)) -> Vec<f32> {
    let mut out = Vec::with_capacity(input.len() + BLOCK);
    for chunk in input.chunks(BLOCK) {
        let mut block = [0.0; BLOCK];
        block[..chunk.len()].copy_from_slice(chunk);
        process(&mut block);
        out.extend_from_slice(&block[..chunk.len()]);
    }
    out
}

/// Parameter values for property tests: `normal` ones, and as often each, the values that
/// break DSP code (NaN, both infinities, +-1e30).
pub fn with_gremlins(normal: impl Strategy<Value = f32> + 'static) -> BoxedStrategy<f32> {
    prop_oneof![
        normal.boxed(),
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(1.0e30f32),
        Just(-1.0e30f32),
    ]
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_agree_with_a_known_sine() {
        let x = sine(440.0, 1.0, 1.0);
        assert!((freq_by_zero_crossings(&x, FS) - 440.0).abs() < 0.05);
        assert!((rms_db(&x) + 3.01).abs() < 0.01);
        assert!(peak_db(&x).abs() < 0.01);
        let s = spectrum_db(&x[..32768]);
        assert!((peak_hz(&s, FS) - 440.0).abs() < 2.0);
        // 0.9 dB: Blackman-Harris scalloping is up to 0.83 dB between bins.
        assert!(level_near_db(&s, FS, 440.0, 2).abs() < 0.9);
        assert!(level_near_db(&s, FS, 5000.0, 2) < -120.0);
    }
}
