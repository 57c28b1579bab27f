//! The worker process's loop: wait for the block clock, apply due commands, render, report.
//!
//! A worker maps the region the host created, pins itself to its core, asks for real-time
//! scheduling, pre-faults its rack by clearing it in place, says it is ready and then lives
//! in [`run`]: sleep on the generation word (futex), wake, drain its command ring (commands
//! wait for the generation they name), render one block of its rack, publish the block and
//! its timing, bump the done word, sleep again. Nothing here allocates or locks.
use std::sync::atomic::Ordering;

use synthpool_core::block::{Generation, STEREO_SILENCE, StereoBlock};
use synthpool_core::command::{Command, LinkEnd, WorkerCommand};
use synthpool_core::rack::{HostRack, Links, SlotTimer, Untimed};
use synthpool_core::ring::DueCommand;

use crate::shm::{self, ALL, Region, TIMING_SLOTS};
use crate::{alloc_count, clock, sched};

/// Most missed blocks a late worker renders to catch up with the clock.
pub const CATCH_UP_BLOCKS: u32 = 8;

/// How long a worker watches the clock after a block before sleeping, when blocks come back
/// to back, ns.
pub const SPIN_NS: u64 = 30_000;

/// How long a worker waits, from the start of its block, for a module another worker
/// exports to it in the same block (a move between workers): both were woken together and
/// exports come first, so it is there within microseconds unless the exporter runs late (a
/// worker without real-time priority on a loaded machine: 100 us was seen to fall short).
/// A quarter of the block, once per move.
pub const IMPORT_WAIT_NS: u64 = 300_000;

/// Real-time priority asked for by workers (below the host's audio thread).
pub const WORKER_PRIORITY: i32 = 70;

/// A worker times its modules one by one every this many blocks (the profiler's sample).
/// Measured on 60 standard voices in one rack (`cargo bench --bench core -- timing`): the
/// block takes 14.9 us untimed and 24.2 us with every module timed (~196 clock readings at
/// ~47 ns each, vDSO clock_gettime on these VMs, +62%); one block in 64 spreads that to
/// ~1%, and still gives ~12 timed blocks a second at 48 kHz, 117 in a 10 s profile.
pub const TIME_MODULES_EVERY: u64 = 64;

/// What a worker was told on its command line.
#[derive(Clone, Copy, Debug)]
pub struct WorkerArgs {
    /// The inherited memfd.
    pub fd: i32,
    /// Which worker slot of the region it owns.
    pub index: usize,
    /// The core to pin itself to.
    pub core: usize,
}

