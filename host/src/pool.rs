//! The worker pool: one shared region, worker processes pinned to cores, the block clock.
//!
//! Start-up, in order and timed: lay out the region (every rack cleared in place), launch
//! the `synthpool-worker` processes (they inherit the memfd, map it, pin themselves, claim
//! their rack) and wait until each says ready. Each block, [`Pool::render_block`] bumps the
//! generation word and wakes the workers with one futex call, sleeps on the done word until
//! every worker has published this generation or the deadline passes, and sums what
//! arrived. A worker that misses the deadline costs its own contribution for that block,
//! counted in its `late_blocks`; nobody waits for it.
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};

use rustix::event::{PollFd, PollFlags};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use synthpool_core::BLOCK;
use synthpool_core::block::{Generation, STEREO_SILENCE, StereoBlock};
use synthpool_core::command::{Command, WorkerCommand};
use synthpool_core::ring::DueCommand;

use crate::engine::{Busy, Due, Engine, ModuleTime, WorkerStatus};
use crate::profile::percentile;
use crate::shm::{self, ALL, Region, TIMING_SLOTS};
use crate::{alloc_count, clock, sched};

/// How to build a pool.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Worker processes.
    pub workers: usize,
    /// Sample rate, Hz.
    pub sample_rate_hz: u32,
    /// The `synthpool-worker` executable (default: beside the running executable).
    pub worker_exe: Option<PathBuf>,
    /// The audio thread renders worker 0's rack itself while worker 0's process stands by
    /// ([`Pool::render_block`]): no hand-off for a patch that fits one lane. Off: every lane
    /// is a worker process's (the design before; benchmarks compare the two).
    pub inline: bool,
}

/// How long each start-up stage took.
#[derive(Clone, Debug, Default)]
pub struct Startup {
    /// Creating, sizing, mapping and laying out the shared region.
    pub region: Duration,
    /// From the first spawn to the last worker ready.
    pub workers_ready: Duration,
    /// Each worker, exec to ready.
    pub per_worker: Vec<Duration>,
    /// Bytes in the shared region.
    pub region_bytes: usize,
}

/// The running pool.
pub struct Pool {
    region: Region,
    slots: Mutex<Vec<Slot>>,
    cores: Vec<usize>,
    /// The first core no worker is pinned to, if any: the audio and OSC threads run there.
    free_core: Option<usize>,
    sample_rate_hz: u32,
    exe: PathBuf,
    /// How long the last block took from its wake to its last `done`, ns (written by the
    /// audio thread only): the watch stretches to cover a block as long as the last one.
    last_block_ns: AtomicU64,
    /// The audio clock as the monotonic clock sees it: when generation 0 would have started,
    /// ns as f64 bits (0: no block yet), written by the audio thread each block, smoothed
    /// ([`EPOCH_SMOOTHING`]). Timetags become samples through it ([`Engine::due_in`]).
    epoch_ns: AtomicU64,
    /// The audio thread may render lane [`INLINE_LANE`] itself: configured so, and no block
    /// of it has panicked there.
    inline: AtomicBool,
    /// The workers owed the last block, one bit each (written by the audio thread only).
    owed_last: AtomicU64,
    /// The audio thread is pinned to a core no working process shares (a free core, or
    /// the core of the lane it renders itself): it may watch the clock there.
    audio_alone: AtomicBool,
}

/// The lane the audio thread renders itself when [`PoolConfig::inline`] is on: worker 0's.
/// Its process stands by: it takes the lane back if a block panics on the audio thread.
pub const INLINE_LANE: usize = 0;

/// The audio clock's estimate follows each block's start by this fraction of its error:
/// jitter (a sleeping thread's wake, a device that asks for several blocks at once) is
/// averaged over ~64 blocks, a drift between the device's clock and the system's is followed.
pub const EPOCH_SMOOTHING: f64 = 1.0 / 64.0;

/// Real-time priority of the audio thread (live or offline), above the workers'
/// ([`crate::worker::WORKER_PRIORITY`]): woken by the last worker to finish a block, it takes
/// a core at once instead of waiting out that worker's watch of the clock.
pub const AUDIO_PRIORITY: i32 = 80;

/// What [`Pool::enter_audio_thread`] obtained.
#[derive(Clone, Copy, Debug)]
pub struct AudioThread {
    /// SCHED_FIFO at [`AUDIO_PRIORITY`] was granted.
    pub realtime: bool,
    /// The core the thread was pinned to (one no worker uses), if any.
    pub core: Option<usize>,
}

