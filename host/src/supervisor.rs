//! The supervisor: replaces a worker process that dies, so a crash costs a few milliseconds of
//! that worker's share and nothing else.
//!
//! One thread sleeps on the workers' pidfds ([`Pool::wait_for_death`]): a death is seen the
//! moment the kernel reaps it, and the audio thread stops waiting for that worker at once (its
//! state word reads DEAD). The replacement is launched on the same slot and core:
//!
//! - if the dead worker was between blocks (its `busy` word clear), its rack in shared memory
//!   is whole, and the replacement re-attaches to it: voices, envelopes, delay lines and reverb
//!   tails carry on; commands it had not taken are still in its ring;
//! - if it died while changing its rack, the rack is cleared and rebuilt from the ledger
//!   ([`Ledger::worker_commands`]), its pending commands dropped (the ledger holds them).
//!
//! Either way the first block gathered from the replacement fades in. A slot that dies
//! [`CRASH_LOOP`] times within [`CRASH_WINDOW`] is given up on: its modules move to the other
//! workers ([`Ledger::evacuate`]) and the slot is retired, reported once, not relaunched. When
//! the others lack room, the slot is relaunched after [`BACKOFF`] instead.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::ledger::Ledger;
use crate::pool::{Death, Pool};

/// Deaths within [`CRASH_WINDOW`] after which a slot is given up on.
pub const CRASH_LOOP: usize = 5;
/// The window [`CRASH_LOOP`] deaths are counted in.
pub const CRASH_WINDOW: Duration = Duration::from_secs(1);
/// Wait before relaunching a crash-looping slot whose modules fit nowhere else.
pub const BACKOFF: Duration = Duration::from_secs(1);
/// How often the supervisor looks at its stop flag and at hung workers.
const POLL: Duration = Duration::from_millis(20);
/// Blocks a running worker may fall behind the clock before it is taken for hung and killed
/// (then replaced like any dead worker): 1 s at 48 kHz, far beyond any scheduling hiccup.
pub const HUNG_BLOCKS: u32 = 750;