/// Runs a worker until the host sets the stop word. Returns the process exit code.
pub fn run(args: WorkerArgs) -> i32 {
    // A worker never outlives its host: if the host dies (even by kill -9), so does it.
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM)) {
        eprintln!("synthpool-worker {}: cannot tie its life to the host's: {e}", args.index);
    }
    if rustix::process::getppid().is_none() {
        return 2; // the host is already gone
    }
    let region = match Region::attach(args.fd).and_then(|r| r.claim_worker(args.index)) {
        Ok(region) => region,
        Err(e) => {
            eprintln!("synthpool-worker {}: cannot map the shared region: {e}", args.index);
            return 2;
        }
    };
    let mut region = region;
    let pinned = core_affinity::set_for_current(core_affinity::CoreId { id: args.core });
    let realtime = std::env::var_os("SYNTHPOOL_NO_RT").is_none() && sched::set_realtime(WORKER_PRIORITY).is_ok();
    sched::flush_denormals();
    let (control, rack, outboxes) = region.parts();
    let sample_rate_hz = control.clock.sample_rate_hz.load(Ordering::Relaxed) as f32;
    let me = &control.workers[args.index];
    // The host laid the rack out when it created the region (`Rack::init_zeroed`): preparing
    // it touches (pre-faults) the slots in use. A replacement (the slot has rendered blocks) finds the
    // rack its predecessor left at a block boundary, or cleared and rebuilt by the host
    // (see `shm::WorkerShared::busy`), and carries on from it: its voices keep their phase,
    // envelopes, delay lines and reverb tails.
    if me.blocks.load(Ordering::Relaxed) == 0 {
        rack.prepare(sample_rate_hz);
    }
    me.pid.store(std::process::id(), Ordering::Relaxed);
    me.core.store(if pinned { args.core as u32 } else { u32::MAX }, Ordering::Relaxed);
    if !realtime && args.index == 0 {
        eprintln!("synthpool-worker: real-time scheduling refused; running at normal priority");
    }
    // Read the wake word before saying ready: the host may write it right after.
    let clock = &control.clock;
    let mut seen = me.wake.load(Ordering::Acquire);
    // A replacement starts level with the clock, not where its predecessor stopped (the
    // supervisor would take a slot that was dead a while for one that hangs), and one block
    // short of it, so the host never takes the predecessor's last output for this block's.
    me.done_generation.store(seen.wrapping_sub(1), Ordering::Release);
    me.state.store(shm::READY, Ordering::Release);
    shm::futex_wake(&me.state, ALL);
    // From here on every allocation this thread makes is counted (there must be none).
    let _counting = alloc_count::CountAllocations::here();

    let mut block = STEREO_SILENCE;
    // Time from finishing a block to the next one starting, ns (the last block's).
    let mut gap_ns = u64::MAX;
    loop {
        // Blocks that came back to back (offline rendering, a heavy patch near its deadline)
        // are watched for a moment before sleeping: the next one then starts without a wake.
        // Paced blocks (a gap far longer than the watch) sleep at once: no time is burnt.
        let spin_until = if gap_ns < 2 * SPIN_NS { clock::now_ns() + SPIN_NS } else { 0 };
        let finished_ns = clock::now_ns();
        // SeqCst pairs with the host's: this counts itself asleep, then the futex checks the
        // word; the host writes the word, then looks for a sleeper. One of the two sees the other.
        while me.wake.load(Ordering::SeqCst) == seen && clock.stop.load(Ordering::Acquire) == 0 {
            if clock::now_ns() < spin_until {
                std::hint::spin_loop();
                continue;
            }
            me.sleeping.store(1, Ordering::SeqCst);
            shm::futex_wait(&me.wake, seen, None);
            me.sleeping.store(0, Ordering::SeqCst);
        }
        gap_ns = clock::now_ns().saturating_sub(finished_ns);
        if clock.stop.load(Ordering::Acquire) != 0 {
            break;
        }
        let start_ns = clock::now_ns();
        let generation = me.wake.load(Ordering::Acquire);
        // The host renders this rack itself meanwhile: not this process's to touch (the host
        // writes no wake then; this is a stale one).
        if me.inline.load(Ordering::Acquire) != 0 {
            seen = generation;
            continue;
        }
        me.busy.store(1, Ordering::Release);
        // Blocks the host owed this worker while it was late: render them too (their output
        // is gone) so its modules keep time with the clock and with every other worker, at
        // most CATCH_UP_BLOCKS (a worker far behind would only fall further back). Blocks the
        // host did not owe it (it had nothing to do) are not caught up.
        let (owed_from, next) = (Generation(me.owed_from.load(Ordering::Acquire)), Generation(seen).after(1));
        let now = Generation(generation);
        let first = if owed_from.reached(next) && now.reached(owed_from) { owed_from } else { next };
        let missed = now.since(first).min(CATCH_UP_BLOCKS);
        seen = generation;
        let lane = Lane { control, index: args.index, rack: &mut *rack, outboxes };
        render_lane(lane, &mut block, generation.wrapping_sub(missed), generation, start_ns);
        let (allocations, frees) = alloc_count::counted_allocations();
        me.allocations.store(allocations, Ordering::Relaxed);
        me.frees.store(frees, Ordering::Relaxed);
        me.busy.store(0, Ordering::Release);
        // Release: the output words are visible before the host sees this generation.
        me.done_generation.store(generation, Ordering::Release);
        let done = clock.done.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        // Only the worker that completes the block wakes the audio thread.
        if done.wrapping_sub(clock.expected_done.load(Ordering::Acquire)) as i32 >= 0 {
            shm::futex_wake(&clock.done, 1);
        }
    }
    me.state.store(shm::EXITED, Ordering::Release);
    me.claimed_by.store(0, Ordering::Release);
    0
}

/// One lane of the pool as its renderer holds it for a block: the worker process whose rack
/// it is, or the host's audio thread rendering the rack itself ([`shm::Region::take_lane`]).
pub struct Lane<'a> {
    /// The shared atomics.
    pub control: &'a shm::Control,
    /// The lane's (its worker's) index.
    pub index: usize,
    /// Its rack.
    pub rack: &'a mut HostRack,
    /// The outboxes, this lane's own for writing.
    pub outboxes: shm::Outboxes<'a>,
}

