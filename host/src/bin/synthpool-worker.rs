//! `synthpool-worker`: one of the pool's worker processes. Started by `synthpool`, not by hand.
use std::process::ExitCode;
use synthpool_host::worker::{WorkerArgs, run};

/// Counts allocations on the audio path (there must be none; `/status` reports them).
#[global_allocator]
static ALLOCATOR: synthpool_host::alloc_count::CountingAlloc = synthpool_host::alloc_count::CountingAlloc;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut parsed = (None, None, None);
    while let (Some(flag), Some(value)) = (args.next(), args.next()) {
        let value = value.parse::<usize>().ok();
        match flag.as_str() {
            "--fd" => parsed.0 = value,
            "--index" => parsed.1 = value,
            "--core" => parsed.2 = value,
            _ => {}
        }
    }
    let (Some(fd), Some(index), Some(core)) = parsed else {
        eprintln!("usage: synthpool-worker --fd FD --index I --core C (started by synthpool)");
        return ExitCode::from(2);
    };
    ExitCode::from(run(WorkerArgs { fd: fd as i32, index, core }) as u8)
}
