//! Zapping gremlins: feedback state must never hold denormals, infinities or NaN.
//!
//! Denormals cost 100x the time of a normal float on x86 when they circulate in a filter
//! after the input goes silent; NaN or infinity would poison the state forever.
//! (SuperCollider calls this `zapgremlins`.)

/// Below this magnitude a state value is inaudible (-600 dB) and becomes exactly 0.0.
const TINY: f32 = 1.0e-30;

/// Returns `x`, or 0.0 when `x` is NaN, infinite, or smaller in magnitude than 1e-30.
#[inline]
pub fn flush(x: f32) -> f32 {
    // One compare covers all three: NaN fails it, and so does |inf| < 1e30.
    let magnitude = x.abs();
    if magnitude > TINY && magnitude < 1.0e30 { x } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_keeps_normal_values_and_zaps_gremlins() {
        assert_eq!(flush(0.5), 0.5);
        assert_eq!(flush(-1.0e-20), -1.0e-20);
        assert_eq!(flush(1.0e-38), 0.0);
        assert_eq!(flush(f32::MIN_POSITIVE / 2.0), 0.0);
        assert_eq!(flush(f32::NAN), 0.0);
        assert_eq!(flush(f32::INFINITY), 0.0);
        assert_eq!(flush(f32::NEG_INFINITY), 0.0);
    }
}