/// How long the audio thread watches for the workers' last `done` before sleeping on it, when
/// it has a core of its own, at least: a sleeping thread on an idle core of a VM wakes tens of
/// microseconds late. When the last block took longer, the watch covers that long and a
/// quarter more (a heavy patch offline, one block after the other).
pub const HOST_WATCH_NS: u64 = 100_000;

/// The longest the audio thread watches (a block that took longer was slow anyway, and the
/// OSC thread shares the audio thread's core: a watch of most of the 1.33 ms period would
/// starve it).
pub const HOST_WATCH_MAX_NS: u64 = 250_000;

/// One worker process as the host holds it.
struct Slot {
    child: Option<Child>,
    /// Readable when the process has exited (pidfd): the supervisor polls these.
    pidfd: Option<OwnedFd>,
}

/// A worker process that died, as [`Pool::wait_for_death`] found it (already reaped).
#[derive(Clone, Debug)]
pub struct Death {
    /// Its slot.
    pub index: usize,
    /// Its process id.
    pub pid: u32,
    /// How it ended (`signal: 9 (SIGKILL)`, `exit status: 1`).
    pub how: String,
    /// It died while changing its rack: the rack must be rebuilt, not re-attached to.
    pub mid_change: bool,
    /// When it was found dead.
    pub found: Instant,
}

impl Pool {
    /// Lays out the region and starts the workers; returns once all are ready.
    ///
    /// # Errors
    /// The region cannot be created, a worker cannot be started, or one does not report
    /// ready within 5 s.
    pub fn start(config: &PoolConfig) -> io::Result<(Pool, Startup)> {
        let started = Instant::now();
        let region = Region::create(config.workers, config.sample_rate_hz)?;
        inheritable(region.fd())?;
        let region_time = started.elapsed();
        let exe = match &config.worker_exe {
            Some(path) => path.clone(),
            None => default_worker_exe()?,
        };
        let available: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().iter().map(|c| c.id).collect();
        let count = available.len().max(1);
        let cores: Vec<usize> = (0..config.workers).map(|i| available.get(i % count).copied().unwrap_or(0)).collect();
        let free_core = available.iter().copied().find(|id| !cores.contains(id));
        let pool = Pool {
            region,
            slots: Mutex::new(Vec::with_capacity(config.workers)),
            cores,
            free_core,
            sample_rate_hz: config.sample_rate_hz,
            exe,
            last_block_ns: AtomicU64::new(0),
            epoch_ns: AtomicU64::new(0),
            inline: AtomicBool::new(config.inline),
            owed_last: AtomicU64::new(0),
            audio_alone: AtomicBool::new(false),
        };
        let launch = Instant::now();
        let mut spawned_at = Vec::with_capacity(config.workers);
        {
            let mut slots = pool.slots.lock().unwrap_or_else(PoisonError::into_inner);
            for index in 0..config.workers {
                spawned_at.push(Instant::now());
                slots.push(pool.spawn(index)?);
            }
        }
        let mut per_worker = Vec::with_capacity(config.workers);
        for (index, spawned) in spawned_at.iter().enumerate() {
            if let Err(e) = pool.wait_ready(index, Duration::from_secs(5)) {
                pool.kill_all();
                return Err(e);
            }
            per_worker.push(spawned.elapsed());
        }
        let startup = Startup {
            region: region_time,
            workers_ready: launch.elapsed(),
            per_worker,
            region_bytes: pool.region.len(),
        };
        Ok((pool, startup))
    }

    fn spawn(&self, index: usize) -> io::Result<Slot> {
        let worker = &self.region.control().workers[index];
        let before = worker.state.swap(shm::STARTING, Ordering::AcqRel);
        let child = spawn_worker(&self.exe, self.region.raw_fd(), index, self.cores[index]).inspect_err(|_| {
            worker.state.store(before, Ordering::Release);
        })?;
        let pidfd = rustix::process::Pid::from_raw(child.id() as i32)
            .and_then(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok());
        Ok(Slot { child: Some(child), pidfd })
    }

    fn wait_ready(&self, index: usize, limit: Duration) -> io::Result<()> {
        let state = &self.region.control().workers[index].state;
        let give_up = Instant::now() + limit;
        loop {
            let now = state.load(Ordering::Acquire);
            if now == shm::READY {
                return Ok(());
            }
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() || now == shm::EXITED {
                return Err(io::Error::new(io::ErrorKind::TimedOut, format!("worker {index} did not start")));
            }
            shm::futex_wait(state, now, Some(left.min(Duration::from_millis(50))));
        }
    }

