//! A checksum of rendered audio that every target computes the same way: equal checksums
//! mean bit-identical samples (the firmware under QEMU, x86-64 and aarch64 compare these).

/// FNV-1a 64-bit offset basis: the hash of no bytes, where every checksum starts.
pub const FNV1A_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a 64-bit prime.
const FNV1A_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Continues the FNV-1a 64-bit `hash` over `samples`: the 4 little-endian bytes of each
/// sample's bit pattern (`f32::to_bits`), in order. Start from [`FNV1A_OFFSET`].
///
/// Bit patterns, not values: -0.0 and 0.0 differ, and so would two NaNs.
pub fn fnv1a_f32(mut hash: u64, samples: &[f32]) -> u64 {
    for sample in samples {
        for byte in sample.to_bits().to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(FNV1A_PRIME);
        }
    }
    hash
}