/// Starts the supervisor thread; it ends when `stop` is set.
///
/// # Errors
/// The thread cannot be spawned.
pub fn spawn(
    pool: Arc<Pool>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<Recoveries>> {
    std::thread::Builder::new().name("supervisor".into()).spawn(move || {
        let mut supervisor = Supervisor::new(pool.workers());
        while !stop.load(Ordering::Acquire) {
            supervisor.retry_due(&pool, &ledger);
            supervisor.kill_hung(&pool);
            if let Some(death) = pool.wait_for_death(POLL) {
                supervisor.recover(&pool, &ledger, death);
            }
        }
        supervisor.done
    })
}

/// What the supervisor did, reported when it ends.
#[derive(Clone, Debug, Default)]
pub struct Recoveries {
    /// Replacements that came up.
    pub relaunched: u64,
    /// Of those, the ones whose rack was rebuilt from the ledger.
    pub rebuilt: u64,
    /// Slots given up on.
    pub retired: u64,
    /// Longest time from a death being seen to its replacement ready.
    pub slowest: Duration,
}

struct Supervisor {
    /// Recent deaths of each slot.
    deaths: Vec<VecDeque<Instant>>,
    /// Slots to relaunch later (after a failed relaunch or a backoff), and their rebuild flag.
    retry: Vec<Option<(Instant, bool)>>,
    done: Recoveries,
}

impl Supervisor {
    fn new(workers: usize) -> Self {
        Self { deaths: vec![VecDeque::new(); workers], retry: vec![None; workers], done: Recoveries::default() }
    }

    fn recover(&mut self, pool: &Pool, ledger: &Mutex<Ledger>, death: Death) {
        let recent = &mut self.deaths[death.index];
        recent.push_back(death.found);
        while recent.front().is_some_and(|&t| death.found.duration_since(t) > CRASH_WINDOW) {
            recent.pop_front();
        }
        eprintln!("synthpool: worker {} (pid {}) died: {}", death.index, death.pid, death.how);
        if recent.len() >= CRASH_LOOP {
            let mut ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
            let moving = ledger.usage(death.index).modules;
            match ledger.evacuate(death.index) {
                Ok(commands) => {
                    // In parts if need be: the ledger has recorded the move, so every command
                    // must reach the new workers.
                    if let Err(e) = pool.push_draining(&commands, Duration::from_secs(2)) {
                        eprintln!("synthpool: worker {}: moving its modules: {e}", death.index);
                    }
                    match pool.retire(death.index) {
                        Ok(()) => {
                            self.done.retired += 1;
                            eprintln!(
                                "synthpool: worker {} died {CRASH_LOOP} times within {:?}: retired, its {moving} modules moved to the other workers",
                                death.index, CRASH_WINDOW
                            );
                        }
                        Err(e) => eprintln!("synthpool: worker {}: cannot retire it: {e}", death.index),
                    }
                    return;
                }
                Err(e) => {
                    eprintln!(
                        "synthpool: worker {} keeps dying, and the other workers have no room for its modules ({}): relaunching in {:?}",
                        death.index,
                        e.name(),
                        BACKOFF
                    );
                    self.retry[death.index] = Some((Instant::now() + BACKOFF, death.mid_change));
                    return;
                }
            }
        }
        self.relaunch(pool, ledger, death.index, death.mid_change, death.found);
    }

    fn relaunch(&mut self, pool: &Pool, ledger: &Mutex<Ledger>, index: usize, rebuild: bool, since: Instant) {
        // The slot is readied under the ledger's lock: the OSC thread pushes commands under
        // it, so the ring keeps one producer while a rebuild refills it. The launch (a few
        // ms; up to 1 s for a replacement that hangs) runs without it, so the OSC side keeps
        // answering, unless part of a rebuild is still to follow: nothing may overtake it.
        let mut guard = Some(ledger.lock().unwrap_or_else(PoisonError::into_inner));
        let commands = guard.as_ref().filter(|_| rebuild).map(|ledger| ledger.worker_commands(index));
        let relaunched = pool.relaunch_then(index, commands.as_deref(), |all_queued| {
            if all_queued {
                guard = None;
            }
        });
        drop(guard);
        match relaunched {
            Ok(_) => {
                let took = since.elapsed();
                self.done.relaunched += 1;
                self.done.rebuilt += u64::from(rebuild);
                self.done.slowest = self.done.slowest.max(took);
                let how = if rebuild { "its rack rebuilt from the ledger" } else { "re-attached to its rack" };
                eprintln!(
                    "synthpool: worker {index} replaced (pid {}), {how}, {:.2} ms after its death was seen",
                    pool.status().get(index).map_or(0, |s| s.pid),
                    took.as_secs_f64() * 1e3
                );
            }
            Err(e) => {
                eprintln!("synthpool: worker {index}: replacement failed ({e}); trying again in {:?}", POLL * 5);
                self.retry[index] = Some((Instant::now() + POLL * 5, rebuild));
            }
        }
    }

    /// A worker alive but not answering (stopped, stuck) is killed, so that it is replaced.
    fn kill_hung(&mut self, pool: &Pool) {
        for index in 0..self.retry.len() {
            let behind = pool.blocks_behind(index);
            if behind > HUNG_BLOCKS {
                eprintln!("synthpool: worker {index} is {behind} blocks behind the clock: killing it to replace it");
                pool.kill(index);
            }
        }
    }

    fn retry_due(&mut self, pool: &Pool, ledger: &Mutex<Ledger>) {
        for index in 0..self.retry.len() {
            if let Some((_, rebuild)) = self.retry[index].filter(|&(when, _)| when <= Instant::now()) {
                self.retry[index] = None;
                // A failed launch may have left a half-started process; it is reaped as a
                // death when it ends, so only relaunch slots that are still dead.
                if pool.state(index) == crate::shm::DEAD {
                    self.relaunch(pool, ledger, index, rebuild, Instant::now());
                }
            }
        }
    }
}
