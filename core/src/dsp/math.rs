//! Deterministic maths: the same f32 bits on x86-64, aarch64 and Cortex-M4F.
//!
//! Every transcendental call in the core goes through here. `libm` is pure Rust, so host
//! and firmware compute identical results; std's methods (`x.sin()`) would silently take
//! over in tests, where std is linked, and differ (clippy's `disallowed-methods` forbids
//! them in the core). The polynomial versions are for per-sample use, where a libm call
//! would cost more than the rest of a unit.

/// pi, for coefficient formulas.
pub const PI: f32 = core::f32::consts::PI;
/// 2 pi, one turn in radians.
pub const TAU: f32 = core::f32::consts::TAU;

/// tan(x), x in radians (libm: accurate to 1 ulp).
#[inline]
pub fn tan(x: f32) -> f32 {
    libm::tanf(x)
}

/// sin(x), x in radians (libm).
#[inline]
pub fn sin(x: f32) -> f32 {
    libm::sinf(x)
}

/// cos(x), x in radians (libm).
#[inline]
pub fn cos(x: f32) -> f32 {
    libm::cosf(x)
}

/// e^x (libm).
#[inline]
pub fn exp(x: f32) -> f32 {
    libm::expf(x)
}

/// 2^x (libm): pitch in octaves to a frequency ratio.
#[inline]
pub fn exp2(x: f32) -> f32 {
    libm::exp2f(x)
}

/// Square root (libm; correctly rounded).
#[inline]
pub fn sqrt(x: f32) -> f32 {
    libm::sqrtf(x)
}

/// Largest integer not above `x` (libm).
#[inline]
pub fn floor(x: f32) -> f32 {
    libm::floorf(x)
}

/// Decibels to a linear amplitude factor: 0 dB is 1.0, -6.02 dB is 0.5.
#[inline]
pub fn db_to_gain(gain_db: f32) -> f32 {
    exp2(gain_db * (1.0 / 6.020_6))
}

/// sin(2 pi `phase`) for `phase` in turns (|phase| < 2^31), by an odd degree-9 polynomial
/// after folding to a quarter turn: error below 4e-6 (-108 dB), for per-sample sines.
#[inline]
pub fn sin_turns(phase: f32) -> f32 {
    // Fold to t in [-0.25, 0.25] turns, where sin is odd and Taylor converges fast.
    // Integer truncation, not libm's floor: this runs per sample.
    let mut t = phase - phase as i32 as f32; // (-1, 1)
    if t >= 0.5 {
        t -= 1.0;
    } else if t < -0.5 {
        t += 1.0;
    }
    if t > 0.25 {
        t = 0.5 - t;
    } else if t < -0.25 {
        t = -0.5 - t;
    }
    let x = t * TAU;
    let x2 = x * x;
    // Taylor to x^9: the first omitted term, x^11 / 11!, is 3.6e-6 at x = pi / 2.
    x * (1.0 + x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362_880.0)))))
}

/// 2^x for x in -126.0..=127.0 by exponent bits and a degree-6 polynomial: relative error
/// below 5e-7 (0.001 cent), for per-sample pitch modulation. Clamps outside that range.
#[inline]
pub fn exp2_fast(x: f32) -> f32 {
    let x = x.clamp(-126.0, 127.0);
    // Round to nearest by truncation, corrected below zero: no libm call per sample.
    let mut whole = (x + 0.5) as i32;
    if whole as f32 > x + 0.5 {
        whole -= 1;
    }
    let frac = x - whole as f32; // -0.5..0.5
    // Taylor series of e^(f ln 2): on |f| <= 0.5 the first omitted term,
    // (0.5 ln 2)^7 / 7!, is 1.2e-7; the rest of the budget is f32 rounding.
    let p = 1.0
        + frac
            * (core::f32::consts::LN_2
                + frac
                    * (0.240_226_5
                        + frac
                            * (0.055_504_11
                                + frac * (0.009_618_129 + frac * (0.001_333_355 + frac * 0.000_154_035_3)))));
    // `whole` is an integer in -126..=127, so the biased exponent is 1..=254: a normal float.
    let bits = ((whole + 127) as u32) << 23;
    f32::from_bits(bits) * p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sin_turns_matches_libm_within_4e6() {
        let mut worst = 0.0f32;
        for i in -4000..4000 {
            let phase = i as f32 / 1000.0 + 0.000_37;
            let err = (sin_turns(phase) - libm::sin(phase as f64 * core::f64::consts::TAU) as f32).abs();
            worst = worst.max(err);
        }
        assert!(worst < 4.0e-6, "worst error {worst}");
    }

    #[test]
    fn exp2_fast_relative_error_below_5e7() {
        let mut worst = 0.0f64;
        for i in -10_000..10_000 {
            let x = i as f32 / 1000.0;
            let exact = libm::exp2(x as f64);
            let err = ((exp2_fast(x) as f64 - exact) / exact).abs();
            worst = worst.max(err);
        }
        assert!(worst < 5.0e-7, "worst relative error {worst}");
    }

    #[test]
    fn db_to_gain_is_amplitude_decibels() {
        assert!((db_to_gain(0.0) - 1.0).abs() < 1e-6);
        assert!((db_to_gain(-20.0) - 0.1).abs() < 1e-4);
        assert!((db_to_gain(-6.0206) - 0.5).abs() < 1e-4);
    }
}
