//! What the host can tell about another process from its pid.

/// Whether process `pid` is alive: it exists (a signal 0 reaches it) and `/proc/PID/stat`
/// says it is not a zombie (`Z`) or dead (`X`): a worker that died but was not reaped yet
/// holds nothing. An unreadable `stat` counts as dead.
pub fn is_alive(pid: u32) -> bool {
    rustix::process::Pid::from_raw(pid as i32)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok() && !is_zombie(pid))
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])))
        .unwrap_or(true)
}
