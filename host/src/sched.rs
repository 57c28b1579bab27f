//! How the threads of the audio path are set up, each for the calling thread: scheduling
//! (SCHED_FIFO for the audio thread and the workers, a nice value for the OSC thread) and
//! float modes (denormals flushed). The two raw calls behind them are in `shm.rs`, the one
//! file allowed `unsafe`.

use std::io;

use crate::shm;

/// Asks for SCHED_FIFO at `priority` (1..=99) for the calling thread.
///
/// # Errors
/// The OS refused (no CAP_SYS_NICE or RLIMIT_RTPRIO).
pub fn set_realtime(priority: i32) -> io::Result<()> {
    shm::set_fifo_priority(priority)
}

/// Lowers the calling thread's scheduling priority to nice `nice` (-20..=19; the OSC thread,
/// when every core runs a worker: it must yield to them).
///
/// # Errors
/// The OS refused.
pub fn lower_priority(nice: i32) -> io::Result<()> {
    Ok(rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice)?)
}

/// Makes denormal floats flush to zero on this thread (FTZ and DAZ on x86-64, FZ on aarch64;
/// nothing elsewhere): feedback paths that decay into denormals then cost nothing extra.
pub fn flush_denormals() {
    shm::set_flush_to_zero();
}