/// Renders lane `lane`'s blocks `first..=generation` (more than one to catch up), applying
/// each block's due commands first, and publishes the last one's output, its timing, the
/// block count and whether the rack is idle. The caller publishes `done_generation`.
/// Allocation-free, lock-free; no syscall (links and imports are watched, not slept on).
pub fn render_lane(lane: Lane<'_>, block: &mut StereoBlock, first: u32, generation: u32, start_ns: u64) {
    let Lane { control, index, rack, outboxes } = lane;
    let me = &control.workers[index];
    let clock = &control.clock;
    let mut at = first;
    let mut waited_ns = 0u64;
    // This block's audio input (a late worker's catch-up blocks hear it too: theirs is gone).
    for (channel, words) in rack.capture_mut().iter_mut().zip(&control.capture) {
        for (sample, word) in channel.iter_mut().zip(words) {
            *sample = f32::from_bits(word.load(Ordering::Relaxed));
        }
    }
    loop {
        // Commands wait for the generation they name (a bundle's share all wait for it).
        while let Some(words) = me.commands.peek() {
            // Words no producer writes (a corrupt ring) are dropped as soon as they are seen.
            let message = DueCommand::from_words(words);
            if message.is_none_or(|m| Generation(at).reached(m.due)) {
                let _ = me.commands.pop();
                match message.map(|m| m.command) {
                    // A module moving to another worker: its state as it is before this
                    // block, for that worker to take in the same block; then it leaves
                    // (its cables out fade while the other worker's fade in).
                    Some(WorkerCommand::Export { id, slot }) => {
                        outboxes.export(slot as usize, id, at, rack.module(id));
                        rack.leave(id);
                    }
                    // A module arriving from another worker (created by the commands
                    // before this one): it carries on from the state exported there,
                    // if that comes within IMPORT_WAIT_NS; else it starts afresh.
                    Some(WorkerCommand::Import { id, from, slot }) => {
                        let give_up = start_ns + IMPORT_WAIT_NS;
                        if let Some(module) = outboxes.import(from as usize, slot as usize, id, at, give_up) {
                            rack.adopt(id, &module);
                        }
                    }
                    // One end of a cable between workers: the send's channel names its
                    // sender, so a receiver stops waiting for it if it dies.
                    Some(WorkerCommand::Rack(command @ Command::Link { channel, end, .. })) => {
                        if end == LinkEnd::Send
                            && let Some(link) = control.links.get(channel as usize)
                        {
                            link.sender.store(index as u32, Ordering::Relaxed);
                        }
                        rack.apply(&command);
                    }
                    // Untimed, or timed to a sample of this block (a timetagged bundle's).
                    Some(WorkerCommand::Rack(command)) => match message.and_then(|m| m.frame) {
                        None => rack.apply(&command),
                        Some(frame) => rack.apply_at(&command, frame as usize),
                    },
                    None => {}
                }
            } else {
                break;
            }
        }
        let blocks = me.blocks.load(Ordering::Relaxed);
        // A block the clock already passed waits for no link: its blocks are gone.
        let give_up_ns = if at == generation { clock.deadline_ns.load(Ordering::Relaxed) } else { 0 };
        let mut links = SharedLinks { control, generation: at, give_up_ns, waited_ns: 0 };
        if at == generation && blocks % TIME_MODULES_EVERY == 0 {
            publish_modules(rack, &me.modules);
            rack.process_linked(block, &mut ModuleClock { modules: &me.modules }, &mut links);
            me.timed_blocks.store(me.timed_blocks.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        } else {
            rack.process_linked(block, &mut Untimed, &mut links);
        }
        waited_ns += links.waited_ns;
        if at == generation {
            break;
        }
        at = at.wrapping_add(1);
    }
    for (words, channel) in me.output.iter().zip(block.iter()) {
        for (word, sample) in words.iter().zip(channel) {
            word.store(sample.to_bits(), Ordering::Relaxed);
        }
    }
    let end_ns = clock::now_ns();
    let blocks = me.blocks.load(Ordering::Relaxed);
    let timing = &me.timing[blocks as usize % TIMING_SLOTS];
    timing.generation.store(generation, Ordering::Relaxed);
    let woken = me.woken_at_ns.load(Ordering::Relaxed);
    timing.wake_ns.store(start_ns.saturating_sub(woken).min(u32::MAX as u64) as u32, Ordering::Relaxed);
    timing.work_ns.store((end_ns - start_ns).min(u32::MAX as u64) as u32, Ordering::Relaxed);
    timing.wait_ns.store(waited_ns.min(u32::MAX as u64) as u32, Ordering::Relaxed);
    me.blocks.store(blocks + 1, Ordering::Relaxed);
    me.idle.store(u32::from(rack.is_idle()), Ordering::Relaxed);
}

/// The link channels in the shared region, for one block of one worker's rack: sends
/// publish their block, receives wait for theirs until the block's deadline, or until the
/// sender is found dead, and then take silence and count the sender late.
struct SharedLinks<'a> {
    control: &'a shm::Control,
    generation: u32,
    give_up_ns: u64,
    /// Time spent waiting in [`Links::receive`] this block, ns.
    waited_ns: u64,
}

