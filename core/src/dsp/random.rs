//! Seeded randomness from integer maths only: the same sequence on every target.
//!
//! A counter run through Chris Wellons' `lowbias32` hash (hash-prospector): noise hashes a
//! Weyl sequence per sample, the LFO's sample-and-hold one value per cycle.

/// Chris Wellons' `lowbias32` integer hash: a bijection on u32 with near-ideal avalanche, so
/// a counter run through it looks random.
#[inline]
pub fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// A hash as a uniform value in -1.0..1.0: its top 24 bits, signed, scaled exactly (every
/// step is 2^-23, so the conversion is exact on every target).
#[inline]
pub fn bipolar(hash: u32) -> f32 {
    (hash as i32 >> 8) as f32 * (1.0 / 8_388_608.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_and_range() {
        // Golden values: a change here changes every noise and S&H sequence.
        assert_eq!(lowbias32(0), 0);
        assert_eq!(lowbias32(1), 0x6889_90c0); // by hand from the definition (Python)
        assert_eq!(bipolar(u32::MAX), -1.0 / 8_388_608.0);
        assert_eq!(bipolar(0x8000_0000), -1.0);
        assert!(bipolar(0x7fff_ffff) < 1.0);
    }
}