    fn kill_all(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        for child in slots.iter_mut().filter_map(|s| s.child.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits up to `timeout` for a worker process to die, reaps it and marks its slot
    /// [`shm::DEAD`] (the audio thread stops waiting for it at once). For the supervisor
    /// thread; a worker told to stop is not a death.
    pub fn wait_for_death(&self, timeout: Duration) -> Option<Death> {
        // Held while polling (at most `timeout`): only `stop` and the supervisor itself take
        // this lock, never the audio thread.
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let watched: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].pidfd.is_some()).collect();
        let index = {
            let mut fds: Vec<PollFd<'_>> = watched
                .iter()
                .filter_map(|&i| slots[i].pidfd.as_ref().map(|fd| PollFd::new(fd, PollFlags::IN)))
                .collect();
            let timespec =
                rustix::time::Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: timeout.subsec_nanos() as i64 };
            if fds.is_empty() {
                drop(slots);
                std::thread::sleep(timeout);
                return None;
            }
            rustix::event::poll(&mut fds, Some(&timespec)).ok()?;
            let ready = fds.iter().position(|fd| !fd.revents().is_empty())?;
            watched[ready]
        };
        let slot = &mut slots[index];
        let mut child = slot.child.take()?;
        slot.pidfd = None;
        let how = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        let found = Instant::now();
        let control = self.region.control();
        if control.clock.stop.load(Ordering::Acquire) != 0 {
            return None;
        }
        let worker = &control.workers[index];
        worker.state.store(shm::DEAD, Ordering::Release);
        Some(Death { index, pid: child.id(), how, mid_change: worker.busy.load(Ordering::Acquire) != 0, found })
    }

    /// Launches a replacement for dead worker `index` and waits (up to 1 s) until it is
    /// ready: [`Pool::release_dead`], [`Pool::launch_replacement`], then what of `rebuild`
    /// did not fit in the ring. The caller must be the only producer for that worker's ring
    /// meanwhile (the OSC thread pushes under the ledger's lock: hold it). Returns the time
    /// from launch to ready.
    ///
    /// # Errors
    /// As those two, or the rest of a rebuild could not be queued within 2 s.
    pub fn relaunch(&self, index: usize, rebuild: Option<&[Command]>) -> io::Result<Duration> {
        self.relaunch_then(index, rebuild, |_| {})
    }

    /// As [`Pool::relaunch`], calling `queued(all)` once the slot is readied and as much of
    /// `rebuild` queued as fits, before the launch: with `all` true nothing is left to queue,
    /// so the caller may stop being the ring's only producer (release the ledger's lock) for
    /// the launch (a few ms; up to 1 s for a replacement that hangs).
    ///
    /// # Errors
    /// As [`Pool::relaunch`].
    pub fn relaunch_then(
        &self,
        index: usize,
        rebuild: Option<&[Command]>,
        queued: impl FnOnce(bool),
    ) -> io::Result<Duration> {
        let rest = self.release_dead(index, rebuild)?;
        queued(rest.is_empty());
        let ready = self.launch_replacement(index)?;
        let rest: Vec<(usize, WorkerCommand)> = rest.iter().map(|&c| (index, c.into())).collect();
        self.push_draining(&rest, Duration::from_secs(2))?;
        Ok(ready)
    }

    /// Readies dead worker `index`'s slot for a replacement. With `rebuild`, its rack is
    /// cleared, its pending commands dropped, and `rebuild` (the ledger's commands for that
    /// worker) queued instead, as much as fits; without, the replacement will re-attach to the
    /// rack and the commands its predecessor left. Returns the part of `rebuild` that did not
    /// fit: it must follow, before any other command for that worker, once the replacement
    /// drains the ring. The caller must be the ring's only producer (hold the ledger's lock).
    ///
    /// # Errors
    /// The slot is still held by a live process.
    fn release_dead<'a>(&self, index: usize, rebuild: Option<&'a [Command]>) -> io::Result<&'a [Command]> {
        shm::release_dead_worker(&self.region, index, rebuild.is_some())?;
        let mut rest = rebuild.unwrap_or_default();
        while let Some((command, tail)) = rest.split_first() {
            if self.push(index, &(*command).into(), Due::block(self.generation())).is_err() {
                break;
            }
            rest = tail;
        }
        Ok(rest)
    }

    /// Starts the replacement for worker `index` (after [`Pool::release_dead`]) and waits
    /// up to 1 s until it is ready; it needs no lock. Returns the time from launch to ready.
    ///
    /// # Errors
    /// The replacement cannot start, or it does not report ready in time (it is then killed).
    fn launch_replacement(&self, index: usize) -> io::Result<Duration> {
        let started = Instant::now();
        let worker = &self.region.control().workers[index];
        worker.restarts.fetch_add(1, Ordering::Relaxed);
        worker.fade_in.store(1, Ordering::Relaxed);
        let slot = self.spawn(index)?;
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)[index] = slot;
        if let Err(e) = self.wait_ready(index, Duration::from_secs(1)) {
            if let Some(child) = self.slots.lock().unwrap_or_else(PoisonError::into_inner)[index].child.as_mut() {
                let _ = child.kill(); // the supervisor finds it dead and tries again
            }
            return Err(e);
        }
        Ok(started.elapsed())
    }

    /// Queues `commands`, each due at once, in order, waiting for room in a full ring as its
    /// worker drains it (at most `limit` in all): for more commands than a ring holds (a
    /// rebuild, an evacuation), applied over a few blocks. The caller must be the rings' only
    /// producer meanwhile (hold the ledger's lock).
    ///
    /// # Errors
    /// A ring stayed full for `limit`: the commands after that point were not queued.
    pub fn push_draining(&self, commands: &[(usize, WorkerCommand)], limit: Duration) -> io::Result<()> {
        let give_up = Instant::now() + limit;
        let mut rest = commands;
        while let Some(((worker, command), tail)) = rest.split_first() {
            if self.push(*worker, command, Due::block(self.generation())).is_ok() {
                rest = tail;
            } else if Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(1));
            } else {
                return Err(io::Error::other(format!("worker {worker}: its command ring did not drain")));
            }
        }
        Ok(())
    }

    /// Gives up on dead worker `index`: its slot stays [`shm::RETIRED`], its ring and rack
    /// are emptied, and the audio thread no longer waits for it.
    ///
    /// # Errors
    /// A live process still holds the slot.
    pub fn retire(&self, index: usize) -> io::Result<()> {
        shm::release_dead_worker(&self.region, index, true)?;
        self.region.control().workers[index].state.store(shm::RETIRED, Ordering::Release);
        Ok(())
    }

    /// How many blocks running worker `index` is behind the clock (0 for a worker that is not
    /// running: starting, dead or retired).
    pub fn blocks_behind(&self, index: usize) -> u32 {
        let control = self.region.control();
        let Some(worker) = control.workers.get(index).filter(|w| w.state.load(Ordering::Acquire) == shm::READY) else {
            return 0;
        };
        // Behind what the host asked of it: a worker the host owes no block (idle, or its lane
        // rendered by the audio thread) is behind nothing.
        if worker.inline.load(Ordering::Acquire) != 0 {
            return 0;
        }
        let asked = worker.wake.load(Ordering::Acquire);
        asked.wrapping_sub(worker.done_generation.load(Ordering::Acquire)).min(i32::MAX as u32)
    }

    /// Kills worker `index`'s process (SIGKILL): the supervisor then finds it dead and
    /// replaces it. For a worker that stopped answering.
    pub fn kill(&self, index: usize) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(child) = slots.get_mut(index).and_then(|s| s.child.as_mut()) {
            let _ = child.kill();
        }
    }

    /// Worker `index`'s load: the median share of the block budget it took over the last 64
    /// generations, a generation it was not asked to render (it had nothing to do, or the
    /// audio thread rendered its rack) counting as none: blocks from before it went idle say
    /// nothing of now, and the first blocks after it wakes (cold caches) weigh as one block.
    fn load(&self, index: usize) -> f32 {
        const WINDOW: usize = 64;
        let budget_ns = BLOCK as f64 / self.sample_rate_hz as f64 * 1e9;
        let control = self.region.control();
        let w = &control.workers[index];
        let now = control.clock.generation.load(Ordering::Relaxed);
        let blocks = w.blocks.load(Ordering::Relaxed);
        let mut work = [0u32; WINDOW];
        let mut found = 0;
        for k in 0..(blocks as usize).min(WINDOW) {
            let timing = &w.timing[(blocks as usize + TIMING_SLOTS - 1 - k) % TIMING_SLOTS];
            if now.wrapping_sub(timing.generation.load(Ordering::Relaxed)) as usize >= WINDOW {
                break;
            }
            // Its own work: time spent waiting for another worker's cable is that one's.
            let (spent, wait) = (timing.work_ns.load(Ordering::Relaxed), timing.wait_ns.load(Ordering::Relaxed));
            work[found] = spent.saturating_sub(wait);
            found += 1;
        }
        // The generations of the window it did not render count as 0, below every block found.
        let window = (now as usize).min(WINDOW).max(found);
        work[..found].sort_unstable();
        let median = (window / 2).checked_sub(window - found).map_or(0, |k| work[k.min(found.saturating_sub(1))]);
        (median as f64 / budget_ns) as f32
    }

    /// The core each worker is pinned to, by worker.
    pub fn cores(&self) -> &[usize] {
        &self.cores
    }

    /// The first core no worker is pinned to, if the machine has one.
    pub fn free_core(&self) -> Option<usize> {
        self.free_core
    }

    /// Makes the calling thread the pool's audio thread: SCHED_FIFO at [`AUDIO_PRIORITY`],
    /// denormals flushed, and pinned to [`Pool::free_core`] when there is one, else (when it
    /// renders [`INLINE_LANE`] itself) to that lane's core, where its process stands by: so
    /// that neither its rendering nor its watch of the workers ([`HOST_WATCH_NS`]) takes a
    /// working process's core. Call it once, on the thread that calls
    /// [`Pool::render_block`], before the first block.
    pub fn enter_audio_thread(&self) -> AudioThread {
        sched::flush_denormals();
        let inline_core = self.cores.get(INLINE_LANE).copied().filter(|&c| {
            self.inline.load(Ordering::Relaxed) && self.cores.iter().filter(|&&other| other == c).count() == 1
        });
        let core =
            self.free_core.or(inline_core).filter(|&id| core_affinity::set_for_current(core_affinity::CoreId { id }));
        self.audio_alone.store(core.is_some(), Ordering::Relaxed);
        AudioThread { realtime: sched::set_realtime(AUDIO_PRIORITY).is_ok(), core }
    }

    /// The state word of worker `index` ([`shm::READY`] and so on).
    pub fn state(&self, index: usize) -> u32 {
        self.region.control().workers.get(index).map_or(shm::EXITED, |w| w.state.load(Ordering::Acquire))
    }

    /// Heap allocations and frees worker `index` made while rendering.
    pub fn worker_allocations(&self, index: usize) -> (u64, u64) {
        let w = &self.region.control().workers[index];
        (w.allocations.load(Ordering::Relaxed), w.frees.load(Ordering::Relaxed))
    }

    /// Renders one block: renders [`INLINE_LANE`] here when it can ([`PoolConfig::inline`]),
    /// wakes every other worker that has work (a command waiting, or a rack that is not
    /// idle), waits for them until `deadline` from now, and sums the lanes' outputs into
    /// `out`. Returns how many workers missed the deadline. Allocation-free, lock-free; its
    /// only syscalls are the futex wakes and wait.
    pub fn render_block(&self, out: &mut StereoBlock, deadline: Duration) -> usize {
        let _counting = alloc_count::CountAllocations::here();
        let control = self.region.control();
        let clock = &control.clock;
        let workers = &control.workers[..self.region.workers()];
        let now = clock::now_ns();
        let generation = clock.generation.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        let mut lane = if self.inline.load(Ordering::Relaxed) { self.region.take_lane(INLINE_LANE) } else { None };
        let inline = lane.as_ref().map(|l| l.index());
        // The workers this block waits for (MAX_WORKERS is 64, one bit each): those READY
        // as it starts with something to do. One that becomes ready meanwhile joins at the
        // next block; one that dies meanwhile (the supervisor marks it DEAD) is waited for no
        // longer. An idle one sleeps on: it would render silence.
        let owed_mask = workers
            .iter()
            .enumerate()
            .filter(|&(i, w)| {
                Some(i) != inline
                    && w.state.load(Ordering::Acquire) == shm::READY
                    && (w.idle.load(Ordering::Relaxed) == 0 || !w.commands.is_empty())
            })
            .fold(0u64, |mask, (i, _)| mask | 1 << i);
        clock
            .expected_done
            .store(clock.done.load(Ordering::Acquire).wrapping_add(owed_mask.count_ones()), Ordering::Release);
        // A worker waiting for a link's block gives up when this block is given up on.
        clock.deadline_ns.store(now + deadline.as_nanos() as u64, Ordering::Relaxed);
        let owed_before = self.owed_last.swap(owed_mask, Ordering::Relaxed);
        for (i, worker) in workers.iter().enumerate().filter(|&(i, _)| owed_mask >> i & 1 == 1) {
            worker.woken_at_ns.store(now, Ordering::Relaxed);
            if owed_before >> i & 1 == 0 {
                worker.owed_from.store(generation, Ordering::Release);
            }
            // SeqCst pairs with the worker's: it counts itself asleep, then the futex checks
            // the word; so either it sees this store, or this sees it asleep.
            worker.wake.store(generation, Ordering::SeqCst);
            if worker.sleeping.load(Ordering::SeqCst) != 0 {
                shm::futex_wake(&worker.wake, 1);
            }
        }
        self.follow_clock(generation, now);
        if let Some(held) = lane.as_mut() {
            // Timed from here: the wakes above are the pool's work, not the lane's.
            self.render_inline(held, generation, clock::now_ns());
        }
        drop(lane);
        let end = now + deadline.as_nanos() as u64;
        // Only from a core no working process shares (the audio thread is pinned there):
        // watching takes time from nobody. Without one, it sleeps at once.
        let watch_ns = if self.audio_alone.load(Ordering::Relaxed) {
            (self.last_block_ns.load(Ordering::Relaxed) / 4 * 5).clamp(HOST_WATCH_NS, HOST_WATCH_MAX_NS)
        } else {
            0
        };
        let owed =
            |i: usize, w: &shm::WorkerShared| owed_mask >> i & 1 == 1 && w.state.load(Ordering::Acquire) == shm::READY;
        loop {
            let done = clock.done.load(Ordering::Acquire);
            if workers
                .iter()
                .enumerate()
                .all(|(i, w)| !owed(i, w) || w.done_generation.load(Ordering::Acquire) == generation)
            {
                break;
            }
            let t = clock::now_ns();
            if t >= end {
                break;
            }
            if t < now + watch_ns {
                std::hint::spin_loop();
                continue;
            }
            shm::futex_wait(&clock.done, done, Some(Duration::from_nanos(end - t)));
        }
        self.last_block_ns.store(clock::now_ns() - now, Ordering::Relaxed);
        *out = STEREO_SILENCE;
        let mut late = 0;
        for (i, worker) in workers.iter().enumerate() {
            if worker.done_generation.load(Ordering::Acquire) == generation {
                // A replacement's first block fades in: no step where its sound returns (the
                // audio thread's own block of a lane whose process was replaced never stopped).
                let fade = worker.fade_in.swap(0, Ordering::Relaxed) != 0 && Some(i) != inline;
                for (channel, words) in out.iter_mut().zip(&worker.output) {
                    for (k, (o, word)) in channel.iter_mut().zip(words).enumerate() {
                        let gain = if fade { (k + 1) as f32 / BLOCK as f32 } else { 1.0 };
                        *o += gain * f32::from_bits(word.load(Ordering::Relaxed));
                    }
                }
            } else if owed(i, worker) {
                worker.late_blocks.fetch_add(1, Ordering::Relaxed);
                late += 1;
            }
        }
        late
    }

    /// Renders the held lane's block `generation` on this thread, as its worker would, and
    /// publishes it. A panic there (a bug in a unit) is caught: the lane goes back to its
    /// process for good, rebuilt from the ledger (the process is killed with its rack marked
    /// half-changed, and the supervisor replaces it as any worker that died mid-block), and
    /// the other lanes play on.
    fn render_inline(&self, held: &mut shm::LaneGuard<'_>, generation: u32, start_ns: u64) {
        let index = held.index();
        let (control, rack, outboxes) = held.parts();
        let me = &control.workers[index];
        let mut block = synthpool_core::block::STEREO_SILENCE;
        me.woken_at_ns.store(start_ns, Ordering::Relaxed);
        let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let lane = crate::worker::Lane { control, index, rack, outboxes };
            crate::worker::render_lane(lane, &mut block, generation, generation, start_ns);
        }));
        match rendered {
            // Release: the output words are visible before the gather below reads them.
            Ok(()) => me.done_generation.store(generation, Ordering::Release),
            Err(_) => {
                self.inline.store(false, Ordering::Relaxed);
                me.busy.store(1, Ordering::Release);
                let pid = rustix::process::Pid::from_raw(me.pid.load(Ordering::Relaxed) as i32);
                if let Some(pid) = pid {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
                me.inline.store(0, Ordering::Release);
            }
        }
    }

    /// Sets the audio input (left, right) the next [`Pool::render_block`] plays to its
    /// racks' `input` modules; it stays until set again. Call it from the audio thread,
    /// before the block: allocation-free, lock-free.
    pub fn set_input(&self, input: &StereoBlock) {
        for (words, channel) in self.region.control().capture.iter().zip(input) {
            for (word, sample) in words.iter().zip(channel) {
                word.store(sample.to_bits(), Ordering::Relaxed);
            }
        }
    }

    /// The generation of the block rendered last.
    pub fn generation(&self) -> u32 {
        self.region.control().clock.generation.load(Ordering::Acquire)
    }

    /// Stops the workers and waits for them to exit.
    pub fn stop(&self) {
        let clock = &self.region.control().clock;
        clock.stop.store(1, Ordering::Release);
        for worker in &self.region.control().workers[..self.region.workers()] {
            worker.wake.fetch_add(1, Ordering::AcqRel);
            shm::futex_wake(&worker.wake, ALL);
        }
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        for child in slots.iter_mut().filter_map(|s| s.child.as_mut()) {
            let give_up = Instant::now() + Duration::from_secs(2);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        slots.clear();
    }

    /// Moves the audio clock's estimate (`epoch_ns`) toward block `generation` having started
    /// at `now_ns`; a first block, or one more than 8 blocks off (a stall, a wrapped
    /// generation), sets it outright.
    fn follow_clock(&self, generation: u32, now_ns: u64) {
        let period_ns = self.block_period_ns();
        let epoch = f64::from_bits(self.epoch_ns.load(Ordering::Relaxed));
        let error = now_ns as f64 - (epoch + f64::from(generation) * period_ns);
        let epoch = if epoch == 0.0 || error.abs() > 8.0 * period_ns {
            now_ns as f64 - f64::from(generation) * period_ns
        } else {
            epoch + error * EPOCH_SMOOTHING
        };
        self.epoch_ns.store(epoch.to_bits(), Ordering::Relaxed);
    }

    fn block_period_ns(&self) -> f64 {
        BLOCK as f64 * 1e9 / f64::from(self.sample_rate_hz)
    }

    fn push(&self, worker: usize, command: &WorkerCommand, due: Due) -> Result<(), Busy> {
        let message = DueCommand { command: *command, due: Generation(due.generation), frame: due.frame };
        let ring = &self.region.control().workers.get(worker).ok_or(Busy)?.commands;
        ring.try_push(message.to_words()).map_err(|_| Busy)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Engine for Pool {
    fn workers(&self) -> usize {
        self.region.workers()
    }

    fn send(&self, worker: usize, command: &WorkerCommand) -> Result<(), Busy> {
        // Due at once: at the next block any worker starts.
        self.push(worker, command, Due::block(self.generation()))
    }

    fn send_together(&self, commands: &[(usize, WorkerCommand)]) -> Result<(), Busy> {
        // Two blocks ahead: every worker reads the whole bundle at the same block, even if
        // one wakes while the bundle is still being pushed.
        self.send_together_at(commands, Due::block(self.generation().wrapping_add(2)))
    }

    fn due_in(&self, ahead: Duration) -> Due {
        let epoch = f64::from_bits(self.epoch_ns.load(Ordering::Relaxed));
        let current = self.generation();
        let soonest = Due::sample(current.wrapping_add(2), 0);
        if epoch == 0.0 {
            return soonest;
        }
        // Samples from the start of the current block to the time named.
        let period_ns = self.block_period_ns();
        let at_ns = clock::now_ns() as f64 + ahead.as_nanos() as f64;
        let samples = ((at_ns - (epoch + f64::from(current) * period_ns)) * BLOCK as f64 / period_ns).round();
        if samples < 2.0 * BLOCK as f64 {
            return soonest;
        }
        let samples = samples as u64;
        Due::sample(current.wrapping_add((samples / BLOCK as u64) as u32), (samples % BLOCK as u64) as u8)
    }

    fn send_together_at(&self, commands: &[(usize, WorkerCommand)], due: Due) -> Result<(), Busy> {
        let control = self.region.control();
        let mut wanted = vec![0usize; self.region.workers()];
        for (worker, _) in commands {
            *wanted.get_mut(*worker).ok_or(Busy)? += 1;
        }
        // One producer (this thread): free room only grows while we push.
        for (worker, &n) in wanted.iter().enumerate() {
            let ring = &control.workers[worker].commands;
            if ring.capacity() - ring.len() < n {
                return Err(Busy);
            }
        }
        for (worker, command) in commands {
            self.push(*worker, command, due)?;
        }
        Ok(())
    }

    fn generation(&self) -> u32 {
        Pool::generation(self)
    }

    fn loads(&self) -> Vec<f32> {
        (0..self.region.workers()).map(|index| self.load(index)).collect()
    }

    fn status(&self) -> Vec<WorkerStatus> {
        let control = self.region.control();
        (0..self.region.workers())
            .map(|index| {
                let w = &control.workers[index];
                let blocks = w.blocks.load(Ordering::Relaxed);
                // Up to the whole ring but the slot being written.
                let window = blocks.min(TIMING_SLOTS as u64 - 1) as usize;
                let at = |k: usize| &w.timing[(blocks as usize + TIMING_SLOTS - 1 - k) % TIMING_SLOTS];
                let mut block_ns: Vec<u32> = (0..window).map(|k| at(k).work_ns.load(Ordering::Relaxed)).collect();
                let mut wake_ns: Vec<u32> = (0..window).map(|k| at(k).wake_ns.load(Ordering::Relaxed)).collect();
                block_ns.sort_unstable();
                wake_ns.sort_unstable();
                let us = |ns: u32| ns as f32 / 1e3;
                let alive = matches!(w.state.load(Ordering::Relaxed), shm::STARTING | shm::READY);
                WorkerStatus {
                    pid: if alive { w.pid.load(Ordering::Relaxed) } else { 0 },
                    core: self.cores.get(index).copied().unwrap_or(0),
                    load: self.load(index),
                    late_blocks: w.late_blocks.load(Ordering::Relaxed),
                    late_links: w.late_links.load(Ordering::Relaxed),
                    blocks,
                    state: w.state.load(Ordering::Relaxed),
                    restarts: w.restarts.load(Ordering::Relaxed),
                    allocations: w.allocations.load(Ordering::Relaxed),
                    frees: w.frees.load(Ordering::Relaxed),
                    block_p50_us: us(percentile(&block_ns, 0.5)),
                    block_p99_us: us(percentile(&block_ns, 0.99)),
                    block_max_us: us(block_ns.last().copied().unwrap_or(0)),
                    wake_p50_us: us(percentile(&wake_ns, 0.5)),
                    wake_p99_us: us(percentile(&wake_ns, 0.99)),
                    inline: w.inline.load(Ordering::Relaxed) != 0,
                }
            })
            .collect()
    }

    fn module_time(&self, worker: usize, id: u16) -> Option<ModuleTime> {
        if worker >= self.region.workers() {
            return None;
        }
        let shared = &self.region.control().workers[worker];
        let slot = shared
            .modules
            .iter()
            .find(|m| shm::module_of_word(m.module.load(Ordering::Relaxed)).is_some_and(|(found, _)| found == id))?;
        let (blocks, ns) = (slot.blocks.load(Ordering::Relaxed), slot.ns.load(Ordering::Relaxed));
        Some(ModuleTime { mean_ns: if blocks == 0 { 0.0 } else { ns as f64 / f64::from(blocks) }, blocks })
    }

    fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }
}

/// Clears close-on-exec on `fd` so the workers this process launches inherit it.
fn inheritable(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    let flags = rustix::io::fcntl_getfd(fd)?;
    rustix::io::fcntl_setfd(fd, flags - rustix::io::FdFlags::CLOEXEC)?;
    Ok(())
}

/// Launches worker `index`. In a process group of its own: a Ctrl-C at the terminal (or any
/// signal sent to the server's group) reaches the server alone, which stops its workers
/// itself, instead of killing them under it to be replaced while it stops; they still
/// never outlive it (PR_SET_PDEATHSIG, worker.rs).
fn spawn_worker(exe: &Path, fd: i32, index: usize, core: usize) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    Process::new(exe)
        .args(["--fd", &fd.to_string(), "--index", &index.to_string(), "--core", &core.to_string()])
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start {}: {e}", exe.display())))
}

/// The environment variable naming the `synthpool-worker` to launch when the configuration
/// names none (`cargo xtask` points it at the statically linked worker it builds).
pub const WORKER_ENV: &str = "SYNTHPOOL_WORKER";

/// The worker [`WORKER_ENV`] names, else `synthpool-worker` beside the running executable (or
/// one directory up, for test binaries in `target/*/deps`).
fn default_worker_exe() -> io::Result<PathBuf> {
    if let Some(path) = std::env::var_os(WORKER_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(io::Error::new(io::ErrorKind::NotFound, format!("{WORKER_ENV}={} is not a file", path.display())))
        };
    }
    let me = std::env::current_exe()?;
    let dir = me.parent().ok_or_else(|| io::Error::other("executable has no directory"))?;
    for candidate in [dir.join("synthpool-worker"), dir.join("../synthpool-worker")] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, format!("synthpool-worker not found beside {}", me.display())))
}
