//! Deterministic maths: the same f32 bits on x86-64, aarch64 and Cortex-M4F.
//!
//! Every transcendental call in the DSP goes through here (`measure`, which only measures
//! what the DSP rendered, calls libm's f64 functions itself). `libm` is pure Rust, so host
//! and firmware compute identical results; std's methods (`x.sin()`) would silently take
//! over in tests, where std is linked, and differ (clippy's `disallowed-methods` forbids
//! them in the core). Per-sample polynomials, where a libm call would cost more than the
//! rest of a unit, live beside the unit that uses them (the VCO's `sine_at`, `exp2_smooth`).

/// pi, for coefficient formulas.
pub const PI: f32 = core::f32::consts::PI;

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
