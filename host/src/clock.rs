//! The clock every process of the server reads: the block clock's deadlines, the workers'
//! timings and the audio thread's estimate of its device are all in its nanoseconds.

/// Monotonic clock, ns (CLOCK_MONOTONIC, through the vDSO: no syscall; comparable across
/// processes).
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}