impl Links for SharedLinks<'_> {
    #[inline]
    fn send(&mut self, channel: u16, block: &synthpool_core::Block) {
        let Some(link) = self.control.links.get(channel as usize) else { return };
        for (word, sample) in link.block.iter().zip(block) {
            word.store(sample.to_bits(), Ordering::Relaxed);
        }
        // Release: the block's words are visible before a receiver sees this generation.
        link.generation.store(self.generation, Ordering::Release);
    }

    #[inline]
    fn receive(&mut self, channel: u16, block: &mut synthpool_core::Block) -> bool {
        let Some(link) = self.control.links.get(channel as usize) else { return false };
        if link.generation.load(Ordering::Acquire) != self.generation {
            let since = clock::now_ns();
            let came = self.wait(link);
            self.waited_ns += clock::now_ns() - since;
            if !came {
                return false;
            }
        }
        for (sample, word) in block.iter_mut().zip(&link.block) {
            *sample = f32::from_bits(word.load(Ordering::Relaxed));
        }
        // Still this block's: a sender already in the next block (the clock moved on, so this
        // block is late anyway) may have begun overwriting it.
        link.generation.load(Ordering::Acquire) == self.generation
    }
}

impl SharedLinks<'_> {
    /// Waits for `link`'s block of this generation; false when it gave up (see above).
    fn wait(&self, link: &shm::LinkChannel) -> bool {
        let sender = self.control.workers.get(link.sender.load(Ordering::Relaxed) as usize);
        // Watched, not slept on: the sender runs on another core at the same moment, and
        // its send comes first in its block (the rack's order), so the wait is short; it is
        // bounded by the block's deadline and ends at once if the sender dies.
        while link.generation.load(Ordering::Acquire) != self.generation {
            // A sender whose rack the host's audio thread renders is alive whatever its
            // standing-by process does.
            let alive = sender.is_some_and(|s| {
                s.state.load(Ordering::Acquire) == shm::READY || s.inline.load(Ordering::Acquire) != 0
            });
            if !alive || clock::now_ns() >= self.give_up_ns {
                // (A block the clock passed, rendered to catch up, is this worker's lateness.)
                if let Some(s) = sender.filter(|_| self.give_up_ns != 0) {
                    s.late_links.fetch_add(1, Ordering::Relaxed);
                }
                return false;
            }
            std::hint::spin_loop();
        }
        true
    }
}

/// Charges each slot's time to its [`shm::ModuleTiming`] (this worker is the only writer:
/// a load and a store, no locked instruction).
struct ModuleClock<'a> {
    modules: &'a [shm::ModuleTiming],
}

impl SlotTimer for ModuleClock<'_> {
    #[inline]
    fn now(&mut self) -> u64 {
        clock::now_ns()
    }

    #[inline]
    fn charge(&mut self, slot: usize, spent: u64) {
        if let Some(m) = self.modules.get(slot) {
            m.ns.store(m.ns.load(Ordering::Relaxed) + spent, Ordering::Relaxed);
            m.blocks.store(m.blocks.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }
}

/// Writes which module holds each slot before a timed block; a slot that changed hands
/// starts its counts afresh.
fn publish_modules(rack: &HostRack, modules: &[shm::ModuleTiming]) {
    for (slot, m) in modules.iter().enumerate() {
        let word = rack.slot_module(slot).map_or(0, |(id, kind)| shm::module_word(id, kind));
        if m.module.load(Ordering::Relaxed) != word {
            m.blocks.store(0, Ordering::Relaxed);
            m.ns.store(0, Ordering::Relaxed);
            m.module.store(word, Ordering::Relaxed);
        }
    }
}
