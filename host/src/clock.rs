//! The clock every process of the server reads: the block clock's deadlines, the workers'
//! timings and the audio thread's estimate of its device are all in its nanoseconds.

/// Monotonic clock, ns (CLOCK_MONOTONIC, through the vDSO: no syscall; comparable across
/// processes).
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// CPU time this process has used, every thread's (those that ended too), ns
/// (CLOCK_PROCESS_CPUTIME_ID). For measuring what rendering costs, not for the audio path.
pub fn process_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// CPU time process `pid`'s main thread has used, ns (`/proc/PID/schedstat`'s first figure:
/// a worker renders on its main thread, its only one); None when it cannot be read.
pub fn cpu_ns_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}
